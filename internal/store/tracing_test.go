package store_test

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

func strp(s string) *string { return &s }

func ingest(t *testing.T, db *store.DB, s tenantScope, events ...tracing.Event) []string {
	t.Helper()
	skipped, err := db.IngestEvents(s.ctx, events, nodus.SystemClock{}.Now())
	if err != nil {
		t.Fatalf("IngestEvents: %v", err)
	}
	return skipped
}

func TestTracingIngest(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a, b := newTenantScope(), newTenantScope()
		t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		t1 := t0.Add(time.Second)

		// A generation arrives before its trace: the trace exists at once,
		// with only its id and a time.
		gen := &tracing.ObservationPatch{ID: "gen-1", TraceID: "tr-1", Type: tracing.TypeGeneration,
			NewType: tracing.TypeGeneration, Name: strp("llm"), StartTime: &t0, Model: strp("gpt-4o"),
			Input:        json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`),
			UsageDetails: map[string]int64{"input": 12, "output": 3}, CostDetails: map[string]float64{"input": 0.00003}}
		if skipped := ingest(t, db, a, tracing.Event{ID: "e1", Timestamp: t0, Observation: gen}); len(skipped) != 0 {
			t.Fatalf("skipped %v", skipped)
		}
		lazy, err := db.FindTrace(a.ctx, "tr-1")
		if err != nil || lazy.Name != "" || !lazy.Timestamp.Equal(t0) || lazy.Environment != "default" {
			t.Fatalf("lazy trace = %+v, %v", lazy, err)
		}

		// The trace arrives and fills it in; an update sends only endTime and
		// output, and keeps everything else.
		ingest(t, db, a,
			tracing.Event{ID: "e2", Timestamp: t0, Trace: &tracing.TracePatch{ID: "tr-1", Name: strp("chat"),
				UserID: strp("u-1"), SessionID: strp("s-1"), Tags: []string{"prod", "beta"}, Input: json.RawMessage(`"hi"`)}},
			tracing.Event{ID: "e3", Timestamp: t1, Observation: &tracing.ObservationPatch{ID: "gen-1", TraceID: "tr-1",
				NewType: tracing.TypeGeneration, EndTime: &t1, Output: json.RawMessage(`"hello"`)}},
			tracing.Event{ID: "e4", Timestamp: t1, Trace: &tracing.TracePatch{ID: "tr-1", Output: json.RawMessage(`"hello"`)}})
		tr, err := db.FindTrace(a.ctx, "tr-1")
		if err != nil || tr.Name != "chat" || tr.UserID != "u-1" || string(tr.Input) != `"hi"` ||
			string(tr.Output) != `"hello"` || !reflect.DeepEqual(tr.Tags, []string{"prod", "beta"}) {
			t.Fatalf("merged trace = %+v, %v", tr, err)
		}
		obs, err := db.ListObservations(a.ctx, "tr-1")
		if err != nil || len(obs) != 1 {
			t.Fatalf("observations = %+v, %v", obs, err)
		}
		o := obs[0]
		if o.Type != tracing.TypeGeneration || o.Name != "llm" || o.Model != "gpt-4o" || string(o.Output) != `"hello"` ||
			o.EndTime == nil || !o.EndTime.Equal(t1) || !o.StartTime.Equal(t0) || o.Metadata != nil ||
			!reflect.DeepEqual(o.UsageDetails, map[string]int64{"input": 12, "output": 3}) ||
			!reflect.DeepEqual(o.CostDetails, map[string]float64{"input": 0.00003}) ||
			string(o.Input) != `{"messages":[{"role":"user","content":"hi"}]}` {
			t.Fatalf("merged observation = %+v", o)
		}

		// The same envelopes again change nothing and are reported skipped.
		skipped := ingest(t, db, a, tracing.Event{ID: "e4", Timestamp: t1, Trace: &tracing.TracePatch{ID: "tr-1",
			Name: strp("replayed")}})
		if got, _ := db.FindTrace(a.ctx, "tr-1"); !reflect.DeepEqual(skipped, []string{"e4"}) || got.Name != "chat" {
			t.Fatalf("replay: skipped %v, name %q", skipped, got.Name)
		}

		// Scores merge too; a numeric value replaces a string one.
		v := 0.9
		ingest(t, db, a, tracing.Event{ID: "e5", Timestamp: t1, Score: &tracing.ScorePatch{ID: "sc-1", TraceID: "tr-1",
			ObservationID: strp("gen-1"), Name: strp("quality"), StringValue: strp("good"),
			DataType: strp(tracing.DataCategorical), Source: tracing.SourceAPI}})
		ingest(t, db, a, tracing.Event{ID: "e6", Timestamp: t1, Score: &tracing.ScorePatch{ID: "sc-1", TraceID: "tr-1",
			Value: &v, DataType: strp(tracing.DataNumeric), Source: tracing.SourceAPI}})
		scores, err := db.ListScores(a.ctx, "tr-1")
		if err != nil || len(scores) != 1 || scores[0].Name != "quality" || scores[0].Value == nil || *scores[0].Value != 0.9 ||
			scores[0].StringValue != "" || scores[0].ObservationID != "gen-1" || scores[0].Source != tracing.SourceAPI {
			t.Fatalf("scores = %+v, %v", scores, err)
		}

		// Tenant B: the same ids are B's own rows, and A's are not found.
		_, err = db.FindTrace(b.ctx, "tr-1")
		wantCode(t, "A's trace as B", err, nodus.ENOTFOUND)
		if skipped := ingest(t, db, b, tracing.Event{ID: "e2", Timestamp: t0, Trace: &tracing.TracePatch{ID: "tr-1",
			Name: strp("b-chat")}}); len(skipped) != 0 {
			t.Fatalf("B's envelope e2 was skipped as A's duplicate")
		}
		if got, _ := db.FindTrace(a.ctx, "tr-1"); got.Name != "chat" {
			t.Fatalf("B's trace changed A's: %q", got.Name)
		}
		if obs, _ := db.ListObservations(b.ctx, "tr-1"); len(obs) != 0 {
			t.Fatalf("B sees A's observations: %+v", obs)
		}
		_, err = db.FindObservation(b.ctx, "gen-1")
		wantCode(t, "A's observation as B", err, nodus.ENOTFOUND)

		// Listing: newest first, filtered, in pages.
		for i, id := range []string{"tr-2", "tr-3", "tr-4"} {
			at := t0.Add(time.Duration(i+1) * time.Minute)
			ingest(t, db, a, tracing.Event{ID: "l" + id, Timestamp: at, Trace: &tracing.TracePatch{ID: id,
				Timestamp: &at, UserID: strp("u-2"), Tags: []string{"prod"}}})
		}
		ids := func(ts []tracing.Trace) []string {
			var out []string
			for _, t := range ts {
				out = append(out, t.ID)
			}
			return out
		}
		page, next, err := db.ListTraces(a.ctx, tracing.TraceFilter{}, "", 2)
		if err != nil || next == "" || !reflect.DeepEqual(ids(page), []string{"tr-4", "tr-3"}) {
			t.Fatalf("page 1 = %v, %q, %v", ids(page), next, err)
		}
		page, next, err = db.ListTraces(a.ctx, tracing.TraceFilter{}, next, 2)
		if err != nil || next != "" || !reflect.DeepEqual(ids(page), []string{"tr-2", "tr-1"}) {
			t.Fatalf("page 2 = %v, %q, %v", ids(page), next, err)
		}
		for name, tc := range map[string]struct {
			f    tracing.TraceFilter
			want []string
		}{
			"user":      {tracing.TraceFilter{UserID: "u-1"}, []string{"tr-1"}},
			"session":   {tracing.TraceFilter{SessionID: "s-1"}, []string{"tr-1"}},
			"name":      {tracing.TraceFilter{Name: "chat"}, []string{"tr-1"}},
			"one tag":   {tracing.TraceFilter{Tags: []string{"prod"}}, []string{"tr-4", "tr-3", "tr-2", "tr-1"}},
			"all tags":  {tracing.TraceFilter{Tags: []string{"prod", "beta"}}, []string{"tr-1"}},
			"from, to":  {tracing.TraceFilter{From: t0.Add(time.Minute), To: t0.Add(3 * time.Minute)}, []string{"tr-3", "tr-2"}},
			"no tag":    {tracing.TraceFilter{Tags: []string{"nope"}}, nil},
			"B's trace": {tracing.TraceFilter{Name: "b-chat"}, nil},
		} {
			got, _, err := db.ListTraces(a.ctx, tc.f, "", 10)
			if err != nil || !reflect.DeepEqual(ids(got), tc.want) {
				t.Errorf("%s: %v, %v; want %v", name, ids(got), err, tc.want)
			}
		}
		_, _, err = db.ListTraces(a.ctx, tracing.TraceFilter{}, "bogus!", 2)
		wantCode(t, "bad cursor", err, nodus.EINVALID)

		// Purging A leaves B.
		if err := db.DeleteTracingTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		_, err = db.FindTrace(a.ctx, "tr-1")
		wantCode(t, "purged trace", err, nodus.ENOTFOUND)
		if s, _ := db.ListScores(a.ctx, "tr-1"); len(s) != 0 {
			t.Fatalf("scores after purge: %+v", s)
		}
		// After the purge, A's envelope ids are new again.
		if skipped := ingest(t, db, a, tracing.Event{ID: "e2", Timestamp: t0, Trace: &tracing.TracePatch{ID: "tr-1"}}); len(skipped) != 0 {
			t.Fatalf("purge kept A's envelope ids")
		}
		if got, err := db.FindTrace(b.ctx, "tr-1"); err != nil || got.Name != "b-chat" {
			t.Fatalf("B after A's purge: %+v, %v", got, err)
		}
	})
}

func TestTracingKeys(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a, b := newTenantScope(), newTenantScope()
		now := nodus.SystemClock{}.Now()
		k := tracing.Key{ID: nodus.NewID(), TenantID: a.id, PublicKey: "pk-lf-a", SecretHash: hashOf("sk-lf-a"),
			Name: "ci", CreatedBy: "u1", CreatedAt: now}
		if err := db.CreateTracingKey(a.ctx, k); err != nil {
			t.Fatal(err)
		}
		dup := k
		dup.ID, dup.TenantID = nodus.NewID(), b.id
		wantCode(t, "public key taken", db.CreateTracingKey(b.ctx, dup), nodus.ECONFLICT)
		got, err := db.FindTracingKey(nodus.WithAllTenants(ctx), "pk-lf-a")
		if err != nil || !reflect.DeepEqual(got, k) {
			t.Fatalf("FindTracingKey = %+v, %v; want %+v", got, err, k)
		}
		_, err = db.FindTracingKey(b.ctx, "pk-lf-a")
		wantCode(t, "A's key as B", err, nodus.ENOTFOUND)
		if err := db.TouchTracingKey(a.ctx, k.ID, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		keys, err := db.ListTracingKeys(a.ctx)
		if err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(now.Add(time.Minute)) {
			t.Fatalf("ListTracingKeys = %+v, %v", keys, err)
		}
		if keys, _ := db.ListTracingKeys(b.ctx); len(keys) != 0 {
			t.Fatalf("B lists A's keys: %+v", keys)
		}
		wantCode(t, "delete A's key as B", db.DeleteTracingKey(b.ctx, k.ID), nodus.ENOTFOUND)
		if err := db.DeleteTracingKey(a.ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		_, err = db.FindTracingKey(a.ctx, "pk-lf-a")
		wantCode(t, "deleted key", err, nodus.ENOTFOUND)
	})
}

func TestTracingIngestBatchSemantics(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a := newTenantScope()
		t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
		t1, t2 := t0.Add(time.Second), t0.Add(2*time.Second)
		obs := func(id string, p tracing.ObservationPatch) *tracing.ObservationPatch {
			p.ID, p.NewType = id, tracing.TypeSpan
			if p.TraceID == "" {
				p.TraceID = "tr-1"
			}
			return &p
		}

		// In one batch: a span before its trace, created then updated twice
		// (each update sends other fields), the trace after it, a repeat of
		// an envelope id, and a score of a trace that never arrives.
		skipped := ingest(t, db, a,
			tracing.Event{ID: "e1", Timestamp: t0, Observation: obs("sp-1", tracing.ObservationPatch{Type: tracing.TypeSpan,
				Name: strp("first"), StartTime: &t0, Model: strp("m-1"), Input: json.RawMessage(`"in"`)})},
			tracing.Event{ID: "e2", Timestamp: t1, Observation: obs("sp-1", tracing.ObservationPatch{Name: strp("second"),
				EndTime: &t1, Level: strp(tracing.LevelWarning)})},
			tracing.Event{ID: "e1", Timestamp: t1, Observation: obs("sp-1", tracing.ObservationPatch{Name: strp("repeat")})},
			tracing.Event{ID: "e3", Timestamp: t2, Observation: obs("sp-1", tracing.ObservationPatch{Name: strp("third"),
				Output: json.RawMessage(`"out"`)})},
			tracing.Event{ID: "e4", Timestamp: t1, Trace: &tracing.TracePatch{ID: "tr-1", Name: strp("chat"), UserID: strp("u")}},
			tracing.Event{ID: "e5", Timestamp: t2, Trace: &tracing.TracePatch{ID: "tr-1", UserID: strp("u-2")}},
			tracing.Event{ID: "e6", Timestamp: t1, Score: &tracing.ScorePatch{ID: "sc-1", TraceID: "tr-orphan",
				Name: strp("q"), Source: tracing.SourceAPI}})
		if !reflect.DeepEqual(skipped, []string{"e1"}) {
			t.Fatalf("skipped %v, want the repeat of e1", skipped)
		}
		o, err := db.FindObservation(a.ctx, "sp-1")
		if err != nil || o.Name != "third" || o.Model != "m-1" || string(o.Input) != `"in"` || string(o.Output) != `"out"` ||
			o.Level != tracing.LevelWarning || o.EndTime == nil || !o.EndTime.Equal(t1) || !o.StartTime.Equal(t0) ||
			o.Type != tracing.TypeSpan || o.TraceID != "tr-1" {
			t.Fatalf("span after three patches = %+v, %v", o, err)
		}
		tr, err := db.FindTrace(a.ctx, "tr-1")
		// The span made the trace first, at its start time; the trace event
		// sends none and keeps it.
		if err != nil || tr.Name != "chat" || tr.UserID != "u-2" || !tr.Timestamp.Equal(t0) {
			t.Fatalf("trace = %+v, %v", tr, err)
		}
		orphan, err := db.FindTrace(a.ctx, "tr-orphan")
		if err != nil || orphan.Name != "" || !orphan.Timestamp.Equal(t1) || orphan.ObservationCount != 0 {
			t.Fatalf("a score's missing trace = %+v, %v", orphan, err)
		}

		// Across batches: known ids are skipped, new ones applied, in order.
		skipped = ingest(t, db, a,
			tracing.Event{ID: "e3", Timestamp: t2, Trace: &tracing.TracePatch{ID: "tr-1", Name: strp("replayed")}},
			tracing.Event{ID: "e7", Timestamp: t2, Trace: &tracing.TracePatch{ID: "tr-1", Release: strp("r1")}},
			tracing.Event{ID: "e2", Timestamp: t2, Trace: &tracing.TracePatch{ID: "tr-1", Name: strp("replayed")}})
		if !reflect.DeepEqual(skipped, []string{"e3", "e2"}) {
			t.Fatalf("skipped %v", skipped)
		}
		if tr, _ := db.FindTrace(a.ctx, "tr-1"); tr.Name != "chat" || tr.Release != "r1" || tr.UserID != "u-2" {
			t.Fatalf("trace after replays = %+v", tr)
		}

		// A batch larger than a statement's chunk of rows: 1,200 envelopes,
		// 700 observations of one trace and 500 repeats of their ids.
		var big []tracing.Event
		for i := range 700 {
			big = append(big, tracing.Event{ID: fmt.Sprintf("big-%04d", i), Timestamp: t0,
				Observation: obs(fmt.Sprintf("o-%04d", i), tracing.ObservationPatch{TraceID: "tr-big", StartTime: &t0,
					CostDetails: map[string]float64{"total": 0.5}})})
		}
		for i := range 500 {
			big = append(big, tracing.Event{ID: fmt.Sprintf("big-%04d", i), Timestamp: t0,
				Observation: obs(fmt.Sprintf("o-%04d", i), tracing.ObservationPatch{TraceID: "tr-big", Name: strp("dup")})})
		}
		if skipped := ingest(t, db, a, big...); len(skipped) != 500 {
			t.Fatalf("skipped %d of the big batch, want 500", len(skipped))
		}
		all, err := db.ListObservations(a.ctx, "tr-big")
		if err != nil || len(all) != 700 || all[0].Name != "" {
			t.Fatalf("big batch: %d observations, %v", len(all), err)
		}
		if tr, _ := db.FindTrace(a.ctx, "tr-big"); tr.ObservationCount != 700 || tr.TotalCost != 350 {
			t.Fatalf("big trace summary: %d observations, cost %v", tr.ObservationCount, tr.TotalCost)
		}
		if skipped := ingest(t, db, a, big[:600]...); len(skipped) != 600 {
			t.Fatalf("big batch again: skipped %d of 600", len(skipped))
		}
	})
}

func TestTracingIngestConcurrent(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a := newTenantScope()
		t0 := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
		const writers, rounds = 8, 6
		// Each round, every writer sends one batch naming the same new
		// trace and the same new observation, each setting a field of its
		// own on both, and adding an observation of its own: the rows are
		// created by whichever batch comes first and no field may be lost.
		traceField := []func(*tracing.TracePatch, string){
			func(p *tracing.TracePatch, v string) { p.Name = &v },
			func(p *tracing.TracePatch, v string) { p.UserID = &v },
			func(p *tracing.TracePatch, v string) { p.SessionID = &v },
			func(p *tracing.TracePatch, v string) { p.Release = &v },
			func(p *tracing.TracePatch, v string) { p.Version = &v },
			func(p *tracing.TracePatch, v string) { p.Environment = &v },
			func(p *tracing.TracePatch, v string) { p.Input = json.RawMessage(strconv.Quote(v)) },
			func(p *tracing.TracePatch, v string) { p.Output = json.RawMessage(strconv.Quote(v)) },
		}
		obsField := []func(*tracing.ObservationPatch, string){
			func(p *tracing.ObservationPatch, v string) { p.Name = &v },
			func(p *tracing.ObservationPatch, v string) { p.StatusMessage = &v },
			func(p *tracing.ObservationPatch, v string) { p.Version = &v },
			func(p *tracing.ObservationPatch, v string) { p.Environment = &v },
			func(p *tracing.ObservationPatch, v string) { p.Model = &v },
			func(p *tracing.ObservationPatch, v string) { p.PromptName = &v },
			func(p *tracing.ObservationPatch, v string) { p.Input = json.RawMessage(strconv.Quote(v)) },
			func(p *tracing.ObservationPatch, v string) { p.Output = json.RawMessage(strconv.Quote(v)) },
		}
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				for r := range rounds {
					tr := fmt.Sprintf("race-%d", r)
					v := fmt.Sprintf("w%d", w)
					tp := &tracing.TracePatch{ID: tr}
					traceField[w](tp, v)
					op := &tracing.ObservationPatch{ID: tr + "-shared", TraceID: tr, NewType: tracing.TypeSpan}
					obsField[w](op, v)
					// Half the writers list the trace last, so batches lock and
					// create rows in different event orders.
					events := []tracing.Event{
						{ID: nodus.NewID(), Timestamp: t0, Observation: op},
						{ID: nodus.NewID(), Timestamp: t0, Observation: &tracing.ObservationPatch{ID: fmt.Sprintf("%s-%d", tr, w),
							TraceID: tr, NewType: tracing.TypeSpan, CostDetails: map[string]float64{"total": 1}}},
						{ID: nodus.NewID(), Timestamp: t0, Trace: tp},
					}
					if w%2 == 0 {
						slices.Reverse(events)
					}
					if _, err := db.IngestEvents(a.ctx, events, t0); err != nil {
						errs <- fmt.Errorf("writer %d round %d: %w", w, r, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for r := range rounds {
			tr, err := db.FindTrace(a.ctx, fmt.Sprintf("race-%d", r))
			if err != nil {
				t.Fatal(err)
			}
			if tr.Name != "w0" || tr.UserID != "w1" || tr.SessionID != "w2" || tr.Release != "w3" || tr.Version != "w4" ||
				tr.Environment != "w5" || string(tr.Input) != `"w6"` || string(tr.Output) != `"w7"` {
				t.Errorf("round %d: trace lost a field: %+v", r, tr)
			}
			if tr.ObservationCount != writers+1 || tr.TotalCost != writers {
				t.Errorf("round %d: summary %d observations, cost %v; want %d, %d", r, tr.ObservationCount, tr.TotalCost,
					writers+1, writers)
			}
			o, err := db.FindObservation(a.ctx, fmt.Sprintf("race-%d-shared", r))
			if err != nil {
				t.Fatal(err)
			}
			if o.Name != "w0" || o.StatusMessage != "w1" || o.Version != "w2" || o.Environment != "w3" || o.Model != "w4" ||
				o.PromptName != "w5" || string(o.Input) != `"w6"` || string(o.Output) != `"w7"` {
				t.Errorf("round %d: observation lost a field: %+v", r, o)
			}
		}
	})
}

func TestTracingTraceSummary(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a, b := newTenantScope(), newTenantScope()
		t0 := time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)
		at := func(ms int) *time.Time { return timep(t0.Add(time.Duration(ms) * time.Millisecond)) }
		seq := 0
		obs := func(s tenantScope, p tracing.ObservationPatch) {
			t.Helper()
			seq++
			p.NewType = tracing.TypeGeneration
			ingest(t, db, s, tracing.Event{ID: fmt.Sprintf("ev-%d", seq), Timestamp: t0, Observation: &p})
		}
		summary := func(s tenantScope, id string, cost float64, level string, n int, latency int64) {
			t.Helper()
			tr, err := db.FindTrace(s.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(tr.TotalCost-cost) > 1e-9 || tr.Level != level || tr.ObservationCount != n || tr.LatencyMS != latency {
				t.Errorf("%s: cost %v, level %q, %d observations, latency %d ms; want %v, %q, %d, %d", id, tr.TotalCost,
					tr.Level, tr.ObservationCount, tr.LatencyMS, cost, level, n, latency)
			}
		}
		ingest(t, db, a, tracing.Event{ID: "t-1", Timestamp: t0, Trace: &tracing.TracePatch{ID: "tr-1", Name: strp("chat")}})
		summary(a, "tr-1", 0, "", 0, 0)

		// Without a "total", the costs add up; with one, it alone counts.
		obs(a, tracing.ObservationPatch{ID: "g-1", TraceID: "tr-1", StartTime: at(0), EndTime: at(250), Model: strp("gpt-4o"),
			Level: strp(tracing.LevelDebug), CostDetails: map[string]float64{"input": 0.25, "output": 0.5}})
		summary(a, "tr-1", 0.75, tracing.LevelDebug, 1, 250)
		obs(a, tracing.ObservationPatch{ID: "g-2", TraceID: "tr-1", StartTime: at(100), Model: strp("claude"),
			CostDetails: map[string]float64{"input": 7, "total": 2}})
		summary(a, "tr-1", 2.75, tracing.LevelDefault, 2, 250)
		// Updates change cost and level; fields not sent stay.
		obs(a, tracing.ObservationPatch{ID: "g-2", TraceID: "tr-1", EndTime: at(1500), Level: strp(tracing.LevelWarning)})
		summary(a, "tr-1", 2.75, tracing.LevelWarning, 2, 1500)
		obs(a, tracing.ObservationPatch{ID: "g-1", TraceID: "tr-1", Level: strp(tracing.LevelError),
			CostDetails: map[string]float64{"total": 1}})
		summary(a, "tr-1", 3, tracing.LevelError, 2, 1500)
		// An observation moving to another trace leaves the first.
		obs(a, tracing.ObservationPatch{ID: "g-1", TraceID: "tr-2"})
		summary(a, "tr-1", 2, tracing.LevelWarning, 1, 1400)
		summary(a, "tr-2", 1, tracing.LevelError, 1, 250)
		// The same ids in another tenant are summed apart.
		obs(b, tracing.ObservationPatch{ID: "g-1", TraceID: "tr-1", StartTime: at(0), Model: strp("gpt-4o"),
			CostDetails: map[string]float64{"total": 100}})
		summary(b, "tr-1", 100, tracing.LevelDefault, 1, 0)
		summary(a, "tr-1", 2, tracing.LevelWarning, 1, 1400)

		// Filters on the summary, and on the observations' model.
		obs(a, tracing.ObservationPatch{ID: "g-3", TraceID: "tr-3", StartTime: at(0), Model: strp("gpt-4o"),
			Level: strp(tracing.LevelDebug), CostDetails: map[string]float64{"total": 0.5}})
		ids := func(f tracing.TraceFilter) []string {
			t.Helper()
			got, _, err := db.ListTraces(a.ctx, f, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, tr := range got {
				out = append(out, tr.ID)
			}
			slices.Sort(out)
			return out
		}
		costp := func(v float64) *float64 { return &v }
		for name, tc := range map[string]struct {
			f    tracing.TraceFilter
			want []string
		}{
			"model":           {tracing.TraceFilter{Model: "gpt-4o"}, []string{"tr-2", "tr-3"}},
			"other model":     {tracing.TraceFilter{Model: "claude"}, []string{"tr-1"}},
			"unknown model":   {tracing.TraceFilter{Model: "nope"}, nil},
			"level error":     {tracing.TraceFilter{Level: tracing.LevelError}, []string{"tr-2"}},
			"level warning":   {tracing.TraceFilter{Level: tracing.LevelWarning}, []string{"tr-1", "tr-2"}},
			"level debug":     {tracing.TraceFilter{Level: tracing.LevelDebug}, []string{"tr-1", "tr-2", "tr-3"}},
			"min cost":        {tracing.TraceFilter{MinCost: costp(1)}, []string{"tr-1", "tr-2"}},
			"max cost":        {tracing.TraceFilter{MaxCost: costp(1)}, []string{"tr-2", "tr-3"}},
			"cost range":      {tracing.TraceFilter{MinCost: costp(0.6), MaxCost: costp(1.5)}, []string{"tr-2"}},
			"free":            {tracing.TraceFilter{MaxCost: costp(0)}, nil},
			"model and level": {tracing.TraceFilter{Model: "gpt-4o", Level: tracing.LevelWarning}, []string{"tr-2"}},
		} {
			if got := ids(tc.f); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: %v, want %v", name, got, tc.want)
			}
		}
		_, _, err := db.ListTraces(a.ctx, tracing.TraceFilter{Level: "LOUD"}, "", 10)
		wantCode(t, "unknown level", err, nodus.EINVALID)
	})
}

// Migration 0004 sums up the traces already stored.
func TestTracingTraceSummaryBackfill(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		all, err := store.EmbeddedMigrations(store.SetTracing, db.Dialect())
		if err != nil {
			t.Fatal(err)
		}
		upTo := func(v int) {
			t.Helper()
			var ms []store.Migration
			for _, m := range all {
				if m.Version <= v {
					ms = append(ms, m)
				}
			}
			if _, err := store.NewMigratorFrom(store.SetTracing, db, ms).Up(ctx); err != nil {
				t.Fatalf("migrate to %d: %v", v, err)
			}
		}
		upTo(3)
		a := newTenantScope()
		t0 := time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC)
		err = db.Write(ctx, func(tx *store.Tx) error {
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO traces (tenant_id, id, timestamp, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
					[]any{a.id, "tr-1", t0, t0, t0}},
				{`INSERT INTO traces (tenant_id, id, timestamp, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
					[]any{a.id, "tr-empty", t0, t0, t0}},
				{`INSERT INTO observations (tenant_id, id, trace_id, type, start_time, end_time, level, cost_details,
					created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					[]any{a.id, "o-1", "tr-1", "GENERATION", t0, t0.Add(1500 * time.Millisecond), "WARNING",
						`{"input":0.5,"output":0.25}`, t0, t0}},
				{`INSERT INTO observations (tenant_id, id, trace_id, type, start_time, level, cost_details,
					created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					[]any{a.id, "o-2", "tr-1", "GENERATION", t0.Add(-time.Second), "DEBUG", `{"input":3,"total":1}`, t0, t0}},
			} {
				if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		upTo(4)
		for id, want := range map[string]tracing.Trace{
			"tr-1":     {TotalCost: 1.75, Level: tracing.LevelWarning, ObservationCount: 2, LatencyMS: 2500},
			"tr-empty": {},
		} {
			tr, err := db.FindTrace(a.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tr.TotalCost != want.TotalCost || tr.Level != want.Level || tr.ObservationCount != want.ObservationCount ||
				tr.LatencyMS != want.LatencyMS {
				t.Errorf("%s after 0004: cost %v, level %q, %d observations, latency %d ms; want %+v", id, tr.TotalCost,
					tr.Level, tr.ObservationCount, tr.LatencyMS, want)
			}
		}
		upTo(math.MaxInt)
	})
}

// TestTracingIngestOwnEvents: Nodus's own events carry no envelope id;
// each is applied, none is remembered for deduplication, and a batch may
// mix them with envelopes that are.
func TestTracingIngestOwnEvents(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a := newTenantScope()
		at := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
		first, second := "first", "second"
		own := func(name *string) tracing.Event {
			return tracing.Event{Timestamp: at, Trace: &tracing.TracePatch{ID: "own-1", Timestamp: &at, Name: name}}
		}
		if skipped := ingest(t, db, a, own(&first), own(&second),
			tracing.Event{ID: "env-1", Timestamp: at, Trace: &tracing.TracePatch{ID: "sdk-1", Timestamp: &at}}); len(skipped) != 0 {
			t.Fatalf("skipped %v", skipped)
		}
		tr, err := db.FindTrace(a.ctx, "own-1")
		if err != nil || tr.Name != "second" {
			t.Fatalf("own trace %+v %v: both events apply, in order", tr, err)
		}
		if skipped := ingest(t, db, a, own(&first),
			tracing.Event{ID: "env-1", Timestamp: at, Trace: &tracing.TracePatch{ID: "sdk-1", Name: &first}}); len(skipped) != 1 || skipped[0] != "env-1" {
			t.Fatalf("skipped %v, want the repeated envelope only", skipped)
		}
		if tr, _ := db.FindTrace(a.ctx, "own-1"); tr.Name != "first" {
			t.Fatalf("an own event was deduplicated: %+v", tr)
		}
	})
}

// TestTracingIngestFreshEvents: events marked Fresh (Nodus's own, with ids
// just made) skip the look-up and get their trace's summary computed in
// Go; the rows, summaries and rollups must be what the generic path makes
// of the same events, including when a "fresh" id exists after all.
func TestTracingIngestFreshEvents(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		base := time.Date(2026, 11, 20, 23, 59, 58, 0, time.UTC)
		// Times to the microsecond, some on the halves of a millisecond
		// and past .999 of a second, where the engines' rounding bites.
		fracs := []int{0, 499, 500, 501, 999_499, 999_500, 999_999, 123_456, 1_000_500, 2_500_000}
		at := func(i int) time.Time { return base.Add(time.Duration(fracs[i%len(fracs)]+i*7_919) * time.Microsecond) }
		levels := []string{"", tracing.LevelDebug, tracing.LevelWarning, tracing.LevelError}
		// calls is a gateway-like batch: trace i has i%4 generations,
		// and the batch also names trace t-1's id in an event that moves
		// nothing.
		calls := func(fresh bool) []tracing.Event {
			var evs []tracing.Event
			n := 0
			for i := range 24 {
				trace := fmt.Sprintf("t-%d", i)
				start := at(i)
				user := fmt.Sprintf("user-%d", i%3)
				evs = append(evs, tracing.Event{Timestamp: start, Fresh: fresh, Trace: &tracing.TracePatch{ID: trace,
					Timestamp: &start, Name: strp("gateway chat"), UserID: &user, Tags: []string{"nodus", "gateway"}}})
				for j := range i % 4 {
					n++
					s, e := at(i+j), at(i+j+3).Add(time.Duration(j*250)*time.Millisecond)
					p := &tracing.ObservationPatch{ID: fmt.Sprintf("g-%d", n), TraceID: trace, Type: tracing.TypeGeneration,
						StartTime: &s, Model: strp("gpt-4o"), UsageDetails: map[string]int64{"input": 9, "output": 8}}
					if n%5 != 0 {
						p.EndTime = &e
					}
					if l := levels[n%len(levels)]; l != "" {
						p.Level = &l
					}
					switch n % 3 {
					case 0:
						p.CostDetails = map[string]float64{"total": 0.000103}
					case 1:
						p.CostDetails = map[string]float64{"input": 0.25, "output": 0.5}
					}
					evs = append(evs, tracing.Event{Timestamp: s, Fresh: fresh, Observation: p})
				}
			}
			// A second event patches a fresh generation in the batch.
			out := "done"
			evs = append(evs, tracing.Event{Timestamp: base, Fresh: fresh, Observation: &tracing.ObservationPatch{ID: "g-1",
				TraceID: "t-1", Output: json.RawMessage(`"` + out + `"`)}})
			return evs
		}
		same := func(a, b tenantScope, traceIDs []string) {
			t.Helper()
			for _, id := range traceIDs {
				ta, errA := db.FindTrace(a.ctx, id)
				tb, errB := db.FindTrace(b.ctx, id)
				if errA != nil || errB != nil {
					t.Fatalf("trace %s: %v / %v", id, errA, errB)
				}
				ta.TenantID, tb.TenantID = "", ""
				ta.CreatedAt, tb.CreatedAt, ta.UpdatedAt, tb.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				if !reflect.DeepEqual(ta, tb) {
					t.Errorf("trace %s:\nfresh   %+v\ngeneric %+v", id, ta, tb)
				}
				oa, errA := db.ListObservations(a.ctx, id)
				ob, errB := db.ListObservations(b.ctx, id)
				if errA != nil || errB != nil || len(oa) != len(ob) {
					t.Fatalf("observations of %s: %d %v / %d %v", id, len(oa), errA, len(ob), errB)
				}
				for i := range oa {
					oa[i].TenantID, ob[i].TenantID = "", ""
					oa[i].CreatedAt, ob[i].CreatedAt, oa[i].UpdatedAt, ob[i].UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
					if !reflect.DeepEqual(oa[i], ob[i]) {
						t.Errorf("observation %s:\nfresh   %+v\ngeneric %+v", oa[i].ID, oa[i], ob[i])
					}
				}
			}
			if _, err := db.RollupTraces(nodus.WithAllTenants(ctx), 1000); err != nil {
				t.Fatal(err)
			}
			rollups := func(s tenantScope) []tracing.Rollup {
				var out []tracing.Rollup
				for _, grain := range []string{tracing.GrainModel, tracing.GrainUser} {
					if err := db.ScanRollups(s.ctx, grain, base.AddDate(0, 0, -1), base.AddDate(0, 0, 2), func(r *tracing.Rollup) error {
						out = append(out, *r)
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				slices.SortFunc(out, func(x, y tracing.Rollup) int {
					return strings.Compare(x.Day.String()+x.UserID+x.Model, y.Day.String()+y.UserID+y.Model)
				})
				return out
			}
			if ra, rb := rollups(a), rollups(b); len(ra) == 0 || !reflect.DeepEqual(ra, rb) {
				t.Errorf("rollups:\nfresh   %+v\ngeneric %+v", ra, rb)
			}
		}
		var ids []string
		for i := range 24 {
			ids = append(ids, fmt.Sprintf("t-%d", i))
		}

		a, b := newTenantScope(), newTenantScope()
		ingest(t, db, a, calls(true)...)
		ingest(t, db, b, calls(false)...)
		same(a, b, ids)
		if tr, _ := db.FindTrace(a.ctx, "t-3"); tr.ObservationCount != 3 || tr.LatencyMS == 0 || tr.Level == "" {
			t.Errorf("t-3's summary %+v: want 3 observations, a latency and a level", tr)
		}

		// Ids marked fresh that exist already: a trace with an observation
		// of its own (t-2), and an observation of another trace, which the
		// fresh batch moves into a new one (g-4, into t-3).
		c, d := newTenantScope(), newTenantScope()
		first := at(1)
		before := []tracing.Event{
			{ID: "sdk-1", Timestamp: first, Trace: &tracing.TracePatch{ID: "t-2", Name: strp("sdk")}},
			{ID: "sdk-2", Timestamp: first, Observation: &tracing.ObservationPatch{ID: "sdk-g", TraceID: "t-2",
				Type: tracing.TypeGeneration, StartTime: &first, EndTime: timep(first.Add(9 * time.Second)),
				CostDetails: map[string]float64{"total": 2}, Level: strp(tracing.LevelError)}},
			{ID: "sdk-3", Timestamp: first, Observation: &tracing.ObservationPatch{ID: "g-4", TraceID: "elsewhere",
				Type: tracing.TypeSpan, StartTime: &first, Level: strp(tracing.LevelError)}},
		}
		ingest(t, db, c, before...)
		ingest(t, db, d, before...)
		ingest(t, db, c, calls(true)...)
		ingest(t, db, d, calls(false)...)
		same(c, d, append(ids, "elsewhere"))
		if tr, _ := db.FindTrace(c.ctx, "t-2"); tr.ObservationCount != 3 || tr.Level != tracing.LevelError || tr.TotalCost < 2 {
			t.Errorf("t-2's summary %+v: want its earlier generation counted", tr)
		}
		if tr, _ := db.FindTrace(c.ctx, "t-3"); tr.ObservationCount != 3 || tr.Level != tracing.LevelError {
			t.Errorf("t-3's summary %+v: want the level g-4 had before", tr)
		}
		if tr, _ := db.FindTrace(c.ctx, "elsewhere"); tr.ObservationCount != 0 {
			t.Errorf("the trace g-4 left still counts it: %+v", tr)
		}
	})
}
