package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// BenchmarkTracingAggregates measures Aggregates over a tenant's year of
// rollups: 365 days × 20 models × 100 users (five chatbots), so 730,000
// rows at the full grain, 7,300 by model, 36,500 by user, every row with
// a latency histogram of a dozen buckets; read from the days alone
// ("days": every month marked) and with the months that have ended built
// ("months"). Also the job's rebuild of a month.
//
//	go test -run '^$' -bench TracingAggregates -benchtime 10x ./internal/store/
func BenchmarkTracingAggregates(b *testing.B) {
	const days, models, users = 365, 20, 100
	storetest.BenchMigrated(b, store.SetTracing, func(b *testing.B, db *store.DB) {
		tenant := nodus.NewID()
		last := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
		var hist tracing.Histogram
		for i := range 12 {
			hist.Add(70+3*i, int64(1+i))
		}
		h := hist.String()
		fill := func(table string, perDay int, row func(day string, i int) []any) {
			width := len(row("", 0))
			for d := range days {
				day := tracing.DayOf(last.AddDate(0, 0, -d))
				if err := db.Write(platformCtx, func(tx *store.Tx) error {
					for start := 0; start < perDay; start += 200 {
						var args []any
						var values []string
						for i := start; i < min(start+200, perDay); i++ {
							args = append(args, row(day, i)...)
							values = append(values, "("+strings.TrimSuffix(strings.Repeat("?, ", width), ", ")+")")
						}
						if _, err := tx.Exec(platformCtx, `INSERT INTO `+table+` VALUES `+strings.Join(values, ", "), args...); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
		}
		figures := func(n int) []any {
			return []any{10 * n, n, 5000 * n, 500 * n, 5500 * n, 0.0125 * float64(n), 1200.0 * float64(n), 10 * n,
				300.0 * float64(n), 10 * n, h}
		}
		fill("trace_rollups", models*users, func(day string, i int) []any {
			u := i / models
			return append([]any{tenant, tracing.GrainFull, day, fmt.Sprintf("model-%d", i%models),
				fmt.Sprintf("user-%d", u), fmt.Sprintf("cb-%d", u%5)}, figures(1)...)
		})
		fill("trace_rollups", models, func(day string, i int) []any {
			return append([]any{tenant, tracing.GrainModel, day, fmt.Sprintf("model-%d", i), "", ""}, figures(users)...)
		})
		fill("trace_rollups", users, func(day string, i int) []any {
			return append([]any{tenant, tracing.GrainUser, day, "", fmt.Sprintf("user-%d", i), ""}, figures(models)...)
		})
		fill("trace_rollups", 5, func(day string, i int) []any {
			return append([]any{tenant, tracing.GrainChatbot, day, "", "", fmt.Sprintf("cb-%d", i)},
				figures(models*users/5)...)
		})
		// As autovacuum would after a load: the planner needs the table's
		// statistics to pick the index for a range of days.
		if db.Dialect() == store.Postgres {
			if err := db.Write(ctx, func(tx *store.Tx) error {
				_, err := tx.Exec(ctx, `ANALYZE trace_rollups`)
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
		svc, err := tracing.NewService(tracing.Config{Store: db, Now: func() time.Time { return last }})
		if err != nil {
			b.Fatal(err)
		}
		// Writing the days marked every month (as the migration marks a
		// database's): the "days" runs read days only. Then the job builds
		// the months that have ended, which the "months" runs read.
		cases := []struct {
			name    string
			days    int
			groupBy []string
			groups  int
		}{
			{"365d-day-model", 365, []string{"day", "model"}, days * models},
			{"365d-model", 365, []string{"model"}, models},
			{"365d-user", 365, []string{"user"}, users},
			{"30d-day-model", 30, []string{"day", "model"}, 30 * models},
			{"30d-user", 30, []string{"user"}, users},
			{"30d-chatbot-user", 30, []string{"chatbot", "user"}, users},
			{"365d-model-user", 365, []string{"model", "user"}, models * users},
		}
		run := func(b *testing.B) {
			for _, bc := range cases {
				b.Run(bc.name, func(b *testing.B) {
					q := tracing.AggregateQuery{From: last.AddDate(0, 0, -(bc.days - 1)), To: last, GroupBy: bc.groupBy}
					for b.Loop() {
						got, err := svc.Aggregates(context.Background(), tenant, q)
						if err != nil {
							b.Fatal(err)
						}
						if got.Groups != bc.groups {
							b.Fatalf("%d groups, want %d", got.Groups, bc.groups)
						}
					}
				})
			}
		}
		b.Run("days", run)
		if n, err := svc.Rollup(context.Background()); err != nil || n != 12 {
			b.Fatalf("the job rebuilt %d months, %v; want the 12 that have ended", n, err)
		}
		b.Run("months", run)
		// The job's rebuild of one month: 30 days of rows at every grain
		// read, summed and written.
		b.Run("rebuild-month", func(b *testing.B) {
			for b.Loop() {
				if err := store.RebuildRollupMonth(db, platformCtx, tenant, "2026-09-01", "any"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkTracingRollupDay measures the job's rebuild of one day of a
// tenant holding 5,000 generations that day (read, add up, write).
//
//	go test -run '^$' -bench TracingRollupDay -benchtime 10x ./internal/store/
func BenchmarkTracingRollupDay(b *testing.B) {
	const n = 5000
	storetest.BenchMigrated(b, store.SetTracing, func(b *testing.B, db *store.DB) {
		s := newTenantScope()
		specs := genSpecs("bench", n)
		var events []tracing.Event
		for i, g := range specs {
			g.start = rollupDay0.Add(time.Duration(i) * time.Second) // one day
			events = append(events, g.events(i)[:2]...)
			if len(events) == 1000 || i == n-1 {
				if _, err := db.IngestEvents(s.ctx, events, rollupDay0); err != nil {
					b.Fatal(err)
				}
				events = events[:0]
			}
		}
		day := tracing.DayOf(rollupDay0)
		for b.Loop() {
			if err := store.RebuildRollupDay(db, nodus.WithAllTenants(context.Background()), s.id, day, "any"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTracingRollupMark measures what the rollups add to an
// ingestion transaction, alone: marking the days of a batch of 20 traces
// with a span and a generation each (the generations' days read back by
// trace id, one upsert), against an empty transaction of the same store.
//
//	go test -run '^$' -bench TracingRollupMark ./internal/store/
func BenchmarkTracingRollupMark(b *testing.B) {
	storetest.BenchMigrated(b, store.SetTracing, func(b *testing.B, db *store.DB) {
		s := newTenantScope()
		var events []tracing.Event
		var traces []tracing.Trace
		var obs []tracing.Observation
		for i, g := range genSpecs("mark", 20) {
			events = append(events, g.events(i)...)
			traces = append(traces, tracing.Trace{ID: g.trace, Timestamp: g.start})
			obs = append(obs, tracing.Observation{ID: g.id, TraceID: g.trace, Type: tracing.TypeGeneration, StartTime: g.start},
				tracing.Observation{ID: g.id + "-span", TraceID: g.trace, Type: tracing.TypeSpan, StartTime: g.start})
		}
		if _, err := db.IngestEvents(s.ctx, events, rollupDay0); err != nil {
			b.Fatal(err)
		}
		b.Run("mark", func(b *testing.B) {
			for b.Loop() {
				if err := store.MarkRollupsOfBatch(s.ctx, db, s.id, traces, obs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("empty-tx", func(b *testing.B) {
			for b.Loop() {
				if err := db.Write(ctx, func(*store.Tx) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("ingest-batch", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				// The same 60 events under new envelope ids: every one applied.
				batch := make([]tracing.Event, len(events))
				for j, ev := range events {
					ev.ID = fmt.Sprintf("%s-%d", ev.ID, i)
					batch[j] = ev
				}
				if _, err := db.IngestEvents(s.ctx, batch, rollupDay0); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
