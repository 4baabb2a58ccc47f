// Package usage owns the usage metrics: per day, tenant, chatbot, user and
// model, the gateway calls (requests, errors, tokens in and out, cost),
// chat turns, conversations started and documents ingested — the seed's
// "metrics" tables, read by the dashboard and GET /api/v1/metrics/usage.
//
// Invariants:
//   - A day's rows are recomputed from the product's own records and
//     replace the day whole (Store.ReplaceUsageDay), in one transaction:
//     rebuilding a day any number of times gives the same rows, and a
//     reader sees the day before or after a rebuild, never half of it.
//   - The gateway's figures are exact: the day's totals come from the
//     gateway's daily rollups (written with its spend log, kept past the
//     log's retention), and the calls a chat made are moved from chatbot
//     ” to their chatbot by request id, with the spend log's own figures,
//     so the sum over chatbots is the gateway's total. A call whose log
//     row is gone (retention) stays on chatbot ”.
//   - Chat turns and conversations are counted on the day they were
//     written, documents on the day their ingestion completed.
//   - Every read is scoped to one tenant; the rollup alone works across
//     tenants.
package usage
