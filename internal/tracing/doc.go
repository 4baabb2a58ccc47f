// Package tracing is Nodus's LLM tracing, what Langfuse does: traces, the
// tree of observations (spans, generations, events, …) under each, and
// scores, ingested through Langfuse's batch API so the Langfuse SDKs work
// unchanged, or as OpenTelemetry spans (OTLP, otlp.go) mapped to the same
// patches by Langfuse's attribute rules, and read back through Nodus's
// own query API. It owns the records, the ingestion rules and the
// Langfuse key pairs;
// internal/store/tracing.go keeps them in the tracing database (set
// "tracing", migration 0001).
//
// Ingestion follows Langfuse's semantics:
//   - an event is a patch: the same body.id updates the same entity, and
//     only the fields the event sends (not absent, not null) replace the
//     stored ones; everything else is kept;
//   - an observation or score may arrive before its trace: the trace is
//     created with only its id and a timestamp, and a later trace-create
//     fills it in;
//   - the envelope id deduplicates: an envelope the tenant has already
//     sent is a success that changes nothing;
//   - a batch is applied in one transaction; a malformed event is refused
//     on its own (207 with per-event errors), never the whole batch.
//
// Invariants:
//   - every row belongs to one tenant, the tenant of the key pair that
//     sent it; a tenant or project named in a body is ignored. Ids are the
//     client's, unique per tenant only; another tenant's are ENOTFOUND;
//   - a key pair's secret is shown once, at creation; only its SHA-256 is
//     stored;
//   - every input is bounded before it is stored (Limits): the batch's
//     size and length, each string, each object's keys and the nesting
//     depth.
//
// The module imports no other module.
package tracing
