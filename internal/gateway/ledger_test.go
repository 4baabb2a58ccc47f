package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// ledgerResets records the rollovers a ledger persists.
type ledgerResets struct {
	mu    sync.Mutex
	calls []string // "id prev next"
	err   error
}

func (r *ledgerResets) reset(_ context.Context, id string, prev, next time.Time) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, id+" "+prev.Format(time.RFC3339)+" "+next.Format(time.RFC3339))
	return r.err == nil, r.err
}

func newTestLedger(t *testing.T, clock *routeClock, budgets ...Budget) (*Ledger, *ledgerResets) {
	t.Helper()
	resets := &ledgerResets{}
	l := NewLedger(clock.Now, resets.reset)
	if err := l.Load(budgets); err != nil {
		t.Fatal(err)
	}
	return l, resets
}

func ledgerBudget(id, scope string, max, spend int64) Budget {
	return Budget{ID: id, TenantID: "t1", Scope: scope, SubjectID: "s-" + id, MaxMicros: max, Spend: spend}
}

func remaining(t *testing.T, l *Ledger, id string) int64 {
	t.Helper()
	r, ok := l.Remaining(id)
	if !ok {
		t.Fatalf("budget %s unknown", id)
	}
	return r
}

func TestLedgerConcurrentReserveNeverOverspends(t *testing.T) {
	clock := newRouteClock()
	l, _ := newTestLedger(t, clock, ledgerBudget("b", BudgetKey, 1000, 0))
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var holds []*Hold
	var refusals []error
	for range 100 {
		wg.Go(func() {
			h, err := l.Reserve(ctx, []string{"b"}, 100)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refusals = append(refusals, err)
				return
			}
			holds = append(holds, h)
		})
	}
	wg.Wait()
	if len(holds) != 10 {
		t.Fatalf("%d reservations succeeded, want exactly 10", len(holds))
	}
	for _, err := range refusals {
		var be *BudgetError
		if !errors.As(err, &be) || be.BudgetID != "b" || be.Scope != BudgetKey || be.SubjectID != "s-b" || be.RetryAfter != 0 {
			t.Fatalf("refusal %#v", err)
		}
		if nodus.ErrorCode(err) != nodus.ERATELIMIT {
			t.Fatalf("refusal maps to %s", nodus.ErrorCode(err))
		}
	}
	// Settling in parallel too: every call used its worst case.
	for _, h := range holds {
		wg.Go(func() { h.Settle(100) })
	}
	wg.Wait()
	if got := remaining(t, l, "b"); got != 0 {
		t.Fatalf("remaining %d, want 0", got)
	}
	if _, err := l.Reserve(ctx, []string{"b"}, 0); err == nil {
		t.Fatal("a free call passed an exhausted budget")
	}
}

func TestLedgerSettle(t *testing.T) {
	ctx := context.Background()
	t.Run("lower refunds the hold", func(t *testing.T) {
		l, _ := newTestLedger(t, newRouteClock(), ledgerBudget("b", BudgetUser, 1000, 0))
		var holds []*Hold
		for range 10 {
			h, err := l.Reserve(ctx, []string{"b"}, 100)
			if err != nil {
				t.Fatal(err)
			}
			holds = append(holds, h)
		}
		if _, err := l.Reserve(ctx, []string{"b"}, 1); err == nil {
			t.Fatal("reserved past the budget")
		}
		for _, h := range holds[:5] {
			h.Settle(20) // spend 100, reserved 500
		}
		fits := 0
		for range 10 {
			if _, err := l.Reserve(ctx, []string{"b"}, 100); err == nil {
				fits++
			}
		}
		if fits != 4 {
			t.Fatalf("%d more fit after refunds, want 4", fits)
		}
	})
	t.Run("higher bills the real cost", func(t *testing.T) {
		l, _ := newTestLedger(t, newRouteClock(), ledgerBudget("b", BudgetUser, 250, 0))
		h, err := l.Reserve(ctx, []string{"b"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		h.Settle(300)
		if got := remaining(t, l, "b"); got != -50 {
			t.Fatalf("remaining %d, want -50: the real usage is billed uncapped", got)
		}
		if _, err := l.Reserve(ctx, []string{"b"}, 0); err == nil {
			t.Fatal("reserved on an overspent budget")
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		l, _ := newTestLedger(t, newRouteClock(), ledgerBudget("b", BudgetUser, 1000, 0))
		h, err := l.Reserve(ctx, []string{"b"}, 400)
		if err != nil {
			t.Fatal(err)
		}
		h.Settle(100)
		h.Settle(100)
		h.Release()
		if got := remaining(t, l, "b"); got != 900 {
			t.Fatalf("remaining %d, want 900", got)
		}
		// The hold's 400 is gone exactly once: 900 still fits.
		if _, err := l.Reserve(ctx, []string{"b"}, 900); err != nil {
			t.Fatalf("reservation not released: %v", err)
		}
		var nilHold *Hold
		nilHold.Release()
	})
	t.Run("release costs nothing", func(t *testing.T) {
		l, _ := newTestLedger(t, newRouteClock(), ledgerBudget("b", BudgetUser, 1000, 0))
		h, _ := l.Reserve(ctx, []string{"b"}, 1000)
		h.Release()
		if got := remaining(t, l, "b"); got != 1000 {
			t.Fatalf("remaining %d, want 1000", got)
		}
		if _, err := l.Reserve(ctx, []string{"b"}, 1000); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("negative actual credits nothing", func(t *testing.T) {
		l, _ := newTestLedger(t, newRouteClock(), ledgerBudget("b", BudgetUser, 1000, 500))
		h, _ := l.Reserve(ctx, []string{"b"}, 10)
		h.Settle(-300)
		if got := remaining(t, l, "b"); got != 500 {
			t.Fatalf("remaining %d, want 500", got)
		}
	})
}

func TestLedgerAllOrNothing(t *testing.T) {
	ctx := context.Background()
	clock := newRouteClock()
	inAnHour := clock.Now().Add(time.Hour)
	tenant := ledgerBudget("tenant", BudgetTenant, 10_000, 0)
	tenant.SubjectID = ""
	user := ledgerBudget("user", BudgetUser, 500, 500) // exhausted, resets in an hour
	user.Period, user.ResetAt = "1h", &inAnHour
	key := ledgerBudget("key", BudgetKey, 1000, 0)
	l, _ := newTestLedger(t, clock, tenant, user, key)

	_, err := l.Reserve(ctx, []string{"key", "user", "tenant"}, 100)
	var be *BudgetError
	if !errors.As(err, &be) || be.BudgetID != "user" || be.RetryAfter != time.Hour {
		t.Fatalf("got %v, want the user budget refusing for 1h", err)
	}
	if nodus.ErrorRetryAfter(err) != time.Hour {
		t.Fatalf("nodus retry after %s", nodus.ErrorRetryAfter(err))
	}
	// Nothing was held on the budgets that had room.
	if _, err := l.Reserve(ctx, []string{"key"}, 1000); err != nil {
		t.Fatalf("key budget kept a refused reservation: %v", err)
	}
	if _, err := l.Reserve(ctx, []string{"tenant"}, 10_000); err != nil {
		t.Fatalf("tenant budget kept a refused reservation: %v", err)
	}

	// Of two refusals the one that never resets is named: waiting an hour
	// would not help.
	l2, _ := newTestLedger(t, clock, user, ledgerBudget("key", BudgetKey, 0, 0))
	_, err = l2.Reserve(ctx, []string{"user", "key"}, 1)
	if !errors.As(err, &be) || be.BudgetID != "key" || be.RetryAfter != 0 {
		t.Fatalf("got %v, want the never-resetting key budget", err)
	}
}

func TestLedgerHoldBudgetIDs(t *testing.T) {
	l, _ := newTestLedger(t, newRouteClock(), ledgerBudget("a", BudgetKey, 100, 0), ledgerBudget("b", BudgetUser, 100, 0))
	h, err := l.Reserve(context.Background(), []string{"a", "unknown", "b", "a"}, 60)
	if err != nil {
		t.Fatalf("duplicate and unknown ids: %v", err)
	}
	if got := h.BudgetIDs(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("ids %v, want [a b]", got)
	}
	h.Settle(60)
	if got := remaining(t, l, "a"); got != 40 {
		t.Fatalf("a duplicate id was charged twice: remaining %d", got)
	}
	none, err := l.Reserve(context.Background(), []string{"unknown"}, 1<<40)
	if err != nil || len(none.BudgetIDs()) != 0 {
		t.Fatalf("no budget configured: %v, %v", none.BudgetIDs(), err)
	}
	none.Settle(1 << 40)
	if _, err := l.Reserve(context.Background(), nil, -1); err == nil {
		t.Fatal("negative reservation accepted")
	}
}

func TestLedgerRollover(t *testing.T) {
	ctx := context.Background()
	clock := newRouteClock()
	t0 := clock.Now()
	resetAt := t0.Add(time.Hour)
	b := ledgerBudget("b", BudgetKey, 1000, 1000)
	b.Period, b.ResetAt = "1h", &resetAt
	l, resets := newTestLedger(t, clock, b)

	_, err := l.Reserve(ctx, []string{"b"}, 1)
	var be *BudgetError
	if !errors.As(err, &be) || be.RetryAfter != time.Hour {
		t.Fatalf("got %v, want refusal until the reset", err)
	}
	// Idle for several periods: the next reset keeps its time of day.
	clock.Advance(3*time.Hour + 30*time.Minute)
	resets.err = errors.New("database down") // best effort: the call goes on
	if got := remaining(t, l, "b"); got != 1000 {
		t.Fatalf("remaining after the period %d, want 1000", got)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			h, err := l.Reserve(ctx, []string{"b"}, 50)
			if err != nil {
				t.Errorf("after rollover: %v", err)
				return
			}
			h.Settle(50)
		})
	}
	wg.Wait()
	want := []string{"b " + resetAt.Format(time.RFC3339) + " " + t0.Add(4*time.Hour).Format(time.RFC3339)}
	if !slices.Equal(resets.calls, want) {
		t.Fatalf("resets %v, want exactly %v", resets.calls, want)
	}
	snap := l.Snapshot()
	if len(snap) != 1 || snap[0].Spend != 1000 || !snap[0].ResetAt.Equal(t0.Add(4*time.Hour)) {
		t.Fatalf("snapshot %+v", snap)
	}
	if snap[0].ResetAt == b.ResetAt {
		t.Fatal("snapshot aliases the loaded budget's ResetAt")
	}
}

func TestLedgerReservationsOutliveReloads(t *testing.T) {
	ctx := context.Background()
	clock := newRouteClock()
	l, _ := newTestLedger(t, clock, ledgerBudget("a", BudgetKey, 1000, 0), ledgerBudget("b", BudgetUser, 1000, 0))
	h, err := l.Reserve(ctx, []string{"a", "b"}, 600)
	if err != nil {
		t.Fatal(err)
	}
	// An edited budget keeps the calls in flight on it.
	if err := l.Put(ledgerBudget("a", BudgetKey, 1200, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, []string{"a"}, 700); err == nil {
		t.Fatal("Put dropped the open reservation")
	}
	if err := l.Load([]Budget{ledgerBudget("a", BudgetKey, 1200, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, []string{"a"}, 700); err == nil {
		t.Fatal("Load dropped the open reservation")
	}
	if _, ok := l.Remaining("b"); ok {
		t.Fatal("Load kept a budget it was not given")
	}
	h.Settle(600) // b is gone: nothing to charge there
	if got := remaining(t, l, "a"); got != 600 {
		t.Fatalf("remaining %d, want 600", got)
	}
	l.Remove("a")
	if _, err := l.Reserve(ctx, []string{"a"}, 1<<40); err != nil {
		t.Fatalf("removed budget still applies: %v", err)
	}
}

func TestLedgerRejectsInvalidBudgets(t *testing.T) {
	clock := newRouteClock()
	l, _ := newTestLedger(t, clock, ledgerBudget("a", BudgetKey, 100, 0))
	weekly := ledgerBudget("w", BudgetKey, 100, 0)
	weekly.Period = "1w"
	noReset := ledgerBudget("n", BudgetKey, 100, 0)
	noReset.Period = "1d"
	for _, b := range []Budget{weekly, noReset} {
		if err := l.Load([]Budget{ledgerBudget("ok", BudgetKey, 1, 0), b}); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Fatalf("Load(%s) = %v, want invalid", b.ID, err)
		}
		if err := l.Put(b); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Fatalf("Put(%s) = %v, want invalid", b.ID, err)
		}
	}
	if _, ok := l.Remaining("a"); !ok {
		t.Fatal("a failed Load replaced the budgets")
	}
}

func BenchmarkLedgerReserveSettle(b *testing.B) {
	clock := newRouteClock()
	l := NewLedger(clock.Now, nil)
	_ = l.Load([]Budget{
		ledgerBudget("key", BudgetKey, 1<<62, 0),
		ledgerBudget("user", BudgetUser, 1<<62, 0),
		ledgerBudget("tenant", BudgetTenant, 1<<62, 0),
	})
	ids := []string{"key", "user", "tenant"}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h, err := l.Reserve(ctx, ids, 5000)
			if err != nil {
				b.Error(err)
				return
			}
			h.Settle(1)
		}
	})
}

// TestLedgerApply: a read of changes updates the budgets it names and
// leaves the rest alone, as Refresh does for all: reservations and this
// replica's unwritten spend are carried over, a local rollover the store
// has not seen stays, a budget Put after the read started wins, and a
// deleted budget holding a claim is noted for the claim's release.
func TestLedgerApply(t *testing.T) {
	clock := newRouteClock()
	hourly := func(id string, max, spend int64, resetAt time.Time) Budget {
		b := ledgerBudget(id, BudgetUser, max, spend)
		b.Period, b.ResetAt = "1h", &resetAt
		return b
	}
	start := clock.Now()
	l, _ := newTestLedger(t, clock, ledgerBudget("a", BudgetKey, 1000, 100), ledgerBudget("b", BudgetUser, 1000, 0),
		ledgerBudget("c", BudgetTenant, 1000, 0), ledgerBudget("d", BudgetKey, 1000, 0),
		hourly("h", 1000, 0, start.Add(2*time.Hour)))
	h, err := l.Reserve(context.Background(), []string{"a"}, 900)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.budgets["a"].unwritten = 30
	l.budgets["c"].stored = 50
	l.mu.Unlock()

	readAt := clock.Now()
	clock.Advance(time.Millisecond)
	if err := l.Put(ledgerBudget("d", BudgetKey, 5, 0)); err != nil {
		t.Fatal(err)
	}
	removed, kept, err := l.Apply([]Budget{
		ledgerBudget("a", BudgetKey, 2000, 500),      // another replica spent 400 and raised the cap
		ledgerBudget("d", BudgetKey, 9999, 0),        // read before the Put
		ledgerBudget("e", BudgetKey, 10, 0),          // created elsewhere
		hourly("h", 1000, 700, start.Add(time.Hour)), // this replica rolled it over already
	}, []string{"c", "d", "unknown"}, readAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].ID != "c" || removed[0].SubjectID != "s-c" {
		t.Errorf("removed = %+v, want c", removed)
	}
	// d was Put after the read started: left as Put, changed and deleted
	// both, so the caller reads it again.
	if kept != 2 {
		t.Errorf("kept %d budgets as Put, want 2 (d changed and deleted)", kept)
	}
	for id, want := range map[string]int64{"a": 2000 - 530, "b": 1000, "d": 5, "e": 10, "h": 1000} {
		if got := remaining(t, l, id); got != want {
			t.Errorf("%s: remaining %d, want %d", id, got, want)
		}
	}
	if l.Has("c") || !l.dropped["c"] {
		t.Errorf("c: still held %v, noted for release %v", l.Has("c"), l.dropped["c"])
	}
	// The reservation on a survived the change: 2000 - 530 - 900 leaves
	// room for 570, not 571.
	if _, err := l.Reserve(context.Background(), []string{"a"}, 571); err == nil {
		t.Error("a: the reservation held before the change was lost")
	}
	h.Settle(10)
	if got := remaining(t, l, "a"); got != 2000-540 {
		t.Errorf("a after settling: remaining %d, want %d", got, 2000-540)
	}

	// One invalid budget: nothing applied.
	bad := ledgerBudget("b", BudgetUser, 1, 0)
	bad.Period = "fortnight"
	if _, _, err := l.Apply([]Budget{ledgerBudget("f", BudgetKey, 1, 0), bad}, []string{"e"}, clock.Now()); nodus.ErrorCode(err) != nodus.EINVALID {
		t.Fatalf("invalid budget: %v", err)
	}
	if l.Has("f") || !l.Has("e") || remaining(t, l, "b") != 1000 {
		t.Error("a refused Apply changed the ledger")
	}
}

// TestLedgerRefreshKeepsPut: a full read replaces every budget but one Put
// after the read started, and counts it, and drops a budget the read no
// longer has unless it was Put so.
func TestLedgerRefreshKeepsPut(t *testing.T) {
	clock := newRouteClock()
	l, _ := newTestLedger(t, clock, ledgerBudget("a", BudgetKey, 100, 0), ledgerBudget("b", BudgetKey, 100, 0),
		ledgerBudget("gone", BudgetKey, 100, 0))
	readAt := clock.Now()
	clock.Advance(time.Millisecond)
	if err := l.Put(ledgerBudget("b", BudgetKey, 7, 0)); err != nil {
		t.Fatal(err)
	}
	kept, err := l.Refresh([]Budget{ledgerBudget("a", BudgetKey, 300, 50), ledgerBudget("b", BudgetKey, 900, 0)}, readAt)
	if err != nil || kept != 1 {
		t.Fatalf("Refresh = %d kept, %v; want 1", kept, err)
	}
	if remaining(t, l, "a") != 250 || remaining(t, l, "b") != 7 || l.Has("gone") {
		t.Errorf("after Refresh: a %d, b %d, gone held %v", remaining(t, l, "a"), remaining(t, l, "b"), l.Has("gone"))
	}
	clock.Advance(time.Millisecond)
	if kept, _ := l.Refresh([]Budget{ledgerBudget("a", BudgetKey, 300, 50), ledgerBudget("b", BudgetKey, 900, 0)}, clock.Now()); kept != 0 || remaining(t, l, "b") != 900 {
		t.Errorf("a read after the Put: kept %d, b %d", kept, remaining(t, l, "b"))
	}
}

// BenchmarkLedgerApply is a shared-budget read of changes: n budgets in
// the ledger, 100 of them changed since the last read.
func BenchmarkLedgerApply(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			l, budgets, clock := benchLedger(b, n)
			changed := budgets[:100]
			for b.Loop() {
				if _, _, err := l.Apply(changed, nil, clock.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchLedger is a ledger holding n budgets.
func benchLedger(b *testing.B, n int) (*Ledger, []Budget, *routeClock) {
	clock := newRouteClock()
	l := NewLedger(clock.Now, nil)
	budgets := make([]Budget, n)
	for i := range budgets {
		budgets[i] = ledgerBudget(fmt.Sprint("b", i), BudgetUser, 1<<40, 0)
	}
	if err := l.Load(budgets); err != nil {
		b.Fatal(err)
	}
	return l, budgets, clock
}

// BenchmarkLedgerRefresh is a shared-budget read of every budget, n of
// them unchanged (a start, or a replica that has not read for hours);
// most of it runs under the ledger's lock, which every call's
// reservation takes.
func BenchmarkLedgerRefresh(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			l, budgets, clock := benchLedger(b, n)
			for b.Loop() {
				if _, err := l.Refresh(budgets, clock.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLedgerRefreshWait is what a full read costs the calls: one
// goroutine refreshes a ledger of 100,000 budgets over and over while
// the benchmark's loop reserves and settles on three of them, timing each;
// the slowest and the 99th percentile are reported.
//
//	go test -run '^$' -bench LedgerRefreshWait -benchtime 2000x ./internal/gateway/
func BenchmarkLedgerRefreshWait(b *testing.B) {
	l, budgets, clock := benchLedger(b, 100_000)
	ids := []string{budgets[0].ID, budgets[50_000].ID, budgets[99_999].ID}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Refresh(budgets, clock.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	ctx := context.Background()
	var waits []time.Duration
	for b.Loop() {
		start := time.Now()
		h, err := l.Reserve(ctx, ids, 100)
		if err != nil {
			b.Fatal(err)
		}
		h.Settle(1)
		waits = append(waits, time.Since(start))
		time.Sleep(100 * time.Microsecond) // calls arrive now and then, not back to back
	}
	close(stop)
	<-done
	slices.Sort(waits)
	b.ReportMetric(float64(waits[len(waits)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(waits[len(waits)*99/100].Microseconds()), "p99-µs")
}

// TestLedgerLeft: what metrics read of every budget agrees with Remaining,
// a period that ended included.
func TestLedgerLeft(t *testing.T) {
	clock := newRouteClock()
	hourly := ledgerBudget("h", BudgetUser, 1000, 600)
	resetAt := clock.Now().Add(time.Hour)
	hourly.Period, hourly.ResetAt = "1h", &resetAt
	l, _ := newTestLedger(t, clock, ledgerBudget("k", BudgetKey, 500, 120), hourly)
	check := func(want map[string]int64) {
		t.Helper()
		got := map[string]int64{}
		for _, b := range l.Left() {
			got[b.SubjectID] = b.Micros
		}
		for id, w := range want {
			if got["s-"+id] != w || remaining(t, l, id) != w {
				t.Errorf("%s: Left %d, Remaining %d, want %d", id, got["s-"+id], remaining(t, l, id), w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("Left = %v", got)
		}
	}
	check(map[string]int64{"k": 380, "h": 400})
	clock.Advance(time.Hour)
	check(map[string]int64{"k": 380, "h": 1000})
}
