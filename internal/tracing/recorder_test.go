package tracing_test

import (
	"context"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// TestRecorder: recorded events reach the store in the background, each
// tenant's in its scope, what is buffered is flushed when the recorder
// stops, and a full buffer drops events instead of blocking.
func TestRecorder(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		svc, err := tracing.NewService(tracing.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		rec := svc.NewRecorder()
		ctx, stop := context.WithCancel(context.Background())
		go rec.Run(ctx)
		a, b := nodus.NewID(), nodus.NewID()
		at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		name := "turn"
		for i, tenant := range []string{a, b, a} {
			rec.Record(tenant, tracing.Event{ID: nodus.NewID(), Timestamp: at,
				Trace: &tracing.TracePatch{ID: []string{"t1", "t1", "t2"}[i], Timestamp: &at, Name: &name}})
		}
		stop()
		rec.Wait()
		if rec.Written() != 3 || rec.Queued() != 0 || rec.Dropped() != 0 {
			t.Fatalf("written %d, queued %d, dropped %d; want 3, 0, 0", rec.Written(), rec.Queued(), rec.Dropped())
		}
		for tenant, want := range map[string]int{a: 2, b: 1} {
			traces, _, err := svc.ListTraces(context.Background(), tenant, tracing.TraceFilter{}, "", 10)
			if err != nil || len(traces) != want {
				t.Fatalf("tenant %s has %d traces, %v; want %d", tenant, len(traces), err, want)
			}
		}

		// Nobody writing: the buffer fills, and the rest is dropped.
		full := svc.NewRecorder()
		for range 10005 {
			full.Record(a, tracing.Event{ID: nodus.NewID(), Timestamp: at, Trace: &tracing.TracePatch{ID: "t3"}})
		}
		if full.Dropped() != 5 || full.Queued() != 10000 || full.Written() != 0 {
			t.Fatalf("dropped %d, queued %d, written %d; want 5, 10000, 0", full.Dropped(), full.Queued(), full.Written())
		}
	})
}
