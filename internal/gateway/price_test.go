package gateway

import (
	"math"
	"testing"
)

func TestCost(t *testing.T) {
	gpt4o := Price{Input: 2_500_000, CachedInput: 1_250_000, Output: 10_000_000}
	tests := []struct {
		name string
		p    Price
		u    Usage
		want int64
	}{
		// 1000 × 2.5 + 500 × 10 = 2500 + 5000 µ$
		{"plain", gpt4o, Usage{PromptTokens: 1000, CompletionTokens: 500}, 7500},
		// 600 × 2.5 + 400 × 1.25 + 500 × 10 = 1500 + 500 + 5000
		{"cached", gpt4o, Usage{PromptTokens: 1000, CompletionTokens: 500, PromptTokensDetails: &PromptTokensDetails{CachedTokens: 400}}, 7000},
		// cached beyond the prompt is capped: 1000 × 1.25 = 1250
		{"cached capped", gpt4o, Usage{PromptTokens: 1000, PromptTokensDetails: &PromptTokensDetails{CachedTokens: 5000}}, 1250},
		// 3 × 0.15 = 0.45 µ$ rounds down to 0; 4 × 0.15 = 0.6 rounds up to 1
		{"round down", Price{Input: 150_000}, Usage{PromptTokens: 3}, 0},
		{"round up", Price{Input: 150_000}, Usage{PromptTokens: 4}, 1},
		// 5 × 0.10 = 0.5 µ$ exactly: half rounds up
		{"half up", Price{Input: 100_000}, Usage{PromptTokens: 5}, 1},
		// 12 × 0.15 + 3 × 0.60 = 1.8 + 1.8 = 3.6 → 4 (rounded once, not per term)
		{"rounded once", Price{Input: 150_000, Output: 600_000}, Usage{PromptTokens: 12, CompletionTokens: 3}, 4},
		{"negative tokens", gpt4o, Usage{PromptTokens: -1000, CompletionTokens: -5, PromptTokensDetails: &PromptTokensDetails{CachedTokens: -3}}, 0},
		{"negative price", Price{Input: -1_000_000, Output: 1_000_000}, Usage{PromptTokens: 10, CompletionTokens: 10}, 10},
		{"free", Price{}, Usage{PromptTokens: 1 << 40, CompletionTokens: 1 << 40}, 0},
		{"saturates", Price{Input: math.MaxInt64, Output: math.MaxInt64}, Usage{PromptTokens: math.MaxInt64, CompletionTokens: math.MaxInt64}, math.MaxInt64},
		// (2^63-1) × 1_000_000 / 1_000_000 fits exactly
		{"largest exact", Price{Input: 1_000_000}, Usage{PromptTokens: math.MaxInt64}, math.MaxInt64},
		// 1e12 tokens × $75/M = $75,000,000 = 7.5e13 µ$
		{"large", Price{Output: 75_000_000}, Usage{CompletionTokens: 1_000_000_000_000}, 75_000_000_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Cost(tt.p, tt.u); got != tt.want {
				t.Errorf("Cost = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCatalogue(t *testing.T) {
	c := Catalogue()
	for _, m := range []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini", "text-embedding-3-small",
		"text-embedding-3-large", "claude-sonnet-4", "claude-3-5-haiku", "mistral-small", "llama-3.1-8b"} {
		p, ok := c[m]
		if !ok || p.Input <= 0 || p.CachedInput <= 0 || p.CachedInput > p.Input || p.Output < 0 {
			t.Errorf("%s: %+v, %v", m, p, ok)
		}
	}
	if p, ok := c[ExtractiveModel]; !ok || p != (Price{}) {
		t.Errorf("extractive: %+v, %v", p, ok)
	}
	c["gpt-4o"] = Price{}
	if Catalogue()["gpt-4o"].Input != 2_500_000 {
		t.Error("Catalogue returned a shared map")
	}
}

func TestLookupPrice(t *testing.T) {
	cat := Catalogue()
	tenant := map[string]Price{"gpt-4o": {Input: 1, CachedInput: 1, Output: 1}, "my-model": {Input: 7}}
	tests := []struct {
		model     string
		overrides map[string]Price
		wantKey   string
		wantIn    int64
		ok        bool
	}{
		{"gpt-4o", nil, "gpt-4o", 2_500_000, true},
		{"gpt-4o-mini", nil, "gpt-4o-mini", 150_000, true},
		{"gpt-4o-2024-08-06", nil, "gpt-4o", 2_500_000, true},
		{"gpt-4o-mini-2024-07-18", nil, "gpt-4o-mini", 150_000, true},
		{"gpt-4.1-2025-04-14", nil, "gpt-4.1", 2_000_000, true},
		{"claude-sonnet-4-20250514", nil, "claude-sonnet-4", 3_000_000, true},
		{"claude-3-5-haiku-latest", nil, "claude-3-5-haiku", 800_000, true},
		{"mistral-small-2503", nil, "mistral-small", 100_000, true},
		{"openai/GPT-4o", nil, "gpt-4o", 2_500_000, true},
		{"groq/llama-3.1-8b-instant", nil, "llama-3.1-8b-instant", 50_000, true},
		{"nodus/extractive", nil, "nodus/extractive", 0, true},
		{"gpt-4o-audio", nil, "", 0, false}, // no general prefix rule
		{"unknown", nil, "", 0, false},
		// overrides first, under every name
		{"gpt-4o", tenant, "gpt-4o", 1, true},
		{"gpt-4o-2024-08-06", tenant, "gpt-4o", 1, true},
		{"gpt-4o-mini", tenant, "gpt-4o-mini", 150_000, true},
		{"my-model", tenant, "my-model", 7, true},
	}
	for _, tt := range tests {
		p, key, ok := LookupPrice(cat, tt.overrides, tt.model)
		if ok != tt.ok || key != tt.wantKey || p.Input != tt.wantIn {
			t.Errorf("LookupPrice(%q) = %+v, %q, %v; want input %d, key %q, %v", tt.model, p, key, ok, tt.wantIn, tt.wantKey, tt.ok)
		}
	}
}
