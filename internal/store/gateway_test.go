package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// runGateway runs fn on both databases with the gateway set applied and returns
// two tenants' contexts.
func runGateway(t *testing.T, fn func(t *testing.T, db *store.DB, a, b tenantScope)) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetGateway)
		fn(t, db, newTenantScope(), newTenantScope())
	})
}

// tenantScope is a tenant id and a context scoped to it.
type tenantScope struct {
	id  string
	ctx context.Context
}

func newTenantScope() tenantScope {
	id := nodus.NewID()
	return tenantScope{id: id, ctx: nodus.WithTenant(ctx, id)}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if nodus.ErrorCode(err) != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func timep(t time.Time) *time.Time { return &t }

func newDeployment(tenantID, model string) gateway.Deployment {
	now := nodus.SystemClock{}.Now()
	return gateway.Deployment{ID: nodus.NewID(), TenantID: tenantID, ModelName: model, Provider: gateway.ProviderOpenAI,
		UpstreamModel: model + "-2024", BaseURL: "https://api.example.com/v1", APIKeyHandle: nodus.NewID(),
		Mode: gateway.ModeChat, Weight: 2, RPM: 100, TPM: 1000, MaxConcurrency: 4, Timeout: 30 * time.Second,
		IsActive: true, CreatedAt: now, CreatedBy: "u1", UpdatedAt: now, UpdatedBy: "u1"}
}

func TestGatewayDeployments(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		d1, d2, d3 := newDeployment(a.id, "gpt-4o"), newDeployment(a.id, "claude"), newDeployment(a.id, "gpt-4o")
		for _, d := range []gateway.Deployment{d1, d2, d3} {
			if err := db.CreateDeployment(a.ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		wantCode(t, "duplicate id", db.CreateDeployment(a.ctx, d1), nodus.ECONFLICT)
		bad := newDeployment(a.id, "x")
		bad.Weight = 0
		wantCode(t, "weight 0", db.CreateDeployment(a.ctx, bad), nodus.EINVALID)
		wantCode(t, "record of another tenant", db.CreateDeployment(b.ctx, newDeployment(a.id, "x")), nodus.EINTERNAL)

		got, err := db.FindDeployment(a.ctx, d1.ID)
		if err != nil || !reflect.DeepEqual(got, d1) {
			t.Fatalf("FindDeployment = %+v, %v; want %+v", got, err, d1)
		}
		list, err := db.ListDeployments(a.ctx)
		// By model name, then id (UUIDv7: creation order).
		if err != nil || len(list) != 3 || list[0].ID != d2.ID || list[1].ID != d1.ID || list[2].ID != d3.ID {
			t.Fatalf("ListDeployments = %+v, %v", list, err)
		}

		d1.Weight, d1.IsActive, d1.Timeout, d1.UpdatedBy = 5, false, 1500*time.Millisecond, "u2"
		if err := db.UpdateDeployment(a.ctx, d1); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindDeployment(a.ctx, d1.ID); !reflect.DeepEqual(got, d1) {
			t.Errorf("after update: %+v, want %+v", got, d1)
		}

		// Tenant B neither sees nor changes A's deployments.
		if _, err := db.FindDeployment(b.ctx, d1.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's deployment: %v", err)
		}
		if list, err := db.ListDeployments(b.ctx); err != nil || len(list) != 0 {
			t.Errorf("B lists %d deployments, %v", len(list), err)
		}
		changed := d1
		changed.TenantID, changed.BaseURL = b.id, "https://evil.example"
		wantCode(t, "B updates A's deployment", db.UpdateDeployment(b.ctx, changed), nodus.ENOTFOUND)
		wantCode(t, "B deletes A's deployment", db.DeleteDeployment(b.ctx, d1.ID), nodus.ENOTFOUND)
		if got, _ := db.FindDeployment(a.ctx, d1.ID); !reflect.DeepEqual(got, d1) {
			t.Errorf("A's deployment changed by B: %+v", got)
		}

		if err := db.DeleteDeployment(a.ctx, d1.ID); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "find deleted", func() error { _, err := db.FindDeployment(a.ctx, d1.ID); return err }(), nodus.ENOTFOUND)
		wantCode(t, "delete twice", db.DeleteDeployment(a.ctx, d1.ID), nodus.ENOTFOUND)
		wantCode(t, "no scope", func() error { _, err := db.ListDeployments(ctx); return err }(), nodus.EINTERNAL)
	})
}

func TestGatewayRouterSettings(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		if _, err := db.FindRouterSettings(a.ctx); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Fatalf("no settings yet: %v", err)
		}
		s := gateway.RouterSettings{TenantID: a.id, Strategy: "least-busy", NumRetries: 3, AllowedFails: 2,
			FailWindow: time.Minute, CooldownTime: 30 * time.Second,
			Fallbacks: map[string][]string{"gpt-4o": {"claude", "llama"}}, UpdatedAt: nodus.SystemClock{}.Now(), UpdatedBy: "u1"}
		if err := db.UpdateRouterSettings(a.ctx, s); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindRouterSettings(a.ctx); err != nil || !reflect.DeepEqual(got, s) {
			t.Fatalf("FindRouterSettings = %+v, %v; want %+v", got, err, s)
		}
		s.Strategy, s.Fallbacks = "weighted", nil
		if err := db.UpdateRouterSettings(a.ctx, s); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindRouterSettings(a.ctx); err != nil || !reflect.DeepEqual(got, s) {
			t.Fatalf("replaced: %+v, %v; want %+v", got, err, s)
		}
		if _, err := db.FindRouterSettings(b.ctx); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B sees A's settings: %v", err)
		}
		// B's own settings leave A's alone.
		other := s
		other.TenantID, other.NumRetries = b.id, 9
		if err := db.UpdateRouterSettings(b.ctx, other); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindRouterSettings(a.ctx); got.NumRetries != 3 {
			t.Errorf("A's settings changed by B: %+v", got)
		}
	})
}

func newKey(tenantID, name string) gateway.Key {
	now := nodus.SystemClock{}.Now()
	return gateway.Key{ID: nodus.NewID(), TenantID: tenantID, Name: name, Hash: hashOf(name + nodus.NewID()),
		Prefix: "sk-nodus-ab12", UserID: nodus.NewID(), Models: []string{"gpt-4o", "claude"}, RPM: 60, TPM: 6000,
		MaxParallel: 3, ExpiresAt: timep(now.Add(24 * time.Hour)),
		Metadata: map[string]json.RawMessage{"team": json.RawMessage(`"search"`), "n": json.RawMessage(`1`)},
		Status:   gateway.KeyActive, CreatedAt: now, CreatedBy: "u1", UpdatedAt: now, UpdatedBy: "u1"}
}

func TestGatewayKeys(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		k1, k2, k3 := newKey(a.id, "one"), newKey(a.id, "two"), newKey(a.id, "three")
		k3.Models, k3.Metadata, k3.ExpiresAt = nil, nil, nil
		for _, k := range []gateway.Key{k1, k2, k3} {
			if err := db.CreateKey(a.ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		same := newKey(b.id, "copy")
		same.Hash = k1.Hash
		wantCode(t, "a taken hash, in another tenant too", db.CreateKey(b.ctx, same), nodus.ECONFLICT)

		for _, k := range []gateway.Key{k1, k3} {
			if got, err := db.FindKey(a.ctx, k.ID); err != nil || !reflect.DeepEqual(got, k) {
				t.Errorf("FindKey = %+v, %v; want %+v", got, err, k)
			}
		}
		// The sign-in lookup needs no scope.
		if got, err := db.FindKeyByHash(ctx, k2.Hash); err != nil || got.ID != k2.ID {
			t.Errorf("FindKeyByHash = %+v, %v", got, err)
		}
		for _, h := range [][]byte{nil, hashOf("unknown")} {
			if _, err := db.FindKeyByHash(ctx, h); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("FindKeyByHash(%x): %v", h, err)
			}
		}

		// Pages of two, by id.
		page, next, err := db.ListKeys(a.ctx, "", 2)
		if err != nil || len(page) != 2 || next == "" || page[0].ID != k1.ID || page[1].ID != k2.ID {
			t.Fatalf("first page: %d keys, %q, %v", len(page), next, err)
		}
		page, next, err = db.ListKeys(a.ctx, next, 2)
		if err != nil || len(page) != 1 || next != "" || page[0].ID != k3.ID {
			t.Fatalf("second page: %d keys, %q, %v", len(page), next, err)
		}
		if _, _, err := db.ListKeys(a.ctx, "not a cursor", 2); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("bad cursor: %v", err)
		}

		// Rotation: the old secret stays valid through previous_hash.
		old := k1.Hash
		k1.PreviousHash, k1.PreviousValidUntil = old, timep(k1.CreatedAt.Add(time.Hour))
		k1.Hash, k1.Status, k1.Models, k1.UpdatedBy = hashOf("rotated"), gateway.KeyBlocked, []string{"gpt-4o"}, "u2"
		if err := db.UpdateKey(a.ctx, k1); err != nil {
			t.Fatal(err)
		}
		for _, h := range [][]byte{k1.Hash, old} {
			if got, err := db.FindKeyByHash(ctx, h); err != nil || !reflect.DeepEqual(got, k1) {
				t.Errorf("FindKeyByHash(%x) after rotation = %+v, %v", h, got, err)
			}
		}
		taken := k2
		taken.Hash = k1.Hash
		wantCode(t, "update to a taken hash", db.UpdateKey(a.ctx, taken), nodus.ECONFLICT)

		// Touches need no scope and never move last use backwards.
		at := nodus.SystemClock{}.Now()
		if err := db.TouchKeys(ctx, at, []string{k1.ID, k2.ID, nodus.NewID()}); err != nil {
			t.Fatal(err)
		}
		if err := db.TouchKeys(ctx, at.Add(-time.Minute), []string{k1.ID}); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindKey(a.ctx, k1.ID); got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
			t.Errorf("last used %v, want %v", got.LastUsedAt, at)
		}
		if got, _ := db.FindKey(a.ctx, k3.ID); got.LastUsedAt != nil {
			t.Errorf("untouched key has last use %v", got.LastUsedAt)
		}

		// Tenant B neither sees nor changes A's keys.
		if _, err := db.FindKey(b.ctx, k1.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's key: %v", err)
		}
		if page, _, err := db.ListKeys(b.ctx, "", 10); err != nil || len(page) != 0 {
			t.Errorf("B lists %d keys, %v", len(page), err)
		}
		before, err := db.FindKey(a.ctx, k2.ID)
		if err != nil {
			t.Fatal(err)
		}
		grab := before
		grab.TenantID, grab.Status, grab.Models = b.id, gateway.KeyBlocked, nil
		wantCode(t, "B updates A's key", db.UpdateKey(b.ctx, grab), nodus.ENOTFOUND)
		wantCode(t, "B deletes A's key", db.DeleteKey(b.ctx, k2.ID), nodus.ENOTFOUND)
		if got, err := db.FindKey(a.ctx, k2.ID); err != nil || !reflect.DeepEqual(got, before) {
			t.Errorf("A's key changed by B: %+v, %v", got, err)
		}

		if err := db.DeleteKey(a.ctx, k1.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindKeyByHash(ctx, old); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("deleted key found by its old hash: %v", err)
		}
	})
}

func newBudget(tenantID, scope, subject string, maxMicros int64) gateway.Budget {
	now := nodus.SystemClock{}.Now()
	return gateway.Budget{ID: nodus.NewID(), TenantID: tenantID, Scope: scope, SubjectID: subject, MaxMicros: maxMicros,
		Period: "1d", ResetAt: timep(now.Add(24 * time.Hour)), UpdatedAt: now, UpdatedBy: "u1"}
}

func TestGatewayBudgets(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		user := nodus.NewID()
		ta, ua := newBudget(a.id, gateway.BudgetTenant, "", 1_000_000), newBudget(a.id, gateway.BudgetUser, user, 500)
		tb := newBudget(b.id, gateway.BudgetTenant, "", 7)
		for _, c := range []struct {
			s  tenantScope
			bg gateway.Budget
		}{{a, ta}, {a, ua}, {b, tb}} {
			if err := db.CreateBudget(c.s.ctx, c.bg); err != nil {
				t.Fatal(err)
			}
		}
		wantCode(t, "second tenant budget", db.CreateBudget(a.ctx, newBudget(a.id, gateway.BudgetTenant, "", 1)), nodus.ECONFLICT)
		wantCode(t, "unknown scope", db.CreateBudget(a.ctx, newBudget(a.id, "team", "x", 1)), nodus.EINVALID)

		if got, err := db.FindBudget(a.ctx, gateway.BudgetUser, user); err != nil || !reflect.DeepEqual(got, ua) {
			t.Fatalf("FindBudget = %+v, %v; want %+v", got, err, ua)
		}
		if _, err := db.FindBudget(b.ctx, gateway.BudgetUser, user); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's user budget: %v", err)
		}
		if list, err := db.ListBudgets(a.ctx); err != nil || len(list) != 2 || list[0].ID != ta.ID || list[1].ID != ua.ID {
			t.Errorf("ListBudgets = %+v, %v", list, err)
		}
		if all, err := db.BudgetChanges(ctx, 0); err != nil || len(all.Budgets) != 3 || all.Deleted != nil {
			t.Errorf("BudgetChanges(0) without scope = %d budgets, %v deleted, %v", len(all.Budgets), all.Deleted, err)
		}

		// An edit changes the cap, never the settled spend.
		if err := db.WriteSpend(ctx, nil, []gateway.BudgetSpend{{BudgetID: ua.ID, Micros: 40}}); err != nil {
			t.Fatal(err)
		}
		ua.MaxMicros, ua.Spend, ua.UpdatedBy = 900, 0, "u2"
		if err := db.UpdateBudget(a.ctx, ua); err != nil {
			t.Fatal(err)
		}
		ua.Spend = 40
		if got, _ := db.FindBudget(a.ctx, gateway.BudgetUser, user); !reflect.DeepEqual(got, ua) {
			t.Errorf("after update: %+v, want %+v", got, ua)
		}
		steal := ta
		steal.MaxMicros = 0
		wantCode(t, "B updates A's budget", db.UpdateBudget(b.ctx, steal), nodus.ENOTFOUND)
		wantCode(t, "B deletes A's budget", db.DeleteBudget(b.ctx, ta.ID), nodus.ENOTFOUND)
		if _, err := db.ResetBudget(b.ctx, ua.ID, *ua.ResetAt, time.Now()); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B resets A's budget: %v", err)
		}

		// Two instances notice the same period end: exactly one resets.
		prev, next := *ua.ResetAt, ua.ResetAt.Add(24*time.Hour)
		var wg sync.WaitGroup
		won := make([]bool, 2)
		for i := range won {
			wg.Go(func() {
				ok, err := db.ResetBudget(a.ctx, ua.ID, prev, next)
				if err != nil {
					t.Error(err)
				}
				won[i] = ok
			})
		}
		wg.Wait()
		if won[0] == won[1] {
			t.Errorf("resets with the same prev: %v, want exactly one winner", won)
		}
		if got, _ := db.FindBudget(a.ctx, gateway.BudgetUser, user); got.Spend != 0 || !got.ResetAt.Equal(next) {
			t.Errorf("after reset: spend %d, reset at %v", got.Spend, got.ResetAt)
		}
		if _, err := db.ResetBudget(a.ctx, nodus.NewID(), prev, next); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("reset of a missing budget: %v", err)
		}

		if err := db.DeleteBudget(a.ctx, ua.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindBudget(b.ctx, gateway.BudgetTenant, ""); got.ID != tb.ID {
			t.Errorf("B's budget: %+v", got)
		}
	})
}

func TestGatewayPriceOverrides(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		now := nodus.SystemClock{}.Now()
		p := gateway.PriceOverride{TenantID: a.id, Model: "gpt-4o", Price: gateway.Price{Input: 1, CachedInput: 2, Output: 3},
			UpdatedAt: now, UpdatedBy: "u1"}
		q := gateway.PriceOverride{TenantID: a.id, Model: "claude", Price: gateway.Price{Input: 4}, UpdatedAt: now}
		for _, o := range []gateway.PriceOverride{p, q} {
			if err := db.SetPriceOverride(a.ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		p.Price.Output = 30 // set again: replaced, not duplicated
		if err := db.SetPriceOverride(a.ctx, p); err != nil {
			t.Fatal(err)
		}
		if list, err := db.ListPriceOverrides(a.ctx); err != nil || !reflect.DeepEqual(list, []gateway.PriceOverride{q, p}) {
			t.Fatalf("ListPriceOverrides = %+v, %v", list, err)
		}
		if list, err := db.ListPriceOverrides(b.ctx); err != nil || len(list) != 0 {
			t.Errorf("B lists %d overrides, %v", len(list), err)
		}
		wantCode(t, "B deletes A's override", db.DeletePriceOverride(b.ctx, "gpt-4o"), nodus.ENOTFOUND)
		if err := db.DeletePriceOverride(a.ctx, "gpt-4o"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "delete twice", db.DeletePriceOverride(a.ctx, "gpt-4o"), nodus.ENOTFOUND)
		wantCode(t, "negative price", db.SetPriceOverride(a.ctx, gateway.PriceOverride{Model: "m",
			Price: gateway.Price{Input: -1}, UpdatedAt: now}), nodus.EINVALID)
	})
}
