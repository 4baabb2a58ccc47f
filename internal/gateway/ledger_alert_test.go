package gateway

import (
	"context"
	"testing"
	"time"
)

// TestLedgerAlerts checks that settling reports a budget crossing 80% and
// 100% of its maximum once each per period, the highest threshold when one
// call crosses both, and nothing for calls that cross nothing.
func TestLedgerAlerts(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := NewLedger(func() time.Time { return now }, nil)
	reset := now.Add(time.Hour)
	if err := l.Put(Budget{ID: "b1", TenantID: "t1", Scope: BudgetTenant, MaxMicros: 1000, Period: "1h", ResetAt: &reset}); err != nil {
		t.Fatal(err)
	}
	settle := func(cost int64) []BudgetAlert {
		t.Helper()
		h, err := l.Reserve(context.Background(), []string{"b1"}, 1)
		if err != nil {
			t.Fatalf("reserve: %v", err)
		}
		h.Settle(cost)
		return h.Alerts()
	}
	percents := func(as []BudgetAlert) []int {
		var out []int
		for _, a := range as {
			out = append(out, a.Percent)
		}
		return out
	}
	steps := []struct {
		cost int64
		want []int
	}{
		{500, nil},     // 50%
		{299, nil},     // 79.9%
		{1, []int{80}}, // 80%
		{100, nil},     // 90%
		{150, []int{100}},
	}
	for i, s := range steps {
		got := settle(s.cost)
		if len(got) != len(s.want) || (len(got) == 1 && got[0].Percent != s.want[0]) {
			t.Errorf("step %d (+%d): alerts %v, want %v", i, s.cost, percents(got), s.want)
		}
	}
	// Exhausted: refused, so nothing settles and nothing repeats.
	if _, err := l.Reserve(context.Background(), []string{"b1"}, 1); err == nil {
		t.Fatal("an exhausted budget reserved")
	}
	// A new period: one call from 0 past the maximum reports 100 only, with
	// the new period's end.
	now = now.Add(2 * time.Hour)
	got := settle(5000)
	if len(got) != 1 || got[0].Percent != 100 || got[0].TenantID != "t1" || got[0].SpendMicros != 5000 ||
		!got[0].PeriodEnd.Equal(reset.Add(2*time.Hour)) {
		t.Errorf("new period: %+v", got)
	}
}
