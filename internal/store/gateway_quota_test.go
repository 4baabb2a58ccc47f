package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// TestQuotaClaims: replicas' claims on a limit never add up past it; a
// claim that is not renewed stops counting after it expires, and its
// replica cannot revive it.
func TestQuotaClaims(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, _, _ tenantScope) {
		now := time.Now().UTC().Truncate(time.Millisecond)
		ttl := gateway.ClaimTTL
		limit := func(need, held int64) []gateway.QuotaClaim {
			return []gateway.QuotaClaim{{Quota: "rpm:k1", Capacity: 10, Held: held, Need: need, ExtraShare: 4}}
		}
		grown, err := db.ClaimQuotas(ctx, "r1", limit(2, 0), now, now.Add(ttl))
		if err != nil || grown[0] != 2+(10-2)/4 {
			t.Fatalf("first claim: %v %v, want 4", grown, err)
		}
		grown, err = db.ClaimQuotas(ctx, "r2", limit(6, 0), now, now.Add(ttl))
		if err != nil || grown[0] != 6 {
			t.Fatalf("second claim: %v %v, want exactly the 6 left", grown, err)
		}
		var ex *gateway.ErrQuotaExhausted
		if _, err := db.ClaimQuotas(ctx, "r2", limit(1, 6), now, now.Add(ttl)); !errors.As(err, &ex) || ex.Index != 0 {
			t.Fatalf("a claim past the limit: %v", err)
		}
		// r1 hands back what it does not use: r2 can take it.
		if n, err := db.SetQuotaClaims(ctx, "r1", map[string]int64{"rpm:k1": 1}, now, now.Add(ttl)); err != nil || n != 1 {
			t.Fatalf("lower r1: %d %v", n, err)
		}
		if grown, err := db.ClaimQuotas(ctx, "r2", limit(3, 6), now, now.Add(ttl)); err != nil || grown[0] != 3 {
			t.Fatalf("claim what r1 handed back: %v %v", grown, err)
		}

		// r1 stops renewing; once its claim expires r2 may take its part,
		// r1's renewal finds nothing and its claims are refused.
		later := now.Add(ttl + time.Second)
		if n, err := db.SetQuotaClaims(ctx, "r2", nil, later.Add(-2*time.Second), later.Add(ttl)); err != nil || n != 1 {
			t.Fatalf("renew r2: %d %v", n, err)
		}
		if grown, err := db.ClaimQuotas(ctx, "r2", limit(1, 9), later, later.Add(ttl)); err != nil || grown[0] != 1 {
			t.Fatalf("claim r1's expired part: %v %v", grown, err)
		}
		if n, err := db.SetQuotaClaims(ctx, "r1", nil, later, later.Add(ttl)); err != nil || n != 0 {
			t.Fatalf("renew r1 after expiry: %d renewed, %v", n, err)
		}
		if _, err := db.ClaimQuotas(ctx, "r1", limit(1, 1), later, later.Add(ttl)); !errors.Is(err, store.ErrClaimLapsed) {
			t.Fatalf("grow an expired claim: %v", err)
		}
		if err := db.ReleaseQuotas(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		if err := db.ReleaseQuotas(ctx, "r2"); err != nil {
			t.Fatal(err)
		}
		if grown, err := db.ClaimQuotas(ctx, "r3", limit(10, 0), later, later.Add(ttl)); err != nil || grown[0] != 10 {
			t.Fatalf("after both released: %v %v", grown, err)
		}
	})
}

// TestQuotaClaimsOnBudgets: a budget's capacity is its maximum less its
// written spend, all of it once its period has ended; claims on several
// quotas are all or nothing.
func TestQuotaClaimsOnBudgets(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, _ tenantScope) {
		now := time.Now().UTC().Truncate(time.Millisecond)
		ttl := gateway.ClaimTTL
		reset := now.Add(time.Hour)
		b := gateway.Budget{ID: nodus.NewID(), TenantID: a.id, Scope: gateway.BudgetTenant, MaxMicros: 1000, Period: "1d",
			ResetAt: &reset, UpdatedAt: now}
		if err := db.CreateBudget(a.ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := db.WriteSpend(ctx, nil, []gateway.BudgetSpend{{BudgetID: b.ID, Micros: 400}}); err != nil {
			t.Fatal(err)
		}
		claims := func(need int64) []gateway.QuotaClaim {
			return []gateway.QuotaClaim{
				{Quota: "rpm:k2", Capacity: 5, Need: 1},
				{Quota: "budget:" + b.ID, BudgetID: b.ID, Need: need},
			}
		}
		var ex *gateway.ErrQuotaExhausted
		if _, err := db.ClaimQuotas(ctx, "r1", claims(601), now, now.Add(ttl)); !errors.As(err, &ex) || ex.Index != 1 {
			t.Fatalf("past the budget's 600 left: %v", err)
		}
		// All or nothing: the rpm claim before it was not kept.
		if grown, err := db.ClaimQuotas(ctx, "r2", []gateway.QuotaClaim{{Quota: "rpm:k2", Capacity: 5, Need: 5}}, now, now.Add(ttl)); err != nil || grown[0] != 5 {
			t.Fatalf("the refused claim kept part of itself: %v %v", grown, err)
		}
		if grown, err := db.ClaimQuotas(ctx, "r1", claims(600)[1:], now, now.Add(ttl)); err != nil || grown[0] != 600 {
			t.Fatalf("the 600 left: %v %v", grown, err)
		}
		// Once the period ends the whole maximum is there again.
		after := reset.Add(time.Second)
		if grown, err := db.ClaimQuotas(ctx, "r3", claims(400)[1:], after, after.Add(ttl)); err != nil || grown[0] != 400 {
			t.Fatalf("after the reset, beside r1's 600: %v %v", grown, err)
		}
		// A budget that no longer exists bounds nothing.
		gone := []gateway.QuotaClaim{{Quota: "budget:gone", BudgetID: "gone", Need: 1 << 40}}
		if grown, err := db.ClaimQuotas(ctx, "r1", gone, now, now.Add(ttl)); err != nil || grown[0] != 1<<40 {
			t.Fatalf("a removed budget: %v %v", grown, err)
		}
	})
}
