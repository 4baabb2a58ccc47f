package tracing

import "context"

// Cost inference, Langfuse's rule: a generation that arrives with usage
// but no cost is priced at ingestion from the model's price (a later
// price change does not re-price history), and cost sent by the client
// always wins. Prices come from the gateway's catalogue and the tenant's
// overrides through Config.Prices, so an SDK's calls and the gateway's are
// priced alike.

// ModelPrice is a model's price in USD per token.
type ModelPrice struct {
	Input       float64 // uncached prompt tokens
	CachedInput float64 // prompt tokens read from a cache
	Output      float64
}

// PriceFunc returns a tenant's price for a model name, false when the
// model has none.
type PriceFunc func(ctx context.Context, tenantID, model string) (ModelPrice, bool)

// Usage keys, as the SDKs send them: Langfuse's own ("input" without the
// cached part), and OpenAI's chat and responses shapes, whose prompt count
// includes the cached tokens.
var (
	uncachedInputKeys = []string{"input"}
	promptKeys        = []string{"prompt_tokens", "input_tokens"}
	cachedKeys        = []string{"input_cached_tokens", "cache_read_input_tokens", "cached_tokens"}
	outputKeys        = []string{"output", "completion_tokens", "output_tokens"}
)

func firstKey(usage map[string]int64, keys []string) (int64, bool) {
	for _, k := range keys {
		if v, ok := usage[k]; ok {
			return max(v, 0), true
		}
	}
	return 0, false
}

// InferCost prices usage: cost per usage type and the total, or nil when
// the usage names no tokens it can price.
func InferCost(usage map[string]int64, p ModelPrice) map[string]float64 {
	cached, hasCached := firstKey(usage, cachedKeys)
	input, hasInput := firstKey(usage, uncachedInputKeys)
	if !hasInput {
		if prompt, ok := firstKey(usage, promptKeys); ok {
			input, hasInput = max(prompt-cached, 0), true
		}
	}
	output, hasOutput := firstKey(usage, outputKeys)
	if !hasInput && !hasCached && !hasOutput {
		return nil
	}
	cost := map[string]float64{}
	if hasInput {
		cost["input"] = float64(input) * p.Input
	}
	if hasCached {
		cost["input_cached_tokens"] = float64(cached) * p.CachedInput
	}
	if hasOutput {
		cost["output"] = float64(output) * p.Output
	}
	total := 0.0
	for _, v := range cost {
		total += v
	}
	cost["total"] = total
	return cost
}

// costInference returns the hook Ingest sets on a tenant's observation
// patches: after the merge, a generation or embedding with usage, a model
// and no cost is priced.
func (s *Service) costInference(ctx context.Context, tenantID string) func(*Observation) {
	if s.prices == nil {
		return nil
	}
	return func(o *Observation) {
		if o.Model == "" || len(o.UsageDetails) == 0 || len(o.CostDetails) > 0 ||
			(o.Type != TypeGeneration && o.Type != TypeEmbedding) {
			return
		}
		if p, ok := s.prices(ctx, tenantID, o.Model); ok {
			o.CostDetails = InferCost(o.UsageDetails, p)
		}
	}
}

// priceEvents sets cost inference on a tenant's observation patches.
func (s *Service) priceEvents(ctx context.Context, tenantID string, events []Event) {
	infer := s.costInference(ctx, tenantID)
	if infer == nil {
		return
	}
	for i := range events {
		if p := events[i].Observation; p != nil {
			p.inferCost = infer
		}
	}
}
