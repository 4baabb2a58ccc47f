package gateway

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the budget ledger: the in-memory running spend of every
// budget, with reserve-then-settle so parallel calls never overspend
// (reference gateway.md §5.2). A call reserves its worst-case cost on every
// budget that applies before it starts and settles its real cost when it
// ends, also when the client went away: the real usage is billed, never a
// guess and never nothing.

// BudgetError is a call refused because a budget cannot cover it. When
// several budgets refuse, it names the one that frees last (one that never
// resets wins), since all must pass.
type BudgetError struct {
	BudgetID   string
	Scope      string // BudgetTenant, BudgetUser or BudgetKey
	SubjectID  string
	RetryAfter time.Duration // until the budget resets; 0 if it never does
}

func (e *BudgetError) Error() string {
	if e.SubjectID == "" {
		return fmt.Sprintf("%s budget %s exhausted", e.Scope, e.BudgetID)
	}
	return fmt.Sprintf("%s %s budget %s exhausted", e.Scope, e.SubjectID, e.BudgetID)
}

// Unwrap gives the HTTP layer and in-process callers the usual Nodus code:
// an exhausted budget is a 429, with Retry-After when the budget resets.
func (e *BudgetError) Unwrap() error {
	return &nodus.Error{Code: nodus.ERATELIMIT, Message: e.Scope + " budget exhausted", RetryAfter: e.RetryAfter}
}

// ResetFunc persists a budget's rollover: Spend to 0 and ResetAt from prev
// to next, if ResetAt is still prev. Store.ResetBudget has this shape.
type ResetFunc func(ctx context.Context, id string, prev, next time.Time) (bool, error)

// Ledger holds every budget's running spend and open reservations. It is
// safe for concurrent use. One mutex guards all budgets because a call
// reserves on up to three of them at once, all or nothing; the critical
// sections are a few additions, so the lock is held for well under a
// microsecond.
type Ledger struct {
	now   func() time.Time
	reset ResetFunc

	mu      sync.Mutex
	budgets map[string]*ledgerEntry
}

// ledgerEntry is one budget and the micro-dollars currently held on it.
type ledgerEntry struct {
	b        Budget // b.ResetAt is not used: resetAt holds it without aliasing the caller's pointer
	period   time.Duration
	resetAt  time.Time // zero when the budget never resets
	reserved int64
}

// NewLedger returns an empty ledger reading time from now. reset persists a
// period rollover; it may be nil (nothing persisted).
func NewLedger(now func() time.Time, reset ResetFunc) *Ledger {
	return &Ledger{now: now, reset: reset, budgets: make(map[string]*ledgerEntry)}
}

// newLedgerEntry validates b: the period must be known, and a budget that
// resets must say when.
func newLedgerEntry(b Budget) (*ledgerEntry, error) {
	period, ok := BudgetPeriods[b.Period]
	if !ok {
		return nil, nodus.Errorf(nodus.EINVALID, "budget %s: unknown period %q", b.ID, b.Period)
	}
	e := &ledgerEntry{b: b, period: period}
	e.b.ResetAt = nil
	if period > 0 {
		if b.ResetAt == nil {
			return nil, nodus.Errorf(nodus.EINVALID, "budget %s: period %s without a reset time", b.ID, b.Period)
		}
		e.resetAt = *b.ResetAt
	}
	return e, nil
}

// Load replaces every budget. The reservations of budgets that remain are
// kept, because their calls are still running and will settle. Nothing is
// replaced when one budget is invalid.
func (l *Ledger) Load(budgets []Budget) error {
	entries := make(map[string]*ledgerEntry, len(budgets))
	for _, b := range budgets {
		e, err := newLedgerEntry(b)
		if err != nil {
			return fmt.Errorf("ledger: load: %w", err)
		}
		entries[b.ID] = e
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, e := range entries {
		if old := l.budgets[id]; old != nil {
			e.reserved = old.reserved
		}
	}
	l.budgets = entries
	return nil
}

// Put adds or replaces one budget, keeping the reservations open on it.
// Spend is replaced too: the caller passes the spend the ledger should hold
// from now on, which must include any spend not yet written to the store.
func (l *Ledger) Put(b Budget) error {
	e, err := newLedgerEntry(b)
	if err != nil {
		return fmt.Errorf("ledger: put: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.budgets[b.ID]; old != nil {
		e.reserved = old.reserved
	}
	l.budgets[b.ID] = e
	return nil
}

// Remove drops a budget; holds on it settle into nothing.
func (l *Ledger) Remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.budgets, id)
}

// Hold is the worst-case cost reserved for one call. Callers must end every
// hold with Settle or Release, in a defer right after Reserve succeeds, so a
// panic or an early return cannot leave money reserved forever.
type Hold struct {
	ledger *Ledger
	micros int64
	ids    []string
	buf    [3]string // backs ids for the usual key, user and tenant budgets
	done   atomic.Bool
	// alerts are the thresholds Settle took budgets across.
	alerts []BudgetAlert
}

// BudgetWarnPercent is the share of a budget's maximum at which its
// owners are warned; at 100% it is exhausted.
const BudgetWarnPercent = 80

// BudgetAlert is a budget whose settled spend crossed BudgetWarnPercent or
// 100% of its maximum. Spend only grows within a period, so a threshold
// is crossed once per period (PeriodEnd, zero for a budget that never
// resets) in a process; replicas may each see it, so a receiver keys it
// by budget, period and percent.
type BudgetAlert struct {
	BudgetID    string
	TenantID    string
	Scope       string
	SubjectID   string
	Percent     int // BudgetWarnPercent or 100
	SpendMicros int64
	MaxMicros   int64
	PeriodEnd   time.Time
}

// crossed returns the highest threshold spend crossed going from before
// to after of max, or 0.
func crossed(before, after, max int64) int {
	if max <= 0 {
		return 0
	}
	for _, pct := range []int64{100, BudgetWarnPercent} {
		at := max * pct / 100
		if before < at && after >= at {
			return int(pct)
		}
	}
	return 0
}

// rolloverTask is a rollover to persist once the lock is released.
type rolloverTask struct {
	id         string
	prev, next time.Time
}

// Reserve holds micros on every budget in ids, all or nothing. Unknown ids
// have no budget configured and are skipped. A budget whose period has ended
// is first rolled over (Spend 0, ResetAt moved past now by whole periods)
// and the rollover persisted through reset, best effort: a rollover that
// fails to persist is repeated from the stored ResetAt at the next Load. The
// call is refused when, on any budget, Spend + Reserved + micros exceeds
// MaxMicros or Spend has already reached it (so a free call is refused too
// once a budget is exhausted).
func (l *Ledger) Reserve(ctx context.Context, ids []string, micros int64) (*Hold, error) {
	if micros < 0 {
		return nil, nodus.Errorf(nodus.EINVALID, "ledger: negative reservation %d", micros)
	}
	now := l.now()
	h := &Hold{ledger: l, micros: micros}
	h.ids = h.buf[:0]
	var taskBuf [3]rolloverTask
	tasks := taskBuf[:0]
	var refused *ledgerEntry

	l.mu.Lock()
	for _, id := range ids {
		e := l.budgets[id]
		if e == nil || slices.Contains(h.ids, id) {
			continue
		}
		if prev, rolled := e.rollover(now); rolled {
			tasks = append(tasks, rolloverTask{id: id, prev: prev, next: e.resetAt})
		}
		h.ids = append(h.ids, id)
		if !e.fits(micros) && freesLater(e, refused) {
			refused = e
		}
	}
	var err error
	if refused == nil {
		for _, id := range h.ids {
			l.budgets[id].reserved += micros
		}
	} else {
		err = refused.exhausted(now)
	}
	l.mu.Unlock()

	l.persist(ctx, tasks)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// persist records rollovers outside the lock, so a slow store delays only
// the call that crossed the period boundary. The result is deliberately not
// checked: false means another process reset the budget first, and an error
// is the reset function's to log; either way the in-memory budget is right
// and the store catches up at the next Load.
func (l *Ledger) persist(ctx context.Context, tasks []rolloverTask) {
	if l.reset == nil {
		return
	}
	for _, t := range tasks {
		_, _ = l.reset(ctx, t.id, t.prev, t.next)
	}
}

// rollover starts a new period when the current one has ended. It returns
// the old reset time and whether it rolled. Open reservations carry over:
// their calls are still running.
func (e *ledgerEntry) rollover(now time.Time) (prev time.Time, rolled bool) {
	if e.period <= 0 || now.Before(e.resetAt) {
		return time.Time{}, false
	}
	prev = e.resetAt
	e.resetAt = nextReset(prev, e.period, now)
	e.b.Spend = 0
	return prev, true
}

// nextReset is the first of prev + k·period (k ≥ 1) after now, so a budget
// idle for several periods keeps its reset time of day.
func nextReset(prev time.Time, period time.Duration, now time.Time) time.Time {
	return prev.Add(period * (now.Sub(prev)/period + 1))
}

func (e *ledgerEntry) fits(micros int64) bool {
	return e.b.Spend < e.b.MaxMicros && e.b.Spend+e.reserved+micros <= e.b.MaxMicros
}

// freesLater reports whether e stays exhausted longer than cur (nil: no
// budget yet): never resetting is longest.
func freesLater(e, cur *ledgerEntry) bool {
	switch {
	case cur == nil:
		return true
	case cur.resetAt.IsZero():
		return false
	case e.resetAt.IsZero():
		return true
	}
	return e.resetAt.After(cur.resetAt)
}

func (e *ledgerEntry) exhausted(now time.Time) *BudgetError {
	err := &BudgetError{BudgetID: e.b.ID, Scope: e.b.Scope, SubjectID: e.b.SubjectID}
	if !e.resetAt.IsZero() {
		err.RetryAfter = e.resetAt.Sub(now)
	}
	return err
}

// Settle ends the hold: the reservation is removed and actual is added to
// the spend of every budget held. actual may exceed the hold, because the
// real usage is billed and never capped; a budget can then end above its
// maximum by that one call's excess over its reservation, the only overshoot
// the ledger allows. A negative actual counts as 0: a call never credits a
// budget. Settle is idempotent and safe on a nil hold, so a deferred Release
// after an explicit Settle is harmless.
func (h *Hold) Settle(actual int64) {
	if h == nil || !h.done.CompareAndSwap(false, true) {
		return
	}
	actual = max(actual, 0)
	l := h.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range h.ids {
		e := l.budgets[id]
		if e == nil {
			continue // removed while the call ran
		}
		// A budget removed and put back while the call ran never held
		// this reservation; do not let it go negative.
		e.reserved = max(e.reserved-h.micros, 0)
		before := e.b.Spend
		e.b.Spend += actual
		if pct := crossed(before, e.b.Spend, e.b.MaxMicros); pct > 0 {
			h.alerts = append(h.alerts, BudgetAlert{BudgetID: e.b.ID, TenantID: e.b.TenantID, Scope: e.b.Scope,
				SubjectID: e.b.SubjectID, Percent: pct, SpendMicros: e.b.Spend, MaxMicros: e.b.MaxMicros, PeriodEnd: e.resetAt})
		}
	}
}

// Alerts returns the thresholds the hold's Settle took budgets across.
func (h *Hold) Alerts() []BudgetAlert {
	if h == nil {
		return nil
	}
	return h.alerts
}

// Release ends the hold without cost: the call never reached an upstream.
func (h *Hold) Release() { h.Settle(0) }

// BudgetIDs returns the budgets the hold is on, which are the ones the spend
// writer adds the settled cost to. The slice must not be changed.
func (h *Hold) BudgetIDs() []string {
	if h == nil {
		return nil
	}
	return h.ids
}

// Remaining returns what the budget has left of its maximum after settled
// spend, as of now (a period that has ended counts as reset). It is
// negative by the allowed overshoot of the last call. Open reservations are
// not subtracted, so the figure does not flap with traffic.
func (l *Ledger) Remaining(id string) (micros int64, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.budgets[id]
	if e == nil {
		return 0, false
	}
	b := e.view(now)
	return b.MaxMicros - b.Spend, true
}

// Snapshot returns every budget as of now, sorted by id, with its spend
// including everything settled in memory.
func (l *Ledger) Snapshot() []Budget {
	now := l.now()
	l.mu.Lock()
	out := make([]Budget, 0, len(l.budgets))
	for _, e := range l.budgets {
		out = append(out, e.view(now))
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b Budget) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// view returns the budget as it would be after a rollover at now, without
// performing one: reads must not change state that Reserve persists.
func (e *ledgerEntry) view(now time.Time) Budget {
	b := e.b
	if e.period > 0 {
		resetAt := e.resetAt
		if !now.Before(resetAt) {
			resetAt = nextReset(resetAt, e.period, now)
			b.Spend = 0
		}
		b.ResetAt = &resetAt
	}
	return b
}
