package tracing_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

func TestInferCost(t *testing.T) {
	// $2.50, $1.25 and $10 per million tokens.
	p := tracing.ModelPrice{Input: 2.5e-6, CachedInput: 1.25e-6, Output: 10e-6}
	for _, c := range []struct {
		name  string
		usage map[string]int64
		want  map[string]float64
	}{
		{"langfuse keys", map[string]int64{"input": 1000, "output": 100, "total": 1100},
			map[string]float64{"input": 0.0025, "output": 0.001, "total": 0.0035}},
		{"cached tokens are their own bucket", map[string]int64{"input": 600, "input_cached_tokens": 400, "output": 0},
			map[string]float64{"input": 0.0015, "input_cached_tokens": 0.0005, "output": 0, "total": 0.002}},
		{"openai's prompt count includes the cached part", map[string]int64{"prompt_tokens": 1000, "cached_tokens": 400,
			"completion_tokens": 100}, map[string]float64{"input": 0.0015, "input_cached_tokens": 0.0005, "output": 0.001,
			"total": 0.003}},
		{"responses api", map[string]int64{"input_tokens": 10, "output_tokens": 1},
			map[string]float64{"input": 0.000025, "output": 0.00001, "total": 0.000035}},
		{"nothing to price", map[string]int64{"audio_seconds": 12}, nil},
	} {
		got := tracing.InferCost(c.usage, p)
		if (got == nil) != (c.want == nil) || len(got) != len(c.want) {
			t.Fatalf("%s: %v, want %v", c.name, got, c.want)
		}
		for k, v := range c.want {
			if math.Abs(got[k]-v) > 1e-12 {
				t.Fatalf("%s: %s = %v, want %v (%v)", c.name, k, got[k], v, got)
			}
		}
	}
}

// TestIngestInfersCost: on both databases, a generation whose model came
// in one batch and its usage in a later one is priced at the tenant's
// price when the usage is merged; cost the client sent is kept; a model
// without a price stays without cost.
func TestIngestInfersCost(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		prices := func(_ context.Context, tenantID, model string) (tracing.ModelPrice, bool) {
			if model != "gpt-4o" {
				return tracing.ModelPrice{}, false
			}
			return tracing.ModelPrice{Input: 2.5e-6, CachedInput: 1.25e-6, Output: 10e-6}, true
		}
		svc, err := tracing.NewService(tracing.Config{Store: db, Prices: prices})
		if err != nil {
			t.Fatal(err)
		}
		tenant := nodus.NewID()
		ctx := context.Background()
		send := func(events ...string) {
			t.Helper()
			batch := make([]json.RawMessage, len(events))
			for i, e := range events {
				batch[i] = json.RawMessage(e)
			}
			res, err := svc.Ingest(ctx, tenant, batch)
			if err != nil || len(res.Errors) > 0 {
				t.Fatalf("ingest: %v %+v", err, res.Errors)
			}
		}
		send(`{"id":"e1","type":"generation-create","body":{"id":"g1","traceId":"t1","model":"gpt-4o"}}`,
			`{"id":"e2","type":"generation-create","body":{"id":"g2","traceId":"t1","model":"gpt-4o",
				"usageDetails":{"input":1000},"costDetails":{"total":0.5}}}`,
			`{"id":"e3","type":"generation-create","body":{"id":"g3","traceId":"t1","model":"in-house",
				"usageDetails":{"input":1000}}}`)
		send(`{"id":"e4","type":"generation-update","body":{"id":"g1","traceId":"t1",
			"usageDetails":{"prompt_tokens":1000,"cached_tokens":400,"completion_tokens":100}}}`)
		detail, err := svc.GetTrace(ctx, tenant, "t1")
		if err != nil {
			t.Fatal(err)
		}
		cost := map[string]map[string]float64{}
		for _, n := range detail.Observations {
			cost[n.ID] = n.CostDetails
		}
		if g := cost["g1"]; math.Abs(g["total"]-0.003) > 1e-12 || math.Abs(g["input_cached_tokens"]-0.0005) > 1e-12 {
			t.Fatalf("inferred cost %v", g)
		}
		if g := cost["g2"]; len(g) != 1 || g["total"] != 0.5 {
			t.Fatalf("sent cost replaced: %v", g)
		}
		if g := cost["g3"]; g != nil {
			t.Fatalf("a model without a price was priced: %v", g)
		}
		if math.Abs(detail.Trace.TotalCost-0.503) > 1e-9 {
			t.Fatalf("trace total cost %v", detail.Trace.TotalCost)
		}
	})
}
