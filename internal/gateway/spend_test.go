package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// fakeSpendStore records the batches it is given. write, when set, runs
// first and can block or fail the call.
type fakeSpendStore struct {
	write func(ctx context.Context, call int) error

	mu      sync.Mutex
	calls   int
	batches [][]SpendLog
	budgets [][]BudgetSpend
}

func (f *fakeSpendStore) WriteSpend(ctx context.Context, logs []SpendLog, budgets []BudgetSpend) error {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	if f.write != nil {
		if err := f.write(ctx, call); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, slices.Clone(logs))
	f.budgets = append(f.budgets, slices.Clone(budgets))
	return nil
}

// ids returns the request ids written, in order.
func (f *fakeSpendStore) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, b := range f.batches {
		for _, l := range b {
			out = append(out, l.RequestID)
		}
	}
	return out
}

func (f *fakeSpendStore) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, b := range f.batches {
		out = append(out, len(b))
	}
	return out
}

func spendRow(i int, cost int64) SpendLog {
	return SpendLog{RequestID: fmt.Sprintf("req-%04d", i), TenantID: "t1", KeyID: "k1", Model: "gpt-4o",
		CostMicros: cost, StartedAt: time.Now(), Status: StatusSuccess}
}

func rowIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("req-%04d", i))
	}
	return out
}

// waitFor polls cond until it holds, failing the test after 30 seconds:
// it returns as soon as cond holds, and CI runs every package's tests at
// once under the race detector on two cores, where 5 s was once too few.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// noLeak fails the test if it ends with more goroutines than it began.
func noLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		waitFor(t, fmt.Sprintf("goroutines back to %d (now %d)", before, runtime.NumGoroutine()), func() bool {
			return runtime.NumGoroutine() <= before
		})
	})
}

func closeWriter(t *testing.T, w *SpendWriter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func addRows(t *testing.T, w *SpendWriter, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := w.Add(context.Background(), spendRow(i, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSpendWriterBatchesBySize(t *testing.T) {
	noLeak(t)
	store := &fakeSpendStore{}
	w := NewSpendWriter(store, SpendWriterOptions{Capacity: 100, BatchSize: 10, FlushEvery: time.Hour})
	w.Start()
	addRows(t, w, 0, 25)
	// No timer will fire: full batches go out on their own, and what
	// waits is less than a batch. (Which rows wait depends on when the
	// writer wakes: it may take 19 rows at once and leave 6.)
	waitFor(t, "full batches", func() bool { return len(store.ids()) >= 25-9 })
	if sizes := store.sizes(); sizes[0] != 10 || slices.Max(sizes) > 10 {
		t.Errorf("batch sizes %v, want batches of at most 10, the first full", sizes)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := store.ids(); !slices.Equal(got, rowIDs(0, 25)) {
		t.Errorf("written %v", got)
	}
	closeWriter(t, w)
}

func TestSpendWriterFlushesByTime(t *testing.T) {
	noLeak(t)
	store := &fakeSpendStore{}
	w := NewSpendWriter(store, SpendWriterOptions{BatchSize: 100, FlushEvery: 10 * time.Millisecond})
	w.Start()
	addRows(t, w, 0, 3)
	waitFor(t, "a partial batch on the timer", func() bool { return len(store.ids()) == 3 })
	if sizes := store.sizes(); !slices.Equal(sizes, []int{3}) {
		t.Errorf("batch sizes %v, want [3]", sizes)
	}
	closeWriter(t, w)
}

func TestSpendWriterBackpressure(t *testing.T) {
	noLeak(t)
	release := make(chan struct{})
	store := &fakeSpendStore{write: func(ctx context.Context, _ int) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	var logs bytes.Buffer
	var drops atomic.Int64
	w := NewSpendWriter(store, SpendWriterOptions{Capacity: 4, BatchSize: 2, FlushEvery: time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), OnDrop: func(n int) { drops.Add(int64(n)) }})
	w.Start()

	// While there is room, Add returns at once even though nothing is written.
	for i := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := w.Add(ctx, spendRow(i, 1), nil)
		cancel()
		if err != nil {
			t.Fatalf("add %d with room: %v", i, err)
		}
	}
	if n := w.Buffered(); n != 4 {
		t.Fatalf("buffered %d, want 4", n)
	}

	// Full: Add waits; when its context ends the row is dropped, counted
	// and logged without its metadata.
	full := spendRow(4, 1)
	full.Metadata = map[string]json.RawMessage{"note": json.RawMessage(`"canary-7731"`)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	err := w.Add(ctx, full, nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || drops.Load() != 1 {
		t.Fatalf("add when full: %v, %d drops; want the deadline and 1 drop", err, drops.Load())
	}
	if out := logs.String(); !strings.Contains(out, `"level":"ERROR"`) || !strings.Contains(out, "req-0004") ||
		strings.Contains(out, "canary-7731") {
		t.Errorf("drop log: %s", out)
	}

	// Without a deadline it waits until the store catches up.
	added := make(chan error, 1)
	go func() { added <- w.Add(context.Background(), spendRow(5, 1), nil) }()
	select {
	case err := <-added:
		t.Fatalf("Add returned %v while the buffer was full", err)
	case <-time.After(50 * time.Millisecond):
	}
	if n := w.Buffered(); n > 4 {
		t.Fatalf("buffered %d, more than the capacity", n)
	}
	close(release)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
	if got, want := store.ids(), append(rowIDs(0, 4), "req-0005"); !slices.Equal(got, want) {
		t.Errorf("written %v, want %v", got, want)
	}
}

func TestSpendWriterRetries(t *testing.T) {
	noLeak(t)
	store := &fakeSpendStore{write: func(_ context.Context, call int) error {
		if call <= 3 {
			return errors.New("database down")
		}
		return nil
	}}
	var failed, ok atomic.Int64
	w := NewSpendWriter(store, SpendWriterOptions{BatchSize: 10, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond,
		OnFlush: func(rows int, _ time.Duration, err error) {
			if rows != 5 {
				t.Errorf("flush of %d rows, want the same 5 each attempt", rows)
			}
			if err != nil {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
		}})
	w.Start()
	addRows(t, w, 0, 5)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := store.ids(); !slices.Equal(got, rowIDs(0, 5)) || failed.Load() != 3 || ok.Load() != 1 {
		t.Errorf("written %v after %d failures and %d successes; want each row once after 3 failures", got,
			failed.Load(), ok.Load())
	}
	closeWriter(t, w)
}

func TestSpendWriterDiscardsInvalidBatch(t *testing.T) {
	noLeak(t)
	store := &fakeSpendStore{write: func(_ context.Context, call int) error {
		if call == 1 {
			return nodus.Errorf(nodus.EINVALID, "invalid value")
		}
		return nil
	}}
	var drops atomic.Int64
	w := NewSpendWriter(store, SpendWriterOptions{BatchSize: 10, RetryMin: time.Millisecond,
		OnDrop: func(n int) { drops.Add(int64(n)) }})
	w.Start()
	addRows(t, w, 0, 2)
	if err := w.Flush(context.Background()); err == nil || drops.Load() != 2 {
		t.Fatalf("flush of a refused batch: %v, %d drops; want an error and 2 drops", err, drops.Load())
	}
	// The rows behind it are not held up.
	addRows(t, w, 2, 4)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := store.ids(); !slices.Equal(got, rowIDs(2, 4)) {
		t.Errorf("written %v", got)
	}
	closeWriter(t, w)
}

func TestSpendWriterSumsBudgetsPerBatch(t *testing.T) {
	noLeak(t)
	store := &fakeSpendStore{}
	w := NewSpendWriter(store, SpendWriterOptions{BatchSize: 3, FlushEvery: time.Hour})
	// The rows wait before the writer starts, so it takes all six at once
	// and cuts them into the two batches checked below. (Started first,
	// it could take the first four, as [0 1 2] and [3].)
	for i, r := range []struct {
		cost    int64
		budgets []string
	}{{10, []string{"a", "b"}}, {20, []string{"a"}}, {30, nil}, {5, []string{"b"}}, {7, []string{"b", "a"}}, {0, []string{"c"}}} {
		if err := w.Add(context.Background(), spendRow(i, r.cost), r.budgets); err != nil {
			t.Fatal(err)
		}
	}
	w.Start()
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	got := store.budgets
	store.mu.Unlock()
	want := [][]BudgetSpend{{{"a", 30}, {"b", 10}}, {{"a", 7}, {"b", 12}}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("budget increments %v, want %v", got, want)
	}
	closeWriter(t, w)
}

func TestSpendWriterCloseDrains(t *testing.T) {
	noLeak(t)
	store := &fakeSpendStore{}
	var drops atomic.Int64
	w := NewSpendWriter(store, SpendWriterOptions{BatchSize: 3, FlushEvery: time.Hour,
		OnDrop: func(n int) { drops.Add(int64(n)) }})
	// Rows added before Start are written by Close.
	addRows(t, w, 0, 7)
	closeWriter(t, w)
	if got := store.ids(); !slices.Equal(got, rowIDs(0, 7)) {
		t.Errorf("written %v", got)
	}
	if err := w.Add(context.Background(), spendRow(7, 1), nil); !errors.Is(err, ErrSpendWriterClosed) || drops.Load() != 1 {
		t.Errorf("add after close: %v, %d drops", err, drops.Load())
	}
	closeWriter(t, w) // a second Close is harmless
}

func TestSpendWriterCloseGivesUp(t *testing.T) {
	noLeak(t)
	store := &fakeSpendStore{write: func(ctx context.Context, _ int) error {
		<-ctx.Done() // a database that never answers
		return ctx.Err()
	}}
	var drops atomic.Int64
	w := NewSpendWriter(store, SpendWriterOptions{BatchSize: 2, FlushEvery: time.Millisecond,
		OnDrop: func(n int) { drops.Add(int64(n)) }})
	w.Start()
	addRows(t, w, 0, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "3 rows not written") || drops.Load() != 3 {
		t.Errorf("close with a stuck store: %v, %d drops", err, drops.Load())
	}
	if err := w.Flush(context.Background()); !errors.Is(err, ErrSpendWriterClosed) {
		t.Errorf("flush after close: %v", err)
	}
}

func TestSpendWriterStaysBounded(t *testing.T) {
	noLeak(t)
	const capacity, adders, rows = 50, 8, 100
	var w *SpendWriter
	var most atomic.Int64
	observe := func() {
		n := int64(w.Buffered())
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
	}
	store := &fakeSpendStore{write: func(context.Context, int) error {
		observe()
		time.Sleep(time.Millisecond) // slower than the adders
		return nil
	}}
	w = NewSpendWriter(store, SpendWriterOptions{Capacity: capacity, BatchSize: 10, FlushEvery: time.Millisecond})
	w.Start()
	var wg sync.WaitGroup
	for a := range adders {
		wg.Go(func() {
			for i := range rows {
				if err := w.Add(context.Background(), spendRow(a*rows+i, 1), nil); err != nil {
					t.Error(err)
				}
				observe()
			}
		})
	}
	wg.Wait()
	closeWriter(t, w)
	got := store.ids()
	slices.Sort(got)
	if !slices.Equal(got, rowIDs(0, adders*rows)) {
		t.Errorf("%d rows written, want each of %d once", len(got), adders*rows)
	}
	if m := most.Load(); m > capacity || m < capacity/2 {
		t.Errorf("at most %d rows buffered; want the buffer to fill up to, never past, %d", m, capacity)
	}
}

// discardSpend is a store that writes nothing, so a benchmark measures the
// writer alone.
type discardSpend struct{}

func (discardSpend) WriteSpend(context.Context, []SpendLog, []BudgetSpend) error { return nil }

func BenchmarkSpendWriterAdd(b *testing.B) {
	w := NewSpendWriter(discardSpend{}, SpendWriterOptions{})
	w.Start()
	row, budgets := spendRow(1, 10), []string{"tenant", "user", "key"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Add(ctx, row, budgets); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
}
