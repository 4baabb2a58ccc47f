package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the sliding-window rate limits: Window (exact, for request
// counts), TokenWindow (bucketed, for token counts) and Limiter, which applies
// a virtual key's rpm, tpm and max-parallel limits atomically. SECURITY.md
// check 31 wants exactly N requests through an N-per-minute limit under 100
// concurrent requests, so admission and recording happen under one lock and a
// refused request leaves no trace.

// limitSpan is the span of every rpm and tpm window.
const limitSpan = time.Minute

// tokenBuckets is how many sub-buckets a tpm window has: one per second of
// its minute.
const tokenBuckets = 60

// Window counts events over a sliding span exactly. It keeps the time of
// every event still inside the span in a ring, oldest first, so an N-per-span
// limit admits exactly N events in any span and Retry-After is the moment the
// oldest blocking event leaves. Memory is one int64 per event in the span (at
// most the limit), which suits request counts; token counts use TokenWindow.
// A Window is not safe for concurrent use: its owner holds a lock around it.
type Window struct {
	limit int64
	span  time.Duration
	base  time.Time // offsets are measured from here, so a monotonic clock stays monotonic
	ring  []int64   // event offsets from base in nanoseconds; w.n of them from w.head
	head  int
	n     int
}

// NewWindow returns a window admitting limit events per span. A limit of
// zero or less admits nothing: callers that mean "unlimited" keep no window.
func NewWindow(limit int64, span time.Duration) *Window {
	return &Window{limit: limit, span: span}
}

// SetLimit changes the limit and keeps the events already counted, so a
// limit lowered mid-minute takes effect at once.
func (w *Window) SetLimit(limit int64) { w.limit = limit }

// Take admits n events at now if the events in (now-span, now] plus n stay
// within the limit, and records them. Otherwise it records nothing and
// returns how long until enough old events expire; when n alone exceeds the
// limit it can never be admitted and retryAfter is the whole span.
func (w *Window) Take(now time.Time, n int64) (ok bool, retryAfter time.Duration) {
	if wait := w.wait(now, n); wait > 0 {
		return false, wait
	}
	w.record(now, n)
	return true, 0
}

// Count returns the number of events in (now-span, now].
func (w *Window) Count(now time.Time) int64 {
	w.expire(w.offset(now))
	return int64(w.n)
}

func (w *Window) offset(now time.Time) int64 {
	if w.base.IsZero() {
		w.base = now
	}
	return int64(now.Sub(w.base))
}

// expire drops the events at or before at-span: an event at t is inside the
// window (now-span, now] only while t > now-span.
func (w *Window) expire(at int64) {
	for w.n > 0 && w.ring[w.head] <= at-int64(w.span) {
		w.head = (w.head + 1) % len(w.ring)
		w.n--
	}
}

// wait returns 0 when n events fit at now, else how long until they do.
func (w *Window) wait(now time.Time, n int64) time.Duration {
	at := w.offset(now)
	w.expire(at)
	excess := int64(w.n) + n - w.limit
	if excess <= 0 {
		return 0
	}
	if n > w.limit {
		return w.span
	}
	// n ≤ limit, so excess ≤ w.n: the excess-th oldest event is in the ring.
	oldest := w.ring[(w.head+int(excess)-1)%len(w.ring)]
	return time.Duration(oldest + int64(w.span) - at)
}

// record adds n events at now without checking the limit.
func (w *Window) record(now time.Time, n int64) {
	at := w.offset(now)
	if w.n > 0 {
		// A clock that steps back must not unsort the ring: count such an
		// event with the newest one, which only keeps it a little longer.
		if newest := w.ring[(w.head+w.n-1)%len(w.ring)]; at < newest {
			at = newest
		}
	}
	w.grow(w.n + int(n))
	for range n {
		w.ring[(w.head+w.n)%len(w.ring)] = at
		w.n++
	}
}

// grow makes room for need events, doubling so a busy key settles at its
// peak use rather than reallocating on every request.
func (w *Window) grow(need int) {
	if need <= len(w.ring) {
		return
	}
	size := max(2*len(w.ring), need, 8)
	ring := make([]int64, size)
	for i := range w.n {
		ring[i] = w.ring[(w.head+i)%len(w.ring)]
	}
	w.ring, w.head = ring, 0
}

// TokenWindow counts weighted events (tokens) over a sliding span in fixed
// sub-buckets, because one timestamp per token would cost too much memory.
//
// Precision: an amount is counted from the start of its bucket until one
// full span after the end of that bucket, so it stays counted up to one
// bucket width (one second for a minute in 60 buckets) longer than the exact
// window, never shorter. The limit therefore holds over every exact span,
// and a Retry-After may be up to one bucket width longer than necessary.
// A TokenWindow is not safe for concurrent use: its owner locks.
type TokenWindow struct {
	limit  int64
	width  time.Duration // one bucket
	base   time.Time
	counts []int64 // buckets+1 slots, indexed by bucket number modulo len
	newest int64   // bucket number of the newest slot; slots newest-buckets..newest are live
	total  int64   // sum of counts
}

// NewTokenWindow returns a window admitting limit tokens per span, counted
// in the given number of sub-buckets.
func NewTokenWindow(limit int64, span time.Duration, buckets int) *TokenWindow {
	buckets = max(buckets, 1)
	return &TokenWindow{
		limit:  limit,
		width:  span / time.Duration(buckets),
		counts: make([]int64, buckets+1),
	}
}

// SetLimit changes the limit and keeps the tokens already counted.
func (w *TokenWindow) SetLimit(limit int64) { w.limit = limit }

// Take admits n tokens at now if the window's count plus n stays within the
// limit, and records them; otherwise it records nothing and returns how long
// until enough old tokens expire (the whole span when n alone exceeds the
// limit, since it can never fit).
func (w *TokenWindow) Take(now time.Time, n int64) (ok bool, retryAfter time.Duration) {
	if wait := w.wait(now, n); wait > 0 {
		return false, wait
	}
	w.Add(now, n)
	return true, 0
}

// Add records n tokens at now without checking the limit: tokens already
// spent are counted whatever the limit says.
func (w *TokenWindow) Add(now time.Time, n int64) {
	b := w.advance(now)
	w.counts[w.slot(b)] += n
	w.total += n
}

// Adjust corrects the tokens recorded at takenAt by delta, as if Take had
// been called with the right amount: a reservation made from an estimate is
// fixed once the real count is known. A negative delta gives tokens back, at
// most what that bucket holds. Once takenAt has left the window there is
// nothing to correct and Adjust does nothing.
func (w *TokenWindow) Adjust(takenAt time.Time, delta int64) {
	b := min(w.bucket(takenAt), w.newest)
	if b < w.newest-int64(len(w.counts)-1) {
		return
	}
	s := w.slot(b)
	delta = max(delta, -w.counts[s])
	w.counts[s] += delta
	w.total += delta
}

// Count returns the tokens counted in the window at now.
func (w *TokenWindow) Count(now time.Time) int64 {
	w.advance(now)
	return w.total
}

func (w *TokenWindow) bucket(t time.Time) int64 {
	if w.base.IsZero() {
		w.base = t
	}
	off := t.Sub(w.base)
	if off < 0 {
		return 0
	}
	return int64(off / w.width)
}

func (w *TokenWindow) slot(b int64) int { return int(b % int64(len(w.counts))) }

// advance moves the window to now, clearing the buckets that left it, and
// returns now's bucket number. A clock that steps back stays in the newest
// bucket.
func (w *TokenWindow) advance(now time.Time) int64 {
	b := w.bucket(now)
	if b <= w.newest {
		return w.newest
	}
	if b-w.newest >= int64(len(w.counts)) {
		clear(w.counts)
		w.total = 0
	} else {
		for i := w.newest + 1; i <= b; i++ {
			s := w.slot(i)
			w.total -= w.counts[s]
			w.counts[s] = 0
		}
	}
	w.newest = b
	return b
}

// wait returns 0 when n tokens fit at now, else how long until they do.
func (w *TokenWindow) wait(now time.Time, n int64) time.Duration {
	cur := w.advance(now)
	excess := w.total + n - w.limit
	if excess <= 0 {
		return 0
	}
	if n > w.limit {
		return w.width * time.Duration(len(w.counts)-1)
	}
	at := now.Sub(w.base)
	var freed int64
	for b := max(cur-int64(len(w.counts)-1), 0); b <= cur; b++ {
		freed += w.counts[w.slot(b)]
		if freed >= excess {
			// Bucket b is counted until bucket b+len begins.
			return time.Duration(b+int64(len(w.counts)))*w.width - at
		}
	}
	// Unreachable while total is the sum of counts; wait a whole span.
	return w.width * time.Duration(len(w.counts)-1)
}

// Names of the limits a LimitError reports.
const (
	LimitRPM      = "rpm"
	LimitTPM      = "tpm"
	LimitParallel = "parallel"
)

// parallelRetryAfter is the Retry-After sent when the max-parallel cap
// refuses a call. A slot frees when some call ends, which nobody can
// predict; one second is a polite hint.
const parallelRetryAfter = time.Second

// LimitError is a call refused by a rate limit. When several limits refuse,
// it names the one that frees last, since all must pass.
type LimitError struct {
	Limit      string // LimitRPM, LimitTPM or LimitParallel
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("rate limit %s exceeded, retry after %s", e.Limit, e.RetryAfter)
}

// Unwrap gives the HTTP layer and in-process callers the usual Nodus code:
// 429 with Retry-After.
func (e *LimitError) Unwrap() error {
	return &nodus.Error{Code: nodus.ERATELIMIT, Message: "rate limit " + e.Limit + " exceeded", RetryAfter: e.RetryAfter}
}

// Limits are one key's rate limits; zero means unlimited.
type Limits struct {
	RPM         int64
	TPM         int64
	MaxParallel int
}

// Limiter holds the rate-limit state of many keys. It is safe for
// concurrent use; each key has its own lock, so keys never contend.
// Memory is bounded by Sweep, which the owner calls periodically.
type Limiter struct {
	entries sync.Map // key id → *limitEntry
	// q, when set, shares every key's limits with the other replicas on
	// the same store (quota.go).
	q *quotas
}

// limitEntry is one key's windows and in-flight count.
type limitEntry struct {
	mu       sync.Mutex
	rpm      *Window
	tpm      *TokenWindow
	parallel int
	dead     bool // removed by Sweep: an Acquire holding a stale pointer must look again

	// With replicas sharing limits (Limiter.q set), per limit (rpm, tpm,
	// parallel): granted is this replica's claim on the key's limit,
	// stored what its row in the store says; lastUse is the last admission.
	granted, stored [3]int64
	lastUse         time.Time
}

// The limits a replica claims a share of, as indexes of limitEntry.granted.
const (
	limRPM = iota
	limTPM
	limParallel
)

var limitNames = [3]string{LimitRPM, LimitTPM, LimitParallel}
var limitQuotas = [3]string{quotaRPM, quotaTPM, quotaParallel}

// capacities returns each limit's capacity, 0 for none.
func (l Limits) capacities() [3]int64 {
	return [3]int64{l.RPM, l.TPM, int64(l.MaxParallel)}
}

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter { return &Limiter{} }

// noRelease is the release of a call with no limits.
func noRelease(int64) {}

// Acquire admits one call of keyID at now if its rpm, tpm (counting
// estTokens) and max-parallel limits all allow it, and counts it against
// all three; a refused call is counted against none. The caller must call
// release exactly once when the call ends, with the real token count, which
// corrects the tpm reservation; further calls do nothing. A refused call
// gets a release that does nothing, so a deferred release is always safe.
// With no limits Acquire touches no shared state.
func (l *Limiter) Acquire(keyID string, limits Limits, now time.Time, estTokens int64) (release func(actualTokens int64), retryAfter time.Duration, err error) {
	if limits == (Limits{}) {
		return noRelease, 0, nil
	}
	estTokens = max(estTokens, 0)
	for attempt := 1; ; {
		e := l.entry(keyID)
		e.mu.Lock()
		if e.dead {
			e.mu.Unlock()
			continue
		}
		lerr := e.check(limits, now, estTokens)
		var short [3]int64
		if lerr == nil && l.q != nil {
			if !l.q.trusted(now) {
				e.mu.Unlock()
				return noRelease, time.Second, errCoordination(errors.New("claims not renewed"))
			}
			short = e.shortfall(limits, now, estTokens)
		}
		if lerr == nil && short == ([3]int64{}) {
			e.record(now, estTokens)
			e.lastUse = now
		}
		tpm := e.tpm
		e.mu.Unlock()
		if lerr != nil {
			return noRelease, lerr.RetryAfter, lerr
		}
		if short == ([3]int64{}) {
			return releaseFunc(e, tpm, now, estTokens), 0, nil
		}
		// Shared limits: this replica's claims are too small for the call.
		if attempt == 3 {
			return noRelease, claimEvery, &LimitError{Limit: limitNames[firstShort(short)], RetryAfter: claimEvery}
		}
		attempt++
		if err := l.claim(e, keyID, limits, now, estTokens); err != nil {
			var le *LimitError
			if errors.As(err, &le) {
				return noRelease, le.RetryAfter, err
			}
			return noRelease, time.Second, err
		}
	}
}

func firstShort(short [3]int64) int {
	for i, n := range short {
		if n > 0 {
			return i
		}
	}
	return 0
}

// shortfall is, per limit, how much more claim the key needs on this
// replica to admit a call of est tokens; all zero when its claims cover it.
func (e *limitEntry) shortfall(limits Limits, now time.Time, est int64) [3]int64 {
	inUse := e.withCall(now, est)
	var short [3]int64
	for i, c := range limits.capacities() {
		if c > 0 {
			short[i] = max(inUse[i]-e.granted[i], 0)
		}
	}
	return short
}

// inUse is what the key uses of each limit on this replica now.
func (e *limitEntry) inUse(now time.Time, out *[3]int64) {
	out[limParallel] = int64(e.parallel)
	if e.rpm != nil {
		out[limRPM] = e.rpm.Count(now)
	}
	if e.tpm != nil {
		out[limTPM] = e.tpm.Count(now)
	}
}

// withCall is what the key would use of each limit with one more call of
// est tokens.
func (e *limitEntry) withCall(now time.Time, est int64) [3]int64 {
	var u [3]int64
	e.inUse(now, &u)
	u[limParallel]++
	u[limRPM]++
	u[limTPM] += est
	return u
}

// claim grows the key's claims enough for a call of est tokens.
func (l *Limiter) claim(e *limitEntry, keyID string, limits Limits, now time.Time, est int64) error {
	var claims []QuotaClaim
	var which []int
	err := l.q.claim(context.Background(), func() []QuotaClaim {
		e.mu.Lock()
		defer e.mu.Unlock()
		inUse := e.withCall(now, est)
		for i, c := range limits.capacities() {
			if c <= 0 {
				continue
			}
			if need := inUse[i] - e.granted[i]; need > 0 {
				claims = append(claims, QuotaClaim{Quota: limitQuotas[i] + keyID, Capacity: c, Held: e.granted[i], Need: need, ExtraShare: claimExtraShare})
				which = append(which, i)
			}
		}
		return claims
	}, func(grown []int64) {
		e.mu.Lock()
		defer e.mu.Unlock()
		for j, i := range which {
			e.granted[i] += grown[j]
			e.stored[i] = claims[j].Held + grown[j]
		}
	})
	if j := exhaustedIndex(err); j >= 0 {
		return &LimitError{Limit: limitNames[which[j]], RetryAfter: claimEvery}
	}
	if err != nil {
		return errCoordination(err)
	}
	return nil
}

// trimClaims lowers the claims of keys unused since idleSince to what is
// in use and reports every claim whose row differs from memory.
func (l *Limiter) trimClaims(now, idleSince time.Time, lower map[string]int64) int {
	held := 0
	l.entries.Range(func(k, v any) bool {
		e := v.(*limitEntry)
		e.mu.Lock()
		defer e.mu.Unlock()
		var inUse [3]int64
		e.inUse(now, &inUse)
		for i := range e.granted {
			if e.granted[i] > inUse[i] && e.lastUse.Before(idleSince) {
				e.granted[i] = inUse[i]
			}
			if e.stored[i] != e.granted[i] {
				lower[limitQuotas[i]+k.(string)] = e.granted[i]
				e.stored[i] = e.granted[i]
			}
			if e.stored[i] > 0 {
				held++
			}
		}
		return true
	})
	return held
}

// forgetClaims drops every claim: they expired in the store.
func (l *Limiter) forgetClaims() {
	l.entries.Range(func(_, v any) bool {
		e := v.(*limitEntry)
		e.mu.Lock()
		e.granted, e.stored = [3]int64{}, [3]int64{}
		e.mu.Unlock()
		return true
	})
}

func (l *Limiter) entry(keyID string) *limitEntry {
	if v, ok := l.entries.Load(keyID); ok {
		return v.(*limitEntry)
	}
	v, _ := l.entries.LoadOrStore(keyID, &limitEntry{})
	return v.(*limitEntry)
}

// check configures the key's windows for limits and tells whether a call
// of est tokens passes every limit, recording nothing.
func (e *limitEntry) check(limits Limits, now time.Time, est int64) *LimitError {
	e.configure(limits)
	var refused string
	var wait time.Duration
	if limits.MaxParallel > 0 && e.parallel >= limits.MaxParallel {
		refused, wait = LimitParallel, parallelRetryAfter
	}
	if e.rpm != nil {
		if w := e.rpm.wait(now, 1); w > wait {
			refused, wait = LimitRPM, w
		}
	}
	if e.tpm != nil {
		if w := e.tpm.wait(now, est); w > wait {
			refused, wait = LimitTPM, w
		}
	}
	if refused != "" {
		return &LimitError{Limit: refused, RetryAfter: wait}
	}
	return nil
}

// record counts an admitted call against every limit.
func (e *limitEntry) record(now time.Time, est int64) {
	e.parallel++
	if e.rpm != nil {
		e.rpm.record(now, 1)
	}
	if e.tpm != nil {
		e.tpm.Add(now, est)
	}
}

// configure follows a key's limits as they are edited: a window appears when
// its limit is set, keeps its count when the limit changes, and is dropped
// when the limit is removed.
func (e *limitEntry) configure(limits Limits) {
	switch {
	case limits.RPM <= 0:
		e.rpm = nil
	case e.rpm == nil:
		e.rpm = NewWindow(limits.RPM, limitSpan)
	default:
		e.rpm.SetLimit(limits.RPM)
	}
	switch {
	case limits.TPM <= 0:
		e.tpm = nil
	case e.tpm == nil:
		e.tpm = NewTokenWindow(limits.TPM, limitSpan, tokenBuckets)
	default:
		e.tpm.SetLimit(limits.TPM)
	}
}

// releaseFunc ends one admitted call: it frees the parallel slot and
// replaces the token estimate by the real count.
func releaseFunc(e *limitEntry, tpm *TokenWindow, takenAt time.Time, est int64) func(int64) {
	var done atomic.Bool
	return func(actual int64) {
		if !done.CompareAndSwap(false, true) {
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		e.parallel--
		// A window replaced since (limit removed and set again) never held
		// this estimate.
		if tpm != nil && e.tpm == tpm {
			tpm.Adjust(takenAt, max(actual, 0)-est)
		}
	}
}

// Sweep drops the keys with nothing in flight and nothing left in their
// windows, which is exactly the state a new entry starts from, so dropping
// them changes no decision. It returns how many it dropped. Call it every
// minute or so to keep memory bounded by the keys active in the last minute.
func (l *Limiter) Sweep(now time.Time) int {
	dropped := 0
	l.entries.Range(func(k, v any) bool {
		e := v.(*limitEntry)
		e.mu.Lock()
		if e.parallel == 0 && (e.rpm == nil || e.rpm.Count(now) == 0) && (e.tpm == nil || e.tpm.Count(now) == 0) &&
			e.stored == [3]int64{} {
			e.dead = true
			l.entries.CompareAndDelete(k, v)
			dropped++
		}
		e.mu.Unlock()
		return true
	})
	return dropped
}
