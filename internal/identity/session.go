package identity

import (
	"context"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Session lifetimes: a session ends after SessionIdle without use or
// SessionMax after sign-in, whichever comes first.
const (
	SessionIdle = 30 * time.Minute
	SessionMax  = 12 * time.Hour
	// touchEvery bounds writes: last_seen_at moves at most once a minute.
	touchEvery = time.Minute
)

// SessionStore is what sessions need from the database.
type SessionStore interface {
	CreateSession(ctx context.Context, s *Session) error
	FindSession(ctx context.Context, idHash string) (*Session, *Principal, error)
	TouchSession(ctx context.Context, idHash string, at time.Time) error
	DeleteSession(ctx context.Context, idHash string) error
	FindTokenByHash(ctx context.Context, hash string) (*Token, *Principal, error)
	TouchToken(ctx context.Context, tokenID string, at time.Time) error
}

var errNoSession = nodus.Errorf(nodus.EUNAUTHORIZED, "not signed in")

// StartSession opens a session for a principal that just authenticated and
// returns the secret for the cookie. The id is new at every sign-in, so a
// session id planted before sign-in is worthless.
func (s *Service) StartSession(ctx context.Context, p *Principal, c Client) (string, *Session, error) {
	now := s.clock.Now()
	secret, hash := NewSecret("")
	csrf, _ := NewSecret("")
	sess := &Session{IDHash: hash, UserID: p.User.ID, TenantID: p.User.TenantID, CSRFToken: csrf,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(SessionMax),
		Address: truncate(c.Address, 100), UserAgent: truncate(c.UserAgent, 512)}
	if err := s.sessions.CreateSession(ctx, sess); err != nil {
		return "", nil, err
	}
	return secret, sess, nil
}

// ResolveSession returns the live session for a cookie secret and its
// principal, or EUNAUTHORIZED: unknown, expired (absolute or idle), a
// disabled user or a deactivated tenant all end it.
func (s *Service) ResolveSession(ctx context.Context, secret string) (*Session, *Principal, error) {
	if secret == "" || len(secret) > 128 {
		return nil, nil, errNoSession
	}
	sess, p, err := s.sessions.FindSession(ctx, HashSecret(secret))
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return nil, nil, errNoSession
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.clock.Now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) >= SessionIdle || !p.User.IsActive || !p.TenantActive {
		_ = s.sessions.DeleteSession(ctx, sess.IDHash)
		return nil, nil, errNoSession
	}
	if now.Sub(sess.LastSeenAt) >= touchEvery {
		if err := s.sessions.TouchSession(ctx, sess.IDHash, now); err != nil {
			return nil, nil, err
		}
		sess.LastSeenAt = now
	}
	return sess, p, nil
}

// EndSession signs a session out.
func (s *Service) EndSession(ctx context.Context, sess *Session, p *Principal, c Client) error {
	if err := s.sessions.DeleteSession(ctx, sess.IDHash); err != nil {
		return err
	}
	return s.record(ctx, audit.Entry{Action: "auth.logout", ActorKind: "user", ActorID: p.User.ID,
		TenantID: p.User.TenantID, TargetType: "user", TargetID: p.User.ID}, c)
}

var errBadToken = nodus.Errorf(nodus.EUNAUTHORIZED, "invalid API token")

// ResolveToken returns the live API token for a bearer secret and its
// principal, or EUNAUTHORIZED. Junk that is not shaped like a token is
// refused without a lookup.
func (s *Service) ResolveToken(ctx context.Context, secret string) (*Token, *Principal, error) {
	if !LooksLikeToken(secret) {
		return nil, nil, errBadToken
	}
	k, p, err := s.sessions.FindTokenByHash(ctx, HashSecret(secret))
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return nil, nil, errBadToken
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.clock.Now()
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)) || !p.User.IsActive || !p.TenantActive {
		return nil, nil, errBadToken
	}
	if k.Role != "" && !k.Role.AtLeast(p.User.Role) {
		p.User.Role = k.Role // the token's cap, never above the owner's current role
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= touchEvery {
		if err := s.sessions.TouchToken(ctx, k.ID, now); err != nil {
			return nil, nil, err
		}
		k.LastUsedAt = &now
	}
	return k, p, nil
}
