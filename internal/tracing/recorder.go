package tracing

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nodus-os/nodus/internal/background"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Nodus's own traces (a chat turn, …) are recorded off the request path: a
// Recorder buffers events and writes them in batches, one transaction per
// tenant per flush, so a turn never waits for its trace. The buffer is
// bounded: when it is full (the database far behind) events are dropped
// and counted rather than grow memory or slow the product down; a trace
// is diagnostics, the answer is not.

// Recorder defaults.
const (
	recordBuffer   = 10000 // events waiting, at most
	recordBatch    = 500   // events a flush writes at most
	recordInterval = 200 * time.Millisecond
	// recordLight is the most entries a tick writes at a lower priority:
	// 640 gateway calls a second, about 5 ms of writing per tick.
	recordLight = 128
)

// Recorder writes the events handed to Record in the background. Start it
// with Run; Close flushes what is left.
type Recorder struct {
	store   Store
	log     interface{ Warn(string, ...any) }
	now     func() time.Time
	events  chan recorded
	dropped atomic.Int64
	written atomic.Int64
	done    chan struct{}
}

// recorded is one entry of the buffer: an event, or a function that
// builds events. The event is held by pointer so the buffer, allocated
// whole, stays small (a third of a megabyte at 10,000 entries).
type recorded struct {
	tenantID string
	event    *Event
	build    func() []Event // when set, the events, built at flush time
}

// NewRecorder returns the service's recorder; Run must be started for it
// to write anything.
func (s *Service) NewRecorder() *Recorder {
	return &Recorder{store: s.store, log: s.log, now: s.now, events: make(chan recorded, recordBuffer),
		done: make(chan struct{})}
}

// Record hands events of a tenant to the recorder without waiting; when
// the buffer is full they are dropped (Dropped counts them). The recorder
// keeps the slice's elements: the caller must not change them after.
func (r *Recorder) Record(tenantID string, events ...Event) {
	for i := range events {
		select {
		case r.events <- recorded{tenantID: tenantID, event: &events[i]}:
		default:
			r.dropped.Add(1)
		}
	}
}

// RecordLater hands the recorder a function that builds a tenant's events,
// called in the recorder's goroutine when it flushes: the caller's path
// pays for a channel send, not for encoding payloads. When the buffer is
// full the events are dropped (counted as one).
func (r *Recorder) RecordLater(tenantID string, build func() []Event) {
	select {
	case r.events <- recorded{tenantID: tenantID, build: build}:
	default:
		r.dropped.Add(1)
	}
}

// Dropped is how many events were dropped for a full buffer.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Written is how many handed-over events (or builders, counted as one)
// have been written to the store.
func (r *Recorder) Written() int64 { return r.written.Load() }

// Queued is how many events (or builders) wait in the buffer.
func (r *Recorder) Queued() int { return len(r.events) }

// Run writes batches until ctx ends, then flushes what is buffered (with
// its own deadline) and returns.
//
// A tick with little to write writes it on a thread of lower priority
// (package background): a batch keeps a core busy for milliseconds, and a
// request arriving meanwhile should not wait for it. A tick with more
// (the cores busy) writes at the usual priority, as a lowered thread kept
// off a busy core would stall the garbage collector's stop-the-world
// phases, and with them every request.
func (r *Recorder) Run(ctx context.Context) {
	defer close(r.done)
	if err := background.Lower(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		r.log.Warn("tracing: the recorder's light batches run at the requests' priority", "error", err)
	}
	tick := time.NewTicker(recordInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			background.Normal(func() {
				for r.flush(fctx) > 0 {
				}
			})
			cancel()
			return
		case <-tick.C:
			if r.Queued() <= recordLight {
				r.flush(ctx)
				continue
			}
			background.Normal(func() {
				for r.flush(ctx) == recordBatch {
				}
			})
		}
	}
}

// Wait returns once Run has returned.
func (r *Recorder) Wait() { <-r.done }

// flush writes up to recordBatch buffered events and returns how many it
// took.
func (r *Recorder) flush(ctx context.Context) int {
	byTenant := make(map[string][]Event)
	taken := make(map[string]int)
	n := 0
take:
	for n < recordBatch {
		select {
		case rec := <-r.events:
			if rec.build != nil {
				byTenant[rec.tenantID] = append(byTenant[rec.tenantID], rec.build()...)
			} else {
				byTenant[rec.tenantID] = append(byTenant[rec.tenantID], *rec.event)
			}
			taken[rec.tenantID]++
			n++
		default:
			break take
		}
	}
	for tenantID, events := range byTenant {
		if _, err := r.store.IngestEvents(nodus.WithTenant(ctx, tenantID), events, r.now()); err != nil {
			r.log.Warn("tracing: recording events", "tenant", tenantID, "events", len(events), "error", err)
			continue
		}
		r.written.Add(int64(taken[tenantID]))
	}
	return n
}
