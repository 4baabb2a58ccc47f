package gateway

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// limitT0 is the tests' start of time; every window measures from its
// first use, so each test starts its windows here.
var limitT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func limitAt(d time.Duration) time.Time { return limitT0.Add(d) }

func TestWindow(t *testing.T) {
	type take struct {
		at        time.Duration
		n         int64
		ok        bool
		wantRetry time.Duration
	}
	tests := []struct {
		name  string
		limit int64
		takes []take
	}{
		{"fills then waits for the oldest", 3, []take{
			{0, 1, true, 0},
			{10 * time.Second, 1, true, 0},
			{20 * time.Second, 1, true, 0},
			{30 * time.Second, 1, false, 30 * time.Second}, // the event at 0 leaves at 60s
			{59 * time.Second, 1, false, time.Second},
			// (now-60s, now]: the event at exactly now-60s has left.
			{60 * time.Second, 1, true, 0},
			{60 * time.Second, 1, false, 10 * time.Second},
		}},
		{"n events wait for the n-th oldest", 3, []take{
			{0, 1, true, 0},
			{5 * time.Second, 1, true, 0},
			{10 * time.Second, 1, true, 0},
			{20 * time.Second, 2, false, 45 * time.Second}, // two must leave: the second at 65s
			{65 * time.Second, 2, true, 0},
		}},
		{"more than the limit never fits", 3, []take{
			{0, 4, false, time.Minute},
			{0, 3, true, 0},
		}},
		{"a refused take records nothing", 1, []take{
			{0, 1, true, 0},
			{30 * time.Second, 1, false, 30 * time.Second},
			{59 * time.Second, 1, false, time.Second},
			{60 * time.Second, 1, true, 0},
		}},
		{"zero limit admits nothing", 0, []take{
			{0, 1, false, time.Minute},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWindow(tt.limit, time.Minute)
			for i, tk := range tt.takes {
				ok, retry := w.Take(limitAt(tk.at), tk.n)
				if ok != tk.ok || retry != tk.wantRetry {
					t.Fatalf("take %d at %s: ok %v retry %s, want %v %s", i, tk.at, ok, retry, tk.ok, tk.wantRetry)
				}
			}
		})
	}
}

// TestWindowMatchesBruteForce compares the ring with a plain list of event
// times over a long random run: same admissions, same Retry-After.
func TestWindowMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const limit = 20
	w := NewWindow(limit, time.Minute)
	var events []time.Duration // admitted, in order
	now := time.Duration(0)
	for i := range 20000 {
		now += time.Duration(rng.IntN(4000)) * time.Millisecond
		n := int64(1 + rng.IntN(3))
		var inWindow []time.Duration
		for _, e := range events {
			if e > now-time.Minute {
				inWindow = append(inWindow, e)
			}
		}
		events = inWindow
		wantOK := int64(len(events))+n <= limit
		var wantRetry time.Duration
		if !wantOK {
			excess := int64(len(events)) + n - limit
			wantRetry = events[excess-1] + time.Minute - now
		}
		ok, retry := w.Take(limitAt(now), n)
		if ok != wantOK || retry != wantRetry {
			t.Fatalf("step %d at %s: ok %v retry %s, want %v %s", i, now, ok, retry, wantOK, wantRetry)
		}
		if ok {
			for range n {
				events = append(events, now)
			}
		}
	}
}

func TestWindowSetLimit(t *testing.T) {
	w := NewWindow(5, time.Minute)
	for range 3 {
		if ok, _ := w.Take(limitT0, 1); !ok {
			t.Fatal("take refused under the limit")
		}
	}
	w.SetLimit(3)
	if ok, retry := w.Take(limitAt(time.Second), 1); ok || retry != 59*time.Second {
		t.Fatalf("after lowering: ok %v retry %s, want refused for 59s", ok, retry)
	}
	if got := w.Count(limitAt(time.Second)); got != 3 {
		t.Fatalf("count = %d, want 3", got)
	}
}

func TestTokenWindow(t *testing.T) {
	w := NewTokenWindow(100, time.Minute, 60)
	mustTake := func(at time.Duration, n int64, wantOK bool, wantRetry time.Duration) {
		t.Helper()
		ok, retry := w.Take(limitAt(at), n)
		if ok != wantOK || retry != wantRetry {
			t.Fatalf("take %d at %s: ok %v retry %s, want %v %s", n, at, ok, retry, wantOK, wantRetry)
		}
	}
	mustTake(0, 60, true, 0)                      // bucket 0
	mustTake(10500*time.Millisecond, 40, true, 0) // bucket 10
	// Bucket 0 stays counted until bucket 61 begins: one second longer than
	// the exact window, the documented precision.
	mustTake(20*time.Second, 1, false, 41*time.Second)
	mustTake(60900*time.Millisecond, 1, false, 100*time.Millisecond)
	mustTake(61*time.Second, 60, true, 0)
	mustTake(61*time.Second, 1, false, 10*time.Second) // bucket 10 leaves at 71s
	mustTake(71*time.Second, 101, false, time.Minute)  // can never fit
}

// TestTokenWindowNeverExceeds checks the bucketed window against the exact
// definition over a long random run: the tokens admitted in any span of a
// minute never exceed the limit.
func TestTokenWindowNeverExceeds(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	const limit = 1000
	w := NewTokenWindow(limit, time.Minute, 60)
	type event struct {
		at time.Duration
		n  int64
	}
	var admitted []event
	now := time.Duration(0)
	refusals := 0
	for i := range 20000 {
		now += time.Duration(rng.IntN(700)) * time.Millisecond
		n := int64(rng.IntN(200))
		ok, retry := w.Take(limitAt(now), n)
		if !ok {
			refusals++
			if retry <= 0 || retry > time.Minute+time.Second {
				t.Fatalf("step %d: retry %s out of range", i, retry)
			}
			continue
		}
		admitted = append(admitted, event{now, n})
		var sum int64
		for _, e := range admitted {
			if e.at > now-time.Minute {
				sum += e.n
			}
		}
		if sum > limit {
			t.Fatalf("step %d at %s: %d tokens admitted in the last minute, limit %d", i, now, sum, limit)
		}
	}
	if refusals == 0 {
		t.Fatal("the run never reached the limit; it tests nothing")
	}
}

func TestTokenWindowAdjust(t *testing.T) {
	tests := []struct {
		name      string
		takenAt   time.Duration
		delta     int64
		countAt   time.Duration
		wantCount int64
	}{
		{"refund", 0, -70, time.Second, 30},
		{"refund at most the bucket", 0, -500, time.Second, 0},
		{"charge more", 0, 50, time.Second, 150},
		// The reservation's bucket has left the window: nothing to correct,
		// and the extra is not counted at a later time either.
		{"after the window", 0, 50, 62 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewTokenWindow(100, time.Minute, 60)
			if ok, _ := w.Take(limitAt(tt.takenAt), 100); !ok {
				t.Fatal("reservation refused")
			}
			w.Count(limitAt(tt.countAt))
			w.Adjust(limitAt(tt.takenAt), tt.delta)
			if got := w.Count(limitAt(tt.countAt)); got != tt.wantCount {
				t.Fatalf("count = %d, want %d", got, tt.wantCount)
			}
		})
	}
}

func TestLimiterExactUnderConcurrency(t *testing.T) {
	const n = 7
	l := NewLimiter()
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	var refusals []error
	for range 100 {
		wg.Go(func() {
			release, retry, err := l.Acquire("key-1", Limits{RPM: n}, limitT0, 0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if retry != time.Minute {
					t.Errorf("retry = %s, want 1m", retry)
				}
				refusals = append(refusals, err)
				return
			}
			passed++
			release(0)
		})
	}
	wg.Wait()
	if passed != n {
		t.Fatalf("%d passed, want exactly %d", passed, n)
	}
	for _, err := range refusals {
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != LimitRPM || le.RetryAfter != time.Minute {
			t.Fatalf("refusal %v, want rpm LimitError with 1m", err)
		}
		if nodus.ErrorCode(err) != nodus.ERATELIMIT || nodus.ErrorRetryAfter(err) != time.Minute {
			t.Fatalf("refusal maps to %s/%s", nodus.ErrorCode(err), nodus.ErrorRetryAfter(err))
		}
	}
}

// TestLimiterSweepRacesAcquire sweeps without pause while new keys are
// acquired concurrently. A sweep can drop a fresh, still-empty entry between
// an Acquire's lookup and its lock; that Acquire must look again rather than
// count into the dropped entry, or a second request would pass RPM 1.
func TestLimiterSweepRacesAcquire(t *testing.T) {
	l := NewLimiter()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
				l.Sweep(limitT0)
			}
		}
	}()
	defer func() { close(stop); <-stopped }()
	for round := range 300 {
		key := fmt.Sprint("key-", round)
		var passed atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, _, err := l.Acquire(key, Limits{RPM: 1}, limitT0, 0); err == nil {
					passed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := passed.Load(); n != 1 {
			t.Fatalf("round %d: %d requests passed RPM 1", round, n)
		}
	}
}

func TestLimiterRetryAfter(t *testing.T) {
	l := NewLimiter()
	for _, at := range []time.Duration{0, 20 * time.Second} {
		if _, _, err := l.Acquire("k", Limits{RPM: 2}, limitAt(at), 0); err != nil {
			t.Fatalf("at %s: %v", at, err)
		}
	}
	_, retry, err := l.Acquire("k", Limits{RPM: 2}, limitAt(45*time.Second), 0)
	if err == nil || retry != 15*time.Second {
		t.Fatalf("retry %s err %v, want 15s until the first expires", retry, err)
	}
	if _, _, err := l.Acquire("k", Limits{RPM: 2}, limitAt(60*time.Second), 0); err != nil {
		t.Fatalf("after the first expired: %v", err)
	}
}

func TestLimiterParallel(t *testing.T) {
	l := NewLimiter()
	lim := Limits{MaxParallel: 2}
	r1, _, err1 := l.Acquire("k", lim, limitT0, 0)
	_, _, err2 := l.Acquire("k", lim, limitT0, 0)
	if err1 != nil || err2 != nil {
		t.Fatalf("under the cap: %v, %v", err1, err2)
	}
	_, retry, err := l.Acquire("k", lim, limitT0, 0)
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != LimitParallel || retry != parallelRetryAfter {
		t.Fatalf("third: %v (retry %s), want parallel refusal", err, retry)
	}
	r1(0)
	r1(0) // idempotent: must not free a second slot
	if _, _, err := l.Acquire("k", lim, limitT0, 0); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, _, err := l.Acquire("k", lim, limitT0, 0); err == nil {
		t.Fatal("a double release freed two slots")
	}
}

func TestLimiterAllOrNothing(t *testing.T) {
	t.Run("parallel refusal takes no rpm", func(t *testing.T) {
		l := NewLimiter()
		lim := Limits{RPM: 5, MaxParallel: 1}
		release, _, err := l.Acquire("k", lim, limitT0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if _, _, err := l.Acquire("k", lim, limitT0, 0); err == nil {
				t.Fatal("parallel cap not applied")
			}
		}
		release(0)
		passed := 1
		for range 10 {
			if r, _, err := l.Acquire("k", lim, limitT0, 0); err == nil {
				passed++
				r(0)
			}
		}
		if passed != 5 {
			t.Fatalf("%d requests passed in the minute, want 5: refusals consumed the rpm", passed)
		}
	})
	t.Run("tpm refusal takes no rpm or slot", func(t *testing.T) {
		l := NewLimiter()
		lim := Limits{RPM: 2, TPM: 100, MaxParallel: 1}
		release, _, err := l.Acquire("k", lim, limitT0, 80)
		if err != nil {
			t.Fatal(err)
		}
		release(80)
		_, _, err = l.Acquire("k", lim, limitT0, 30)
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != LimitTPM {
			t.Fatalf("got %v, want tpm refusal", err)
		}
		if _, _, err := l.Acquire("k", lim, limitT0, 20); err != nil {
			t.Fatalf("second request within rpm and tpm: %v", err)
		}
	})
	t.Run("the refusal that frees last is reported", func(t *testing.T) {
		l := NewLimiter()
		lim := Limits{RPM: 1, MaxParallel: 1}
		if _, _, err := l.Acquire("k", lim, limitT0, 0); err != nil {
			t.Fatal(err)
		}
		_, retry, err := l.Acquire("k", lim, limitAt(time.Second), 0)
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != LimitRPM || retry != 59*time.Second {
			t.Fatalf("got %v (retry %s), want rpm with 59s", err, retry)
		}
	})
}

func TestLimiterAdjust(t *testing.T) {
	l := NewLimiter()
	lim := Limits{TPM: 100}
	release, _, err := l.Acquire("k", lim, limitT0, 100)
	if err != nil {
		t.Fatal(err)
	}
	release(30) // 70 given back
	if _, _, err := l.Acquire("k", lim, limitAt(time.Second), 70); err != nil {
		t.Fatalf("refund not applied: %v", err)
	}
	if _, _, err := l.Acquire("k", lim, limitAt(time.Second), 1); err == nil {
		t.Fatal("admitted past the tpm")
	}

	// A call that used more than its estimate is charged the difference.
	l2 := NewLimiter()
	release, _, _ = l2.Acquire("k", lim, limitT0, 10)
	release(90)
	if _, _, err := l2.Acquire("k", lim, limitT0, 11); err == nil {
		t.Fatal("the extra tokens were not counted")
	}
}

func TestLimiterLimitsChange(t *testing.T) {
	l := NewLimiter()
	for range 3 {
		if _, _, err := l.Acquire("k", Limits{RPM: 5}, limitT0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := l.Acquire("k", Limits{RPM: 3}, limitT0, 0); err == nil {
		t.Fatal("a lowered limit did not keep the minute's count")
	}
	if _, _, err := l.Acquire("k", Limits{}, limitT0, 0); err != nil {
		t.Fatalf("unlimited: %v", err)
	}
}

func TestLimiterUnlimitedIsFree(t *testing.T) {
	l := NewLimiter()
	allocs := testing.AllocsPerRun(100, func() {
		release, _, err := l.Acquire("k", Limits{}, limitT0, 500)
		if err != nil {
			t.Fatal(err)
		}
		release(500)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per unlimited Acquire, want 0", allocs)
	}
	if n := l.Sweep(limitT0); n != 0 {
		t.Fatalf("unlimited calls left %d entries", n)
	}
}

func TestLimiterSweep(t *testing.T) {
	l := NewLimiter()
	release, _, err := l.Acquire("idle", Limits{RPM: 1, TPM: 100}, limitT0, 50)
	if err != nil {
		t.Fatal(err)
	}
	release(50)
	busyRelease, _, err := l.Acquire("busy", Limits{MaxParallel: 1}, limitT0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := l.Sweep(limitAt(30 * time.Second)); n != 0 {
		t.Fatalf("swept %d keys with live counts", n)
	}
	if _, _, err := l.Acquire("idle", Limits{RPM: 1}, limitAt(30*time.Second), 0); err == nil {
		t.Fatal("sweep lost a live window")
	}
	// The token bucket of 0s lives until 61s; the request until 60s.
	if n := l.Sweep(limitAt(time.Hour)); n != 1 {
		t.Fatalf("swept %d keys, want the idle one only", n)
	}
	if _, _, err := l.Acquire("busy", Limits{MaxParallel: 1}, limitAt(time.Hour), 0); err == nil {
		t.Fatal("sweep dropped a key with a call in flight")
	}
	busyRelease(0)
	if n := l.Sweep(limitAt(time.Hour)); n != 1 {
		t.Fatalf("swept %d, want the released key", n)
	}
	if _, _, err := l.Acquire("idle", Limits{RPM: 1}, limitAt(time.Hour), 0); err != nil {
		t.Fatalf("a swept key starts afresh: %v", err)
	}
}

func BenchmarkLimiterAcquire(b *testing.B) {
	for _, bc := range []struct {
		name   string
		limits Limits
	}{
		{"unlimited", Limits{}},
		{"rpm+tpm+parallel", Limits{RPM: 1 << 40, TPM: 1 << 50, MaxParallel: 1 << 20}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := NewLimiter()
			now := limitT0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Millisecond) // windows stay at a steady 60,000 events
				release, _, err := l.Acquire("key", bc.limits, now, 100)
				if err != nil {
					b.Fatal(err)
				}
				release(80)
			}
		})
	}
}
