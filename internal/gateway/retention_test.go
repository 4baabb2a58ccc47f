package gateway_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestPruneSpend: retention deletes every tenant's spend rows older than
// the cut-off, past one chunk of deletes, keeps the newer rows, and keeps
// the daily rollups the old rows were summed into.
func TestPruneSpend(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		other := nodus.NewID()
		now := time.Now().UTC().Truncate(time.Millisecond)
		old := now.AddDate(0, 0, -100)
		row := func(tenant string, i int, at time.Time) gateway.SpendLog {
			return gateway.SpendLog{RequestID: "req-" + tenant + "-" + strconv.Itoa(i) + "-" + at.Format("0102"), TenantID: tenant,
				CallType: "chat", Model: "gpt-4o", PromptTokens: 10, CompletionTokens: 5, CostMicros: 7,
				StartedAt: at, EndedAt: at.Add(time.Second), Status: gateway.StatusSuccess, StatusCode: 200}
		}
		const oldRows = 5003 // more than one chunk of deletes
		var rows []gateway.SpendLog
		for i := range oldRows {
			rows = append(rows, row(w.tenant, i, old))
		}
		rows = append(rows, row(other, 0, old), row(w.tenant, 0, now), row(other, 0, now))
		if err := db.WriteSpend(ctx, rows, nil); err != nil {
			t.Fatal(err)
		}
		n, err := w.svc.PruneSpend(ctx, now.AddDate(0, 0, -90))
		if err != nil {
			t.Fatal(err)
		}
		if n != oldRows+1 {
			t.Errorf("pruned %d rows, want %d", n, oldRows+1)
		}
		for _, tenant := range []string{w.tenant, other} {
			tctx := nodus.WithTenant(ctx, tenant)
			left, _, err := db.ListSpend(tctx, gateway.SpendFilter{}, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 1 || !left[0].StartedAt.Equal(now) {
				t.Errorf("tenant %s keeps %d rows, want the recent one", tenant, len(left))
			}
			day := old.Format(time.DateOnly)
			daily, err := db.ListDailySpend(tctx, day, day)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(1)
			if tenant == w.tenant {
				want = oldRows
			}
			if len(daily) != 1 || daily[0].Requests != want {
				t.Errorf("tenant %s rollup for %s: %+v, want %d requests", tenant, day, daily, want)
			}
		}
		if n, err := w.svc.PruneSpend(ctx, now.AddDate(0, 0, -90)); err != nil || n != 0 {
			t.Errorf("second prune: %d, %v", n, err)
		}
	})
}
