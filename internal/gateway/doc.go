// Package gateway is Nodus's LLM gateway: the one door through which every
// model call passes (issue 5).
//
// Files, by concern:
//
//   - openai.go, embed.go, anthropic.go: the wire types of the APIs served
//     and called. Unknown request fields are kept and re-encoded, because
//     SDKs send new fields before we learn about them; the fields that
//     would choose the upstream (api_base, base_url, api_key, extra_headers,
//     custom_llm_provider) are refused (SECURITY.md check 22).
//   - provider.go and openaicompat.go, anthropic_provider.go,
//     anthropic_stream.go, providers.go: the providers, and the error
//     classes the router acts on. extractive.go: the offline model.
//   - service.go, call.go, auth.go, manage.go: the Service — admission
//     (model list, limits, budgets), routing, settlement, virtual keys and
//     the management methods. handler.go: the /v1 HTTP handlers.
//   - router.go, limits.go, ledger.go: routing with retries, fallbacks and
//     cooldowns; exact rate limits; the reserve-then-settle budget ledger.
//   - spend.go: the bounded, batched spend-log writer. price.go: prices
//     and Cost in micro-dollars. tokens.go: the embedded BPE tokenizer.
//   - model.go: the stored records and the Store interface
//     (internal/store/gateway*.go implements it).
//
// Invariants: money is int64 micro-dollars, never a float; nothing here
// dials out except through the tenant's egress client; a provider key is
// resolved from a vault handle per call and never logged or returned.
package gateway
