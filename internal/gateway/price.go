package gateway

import (
	"context"
	"math"
	"math/bits"
	"strings"
)

// Price is what a model costs, in micro-dollars per million tokens
// ($2.50 per million tokens is 2_500_000). Integers only: money never
// passes through a float.
type Price struct {
	Input       int64 // uncached prompt tokens
	CachedInput int64 // prompt tokens read from the provider's cache; set equal to Input when there is no discount
	Output      int64 // completion tokens, reasoning tokens included
}

// CatalogueDate is when the built-in prices were last compared with the
// providers' public price lists. Prices change: check them before relying on
// them, and override them per tenant where a contract differs.
const CatalogueDate = "2025-06"

// Catalogue returns the built-in prices, a fresh map on every call so callers
// may not change a shared one. All entries are public list prices for standard
// (not batch, not priority) processing as of 2025, per 1M tokens:
//
//   - OpenAI, https://openai.com/api/pricing: gpt-4o $2.50 in / $1.25 cached /
//     $10 out; gpt-4o-mini $0.15 / $0.075 / $0.60; gpt-4.1 $2 / $0.50 / $8;
//     gpt-4.1-mini $0.40 / $0.10 / $1.60; gpt-4.1-nano $0.10 / $0.025 / $0.40;
//     o3-mini and o4-mini $1.10 in / $4.40 out, cached $0.55 and $0.275;
//     text-embedding-3-small $0.02, text-embedding-3-large $0.13,
//     text-embedding-ada-002 $0.10 (input only).
//   - Anthropic, https://www.anthropic.com/pricing: claude-sonnet-4 and
//     claude-3-7-sonnet $3 in / $15 out, cache reads $0.30; claude-3-5-haiku
//     $0.80 / $4, cache reads $0.08; claude-opus-4 $15 / $75, cache reads $1.50.
//     Cache writes (1.25 × input) are not modelled: Usage does not report them.
//   - Mistral, https://mistral.ai/pricing: mistral-small $0.10 / $0.30,
//     mistral-large $2 / $6; no cache discount.
//   - llama-3.1-8b: no single list price, it is open weights; Groq's list price
//     for llama-3.1-8b-instant, $0.05 in / $0.08 out, no cache discount.
//   - nodus/extractive runs locally and is free.
func Catalogue() map[string]Price {
	return map[string]Price{
		"gpt-4o":                 {Input: 2_500_000, CachedInput: 1_250_000, Output: 10_000_000},
		"gpt-4o-mini":            {Input: 150_000, CachedInput: 75_000, Output: 600_000},
		"gpt-4.1":                {Input: 2_000_000, CachedInput: 500_000, Output: 8_000_000},
		"gpt-4.1-mini":           {Input: 400_000, CachedInput: 100_000, Output: 1_600_000},
		"gpt-4.1-nano":           {Input: 100_000, CachedInput: 25_000, Output: 400_000},
		"o3-mini":                {Input: 1_100_000, CachedInput: 550_000, Output: 4_400_000},
		"o4-mini":                {Input: 1_100_000, CachedInput: 275_000, Output: 4_400_000},
		"text-embedding-3-small": {Input: 20_000, CachedInput: 20_000},
		"text-embedding-3-large": {Input: 130_000, CachedInput: 130_000},
		"text-embedding-ada-002": {Input: 100_000, CachedInput: 100_000},
		"claude-sonnet-4":        {Input: 3_000_000, CachedInput: 300_000, Output: 15_000_000},
		"claude-3-7-sonnet":      {Input: 3_000_000, CachedInput: 300_000, Output: 15_000_000},
		"claude-3-5-haiku":       {Input: 800_000, CachedInput: 80_000, Output: 4_000_000},
		"claude-opus-4":          {Input: 15_000_000, CachedInput: 1_500_000, Output: 75_000_000},
		"mistral-small":          {Input: 100_000, CachedInput: 100_000, Output: 300_000},
		"mistral-large":          {Input: 2_000_000, CachedInput: 2_000_000, Output: 6_000_000},
		"llama-3.1-8b":           {Input: 50_000, CachedInput: 50_000, Output: 80_000},
		"llama-3.1-8b-instant":   {Input: 50_000, CachedInput: 50_000, Output: 80_000},
		ExtractiveModel:          {},
	}
}

// LookupPrice finds the price of model: first in the tenant's overrides, then
// in the catalogue, each tried with these names in order, stopping at the
// first hit:
//
//  1. the model name as given;
//  2. lower-cased, and with any provider prefix cut at the last "/"
//     ("openai/gpt-4o" → "gpt-4o", "groq/llama-3.1-8b-instant");
//  3. that name without a version suffix: "-latest", a date "-YYYY-MM-DD",
//     or a final "-" segment of exactly 4 or 8 digits ("gpt-4o-2024-08-06" →
//     "gpt-4o", "claude-sonnet-4-20250514" → "claude-sonnet-4",
//     "mistral-small-2503" → "mistral-small").
//
// Overrides are searched with every name before the catalogue, so a tenant's
// price for "gpt-4o" also covers "gpt-4o-2024-08-06" even if a later catalogue
// lists the dated name. There is deliberately no general prefix rule:
// "gpt-4o-mini" must never be priced as "gpt-4o". It returns the key that
// matched, for the spend log, and false when nothing matched.
func LookupPrice(catalogue, overrides map[string]Price, model string) (Price, string, bool) {
	names := priceNames(model)
	for _, table := range []map[string]Price{overrides, catalogue} {
		for _, n := range names {
			if p, ok := table[n]; ok {
				return p, n, true
			}
		}
	}
	return Price{}, "", false
}

func priceNames(model string) []string {
	names := []string{model}
	base := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	if base != "" && base != model {
		names = append(names, base)
	}
	if v := stripVersion(base); v != "" && v != base {
		names = append(names, v)
	}
	return names
}

// stripVersion cuts one version suffix from name, or returns it unchanged.
func stripVersion(name string) string {
	if s, ok := strings.CutSuffix(name, "-latest"); ok {
		return s
	}
	// -YYYY-MM-DD
	if n := len(name); n > 11 && name[n-11] == '-' && name[n-6] == '-' && name[n-3] == '-' &&
		allDigits(name[n-10:n-6]) && allDigits(name[n-5:n-3]) && allDigits(name[n-2:]) {
		return name[:n-11]
	}
	i := strings.LastIndexByte(name, '-')
	if i > 0 {
		if tail := name[i+1:]; (len(tail) == 4 || len(tail) == 8) && allDigits(tail) {
			return name[:i]
		}
	}
	return name
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Cost is what usage costs at price p, in micro-dollars.
//
// Cached prompt tokens (at most all the prompt tokens) are billed at
// CachedInput, the other prompt tokens at Input, completion tokens at Output.
// The exact sum, tokens × micro-dollars per million tokens / 1,000,000, is
// rounded half up once per request, so a request costing 0.5 µ$ or more is
// billed 1 µ$. Negative token counts and prices count as zero, so the result
// is never negative; the sum is computed in 128 bits and a result beyond
// int64 saturates at math.MaxInt64.
func Cost(p Price, u Usage) int64 {
	prompt := max(u.PromptTokens, 0)
	cached := min(max(u.CachedTokens(), 0), prompt)
	terms := [3][2]int64{
		{prompt - cached, p.Input},
		{cached, p.CachedInput},
		{max(u.CompletionTokens, 0), p.Output},
	}
	var hi, lo uint64
	for _, t := range terms {
		h, l := bits.Mul64(uint64(t[0]), uint64(max(t[1], 0)))
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi, _ = bits.Add64(hi, h, carry) // cannot overflow: 3 × (2^63)² < 2^128
	}
	const perMillion = 1_000_000
	var carry uint64
	lo, carry = bits.Add64(lo, perMillion/2, 0)
	hi += carry
	if hi >= perMillion { // the quotient would not fit in 64 bits
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, perMillion)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// ModelPrice is a tenant's price for a model name, as tracing prices the
// generations SDKs report: the tenant's overrides and the catalogue by the
// name, then, for one of the tenant's public model names, the price of its
// first deployment. False when nothing prices it.
func (s *Service) ModelPrice(ctx context.Context, tenantID, model string) (Price, bool, error) {
	cfg, err := s.config(ctx, tenantID)
	if err != nil {
		return Price{}, false, err
	}
	if p, _, ok := LookupPrice(s.catalogue, cfg.prices, model); ok {
		return p, true, nil
	}
	if g := cfg.group(model); len(g) > 0 {
		p, ok := s.price(cfg, &g[0])
		return p, ok, nil
	}
	return Price{}, false, nil
}
