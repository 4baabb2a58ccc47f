package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestListDailySpend: the dashboard's rollups are the tenant's for an
// admin, the caller's own for anyone else, and never another tenant's.
func TestListDailySpend(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		other := nodus.NewID()
		now := time.Now().UTC().Truncate(time.Millisecond)
		row := func(id, tenant, user string) gateway.SpendLog {
			return gateway.SpendLog{RequestID: id, TenantID: tenant, UserID: user, CallType: "chat", Model: "gpt-4o",
				PromptTokens: 10, CompletionTokens: 5, CostMicros: 7, StartedAt: now, EndedAt: now.Add(time.Second),
				Status: gateway.StatusSuccess, StatusCode: 200}
		}
		if err := db.WriteSpend(ctx, []gateway.SpendLog{row("r1", w.tenant, "ann"), row("r2", w.tenant, "ann"),
			row("r3", w.tenant, "bob"), row("r4", other, "ann")}, nil); err != nil {
			t.Fatal(err)
		}
		day := now.Format(time.DateOnly)
		requests := func(m gateway.Manager) int64 {
			t.Helper()
			rows, err := w.svc.ListDailySpend(ctx, m, day, day)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, r := range rows {
				if r.TenantID != m.TenantID {
					t.Errorf("another tenant's rollup: %+v", r)
				}
				n += r.Requests
			}
			return n
		}
		if n := requests(gateway.Manager{TenantID: w.tenant, UserID: "carol", Admin: true}); n != 3 {
			t.Errorf("admin sees %d requests, want the tenant's 3", n)
		}
		if n := requests(gateway.Manager{TenantID: w.tenant, UserID: "ann"}); n != 2 {
			t.Errorf("ann sees %d requests, want her 2", n)
		}
		if n := requests(gateway.Manager{TenantID: w.tenant, UserID: "dave"}); n != 0 {
			t.Errorf("dave sees %d requests, want none", n)
		}
	})
}
