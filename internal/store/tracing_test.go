package store_test

import (
	"encoding/json"
	"reflect"
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
