package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/tracing"
)

// `bench tracing` measures the tracing module as an SDK drives it: the
// ingestion rate of Langfuse batches (trace-create, span-create,
// generation-create, generation-update, score-create, as the SDKs send
// them, 100 events a batch, from -senders at once) sustained for
// -duration, through tracing.Service.Ingest (decoding, validation and the
// store's one transaction per batch; HTTP is not timed); then, once the
// tenant holds -observations observations, the latency of listing traces
// (newest first, 50 a page), unfiltered and by user, and of reading one
// trace with its tree.

// Targets from issue 8.
const (
	targetEventsPerSecond = 20000
	targetTraceListP99    = 50 * time.Millisecond
)

type tracingBench struct {
	duration     time.Duration
	senders      int
	observations int
	queries      int
	pgURL        string
	noSQLite     bool
	cpuProfile   string
	out          io.Writer
}

func runTracing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tracing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := &tracingBench{out: stdout}
	fs.DurationVar(&b.duration, "duration", time.Minute, "how long ingestion is sustained")
	fs.IntVar(&b.senders, "senders", 2, "SDKs sending batches at once")
	fs.IntVar(&b.observations, "observations", 1000000, "observations the tenant holds when listing is measured")
	fs.IntVar(&b.queries, "queries", 200, "list queries of each kind")
	fs.StringVar(&b.pgURL, "postgres", os.Getenv("NODUS_TEST_POSTGRES_URL"), "PostgreSQL URL to measure too (a database of its own)")
	fs.BoolVar(&b.noSQLite, "no-sqlite", false, "measure PostgreSQL only")
	fs.StringVar(&b.cpuProfile, "cpuprofile", "", "write a CPU profile of the sustained ingestion to this file, suffixed .ENGINE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	engines := benchEngines(b.noSQLite, b.pgURL)
	type row struct {
		engine             string
		rate               float64
		observations       int
		list, byUser, read searchLatency
	}
	var rows []row
	for _, engine := range engines {
		r := row{engine: engine}
		var err error
		r.rate, r.observations, r.list, r.byUser, r.read, err = b.measure(ctx, engine)
		if err != nil {
			return fmt.Errorf("%s: %w", engine, err)
		}
		rows = append(rows, r)
	}
	w := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\nengine\tevents/s\ttarget\tobservations\tlist p50\tlist p99\tby user p50\tby user p99\tread p50\tread p99\ttarget (list p99)\t\n")
	for _, r := range rows {
		rate, list := "met", "met"
		if r.rate < targetEventsPerSecond {
			rate = "NOT MET"
		}
		if r.list.p99 > targetTraceListP99 || r.byUser.p99 > targetTraceListP99 {
			list = "NOT MET"
		}
		fmt.Fprintf(w, "%s\t%.0f\t%d %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s %s\t\n", r.engine, r.rate, targetEventsPerSecond, rate,
			r.observations, r.list.p50, r.list.p99, r.byUser.p50, r.byUser.p99, r.read.p50, r.read.p99,
			targetTraceListP99, list)
	}
	return w.Flush()
}

// sdkBatch is one SDK flush: 20 traces, each with a span, a generation
// created then updated, and a score (100 events, 60 observations' worth of
// writes counting updates).
func sdkBatch(seq int64, users int) []json.RawMessage { return batchOf(seq, users, true) }

// batchOf builds a batch of 20 traces, with the generation's update and a
// score when full, else 33 traces of a trace, a span and a generation
// each (99 events, 66 observations: the fill before the list queries).
func batchOf(seq int64, users int, full bool) []json.RawMessage {
	var out []json.RawMessage
	now := time.Now().UTC()
	ts := now.Format(time.RFC3339Nano)
	add := func(typ string, body map[string]any) {
		b, _ := json.Marshal(map[string]any{"id": nodus.NewID(), "type": typ, "timestamp": ts, "body": body})
		out = append(out, b)
	}
	traces := 20
	if !full {
		traces = 33
	}
	for i := range traces {
		tr := fmt.Sprintf("tr-%d-%d", seq, i)
		add("trace-create", map[string]any{"id": tr, "name": "chat", "userId": fmt.Sprintf("user-%d", (seq*20+int64(i))%int64(users)),
			"sessionId": fmt.Sprintf("s-%d", seq), "input": "How long do refunds take?", "tags": []string{"bench"}, "timestamp": ts})
		add("span-create", map[string]any{"id": tr + "-span", "traceId": tr, "name": "retrieval", "startTime": ts,
			"endTime": now.Add(5 * time.Millisecond).Format(time.RFC3339Nano)})
		add("generation-create", map[string]any{"id": tr + "-gen", "traceId": tr, "parentObservationId": tr + "-span",
			"name": "llm", "model": "gpt-4o", "startTime": ts, "modelParameters": map[string]any{"temperature": 0.2}})
		if !full {
			continue
		}
		add("generation-update", map[string]any{"id": tr + "-gen", "traceId": tr, "endTime": now.Add(time.Second).Format(time.RFC3339Nano),
			"completionStartTime": now.Add(300 * time.Millisecond).Format(time.RFC3339Nano), "output": "Within 14 days.",
			"usageDetails": map[string]any{"input": 120, "output": 8}, "costDetails": map[string]any{"input": 0.0003, "output": 0.00008}})
		add("score-create", map[string]any{"id": tr + "-score", "traceId": tr, "name": "helpful", "value": 1})
	}
	return out
}

func (b *tracingBench) measure(ctx context.Context, engine string) (rate float64, observations int, list, byUser, read searchLatency, err error) {
	url := b.pgURL
	if engine == "sqlite" {
		dir, err := os.MkdirTemp("", "nodus-bench-tracing-")
		if err != nil {
			return 0, 0, list, byUser, read, err
		}
		defer os.RemoveAll(dir)
		url = "sqlite:" + filepath.Join(dir, "tracing.db")
	}
	db, err := store.Open(ctx, store.Config{URL: url, PoolSize: b.senders + 4})
	if err != nil {
		return 0, 0, list, byUser, read, err
	}
	defer db.Close()
	m, err := store.NewMigrator(store.SetTracing, db)
	if err != nil {
		return 0, 0, list, byUser, read, err
	}
	if _, err := m.Up(ctx); err != nil {
		return 0, 0, list, byUser, read, err
	}
	svc, err := tracing.NewService(tracing.Config{Store: db})
	if err != nil {
		return 0, 0, list, byUser, read, err
	}
	tenant := nodus.NewID()
	defer svc.PurgeTenant(context.WithoutCancel(ctx), tenant)
	const users = 1000
	var seq, events atomic.Int64
	send := func(stop time.Time, until func() bool, full bool) error {
		var wg sync.WaitGroup
		errs := make(chan error, b.senders)
		for range b.senders {
			wg.Go(func() {
				for time.Now().Before(stop) && !until() {
					batch := batchOf(seq.Add(1), users, full)
					res, err := svc.Ingest(ctx, tenant, batch)
					if err == nil && len(res.Errors) > 0 {
						err = fmt.Errorf("ingest: %s", res.Errors[0].Message)
					}
					if err != nil {
						errs <- err
						return
					}
					events.Add(int64(len(batch)))
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	// Sustained ingestion.
	if b.cpuProfile != "" {
		f, err := os.Create(b.cpuProfile + "." + engine)
		if err != nil {
			return 0, 0, list, byUser, read, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, 0, list, byUser, read, err
		}
	}
	began := time.Now()
	err = send(began.Add(b.duration), func() bool { return false }, true)
	if b.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return 0, 0, list, byUser, read, err
	}
	rate = float64(events.Load()) / time.Since(began).Seconds()
	fmt.Fprintf(b.out, "  %s: %.0f events/s for %s (%d events)\n", engine, rate, b.duration, events.Load())
	// More, until the tenant holds the observations asked for, in lighter
	// batches (no updates or scores).
	sustained := seq.Load()
	observations = int(sustained * 40)
	var filled atomic.Int64
	fill := func() bool { return int(filled.Load())*66+observations >= b.observations }
	seqBefore := seq.Load()
	if err := send(time.Now().Add(time.Hour), func() bool { filled.Store(seq.Load() - seqBefore); return fill() }, false); err != nil {
		return 0, 0, list, byUser, read, err
	}
	observations += int(seq.Load()-seqBefore) * 66
	fmt.Fprintf(b.out, "  %s: %d observations\n", engine, observations)

	timeIt := func(n int, fn func(i int) error) (searchLatency, error) {
		lat := make([]time.Duration, 0, n)
		for i := range n {
			t0 := time.Now()
			if err := fn(i); err != nil {
				return searchLatency{}, err
			}
			lat = append(lat, time.Since(t0))
		}
		return latencyOf(lat, 0), nil
	}
	var cursors []string
	list, err = timeIt(b.queries, func(i int) error {
		cursor := ""
		if i%2 == 1 && len(cursors) > 0 {
			cursor = cursors[i%len(cursors)] // a later page, now and then
		}
		traces, next, err := svc.ListTraces(ctx, tenant, tracing.TraceFilter{}, cursor, 50)
		if err == nil && len(traces) == 0 {
			err = fmt.Errorf("an empty page")
		}
		if next != "" && len(cursors) < 20 {
			cursors = append(cursors, next)
		}
		return err
	})
	if err != nil {
		return 0, 0, list, byUser, read, err
	}
	byUser, err = timeIt(b.queries, func(i int) error {
		_, _, err := svc.ListTraces(ctx, tenant, tracing.TraceFilter{UserID: fmt.Sprintf("user-%d", i%users)}, "", 50)
		return err
	})
	if err != nil {
		return 0, 0, list, byUser, read, err
	}
	read, err = timeIt(b.queries, func(i int) error {
		_, err := svc.GetTrace(ctx, tenant, fmt.Sprintf("tr-%d-%d", 1+int64(i)*sustained/int64(b.queries), i%20))
		return err
	})
	return rate, observations, list, byUser, read, err
}
