package tracing_test

import (
	"math"
	"testing"

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
