package gateway

import (
	"cmp"
	"context"
	"errors"
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
	// q, when set, shares every budget with the other replicas on the
	// same store (quota.go); dropped are budgets removed while this
	// replica held a claim on them, whose claims the next sync hands back.
	q       *quotas
	dropped map[string]bool
}

// ledgerEntry is one budget and the micro-dollars currently held on it.
type ledgerEntry struct {
	b        Budget // b.ResetAt is not used: resetAt holds it without aliasing the caller's pointer
	period   time.Duration
	resetAt  time.Time // zero when the budget never resets
	reserved int64

	// With replicas sharing the budget (Ledger.q set): granted is the part
	// of the budget this replica has claimed, stored what its claim row in
	// the store says (≥ granted), unwritten the cost settled here and not
	// yet in the store's spend, and lastUse when a call last reserved.
	granted, stored, unwritten int64
	lastUse                    time.Time
	// putAt is when Put last set the budget here, so that a Refresh from a
	// read that started earlier does not undo it.
	putAt time.Time
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
			e.carry(old)
		}
	}
	l.dropGone(entries)
	l.budgets = entries
	return nil
}

// Refresh replaces every budget with the store's, for replicas that
// share budgets: another replica may have created, changed or removed one,
// and the store's spend holds what every replica has written. The spend
// this replica settled and has not yet written is added back, and open
// reservations and claims are kept. A period this replica already rolled
// over and the store has not yet is left rolled over.
//
// readAt is when the read of budgets started: a budget Put here since
// then is kept as Put, since the read may predate it; Refresh returns how
// many it kept so, which the caller must read again.
//
// It is Apply with every budget read as changed and every budget the read
// lacks as deleted, so the lock is taken per chunk, not for the whole
// swap: a call reserving meanwhile sees each budget before or after its
// refresh. Nothing is applied when one budget is invalid.
func (l *Ledger) Refresh(budgets []Budget, readAt time.Time) (kept int, err error) {
	read := make(map[string]bool, len(budgets))
	for _, b := range budgets {
		read[b.ID] = true
	}
	var gone []string
	l.mu.Lock()
	for id := range l.budgets {
		if !read[id] {
			gone = append(gone, id)
		}
	}
	l.mu.Unlock()
	_, kept, err = l.Apply(budgets, gone, readAt)
	return kept, err
}

// applyChunk is how many budgets Apply changes under one hold of the
// ledger's lock, so that calls reserving meanwhile wait microseconds, not
// the whole read.
const applyChunk = 256

// Apply brings the budgets a read of changes found into the ledger, as
// Refresh does for every budget: changed are the budgets the store wrote
// since the previous read, deleted the ids it no longer holds. Budgets the
// read did not mention are left as they are. It returns the budgets it
// removed and how many it left as a Put since readAt set them: the read
// may predate the Put, so those must be read again. Nothing is applied
// when one budget is invalid.
//
// The ledger's lock is taken per chunk of budgets, not for the whole
// read: a reservation sees each budget either before or after its change,
// as it would between two reads.
func (l *Ledger) Apply(changed []Budget, deleted []string, readAt time.Time) (removed []Budget, kept int, err error) {
	entries := make([]*ledgerEntry, len(changed))
	for i, b := range changed {
		e, err := newLedgerEntry(b)
		if err != nil {
			return nil, 0, fmt.Errorf("ledger: apply: %w", err)
		}
		entries[i] = e
	}
	for chunk := range slices.Chunk(entries, applyChunk) {
		l.mu.Lock()
		for _, e := range chunk {
			old := l.budgets[e.b.ID]
			if old != nil {
				if !old.putAt.Before(readAt) {
					kept++
					continue
				}
				e.merge(old)
			}
			l.budgets[e.b.ID] = e
		}
		l.mu.Unlock()
	}
	now := l.now()
	for chunk := range slices.Chunk(deleted, applyChunk) {
		l.mu.Lock()
		for _, id := range chunk {
			e := l.budgets[id]
			if e == nil {
				continue
			}
			if !e.putAt.Before(readAt) {
				kept++
				continue
			}
			if e.stored > 0 {
				l.markDropped(id)
			}
			delete(l.budgets, id)
			removed = append(removed, e.view(now))
		}
		l.mu.Unlock()
	}
	return removed, kept, nil
}

// merge makes e, just read from the store, the successor of old: what
// belongs to this process is carried over, a period this replica already
// rolled over and the store has not yet stays rolled over, and the spend
// settled here and not yet written is added to the store's.
func (e *ledgerEntry) merge(old *ledgerEntry) {
	e.carry(old)
	if e.period > 0 && old.period == e.period && old.resetAt.After(e.resetAt) {
		e.resetAt, e.b.Spend = old.resetAt, 0
	}
	e.b.Spend += e.unwritten
}

// carry keeps what belongs to this process across a reload: reservations
// of running calls and, when budgets are shared, claims and unwritten
// spend.
func (e *ledgerEntry) carry(old *ledgerEntry) {
	e.reserved = old.reserved
	e.granted, e.stored, e.unwritten, e.lastUse = old.granted, old.stored, old.unwritten, old.lastUse
}

// dropGone notes the budgets about to disappear that hold a claim row, so
// the next sync hands it back. l.mu must be held.
func (l *Ledger) dropGone(next map[string]*ledgerEntry) {
	for id, e := range l.budgets {
		if next[id] == nil && e.stored > 0 {
			l.markDropped(id)
		}
	}
}

func (l *Ledger) markDropped(id string) {
	if l.dropped == nil {
		l.dropped = map[string]bool{}
	}
	l.dropped[id] = true
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
		e.carry(old)
	}
	e.putAt = l.now()
	l.budgets[b.ID] = e
	return nil
}

// Has reports whether the ledger holds budget id.
func (l *Ledger) Has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.budgets[id] != nil
}

// Remove drops a budget; holds on it settle into nothing.
func (l *Ledger) Remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.budgets[id]; e != nil && e.stored > 0 {
		l.markDropped(id)
	}
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
	for attempt := 1; ; attempt++ {
		h, short, err := l.tryReserve(ctx, ids, micros)
		if err != nil || len(short) == 0 {
			return h, err
		}
		// Shared budgets: this replica's claim is too small for the call.
		// Claim more and try again; a second shortfall means calls on this
		// replica took the room meanwhile, and a third is a refusal.
		if attempt == 3 {
			return nil, l.refusal(short[0])
		}
		if err := l.claim(ctx, short, micros); err != nil {
			return nil, err
		}
	}
}

// tryReserve is one attempt of Reserve. When budgets are shared and the
// call fits every budget but not this replica's claim on some, it reserves
// nothing and returns those budgets.
func (l *Ledger) tryReserve(ctx context.Context, ids []string, micros int64) (*Hold, []string, error) {
	now := l.now()
	h := &Hold{ledger: l, micros: micros}
	h.ids = h.buf[:0]
	var taskBuf [3]rolloverTask
	tasks := taskBuf[:0]
	var refused *ledgerEntry
	var short []string

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
		if l.q != nil && e.shortfall(micros) > 0 {
			short = append(short, id)
		}
	}
	var err error
	switch {
	case refused != nil:
		err = refused.exhausted(now)
	case l.q != nil && len(h.ids) > 0 && !l.q.trusted(now):
		err = errCoordination(errors.New("claims not renewed"))
	case len(short) > 0:
	default:
		for _, id := range h.ids {
			e := l.budgets[id]
			e.reserved += micros
			e.lastUse = now
		}
	}
	l.mu.Unlock()

	l.persist(ctx, tasks)
	if err != nil || len(short) > 0 {
		return nil, short, err
	}
	return h, nil, nil
}

// shortfall is how much more claim the budget needs for a call of micros
// on this replica; 0 when the claim covers it.
func (e *ledgerEntry) shortfall(micros int64) int64 {
	return max(e.reserved+e.unwritten+micros-e.granted, 0)
}

// claim grows this replica's claims on the budgets in ids enough for a
// call of micros, in one store transaction.
func (l *Ledger) claim(ctx context.Context, ids []string, micros int64) error {
	var claims []QuotaClaim
	var claimed []string
	err := l.q.claim(ctx, func() []QuotaClaim {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, id := range ids {
			e := l.budgets[id]
			if e == nil {
				continue
			}
			// Another call may have claimed for this budget meanwhile.
			if need := e.shortfall(micros); need > 0 {
				claims = append(claims, QuotaClaim{Quota: quotaBudget + id, BudgetID: id, Held: e.granted, Need: need, ExtraShare: claimExtraShare})
				claimed = append(claimed, id)
			}
		}
		return claims
	}, func(grown []int64) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, id := range claimed {
			if e := l.budgets[id]; e != nil {
				e.granted += grown[i]
				e.stored = claims[i].Held + grown[i]
			} else {
				l.markDropped(id) // removed meanwhile: hand the row back
			}
		}
	})
	if i := exhaustedIndex(err); i >= 0 {
		return l.refusal(claimed[i])
	}
	if err != nil {
		return errCoordination(err)
	}
	return nil
}

// refusal is the error for a call the replicas' claims on budget id cannot
// cover: the budget is exhausted as far as this replica can see.
func (l *Ledger) refusal(id string) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.budgets[id]; e != nil {
		return e.exhausted(now)
	}
	return &BudgetError{BudgetID: id}
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
		if l.q != nil {
			e.unwritten += actual
		}
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

// Written is told, when budgets are shared, of the spend the spend writer
// has stored (or given up on) for each budget: it now counts in the
// store's spend instead of this replica's claim, so the claim shrinks by
// as much and the next sync lowers its row.
func (l *Ledger) Written(incs []BudgetSpend) {
	if l.q == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, inc := range incs {
		e := l.budgets[inc.BudgetID]
		if e == nil {
			continue
		}
		e.unwritten = max(e.unwritten-inc.Micros, 0)
		e.granted = max(e.granted-inc.Micros, 0)
	}
}

// dropUnwritten forgets cost settled on budgets ids that the spend writer
// refused and will never store.
func (l *Ledger) dropUnwritten(ids []string, micros int64) {
	if l.q == nil || micros <= 0 {
		return
	}
	incs := make([]BudgetSpend, len(ids))
	for i, id := range ids {
		incs[i] = BudgetSpend{BudgetID: id, Micros: micros}
	}
	l.Written(incs)
}

// trimClaims lowers the claims of budgets unused since idleSince to what
// is in use, and reports every claim whose row differs from memory.
func (l *Ledger) trimClaims(_, idleSince time.Time, lower map[string]int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.dropped {
		if l.budgets[id] == nil {
			lower[quotaBudget+id] = 0
		}
	}
	clear(l.dropped)
	held := 0
	for id, e := range l.budgets {
		if inUse := e.reserved + e.unwritten; e.granted > inUse && e.lastUse.Before(idleSince) {
			e.granted = inUse
		}
		if e.stored != e.granted {
			lower[quotaBudget+id] = e.granted
			e.stored = e.granted
		}
		if e.stored > 0 {
			held++
		}
	}
	return held
}

// forgetClaims drops every claim: they expired in the store.
func (l *Ledger) forgetClaims() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.budgets {
		e.granted, e.stored = 0, 0
	}
	clear(l.dropped)
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

// BudgetLeft is what a budget has left in its period, for metrics.
type BudgetLeft struct {
	TenantID, Scope, SubjectID string
	Micros                     int64
}

// Left returns what every budget has left as of now, in no order: a
// period that ended has its whole maximum left. It copies less under the
// lock than Snapshot and allocates nothing per budget.
func (l *Ledger) Left() []BudgetLeft {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]BudgetLeft, 0, len(l.budgets))
	for _, e := range l.budgets {
		spend := e.b.Spend
		if e.period > 0 && !now.Before(e.resetAt) {
			spend = 0
		}
		out = append(out, BudgetLeft{e.b.TenantID, e.b.Scope, e.b.SubjectID, e.b.MaxMicros - spend})
	}
	return out
}

// Budget returns budget id as of now, with its spend including everything
// settled in memory.
func (l *Ledger) Budget(id string) (Budget, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.budgets[id]
	if e == nil {
		return Budget{}, false
	}
	return e.view(now), true
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
