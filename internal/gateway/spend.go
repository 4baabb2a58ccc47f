package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the spend writer: spend-log rows leave the request path
// through a bounded buffer and reach the database in batches, written by
// one goroutine. LiteLLM's spend-log queue grew without bound when the
// database fell behind (gateway.md §5.1); here a full buffer makes callers
// wait instead (backpressure), and a row is only ever lost loudly: logged
// and counted through OnDrop.

// SpendStore is what the spend writer needs of the gateway database.
type SpendStore interface {
	WriteSpend(ctx context.Context, logs []SpendLog, budgets []BudgetSpend) error
}

// SpendWriterOptions tune a SpendWriter; zero values take the defaults.
type SpendWriterOptions struct {
	// Capacity is the most rows held at once, waiting or being written
	// (default 8192). Memory stays proportional to it whatever the load.
	Capacity int
	// BatchSize is the most rows per WriteSpend (default 500).
	BatchSize int
	// FlushEvery is how long a row waits at most before a partial batch
	// is written (default 200ms).
	FlushEvery time.Duration
	// RetryMin and RetryMax bound the exponential backoff between attempts
	// at a failed batch (defaults 100ms and 10s).
	RetryMin, RetryMax time.Duration
	// WriteTimeout bounds one WriteSpend call (default 30s).
	WriteTimeout time.Duration
	// Logger receives write failures and dropped rows; rows are logged by
	// ids, model and cost only, never metadata.
	Logger *slog.Logger
	// OnFlush, if set, is called after every WriteSpend attempt, for
	// metrics.
	OnFlush func(rows int, took time.Duration, err error)
	// OnDrop, if set, is called with the number of rows lost: refused by
	// Add, discarded as invalid, or left unwritten when Close gave up.
	OnDrop func(n int)
	// OnBudgets, if set, is told of each batch's budget increments once
	// they are stored or the batch is discarded (the increments are then
	// lost for good), before Flush sees the batch handled. It must not
	// keep the slice.
	OnBudgets func(incs []BudgetSpend)
	// Guard, if set, is held around each write attempt and its OnBudgets
	// call, so a reader holding it sees the store and OnBudgets's
	// receiver agree.
	Guard sync.Locker
}

// ErrSpendWriterClosed is returned by Add after Close.
var ErrSpendWriterClosed = nodus.Errorf(nodus.EUNAVAILABLE, "the spend writer is closed")

// SpendWriter batches spend-log rows and their budget increments into
// WriteSpend calls, off the request path. Add, Flush and Close are safe
// for concurrent use.
type SpendWriter struct {
	store SpendStore
	opts  SpendWriterOptions
	log   *slog.Logger

	wake   chan struct{} // capacity 1: a batch is full, or Flush or Close wants the rows now
	ctx    context.Context
	cancel context.CancelFunc // aborts writing when Close gives up
	done   chan struct{}      // closed when the writing goroutine returns

	mu         sync.Mutex
	logs       []SpendLog // rows waiting, oldest first
	budgets    [][]string // the budget ids of each waiting row
	inflight   int        // rows taken for writing and not yet written
	added      uint64     // rows accepted so far
	handled    uint64     // rows written or discarded so far; rows are handled in the order added
	discarded  uint64     // rows discarded as invalid so far
	changed    chan struct{}
	started    bool
	closed     bool
	closeOnce  sync.Once
	closeError error

	// Owned by the writing goroutine: the arrays of the last batch, reused
	// for the next rows, and the per-batch budget sums.
	spareLogs    []SpendLog
	spareBudgets [][]string
	sums         map[string]int64
	incs         []BudgetSpend
}

// NewSpendWriter returns a writer to store. Nothing is written until Start.
func NewSpendWriter(store SpendStore, opts SpendWriterOptions) *SpendWriter {
	if opts.Capacity <= 0 {
		opts.Capacity = 8192
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	opts.BatchSize = min(opts.BatchSize, opts.Capacity)
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 200 * time.Millisecond
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(10*time.Second, opts.RetryMin)
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &SpendWriter{store: store, opts: opts, log: log, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), changed: make(chan struct{}), sums: map[string]int64{}}
}

// Start starts the one goroutine that writes batches: when BatchSize rows
// wait, when FlushEvery has passed, and when Flush or Close ask. It runs
// until Close. Calling Start again does nothing.
func (w *SpendWriter) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.startLocked()
}

func (w *SpendWriter) startLocked() {
	if !w.started {
		w.started = true
		go w.run()
	}
}

// Add queues a row and adds its cost to each budget in budgetIDs (kept,
// not copied: the caller must not change the slice afterwards). It returns
// at once while the buffer has room. When it is full, Add waits for room;
// if ctx ends first, the row is dropped (logged and counted) and ctx's
// error returned.
func (w *SpendWriter) Add(ctx context.Context, log SpendLog, budgetIDs []string) error {
	w.mu.Lock()
	for !w.closed && len(w.logs)+w.inflight >= w.opts.Capacity {
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			w.drop(&log, ctx.Err())
			return fmt.Errorf("gateway: spend log %s dropped: %w", log.RequestID, ctx.Err())
		}
		w.mu.Lock()
	}
	if w.closed {
		w.mu.Unlock()
		w.drop(&log, ErrSpendWriterClosed)
		return ErrSpendWriterClosed
	}
	w.logs = append(w.logs, log)
	w.budgets = append(w.budgets, budgetIDs)
	w.added++
	full := len(w.logs) >= w.opts.BatchSize
	w.mu.Unlock()
	if full {
		w.poke()
	}
	return nil
}

// Buffered returns the rows held, waiting or being written; never more
// than Capacity.
func (w *SpendWriter) Buffered() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.logs) + w.inflight
}

// Flush returns once every row added before the call is written, or ctx
// ends. It needs Start. It reports an error when rows were discarded as
// invalid while it waited.
func (w *SpendWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	if !w.started {
		w.mu.Unlock()
		return nodus.Errorf(nodus.EINTERNAL, "the spend writer was not started")
	}
	target, discarded := w.added, w.discarded
	w.mu.Unlock()
	w.poke()
	for {
		w.mu.Lock()
		handled, changed := w.handled, w.changed
		lost := w.discarded - discarded
		w.mu.Unlock()
		if handled >= target {
			if lost > 0 {
				return fmt.Errorf("gateway: flush spend log: %d rows discarded as invalid", lost)
			}
			return nil
		}
		select {
		case <-changed:
		case <-w.done:
			return fmt.Errorf("gateway: flush spend log: %d rows not written: %w", target-handled, ErrSpendWriterClosed)
		case <-ctx.Done():
			return fmt.Errorf("gateway: flush spend log: %w", ctx.Err())
		}
	}
}

// Close stops accepting rows (Add then fails with ErrSpendWriterClosed),
// writes every row buffered and stops the writing goroutine. If ctx ends
// first, writing is abandoned and the error says how many rows were not
// written (they are also logged and counted through OnDrop). Later calls
// return the first call's result.
func (w *SpendWriter) Close(ctx context.Context) error {
	w.closeOnce.Do(func() { w.closeError = w.close(ctx) })
	return w.closeError
}

func (w *SpendWriter) close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.broadcastLocked() // Adds waiting for room give up
	w.startLocked()     // rows added before Start are still written
	w.mu.Unlock()
	w.poke()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		<-w.done
	}
	w.cancel()
	w.mu.Lock()
	lost := w.added - w.handled
	w.mu.Unlock()
	if lost == 0 {
		return nil
	}
	w.log.Error("gateway: spend writer closed with rows not written", "rows", lost, "error", ctx.Err())
	if w.opts.OnDrop != nil {
		w.opts.OnDrop(int(lost))
	}
	return fmt.Errorf("gateway: close spend writer: %d rows not written: %w", lost, ctx.Err())
}

// poke asks the writing goroutine to write what waits, without blocking.
func (w *SpendWriter) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// broadcastLocked wakes everyone waiting for a change: Adds waiting for
// room and Flushes waiting for progress. w.mu must be held.
func (w *SpendWriter) broadcastLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// drop reports a row that will never be written.
func (w *SpendWriter) drop(l *SpendLog, err error) {
	w.log.Error("gateway: spend log dropped", "request_id", l.RequestID, "tenant_id", l.TenantID, "key_id", l.KeyID,
		"model", l.Model, "cost_micros", l.CostMicros, "error", err)
	if w.opts.OnDrop != nil {
		w.opts.OnDrop(1)
	}
}

// run is the writing goroutine.
func (w *SpendWriter) run() {
	defer close(w.done)
	tick := time.NewTicker(w.opts.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-w.wake:
		case <-tick.C:
		case <-w.ctx.Done():
			return
		}
		if !w.writeWaiting() {
			return
		}
		w.mu.Lock()
		finished := w.closed && len(w.logs) == 0
		w.mu.Unlock()
		if finished {
			return
		}
	}
}

// writeWaiting takes every waiting row and writes it in batches of at
// most BatchSize. The rows stay counted against Capacity until written.
// It returns false when Close abandoned writing.
func (w *SpendWriter) writeWaiting() bool {
	w.mu.Lock()
	logs, budgets := w.logs, w.budgets
	w.logs, w.budgets = w.spareLogs[:0], w.spareBudgets[:0]
	w.inflight = len(logs)
	w.mu.Unlock()
	for start := 0; start < len(logs); start += w.opts.BatchSize {
		end := min(start+w.opts.BatchSize, len(logs))
		written, ok := w.writeBatch(logs[start:end], budgets[start:end])
		if !ok {
			return false
		}
		w.mu.Lock()
		w.inflight -= end - start
		w.handled += uint64(end - start)
		if !written {
			w.discarded += uint64(end - start)
		}
		w.broadcastLocked()
		w.mu.Unlock()
	}
	// Let the written rows' strings and maps be collected before reuse.
	clear(logs)
	clear(budgets)
	w.spareLogs, w.spareBudgets = logs[:0], budgets[:0]
	return true
}

// writeBatch writes one batch, retrying failures with capped exponential
// backoff until it succeeds or Close abandons it (ok false). A batch the
// database refuses as invalid would fail forever and stall every batch
// behind it, so it is discarded instead (written false), loudly.
func (w *SpendWriter) writeBatch(logs []SpendLog, budgetIDs [][]string) (written, ok bool) {
	incs := w.sumBudgets(logs, budgetIDs)
	delay := w.opts.RetryMin
	for attempt := 1; ; attempt++ {
		err := w.guardedWrite(logs, incs)
		switch {
		case err == nil:
			return true, true
		case w.ctx.Err() != nil:
			return false, false
		case nodus.ErrorCode(err) == nodus.EINVALID:
			w.log.Error("gateway: spend batch refused as invalid; discarded", "rows", len(logs),
				"first_request_id", logs[0].RequestID, "error", err)
			if w.opts.OnDrop != nil {
				w.opts.OnDrop(len(logs))
			}
			w.budgetsDone(incs)
			return false, true
		}
		w.log.Warn("gateway: spend batch write failed; retrying", "rows", len(logs), "attempt", attempt,
			"retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			return false, false
		}
		delay = min(2*delay, w.opts.RetryMax)
	}
}

// guardedWrite is one write attempt and, when it succeeds, OnBudgets,
// under Guard.
func (w *SpendWriter) guardedWrite(logs []SpendLog, incs []BudgetSpend) error {
	if w.opts.Guard != nil {
		w.opts.Guard.Lock()
		defer w.opts.Guard.Unlock()
	}
	err := w.write(logs, incs)
	if err == nil {
		w.budgetsDone(incs)
	}
	return err
}

func (w *SpendWriter) budgetsDone(incs []BudgetSpend) {
	if w.opts.OnBudgets != nil && len(incs) > 0 {
		w.opts.OnBudgets(incs)
	}
}

// write makes one WriteSpend attempt.
func (w *SpendWriter) write(logs []SpendLog, incs []BudgetSpend) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.opts.WriteTimeout)
	defer cancel()
	start := time.Now()
	err := w.store.WriteSpend(ctx, logs, incs)
	if w.opts.OnFlush != nil {
		w.opts.OnFlush(len(logs), time.Since(start), err)
	}
	if err != nil {
		return fmt.Errorf("gateway: write spend: %w", err)
	}
	return nil
}

// sumBudgets adds each row's cost to each of its budgets, sorted by id.
func (w *SpendWriter) sumBudgets(logs []SpendLog, budgetIDs [][]string) []BudgetSpend {
	clear(w.sums)
	for i := range logs {
		for _, id := range budgetIDs[i] {
			w.sums[id] += logs[i].CostMicros
		}
	}
	w.incs = w.incs[:0]
	for id, micros := range w.sums {
		if micros != 0 {
			w.incs = append(w.incs, BudgetSpend{BudgetID: id, Micros: micros})
		}
	}
	slices.SortFunc(w.incs, func(a, b BudgetSpend) int { return strings.Compare(a.BudgetID, b.BudgetID) })
	return w.incs
}
