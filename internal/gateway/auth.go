package gateway

import (
	"context"
	"net/http"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
)

// errBadKey is every authentication failure: which check failed is not
// the caller's business.
var errBadKey = &Error{Status: http.StatusUnauthorized, Type: ErrorTypeAuthentication, Code: "invalid_api_key",
	Message: "Incorrect API key provided."}

// Authenticate resolves a virtual key: active, unexpired, and either its
// current secret or its previous one within the rotation grace period.
// Keys are kept in memory for ConfigTTL; changes made through this process
// apply at once.
func (s *Service) Authenticate(ctx context.Context, secret string) (*Key, error) {
	if !LooksLikeKey(secret) {
		return nil, errBadKey
	}
	hash := HashKey(secret)
	now := s.now()
	s.mu.Lock()
	e := s.keys[string(hash)]
	s.mu.Unlock()
	var k Key
	if e != nil && now.Before(e.expire) {
		k = e.key
	} else {
		found, err := s.store.FindKeyByHash(ctx, hash)
		if err != nil {
			if nodus.ErrorCode(err) == nodus.ENOTFOUND {
				return nil, errBadKey
			}
			return nil, err
		}
		k = found
		if s.quotas != nil {
			if err := s.learnBudgets(ctx, k); err != nil {
				return nil, err
			}
		}
		s.mu.Lock()
		s.keys[string(hash)] = &keyEntry{key: k, expire: now.Add(s.ttl)}
		s.mu.Unlock()
	}
	switch {
	case k.Status != KeyActive:
		return nil, &Error{Status: http.StatusUnauthorized, Type: ErrorTypeAuthentication, Code: "key_blocked", Message: "This API key is blocked."}
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return nil, &Error{Status: http.StatusUnauthorized, Type: ErrorTypeAuthentication, Code: "key_expired", Message: "This API key has expired."}
	case !sameHash(k.Hash, hash) && (k.PreviousValidUntil == nil || !now.Before(*k.PreviousValidUntil) || !sameHash(k.PreviousHash, hash)):
		return nil, errBadKey
	}
	s.noteKeyUse(k.ID, now)
	return &k, nil
}

// forgetKeys drops cached keys after a change to any of them.
func (s *Service) forgetKeys() {
	s.mu.Lock()
	clear(s.keys)
	s.mu.Unlock()
}

// bearer returns the key a request presents: Authorization: Bearer, or
// the x-api-key header Anthropic's SDK sends.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(rest)
		}
		return ""
	}
	return r.Header.Get("X-Api-Key")
}

// learnBudgets loads the budgets of a key just read from the store (its
// own, its user's, its tenant's) that this replica does not know yet:
// with replicas, a key and its budget may have been created through
// another one a moment ago, and the call must not wait for the next
// reload to be bound by them.
func (s *Service) learnBudgets(ctx context.Context, k Key) error {
	tctx := nodus.WithTenant(ctx, k.TenantID)
	refs := []budgetRef{{k.TenantID, BudgetKey, k.ID}, {k.TenantID, BudgetTenant, ""}}
	if k.UserID != "" {
		refs = append(refs, budgetRef{k.TenantID, BudgetUser, k.UserID})
	}
	for _, ref := range refs {
		s.mu.Lock()
		_, known := s.budgetID[ref]
		s.mu.Unlock()
		if known {
			continue
		}
		b, err := s.store.FindBudget(tctx, ref.scope, ref.subject)
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			continue
		}
		if err != nil {
			return err
		}
		if !s.ledger.Has(b.ID) {
			if err := s.ledger.Put(b); err != nil {
				return err
			}
		}
		s.mu.Lock()
		s.budgetID[ref] = b.ID
		s.mu.Unlock()
	}
	return nil
}
