package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// TestTracingRetention: a tenant's traces older than its retention go,
// with their observations and scores, in batches; a tenant without a
// retention keeps everything; envelope ids are forgotten after the
// deduplication window.
func TestTracingRetention(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a, b := newTenantScope(), newTenantScope()
		now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		// 1,205 old traces (more than one batch) and 3 recent ones per
		// tenant, each with a span and a score.
		for _, s := range []tenantScope{a, b} {
			var events []tracing.Event
			for i := range 1208 {
				at := now.Add(-40 * 24 * time.Hour)
				if i >= 1205 {
					at = now.Add(-time.Hour)
				}
				id := fmt.Sprintf("tr-%d", i)
				events = append(events,
					tracing.Event{ID: id + "-t", Timestamp: at, Trace: &tracing.TracePatch{ID: id, Timestamp: &at}},
					tracing.Event{ID: id + "-o", Timestamp: at, Observation: &tracing.ObservationPatch{ID: id + "-span",
						TraceID: id, Type: "SPAN", StartTime: &at}},
					tracing.Event{ID: id + "-s", Timestamp: at, Score: &tracing.ScorePatch{ID: id + "-score", TraceID: id,
						Name: strp("quality"), Value: new(1.0), Timestamp: &at}})
			}
			if _, err := db.IngestEvents(s.ctx, events, now.Add(-10*24*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		if days, err := db.TracingRetention(a.ctx); err != nil || days != 0 {
			t.Fatalf("retention before any setting: %d, %v", days, err)
		}
		if err := db.SetTracingRetention(a.ctx, 30, now); err != nil {
			t.Fatal(err)
		}
		if days, _ := db.TracingRetention(a.ctx); days != 30 {
			t.Fatalf("retention = %d, want 30", days)
		}
		if _, err := db.PruneTraces(a.ctx, now, now.Add(-7*24*time.Hour)); nodus.ErrorCode(err) == "" {
			t.Fatal("a tenant's scope pruned every tenant")
		}
		n, err := db.PruneTraces(nodus.WithAllTenants(context.Background()), now, now.Add(-7*24*time.Hour))
		if err != nil || n != 1205 {
			t.Fatalf("pruned %d traces, %v; want 1205", n, err)
		}
		for table, want := range map[string][2]int{"traces": {3, 1208}, "observations": {3, 1208}, "scores": {3, 1208}} {
			if got := countRows(t, db, table, a.id); got != want[0] {
				t.Errorf("%s of A: %d, want %d", table, got, want[0])
			}
			if got := countRows(t, db, table, b.id); got != want[1] {
				t.Errorf("%s of B (no retention): %d, want %d", table, got, want[1])
			}
		}
		// Envelope ids received ten days ago are past the window: gone,
		// so the same envelope would now be applied again.
		for _, s := range []tenantScope{a, b} {
			if got := countRows(t, db, "ingestion_events", s.id); got != 0 {
				t.Errorf("%d envelope ids left for %s", got, s.id)
			}
		}
		// The purge of a tenant takes its setting too.
		if err := db.DeleteTracingTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		if got := countRows(t, db, "tracing_settings", a.id); got != 0 {
			t.Errorf("%d settings rows left after the purge", got)
		}
	})
}
