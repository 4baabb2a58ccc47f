package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// genSpec is one generation of the rollup tests, with the figures it must
// add: the test writes its usage and cost in the several shapes SDKs send
// and checks the sums against these.
type genSpec struct {
	trace, id            string
	start                time.Time
	model, user, chatbot string
	input, output, total int64
	cost                 float64
	latencyMs, ttftMs    int64 // -1: no end time, no completion start
	failed               bool
}

// rollupDay0 is the first day of the rollup tests.
var rollupDay0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// genSpecs makes n generations over three days, four models, three users
// and two chatbots (and none), latencies from 0 ms to 80 minutes.
func genSpecs(prefix string, n int) []genSpec {
	var out []genSpec
	for i := range n {
		g := genSpec{trace: fmt.Sprintf("%s-tr-%d", prefix, i), id: fmt.Sprintf("%s-gen-%d", prefix, i),
			start: rollupDay0.AddDate(0, 0, i%3).Add(time.Duration(i) * time.Minute),
			model: fmt.Sprintf("model-%d", i%4), user: fmt.Sprintf("u-%d", i%3), chatbot: []string{"cb-1", "cb-2", ""}[i%5%3],
			input: int64(10 + i), output: int64(i % 7), cost: 0.25 * float64(i%9),
			latencyMs: int64((i * i * 37) % 20000), ttftMs: int64(i % 11 * 13), failed: i%10 == 0}
		g.total = g.input + g.output
		switch {
		case i%13 == 0:
			g.latencyMs, g.ttftMs = -1, -1
		case i%29 == 0:
			g.latencyMs = 80 * 60 * 1000 // past the histogram's last bound
		}
		out = append(out, g)
	}
	return out
}

// events writes g as a trace and a generation, usage and cost in one of
// Langfuse's and OpenAI's shapes, and a span that must not count.
func (g genSpec) events(i int) []tracing.Event {
	usage := map[string]int64{"input": g.input, "output": g.output}
	cost := map[string]float64{"total": g.cost}
	switch i % 4 {
	case 1:
		usage = map[string]int64{"prompt_tokens": g.input, "completion_tokens": g.output, "total_tokens": g.total}
		cost = map[string]float64{"input": g.cost / 2, "output": g.cost / 2}
	case 2:
		usage = map[string]int64{"input_tokens": g.input, "output_tokens": g.output, "cached_tokens": 99}
		cost = map[string]float64{"input": g.cost / 4, "output": g.cost / 4, "cache": g.cost / 2}
	case 3:
		usage["total"] = g.total
		cost = map[string]float64{"total": g.cost, "input": 1000} // total wins over the parts
	}
	tp := &tracing.TracePatch{ID: g.trace, Timestamp: &g.start, UserID: &g.user}
	if g.chatbot != "" {
		tp.Metadata = json.RawMessage(`{"chatbot_id":"` + g.chatbot + `","message_id":"m"}`)
	}
	op := &tracing.ObservationPatch{ID: g.id, TraceID: g.trace, Type: tracing.TypeGeneration, StartTime: &g.start,
		Model: &g.model, UsageDetails: usage, CostDetails: cost}
	if g.latencyMs >= 0 {
		end := g.start.Add(time.Duration(g.latencyMs) * time.Millisecond)
		first := g.start.Add(time.Duration(g.ttftMs) * time.Millisecond)
		op.EndTime, op.CompletionStartTime = &end, &first
	}
	if g.failed {
		op.Level = strp(tracing.LevelError)
	}
	span := &tracing.ObservationPatch{ID: g.id + "-span", TraceID: g.trace, Type: tracing.TypeSpan, StartTime: &g.start,
		Model: &g.model, UsageDetails: usage, CostDetails: cost}
	return []tracing.Event{{ID: g.id + "-t", Timestamp: g.start, Trace: tp},
		{ID: g.id + "-o", Timestamp: g.start, Observation: op}, {ID: g.id + "-s", Timestamp: g.start, Observation: span}}
}

func ingestSpecs(t *testing.T, db *store.DB, s tenantScope, specs []genSpec) {
	t.Helper()
	var events []tracing.Event
	for i, g := range specs {
		events = append(events, g.events(i)...)
	}
	ingest(t, db, s, events...)
}

// expectAggregates is the brute force: the groups of specs by the
// dimensions, with their latencies for the percentiles.
type wantGroup struct {
	agg       tracing.Aggregate
	latencies []float64
}

func expectAggregates(specs []genSpec, groupBy []string) map[string]*wantGroup {
	out := map[string]*wantGroup{}
	for _, g := range specs {
		var a tracing.Aggregate
		for _, dim := range groupBy {
			switch dim {
			case tracing.GroupDay:
				a.Day = g.start.Truncate(24 * time.Hour)
			case tracing.GroupModel:
				a.Model = g.model
			case tracing.GroupUser:
				a.UserID = g.user
			case tracing.GroupChatbot:
				a.ChatbotID = g.chatbot
			}
		}
		key := aggKey(&a)
		e := out[key]
		if e == nil {
			e = &wantGroup{agg: a}
			out[key] = e
		}
		e.agg.Requests++
		if g.failed {
			e.agg.Errors++
		}
		e.agg.InputTokens += g.input
		e.agg.OutputTokens += g.output
		e.agg.TotalTokens += g.total
		e.agg.Cost += g.cost
		if g.latencyMs >= 0 {
			e.latencies = append(e.latencies, float64(g.latencyMs))
		}
	}
	return out
}

func aggKey(a *tracing.Aggregate) string {
	return a.Day.Format(time.DateOnly) + "|" + a.Model + "|" + a.UserID + "|" + a.ChatbotID
}

// checkAggregates compares an answer with the brute force: counts, tokens
// and cost exactly (the costs are sums of quarters, exact in binary),
// average latency to rounding, percentiles to their bucket.
func checkAggregates(t *testing.T, what string, got tracing.Aggregates, specs []genSpec, groupBy []string) {
	t.Helper()
	want := expectAggregates(specs, groupBy)
	if got.Groups != len(want) || len(got.Rows) != len(want) {
		t.Fatalf("%s: %d groups, %d rows; want %d", what, got.Groups, len(got.Rows), len(want))
	}
	for i := range got.Rows {
		r := &got.Rows[i]
		e := want[aggKey(r)]
		if e == nil {
			t.Fatalf("%s: unexpected group %s", what, aggKey(r))
		}
		if r.Requests != e.agg.Requests || r.Errors != e.agg.Errors || r.InputTokens != e.agg.InputTokens ||
			r.OutputTokens != e.agg.OutputTokens || r.TotalTokens != e.agg.TotalTokens || r.Cost != e.agg.Cost {
			t.Errorf("%s %s: got %+v, want %+v", what, aggKey(r), *r, e.agg)
		}
		if len(e.latencies) == 0 {
			if r.LatencyAvgMs != nil || r.LatencyP50Ms != nil {
				t.Errorf("%s %s: latency without an ended generation", what, aggKey(r))
			}
			continue
		}
		slices.Sort(e.latencies)
		var sum float64
		for _, l := range e.latencies {
			sum += l
		}
		if r.LatencyAvgMs == nil || math.Abs(*r.LatencyAvgMs-sum/float64(len(e.latencies))) > 1e-6 {
			t.Errorf("%s %s: average latency %v, want %v", what, aggKey(r), r.LatencyAvgMs, sum/float64(len(e.latencies)))
		}
		for q, p := range map[float64]*float64{0.5: r.LatencyP50Ms, 0.95: r.LatencyP95Ms, 0.99: r.LatencyP99Ms} {
			exact := e.latencies[int(math.Ceil(q*float64(len(e.latencies))))-1]
			if p == nil || tracing.LatencyBucket(*p) != tracing.LatencyBucket(exact) {
				t.Errorf("%s %s: p%v = %v, exact %v is in another bucket", what, aggKey(r), q*100, p, exact)
			} else if exact >= 1 && exact < math.Exp2(22) && math.Abs(*p/exact-1) > math.Exp2(1.0/8)-1 {
				t.Errorf("%s %s: p%v = %v, exact %v: off by more than a bucket", what, aggKey(r), q*100, *p, exact)
			}
		}
	}
}

func runRollup(t *testing.T, db *store.DB) int {
	t.Helper()
	n, err := db.RollupTraces(nodus.WithAllTenants(context.Background()), 1000)
	if err != nil {
		t.Fatalf("RollupTraces: %v", err)
	}
	return n
}

// TestTracingRollups: the rollup job turns generations into rows whose
// aggregates match a brute force over the generations, by every grouping;
// an update marks its day again; tenants see their own; retention and the
// purge take the rollups with the traces.
func TestTracingRollups(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a, b := newTenantScope(), newTenantScope()
		svc, err := tracing.NewService(tracing.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		specsA, specsB := genSpecs("a", 300), genSpecs("b", 7)
		ingestSpecs(t, db, a, specsA)
		ingestSpecs(t, db, b, specsB)
		if _, err := db.RollupTraces(a.ctx, 10); nodus.ErrorCode(err) == "" {
			t.Fatal("a tenant's scope rolled up every tenant")
		}
		if n := runRollup(t, db); n != 6 {
			t.Fatalf("rolled up %d days, want 3 of each tenant", n)
		}
		if n := runRollup(t, db); n != 0 {
			t.Fatalf("a second run rolled up %d days, want none left", n)
		}
		q := func(s tenantScope, groupBy ...string) tracing.Aggregates {
			t.Helper()
			got, err := svc.Aggregates(context.Background(), s.id, tracing.AggregateQuery{From: rollupDay0,
				To: rollupDay0.AddDate(0, 0, 9), GroupBy: groupBy, Limit: tracing.MaxAggregateLimit})
			if err != nil {
				t.Fatalf("Aggregates %v: %v", groupBy, err)
			}
			return got
		}
		for _, groupBy := range [][]string{nil, {"day"}, {"model"}, {"day", "model"}, {"user"}, {"chatbot"},
			{"model", "user"}, {"day", "model", "user", "chatbot"}} {
			checkAggregates(t, fmt.Sprintf("A by %v", groupBy), q(a, groupBy...), specsA, groupBy)
			checkAggregates(t, fmt.Sprintf("B by %v", groupBy), q(b, groupBy...), specsB, groupBy)
		}
		total := q(a).Totals
		wantAll := expectAggregates(specsA, nil)[aggKey(&tracing.Aggregate{})]
		if total.Requests != 300 || total.Cost != wantAll.agg.Cost || total.TotalTokens != wantAll.agg.TotalTokens {
			t.Errorf("totals %+v, want %+v", total, wantAll.agg)
		}
		// Every grain holds every generation once: its rows add up to the
		// same totals.
		for _, grain := range tracing.Grains() {
			var requests, tokens int64
			if err := db.ScanRollups(a.ctx, grain, rollupDay0, rollupDay0.AddDate(0, 0, 2), func(r *tracing.Rollup) error {
				requests += r.Requests
				tokens += r.TotalTokens
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if requests != 300 || tokens != wantAll.agg.TotalTokens {
				t.Errorf("grain %s: %d requests, %d tokens; want 300, %d", grain, requests, tokens, wantAll.agg.TotalTokens)
			}
		}
		// The range is of days, both included: day 1 alone.
		got, err := svc.Aggregates(context.Background(), a.id, tracing.AggregateQuery{From: rollupDay0.AddDate(0, 0, 1),
			To: rollupDay0.AddDate(0, 0, 1)})
		if err != nil || got.Totals.Requests != 100 {
			t.Errorf("day 1 alone: %+v, %v; want 100 requests", got.Totals, err)
		}

		// An update of a rolled-up generation (more tokens, now failed) and
		// of a trace (another user) mark their days; the next run shows them.
		g := specsA[4]
		ingest(t, db, a, tracing.Event{ID: "upd-1", Timestamp: g.start, Observation: &tracing.ObservationPatch{ID: g.id,
			TraceID: g.trace, UsageDetails: map[string]int64{"input": 1000, "output": 1}, Level: strp(tracing.LevelError)}},
			tracing.Event{ID: "upd-2", Timestamp: g.start, Trace: &tracing.TracePatch{ID: specsA[7].trace, UserID: strp("u-new")}})
		specsA[4].input, specsA[4].output, specsA[4].total, specsA[4].failed = 1000, 1, 1001, true
		specsA[7].user = "u-new"
		if n := runRollup(t, db); n != 1 { // both on day 1
			t.Fatalf("after the update, rolled up %d days, want 1", n)
		}
		for _, groupBy := range [][]string{{"day", "model", "user", "chatbot"}, {"user"}} {
			checkAggregates(t, fmt.Sprintf("A after the update by %v", groupBy), q(a, groupBy...), specsA, groupBy)
		}

		// A trace alone in its batch marks the days of its generations.
		ingest(t, db, a, tracing.Event{ID: "upd-trace", Timestamp: g.start, Trace: &tracing.TracePatch{ID: specsA[5].trace,
			UserID: strp("u-other"), Metadata: json.RawMessage(`{"chatbot_id":"cb-9"}`)}})
		specsA[5].user, specsA[5].chatbot = "u-other", "cb-9"
		if n := runRollup(t, db); n != 1 {
			t.Fatalf("after a trace's update, rolled up %d days, want 1", n)
		}
		checkAggregates(t, "A after the trace's update", q(a, "day", "user", "chatbot"), specsA,
			[]string{"day", "user", "chatbot"})

		// A mark made while a day was rebuilt (its token changed) stays:
		// the rows are written, the day is rebuilt again next run.
		ingest(t, db, a, tracing.Event{ID: "upd-3", Timestamp: g.start, Observation: &tracing.ObservationPatch{ID: g.id,
			TraceID: g.trace, Level: strp(tracing.LevelDefault)}})
		specsA[4].failed = false
		if err := store.RebuildRollupDay(db, nodus.WithAllTenants(context.Background()), a.id, tracing.DayOf(g.start), "an older token"); err != nil {
			t.Fatal(err)
		}
		if got := countRows(t, db, "trace_rollup_dirty", a.id); got != 1 {
			t.Fatalf("%d marks after a rebuild that raced a batch, want 1", got)
		}
		checkAggregates(t, "A after the raced rebuild", q(a, "day", "model"), specsA, []string{"day", "model"})
		if n := runRollup(t, db); n != 1 || countRows(t, db, "trace_rollup_dirty", a.id) != 0 {
			t.Fatalf("the raced day: rolled up %d, %d marks left", n, countRows(t, db, "trace_rollup_dirty", a.id))
		}

		// Retention: A keeps one day, pruned at the start of day 2, so day
		// 0's traces go, and with them a generation on day 1 of a trace
		// stamped late on day 0.
		late := rollupDay0.Add(23*time.Hour + 59*time.Minute)
		next := rollupDay0.Add(24*time.Hour + time.Minute)
		lateGen := genSpec{trace: "a-late", id: "a-late-gen", start: next, model: "model-0", user: "u-0", input: 5,
			total: 5, cost: 0.5, latencyMs: 100, ttftMs: 10}
		ingest(t, db, a, tracing.Event{ID: "late-t", Timestamp: late, Trace: &tracing.TracePatch{ID: "a-late", Timestamp: &late,
			UserID: strp("u-0")}}, lateGen.events(0)[1])
		runRollup(t, db)
		specsA = append(specsA, lateGen)
		checkAggregates(t, "A with the late trace", q(a, "day"), specsA, []string{"day"})
		if err := db.SetTracingRetention(a.ctx, 1, rollupDay0); err != nil {
			t.Fatal(err)
		}
		now := rollupDay0.Add(48 * time.Hour)
		if _, err := db.PruneTraces(nodus.WithAllTenants(context.Background()), now, now.AddDate(0, 0, -7)); err != nil {
			t.Fatal(err)
		}
		if n := runRollup(t, db); n != 2 {
			t.Fatalf("after the prune, rolled up %d days, want days 0 and 1", n)
		}
		var kept []genSpec
		for _, g := range specsA {
			if g.start.After(rollupDay0.Add(24*time.Hour)) && g.trace != "a-late" {
				kept = append(kept, g)
			}
		}
		checkAggregates(t, "A after retention", q(a, "day", "model"), kept, []string{"day", "model"})
		checkAggregates(t, "B after A's retention", q(b, "day", "model"), specsB, []string{"day", "model"})

		// The purge takes A's rollups and marks, and leaves B's.
		ingest(t, db, a, genSpecs("again", 1)[0].events(0)...) // a fresh mark
		if err := db.DeleteTracingTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"trace_rollups", "trace_rollup_dirty"} {
			if got := countRows(t, db, table, a.id); got != 0 {
				t.Errorf("%d rows of %s left after the purge", got, table)
			}
		}
		if got := countRows(t, db, "trace_rollups", b.id); got == 0 {
			t.Error("A's purge took B's rollups")
		}
	})
}

// TestTracingRollupBackfill: migration 0005 marks the days that already
// hold generations, so the first runs roll up what was written before it.
func TestTracingRollupBackfill(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		m, err := store.NewMigrator(store.SetTracing, db)
		if err != nil {
			t.Fatal(err)
		}
		st, err := m.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		steps := 0
		for _, v := range st.Versions {
			if v.Version >= 5 && v.State == store.StateApplied {
				steps++
			}
		}
		if _, err := m.Down(ctx, steps); err != nil {
			t.Fatalf("roll back to before 0005: %v", err)
		}
		a := newTenantScope()
		start := rollupDay0.Add(10 * time.Hour)
		end := start.Add(2 * time.Second)
		if err := db.Write(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO traces (tenant_id, id, user_id, metadata, timestamp, created_at, updated_at)
				VALUES (?, 'tr', 'u-1', '{"chatbot_id":"cb"}', ?, ?, ?)`, a.id, start, start, start); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO observations (tenant_id, id, trace_id, type, start_time, end_time, model,
				usage_details, cost_details, created_at, updated_at)
				VALUES (?, 'gen', 'tr', 'GENERATION', ?, ?, 'gpt-4o', '{"input":7,"output":3}', '{"total":0.5}', ?, ?)`,
				a.id, start, end, start, start)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if n := runRollup(t, db); n != 1 {
			t.Fatalf("rolled up %d days after the migration, want 1", n)
		}
		svc, err := tracing.NewService(tracing.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.Aggregates(ctx, a.id, tracing.AggregateQuery{From: rollupDay0, To: rollupDay0,
			GroupBy: []string{"user", "chatbot"}})
		if err != nil || len(got.Rows) != 1 || got.Rows[0].UserID != "u-1" || got.Rows[0].ChatbotID != "cb" ||
			got.Rows[0].TotalTokens != 10 || got.Rows[0].Cost != 0.5 || *got.Rows[0].LatencyAvgMs != 2000 {
			t.Fatalf("backfilled aggregates: %+v, %v", got.Rows, err)
		}
	})
}

// TestTracingRollupsCountEmbeddings: embeddings are rolled up with the
// generations (usage and cost); spans are not.
func TestTracingRollupsCountEmbeddings(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a := newTenantScope()
		svc, err := tracing.NewService(tracing.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		at := rollupDay0.Add(3 * time.Hour)
		end := at.Add(time.Second)
		obs := func(id, typ, model string, input int64, cost float64) tracing.Event {
			return tracing.Event{ID: "ev-" + id, Timestamp: at, Observation: &tracing.ObservationPatch{ID: id, TraceID: "t1",
				Type: typ, StartTime: &at, EndTime: &end, Model: &model, UsageDetails: map[string]int64{"input": input, "total": input},
				CostDetails: map[string]float64{"total": cost}}}
		}
		ingest(t, db, a, obs("g1", tracing.TypeGeneration, "gpt-4o", 100, 0.5),
			obs("e1", tracing.TypeEmbedding, "text-embedding-3-small", 40, 0.25),
			obs("s1", tracing.TypeSpan, "", 1000, 8))
		if n := runRollup(t, db); n != 1 {
			t.Fatalf("rolled up %d days, want 1", n)
		}
		got, err := svc.Aggregates(context.Background(), a.id, tracing.AggregateQuery{From: rollupDay0, To: rollupDay0,
			GroupBy: []string{"model"}, Limit: tracing.MaxAggregateLimit})
		if err != nil {
			t.Fatal(err)
		}
		if got.Totals.Requests != 2 || got.Totals.TotalTokens != 140 || got.Totals.Cost != 0.75 {
			t.Errorf("totals %+v, want 2 requests, 140 tokens, cost 0.75 (the generation and the embedding)", got.Totals)
		}
		models := map[string]int64{}
		for _, r := range got.Rows {
			models[r.Model] = r.Requests
		}
		if models["gpt-4o"] != 1 || models["text-embedding-3-small"] != 1 || len(models) != 2 {
			t.Errorf("by model %v", models)
		}
	})
}

// TestTracingRollupsFollowMovedGenerations: a generation whose start moves
// to another day leaves the old day's rollup.
func TestTracingRollupsFollowMovedGenerations(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a := newTenantScope()
		svc, err := tracing.NewService(tracing.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		gen := func(event string, at time.Time) tracing.Event {
			end := at.Add(time.Second)
			model := "gpt-4o"
			return tracing.Event{ID: event, Timestamp: at, Observation: &tracing.ObservationPatch{ID: "g1", TraceID: "t1",
				Type: tracing.TypeGeneration, StartTime: &at, EndTime: &end, Model: &model,
				UsageDetails: map[string]int64{"input": 10, "total": 10}}}
		}
		requests := func() map[string]int64 {
			t.Helper()
			got, err := svc.Aggregates(context.Background(), a.id, tracing.AggregateQuery{From: rollupDay0,
				To: rollupDay0.AddDate(0, 0, 1), GroupBy: []string{"day"}, Limit: tracing.MaxAggregateLimit})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]int64{}
			for _, r := range got.Rows {
				out[tracing.DayOf(r.Day)] = r.Requests
			}
			return out
		}
		ingest(t, db, a, gen("e1", rollupDay0.Add(23*time.Hour+59*time.Minute)))
		runRollup(t, db)
		day0, day1 := tracing.DayOf(rollupDay0), tracing.DayOf(rollupDay0.AddDate(0, 0, 1))
		if got := requests(); got[day0] != 1 || got[day1] != 0 {
			t.Fatalf("before the move: %v", got)
		}
		ingest(t, db, a, gen("e2", rollupDay0.Add(24*time.Hour+time.Minute)))
		if n := runRollup(t, db); n != 2 {
			t.Errorf("rolled up %d days after the move, want both", n)
		}
		if got := requests(); got[day0] != 0 || got[day1] != 1 {
			t.Errorf("after the move: %v, want it on %s only", got, day1)
		}
	})
}

// monthSpecs makes n generations 29 hours apart from 2026-07-20, so they
// fall on every day of the week over July to November.
func monthSpecs(prefix string, n int) []genSpec {
	specs := genSpecs(prefix, n)
	for i := range specs {
		specs[i].start = time.Date(2026, 7, 20, 3, 0, 0, 0, time.UTC).Add(time.Duration(i) * 29 * time.Hour)
	}
	return specs
}

// between is the specs that start on the days from to to, both included.
func between(specs []genSpec, from, to time.Time) []genSpec {
	var out []genSpec
	for _, g := range specs {
		if !g.start.Before(from) && g.start.Before(to.AddDate(0, 0, 1)) {
			out = append(out, g)
		}
	}
	return out
}

// TestTracingRollupMonths: the job sums the days of each ended month into
// month rows, which aggregates over whole months read in place of the
// days while the month is not marked; a day rewritten later marks its
// month, which is read from its days until it is rebuilt; a rebuild that
// raced a day's leaves the mark; the purge takes marks and rows.
func TestTracingRollupMonths(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a := newTenantScope()
		now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
		svc, err := tracing.NewService(tracing.Config{Store: db, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		specs := monthSpecs("m", 95) // 2026-07-20 to 2026-11-12
		ingestSpecs(t, db, a, specs)
		all := nodus.WithAllTenants(context.Background())
		if _, err := db.RollupTraceMonths(a.ctx, now, 10); nodus.ErrorCode(err) == "" {
			t.Fatal("a tenant's scope rolled up every tenant's months")
		}
		if _, err := svc.Rollup(context.Background()); err != nil {
			t.Fatal(err)
		}
		marked := func() []string {
			t.Helper()
			got, err := db.DirtyRollupMonths(a.ctx, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), now)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, m := range got {
				out = append(out, tracing.DayOf(m))
			}
			slices.Sort(out)
			return out
		}
		// July to October are built; November, still running, stays marked.
		if got := marked(); !slices.Equal(got, []string{"2026-11-01"}) {
			t.Fatalf("marked months %v, want only November", got)
		}
		if n, err := db.RollupTraceMonths(all, tracing.MonthOf(now), 100); err != nil || n != 0 {
			t.Fatalf("a second run rebuilt %d months, %v", n, err)
		}
		from, to := time.Date(2026, 7, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 14, 0, 0, 0, 0, time.UTC)
		// Every grouping but by day, which reads the days.
		byMonths := [][]string{nil, {"model"}, {"user"}, {"chatbot"}, {"model", "user"}, {"model", "user", "chatbot"}}
		check := func(what string, specs []genSpec, groupings ...[]string) {
			t.Helper()
			for _, groupBy := range groupings {
				got, err := svc.Aggregates(context.Background(), a.id, tracing.AggregateQuery{From: from, To: to,
					GroupBy: groupBy, Limit: tracing.MaxAggregateLimit})
				if err != nil {
					t.Fatal(err)
				}
				checkAggregates(t, fmt.Sprintf("%s, by %v", what, groupBy), got, between(specs, from, to), groupBy)
			}
		}
		check("built", specs, append(byMonths, []string{"day", "model"})...)
		// Each month's rows add up to its days', at every grain.
		aug, sep := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
		for _, grain := range tracing.Grains() {
			sum := func(scan func(context.Context, string, time.Time, time.Time, func(*tracing.Rollup) error) error,
				from, to time.Time) (n int64) {
				if err := scan(a.ctx, grain, from, to, func(r *tracing.Rollup) error {
					n += r.Requests
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if m, d := sum(db.ScanMonthRollups, aug, aug), sum(db.ScanRollups, aug, sep.AddDate(0, 0, -1)); m != d || m == 0 {
				t.Errorf("grain %s: August's month rows count %d requests, its days %d", grain, m, d)
			}
		}

		// The month rows are what a whole month is read from: September's
		// made wrong by hand show in a range across it...
		if err := db.Write(all, func(tx *store.Tx) error {
			_, err := tx.Exec(all, `UPDATE trace_rollup_months SET requests = requests + 1000 WHERE tenant_id = ?
				AND grain = ? AND month = '2026-09-01'`, a.id, tracing.GrainModel)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		requests := func() int64 {
			t.Helper()
			got, err := svc.Aggregates(context.Background(), a.id, tracing.AggregateQuery{From: from, To: to,
				GroupBy: []string{"model"}})
			if err != nil {
				t.Fatal(err)
			}
			return got.Totals.Requests
		}
		if got, want := requests(), int64(len(between(specs, from, to))); got <= want+1000 {
			t.Errorf("September was not read from its month rows: %d requests, %d generations", got, want)
		}
		// ... until a write of one of its days marks it: then its days are
		// read. Any write marks, by hand too (the triggers).
		if err := db.Write(all, func(tx *store.Tx) error {
			_, err := tx.Exec(all, `UPDATE trace_rollups SET requests = requests WHERE tenant_id = ? AND day = '2026-09-02'`, a.id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := marked(); !slices.Equal(got, []string{"2026-09-01", "2026-11-01"}) {
			t.Fatalf("marked months %v after a day of September was written, want September too", got)
		}
		check("September marked, its month rows wrong", specs, byMonths...)
		// The job rebuilds it (and clears the mark, unchanged since listed).
		if n, err := db.RollupTraceMonths(all, tracing.MonthOf(now), 100); err != nil || n != 1 {
			t.Fatalf("rebuilt %d months, %v; want September", n, err)
		}
		if got, want := requests(), int64(len(between(specs, from, to))); got != want {
			t.Errorf("after September's rebuild: %d requests, want %d", got, want)
		}

		// A late generation on the first of September: its day's rebuild
		// marks the month, which is read from its days until rebuilt.
		late := genSpec{trace: "late-tr", id: "late-gen", start: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC), model: "model-9",
			user: "u-late", chatbot: "cb-1", input: 5, output: 6, total: 11, cost: 0.5, latencyMs: 700, ttftMs: 70}
		ingestSpecs(t, db, a, []genSpec{late})
		specs = append(specs, late)
		if got := marked(); !slices.Equal(got, []string{"2026-11-01"}) {
			t.Fatalf("marked months %v before the late day's rebuild", got)
		}
		runRollup(t, db) // the days only
		if got := marked(); !slices.Equal(got, []string{"2026-09-01", "2026-11-01"}) {
			t.Fatalf("marked months %v after the late day's rebuild, want September too", got)
		}
		check("late, September marked", specs, append(byMonths, []string{"day", "model"})...)

		// A month rebuild that listed its mark before the day changed it
		// writes what it read but leaves the mark for the next run.
		if err := store.RebuildRollupMonth(db, all, a.id, "2026-09-01", "listed-before"); err != nil {
			t.Fatal(err)
		}
		if got := marked(); !slices.Contains(got, "2026-09-01") {
			t.Fatalf("a rebuild with a stale token cleared September's mark: %v", got)
		}
		check("late, September rebuilt but marked", specs, append(byMonths, []string{"day", "model"})...)
		if n, err := db.RollupTraceMonths(all, tracing.MonthOf(now), 100); err != nil || n != 1 {
			t.Fatalf("rebuilt %d months, %v; want September", n, err)
		}
		check("late, September rebuilt", specs, append(byMonths, []string{"day", "model"})...)

		// The purge takes the months with the rest.
		if err := db.DeleteTracingTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := db.Read(all, func(tx *store.Tx) error {
			return tx.QueryRow(all, `SELECT (SELECT COUNT(*) FROM trace_rollup_dirty_months WHERE tenant_id = ?) +
				(SELECT COUNT(*) FROM trace_rollups WHERE tenant_id = ?)`, a.id, a.id).Scan(&left)
		}); err != nil || left != 0 {
			t.Fatalf("%d month marks and rollup rows left after the purge, %v", left, err)
		}
	})
}

// TestTracingRollupMonthsBackfill: migration 0009 marks every month that
// holds day rows, so aggregates read them from their days until the job
// has built them.
func TestTracingRollupMonthsBackfill(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		m, err := store.NewMigrator(store.SetTracing, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Down(ctx, 1); err != nil {
			t.Fatalf("roll back 0009: %v", err)
		}
		a := newTenantScope()
		all := nodus.WithAllTenants(ctx)
		if err := db.Write(all, func(tx *store.Tx) error {
			for _, row := range []struct {
				day      string
				requests int
			}{{"2026-08-05", 3}, {"2026-09-30", 4}} {
				if _, err := tx.Exec(all, `INSERT INTO trace_rollups (tenant_id, grain, day, model, user_id, chatbot_id,
					requests, errors, input_tokens, output_tokens, total_tokens, cost, latency_sum_ms, latency_count,
					ttft_sum_ms, ttft_count, latency_hist) VALUES (?, 'model', ?, 'gpt-4o', '', '', ?, 0, 1, 1, 2, 0.5, 0, 0, 0, 0, '')`,
					a.id, row.day, row.requests); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		aug, sep := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
		marked, err := db.DirtyRollupMonths(a.ctx, aug, sep)
		if err != nil || len(marked) != 2 {
			t.Fatalf("months marked by the migration: %v, %v; want August and September", marked, err)
		}
		now := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
		svc, err := tracing.NewService(tracing.Config{Store: db, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		requests := func() int64 {
			t.Helper()
			got, err := svc.Aggregates(ctx, a.id, tracing.AggregateQuery{From: aug, To: sep.AddDate(0, 1, -1), GroupBy: []string{"model"}})
			if err != nil {
				t.Fatal(err)
			}
			return got.Totals.Requests
		}
		if n := requests(); n != 7 {
			t.Fatalf("before the job: %d requests, want 7 from the days", n)
		}
		if n, err := svc.Rollup(ctx); err != nil || n != 2 {
			t.Fatalf("the job rebuilt %d, %v; want the two months", n, err)
		}
		if marked, err := db.DirtyRollupMonths(a.ctx, aug, sep); err != nil || len(marked) != 0 {
			t.Fatalf("months still marked: %v, %v", marked, err)
		}
		if n := requests(); n != 7 {
			t.Fatalf("after the job: %d requests, want 7 from the months", n)
		}
	})
}
