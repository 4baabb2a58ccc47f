package store_test

import (
	"context"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// publicWorld ingests, for tenant A, three traces of two users in two
// environments, with a span, a generation under it and a score each, and
// for tenant B one trace reusing A's first id.
func publicWorld(t *testing.T, db *store.DB, a, b tenantScope, t0 time.Time) {
	t.Helper()
	type tr struct {
		id, name, user, session, env, release string
		tags                                  []string
		at                                    time.Time
	}
	var events []tracing.Event
	for i, x := range []tr{
		{"tr-1", "chat", "u-1", "s-1", "prod", "r1", []string{"a", "b"}, t0},
		{"tr-2", "chat", "u-2", "s-1", "prod", "r2", []string{"a"}, t0.Add(time.Minute)},
		{"tr-3", "embed", "u-1", "s-2", "dev", "r1", nil, t0.Add(2 * time.Minute)},
	} {
		at, end, first := x.at, x.at.Add(1500*time.Millisecond), x.at.Add(300*time.Millisecond)
		genStart := x.at.Add(100 * time.Millisecond)
		events = append(events,
			tracing.Event{ID: x.id + "-t", Timestamp: at, Trace: &tracing.TracePatch{ID: x.id, Name: strp(x.name),
				UserID: strp(x.user), SessionID: strp(x.session), Environment: strp(x.env), Release: strp(x.release),
				Tags: x.tags, Timestamp: &at}},
			tracing.Event{ID: x.id + "-span", Timestamp: at, Observation: &tracing.ObservationPatch{ID: x.id + "-span",
				TraceID: x.id, Type: tracing.TypeSpan, NewType: tracing.TypeSpan, Name: strp("retrieve"), StartTime: &at,
				EndTime: &end}},
			tracing.Event{ID: x.id + "-gen", Timestamp: at, Observation: &tracing.ObservationPatch{ID: x.id + "-gen",
				TraceID: x.id, Type: tracing.TypeGeneration, NewType: tracing.TypeGeneration, Name: strp("llm"),
				ParentObservationID: strp(x.id + "-span"), StartTime: &genStart, CompletionStartTime: &first,
				Model: strp("gpt-4o"), UsageDetails: map[string]int64{"input": 10, "output": int64(i + 1)},
				CostDetails: map[string]float64{"input": 0.01, "output": 0.02}}},
			tracing.Event{ID: x.id + "-score", Timestamp: at, Score: &tracing.ScorePatch{ID: x.id + "-score", TraceID: x.id,
				Name: strp([]string{"quality", "quality", "relevance"}[i]), Value: new(float64(i)),
				DataType: strp(tracing.DataNumeric), Source: tracing.SourceAPI, Timestamp: &at}})
	}
	ingest(t, db, a, events...)
	bt := t0.Add(time.Hour)
	ingest(t, db, b, tracing.Event{ID: "b-t", Timestamp: bt, Trace: &tracing.TracePatch{ID: "tr-1", Name: strp("b-secret"),
		UserID: strp("u-1"), SessionID: strp("s-1"), Timestamp: &bt}},
		tracing.Event{ID: "b-o", Timestamp: bt, Observation: &tracing.ObservationPatch{ID: "b-gen", TraceID: "tr-1",
			Type: tracing.TypeGeneration, NewType: tracing.TypeGeneration, StartTime: &bt}},
		tracing.Event{ID: "b-s", Timestamp: bt, Score: &tracing.ScorePatch{ID: "b-score", TraceID: "tr-1",
			Name: strp("quality"), Value: new(1.0), Source: tracing.SourceAPI, Timestamp: &bt}})
}

func traceIDs(ts []tracing.Trace) []string {
	out := make([]string, len(ts))
	for i := range ts {
		out[i] = ts[i].ID
	}
	return out
}

func TestTracingPublicTraces(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a, b := newTenantScope(), newTenantScope()
		t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		publicWorld(t, db, a, b, t0)

		for _, c := range []struct {
			name  string
			q     tracing.TraceQuery
			want  []string
			total int
		}{
			{"all, newest first", tracing.TraceQuery{Page: 1, Limit: 50}, []string{"tr-3", "tr-2", "tr-1"}, 3},
			{"second page of two", tracing.TraceQuery{Page: 2, Limit: 2}, []string{"tr-1"}, 3},
			{"past the end", tracing.TraceQuery{Page: 3, Limit: 2}, nil, 3},
			{"by user", tracing.TraceQuery{TraceFilter: tracing.TraceFilter{UserID: "u-1"}, Page: 1, Limit: 10}, []string{"tr-3", "tr-1"}, 2},
			{"by session", tracing.TraceQuery{TraceFilter: tracing.TraceFilter{SessionID: "s-1"}, Page: 1, Limit: 10}, []string{"tr-2", "tr-1"}, 2},
			{"by name", tracing.TraceQuery{TraceFilter: tracing.TraceFilter{Name: "embed"}, Page: 1, Limit: 10}, []string{"tr-3"}, 1},
			{"by tags", tracing.TraceQuery{TraceFilter: tracing.TraceFilter{Tags: []string{"a", "b"}}, Page: 1, Limit: 10}, []string{"tr-1"}, 1},
			{"by time", tracing.TraceQuery{TraceFilter: tracing.TraceFilter{From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute)},
				Page: 1, Limit: 10}, []string{"tr-2"}, 1},
			{"by environment", tracing.TraceQuery{Environments: []string{"dev", "staging"}, Page: 1, Limit: 10}, []string{"tr-3"}, 1},
			{"by release", tracing.TraceQuery{Release: "r1", Page: 1, Limit: 10}, []string{"tr-3", "tr-1"}, 2},
			{"by name ascending", tracing.TraceQuery{OrderBy: "name", Asc: true, Page: 1, Limit: 10}, []string{"tr-1", "tr-2", "tr-3"}, 3},
			{"by user descending", tracing.TraceQuery{OrderBy: "userId", Page: 1, Limit: 10}, []string{"tr-2", "tr-3", "tr-1"}, 3},
		} {
			got, total, err := db.PageTraces(a.ctx, c.q)
			if err != nil || total != c.total || !slices.Equal(traceIDs(got), c.want) {
				t.Errorf("%s: %v of %d, %v; want %v of %d", c.name, traceIDs(got), total, err, c.want, c.total)
			}
		}
		// B sees its own trace under the shared id, never A's.
		got, total, err := db.PageTraces(b.ctx, tracing.TraceQuery{Page: 1, Limit: 50})
		if err != nil || total != 1 || got[0].Name != "b-secret" {
			t.Fatalf("B's traces = %+v (%d), %v", got, total, err)
		}

		// The ids of a trace's observations and scores, cut at the bound
		// asked for; each tenant's own under a shared id.
		refs, err := db.TraceRefs(a.ctx, []string{"tr-1", "tr-2", "nope"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if r := refs["tr-1"]; !reflect.DeepEqual(r.ObservationIDs, []string{"tr-1-gen", "tr-1-span"}) ||
			!reflect.DeepEqual(r.ScoreIDs, []string{"tr-1-score"}) {
			t.Errorf("refs of tr-1 = %+v", r)
		}
		if _, ok := refs["nope"]; ok {
			t.Errorf("refs of a trace that does not exist: %+v", refs["nope"])
		}
		if refs, _ := db.TraceRefs(a.ctx, []string{"tr-1"}, 1); len(refs["tr-1"].ObservationIDs) != 1 {
			t.Errorf("ids past the bound: %+v", refs["tr-1"])
		}
		if refs, _ := db.TraceRefs(b.ctx, []string{"tr-1"}, 10); !reflect.DeepEqual(refs["tr-1"].ObservationIDs, []string{"b-gen"}) {
			t.Errorf("B's refs of the shared id = %+v", refs["tr-1"])
		}
		// A page carries each trace's summary: latency and cost.
		if got, _, _ := db.PageTraces(a.ctx, tracing.TraceQuery{TraceFilter: tracing.TraceFilter{Name: "embed"}, Page: 1, Limit: 1}); len(got) != 1 ||
			got[0].LatencyMS != 1500 || math.Abs(got[0].TotalCost-0.03) > 1e-12 {
			t.Errorf("summary of tr-3 = %+v", got)
		}

		// One trace's observations by start time, cut at max.
		obs, more, err := db.ListTraceObservations(a.ctx, "tr-1", 10)
		if err != nil || more || len(obs) != 2 || obs[0].ID != "tr-1-span" || obs[1].ID != "tr-1-gen" {
			t.Fatalf("observations = %+v, %v, %v", obs, more, err)
		}
		if obs, more, _ := db.ListTraceObservations(a.ctx, "tr-1", 1); !more || len(obs) != 1 || obs[0].ID != "tr-1-span" {
			t.Errorf("cut observations = %+v, %v", obs, more)
		}

		// Deleting a trace takes its observations and scores, and only A's,
		// and marks its generation's day for the rollups to rebuild.
		if _, err := db.RollupTraces(nodus.WithAllTenants(context.Background()), 1000); err != nil ||
			countRows(t, db, "trace_rollup_dirty", a.id) != 0 {
			t.Fatalf("rollups before the delete: %v", err)
		}
		wantCode(t, "A deletes tr-1 twice", func() error {
			if err := db.DeleteTrace(a.ctx, "tr-1"); err != nil {
				return err
			}
			return db.DeleteTrace(a.ctx, "tr-1")
		}(), nodus.ENOTFOUND)
		if _, err := db.FindTrace(a.ctx, "tr-1"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("deleted trace: %v", err)
		}
		if n := countRows(t, db, "trace_rollup_dirty", a.id); n != 1 {
			t.Errorf("%d rollup days marked by the delete, want 1", n)
		}
		if obs, _, _ := db.ListTraceObservations(a.ctx, "tr-1", 10); len(obs) != 0 {
			t.Errorf("observations of a deleted trace: %+v", obs)
		}
		if tr, err := db.FindTrace(b.ctx, "tr-1"); err != nil || tr.Name != "b-secret" {
			t.Errorf("B's trace after A deleted its own: %+v, %v", tr, err)
		}
		if _, total, _ := db.PageScores(b.ctx, tracing.ScoreQuery{Page: 1, Limit: 10}); total != 1 {
			t.Errorf("B's scores after A's delete: %d", total)
		}
	})
}

func TestTracingPublicObservationsAndScores(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a, b := newTenantScope(), newTenantScope()
		t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		publicWorld(t, db, a, b, t0)
		ids := func(os []tracing.Observation) []string {
			out := make([]string, len(os))
			for i := range os {
				out[i] = os[i].ID
			}
			return out
		}
		for _, c := range []struct {
			name  string
			q     tracing.ObservationQuery
			want  []string
			total int
		}{
			{"newest first", tracing.ObservationQuery{Page: 1, Limit: 3}, []string{"tr-3-gen", "tr-3-span", "tr-2-gen"}, 6},
			{"page 2", tracing.ObservationQuery{Page: 2, Limit: 4}, []string{"tr-1-gen", "tr-1-span"}, 6},
			{"generations", tracing.ObservationQuery{Type: tracing.TypeGeneration, Page: 1, Limit: 10}, []string{"tr-3-gen", "tr-2-gen", "tr-1-gen"}, 3},
			{"of a trace", tracing.ObservationQuery{TraceID: "tr-2", Page: 1, Limit: 10}, []string{"tr-2-gen", "tr-2-span"}, 2},
			{"children", tracing.ObservationQuery{ParentObservationID: "tr-1-span", Page: 1, Limit: 10}, []string{"tr-1-gen"}, 1},
			{"of a user", tracing.ObservationQuery{UserID: "u-2", Page: 1, Limit: 10}, []string{"tr-2-gen", "tr-2-span"}, 2},
			{"by name and time", tracing.ObservationQuery{Name: "retrieve", From: t0.Add(time.Minute), Page: 1, Limit: 10},
				[]string{"tr-3-span", "tr-2-span"}, 2},
			{"in dev", tracing.ObservationQuery{Environments: []string{"dev"}, Page: 1, Limit: 10}, nil, 0},
		} {
			got, total, err := db.PageObservations(a.ctx, c.q)
			if err != nil || total != c.total || !slices.Equal(ids(got), c.want) {
				t.Errorf("%s: %v of %d, %v; want %v of %d", c.name, ids(got), total, err, c.want, c.total)
			}
		}
		if got, total, _ := db.PageObservations(b.ctx, tracing.ObservationQuery{UserID: "u-1", Page: 1, Limit: 10}); total != 1 ||
			got[0].ID != "b-gen" {
			t.Errorf("B's observations of its u-1: %v", ids(got))
		}

		scoreIDs := func(ss []tracing.ScoreView) []string {
			out := make([]string, len(ss))
			for i := range ss {
				out[i] = ss[i].ID
			}
			return out
		}
		for _, c := range []struct {
			name  string
			q     tracing.ScoreQuery
			want  []string
			total int
		}{
			{"newest first", tracing.ScoreQuery{Page: 1, Limit: 10}, []string{"tr-3-score", "tr-2-score", "tr-1-score"}, 3},
			{"by name", tracing.ScoreQuery{Name: "quality", Page: 1, Limit: 1}, []string{"tr-2-score"}, 2},
			{"by the trace's user", tracing.ScoreQuery{UserID: "u-1", Page: 1, Limit: 10}, []string{"tr-3-score", "tr-1-score"}, 2},
			{"by trace", tracing.ScoreQuery{TraceID: "tr-2", Page: 1, Limit: 10}, []string{"tr-2-score"}, 1},
			{"by source", tracing.ScoreQuery{Source: tracing.SourceAnnotation, Page: 1, Limit: 10}, nil, 0},
			{"by time", tracing.ScoreQuery{To: t0.Add(time.Minute), DataType: tracing.DataNumeric, Page: 1, Limit: 10}, []string{"tr-1-score"}, 1},
		} {
			got, total, err := db.PageScores(a.ctx, c.q)
			if err != nil || total != c.total || !slices.Equal(scoreIDs(got), c.want) {
				t.Errorf("scores %s: %v of %d, %v; want %v of %d", c.name, scoreIDs(got), total, err, c.want, c.total)
			}
		}
		sv, err := db.FindScore(a.ctx, "tr-1-score")
		if err != nil || sv.TraceUserID != "u-1" || !slices.Equal(sv.TraceTags, []string{"a", "b"}) || sv.TraceEnvironment != "prod" ||
			sv.Value == nil || *sv.Value != 0 || sv.Name != "quality" {
			t.Fatalf("score = %+v, %v", sv, err)
		}
		if _, err := db.FindScore(a.ctx, "b-score"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A finds B's score: %v", err)
		}
		wantCode(t, "A deletes B's score", db.DeleteScore(a.ctx, "b-score"), nodus.ENOTFOUND)
		if err := db.DeleteScore(a.ctx, "tr-1-score"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "a deleted score", db.DeleteScore(a.ctx, "tr-1-score"), nodus.ENOTFOUND)
		if _, err := db.FindScore(b.ctx, "b-score"); err != nil {
			t.Errorf("B's score: %v", err)
		}
	})
}
