// Package gateway is Nodus's LLM gateway: the one door through which every
// model call passes (issue 5).
//
// This first slice is the foundation only, with no network and no state:
//
//   - openai.go: the OpenAI chat-completions wire types (request, response,
//     stream chunk, error), with the API's unions (content string or parts,
//     stop string or list, tool_choice string or object) decoded and encoded
//     faithfully. Unknown request fields are kept and re-encoded, because SDKs
//     send new fields before we learn about them; the few fields that would
//     choose the upstream (api_base, base_url, api_key, extra_headers,
//     custom_llm_provider) are reported by ChatRequest.UpstreamOverrides so the
//     handler can refuse them (SECURITY.md check 22).
//   - extractive.go: the built-in "nodus/extractive" model, which answers
//     offline by quoting the context passages it is given, so a fresh install
//     works without any provider and says that its answer is extractive.
//   - price.go: the built-in price catalogue, per-tenant overrides resolved by a
//     pure lookup, and Cost in integer micro-dollars.
//
// Invariants: money is int64 micro-dollars, never a float; nothing here keeps
// package-level mutable state; nothing here dials out.
//
// The rest of issue 5 will add, in this package or beside it: the HTTP
// handlers (/v1/chat/completions, /v1/embeddings, /v1/models,
// /v1/audio/transcriptions, Anthropic's /v1/messages) and the SSE writer;
// providers (OpenAI-compatible, Anthropic) whose keys are vault handles and
// whose calls go through egress; model routing with retries, fallbacks and
// cooldowns; virtual keys, budgets with reserve-then-settle, rate limits; the
// batched spend log with daily rollups and its own database; metrics; and an
// in-process API for the chat module.
package gateway
