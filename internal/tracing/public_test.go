package tracing_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

func TestParseTraceOrder(t *testing.T) {
	for _, c := range []struct {
		in    string
		field string
		asc   bool
		ok    bool
	}{
		{"", "timestamp", false, true},
		{"timestamp.asc", "timestamp", true, true},
		{"userId.desc", "userId", false, true},
		{"timestamp", "", false, false},
		{"timestamp.up", "", false, false},
		{"totalCost.desc", "", false, false},
		{"user_id.asc", "", false, false},
	} {
		field, asc, err := tracing.ParseTraceOrder(c.in)
		if (err == nil) != c.ok || field != c.field || asc != c.asc {
			t.Errorf("ParseTraceOrder(%q) = %q, %v, %v", c.in, field, asc, err)
		}
		if err != nil && nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("ParseTraceOrder(%q): code %s", c.in, nodus.ErrorCode(err))
		}
	}
}

// TestObservationFigures: latency and time to first token in seconds,
// the legacy usage and the calculated costs as Langfuse derives them.
func TestObservationFigures(t *testing.T) {
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	end, first := start.Add(2500*time.Millisecond), start.Add(400*time.Millisecond)
	o := tracing.Observation{StartTime: start}
	if o.Latency() != nil || o.TimeToFirstToken() != nil {
		t.Error("an open observation has a latency or a time to first token")
	}
	if _, ok := o.LegacyUsage(); ok {
		t.Error("usage without usage details")
	}
	if _, ok := o.CalculatedCosts(); ok {
		t.Error("costs without cost details")
	}
	o.EndTime, o.CompletionStartTime = &end, &first
	if *o.Latency() != 2.5 || *o.TimeToFirstToken() != 0.4 {
		t.Errorf("latency %v, ttft %v", *o.Latency(), *o.TimeToFirstToken())
	}
	o.UsageDetails = map[string]int64{"input": 10, "output": 4, "cached_tokens": 3}
	if u, _ := o.LegacyUsage(); u != (tracing.Usage{Input: 10, Output: 4, Total: 14, Unit: "TOKENS"}) {
		t.Errorf("usage without a total = %+v", u)
	}
	o.UsageDetails["total"] = 17
	if u, _ := o.LegacyUsage(); u.Total != 17 {
		t.Errorf("usage with a total = %+v", u)
	}
	o.CostDetails = map[string]float64{"input": 1, "input_cached_tokens": 0.5, "output": 2, "audio": 0.25}
	if c, _ := o.CalculatedCosts(); c != (tracing.Costs{Input: 1.5, Output: 2, Total: 3.75}) {
		t.Errorf("costs without a total = %+v", c)
	}
	o.CostDetails["total"] = 9
	if c, _ := o.CalculatedCosts(); c != (tracing.Costs{Input: 1.5, Output: 2, Total: 9}) {
		t.Errorf("costs with a total = %+v", c)
	}
}

// TestPublicService: pages are bounded and defaulted, filters checked,
// and a score through the API needs the tenant's own trace.
func TestPublicService(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		svc, err := tracing.NewService(tracing.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		a, b := nodus.NewID(), nodus.NewID()
		at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		for _, tenant := range []string{a, b} {
			batch := []json.RawMessage{
				json.RawMessage(`{"id":"e1","type":"trace-create","body":{"id":"tr-` + tenant + `","sessionId":"s-1","timestamp":"2026-11-01T10:00:00Z"}}`),
				json.RawMessage(`{"id":"e2","type":"span-create","body":{"id":"sp-` + tenant + `","traceId":"tr-` + tenant + `","startTime":"2026-11-01T10:00:00Z"}}`),
			}
			if res, err := svc.Ingest(ctx, tenant, batch); err != nil || len(res.Errors) != 0 {
				t.Fatalf("ingest: %+v, %v", res, err)
			}
		}

		// Defaults: page 1 of 50; the bounds refused.
		traces, total, err := svc.PublicTraces(ctx, a, tracing.TraceQuery{})
		if err != nil || total != 1 || len(traces) != 1 || traces[0].ID != "tr-"+a || traces[0].LatencyMS != 0 ||
			len(traces[0].ObservationIDs) != 1 {
			t.Fatalf("traces = %+v (%d), %v", traces, total, err)
		}
		for name, q := range map[string]tracing.TraceQuery{
			"limit":       {Limit: tracing.MaxListLimit + 1},
			"page":        {Page: -1},
			"deep page":   {Page: tracing.MaxPage + 1},
			"order":       {OrderBy: "cost"},
			"tags":        {TraceFilter: tracing.TraceFilter{Tags: make([]string, tracing.MaxTags+1)}},
			"environment": {Environments: make([]string, tracing.MaxTags+1)},
			"model":       {TraceFilter: tracing.TraceFilter{Model: "gpt-4o"}},
		} {
			if _, _, err := svc.PublicTraces(ctx, a, q); nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("%s out of bounds: %v", name, err)
			}
		}
		if _, _, err := svc.PublicObservations(ctx, a, tracing.ObservationQuery{Type: "SPANS"}); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("unknown type: %v", err)
		}
		if _, _, err := svc.PublicScores(ctx, a, tracing.ScoreQuery{Source: "HUMAN"}); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("unknown source: %v", err)
		}
		if _, _, err := svc.PublicSessions(ctx, a, time.Time{}, time.Time{}, 1, 0); err != nil {
			t.Errorf("sessions with the default limit: %v", err)
		}
		if _, err := svc.GetPublicTrace(ctx, a, string(make([]byte, tracing.MaxIDBytes+1))); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("an id too long to exist: %v", err)
		}

		// Scores through the API.
		one := json.RawMessage(`1`)
		for name, in := range map[string]tracing.APIScoreInput{
			"no trace":  {ScoreInput: tracing.ScoreInput{Name: "x", Value: one}},
			"no name":   {ScoreInput: tracing.ScoreInput{TraceID: "tr-" + a, Value: one}},
			"no value":  {ScoreInput: tracing.ScoreInput{TraceID: "tr-" + a, Name: "x"}},
			"bad id":    {ID: "a\x00b", ScoreInput: tracing.ScoreInput{TraceID: "tr-" + a, Name: "x", Value: one}},
			"bad value": {ScoreInput: tracing.ScoreInput{TraceID: "tr-" + a, Name: "x", Value: json.RawMessage(`"yes"`), DataType: tracing.DataNumeric}},
		} {
			if _, err := svc.CreateAPIScore(ctx, a, in); nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("score with %s: %v", name, err)
			}
		}
		for name, in := range map[string]tracing.ScoreInput{
			"B's trace":                   {TraceID: "tr-" + b, Name: "x", Value: one},
			"B's observation":             {TraceID: "tr-" + a, ObservationID: "sp-" + b, Name: "x", Value: one},
			"a trace that does not exist": {TraceID: "nope", Name: "x", Value: one},
		} {
			if _, err := svc.CreateAPIScore(ctx, a, tracing.APIScoreInput{ScoreInput: in}); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("score of %s: %v", name, err)
			}
		}
		sc, err := svc.CreateAPIScore(ctx, a, tracing.APIScoreInput{ScoreInput: tracing.ScoreInput{TraceID: "tr-" + a,
			ObservationID: "sp-" + a, Name: " tone ", Value: json.RawMessage(`"calm"`)}})
		if err != nil || sc.Source != tracing.SourceAPI || sc.DataType != tracing.DataCategorical || sc.Name != "tone" ||
			sc.StringValue != "calm" || !nodus.ValidID(sc.ID) {
			t.Fatalf("score = %+v, %v", sc, err)
		}
		if got, err := svc.GetScore(ctx, a, sc.ID); err != nil || got.StringValue != "calm" {
			t.Errorf("stored score = %+v, %v", got, err)
		}
		if _, err := svc.GetScore(ctx, b, sc.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B reads A's score: %v", err)
		}

		// The session of each tenant is its own.
		sess, err := svc.GetSession(ctx, a, "s-1")
		if err != nil || sess.TraceCount != 1 || !sess.FirstSeen.Equal(at) {
			t.Errorf("session = %+v, %v", sess, err)
		}
		traces2, total, err := svc.SessionTraces(ctx, a, "s-1")
		if err != nil || total != 1 || traces2[0].ID != "tr-"+a {
			t.Errorf("session traces = %+v, %v", traces2, err)
		}
		if err := svc.DeleteTrace(ctx, b, "tr-"+a); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B deletes A's trace: %v", err)
		}
	})
}
