// Package notify owns notifications: the in-app notifications of a
// tenant's users and their unread count, each user's email opt-in per kind,
// and the tenant's webhooks with the log of their deliveries.
//
// Other modules report what happened through the Notifier port (an Event
// and who should hear of it); they never import this package's store or
// each other, and cmd/nodus wires the adapters (notifywire).
//
// Invariants:
//   - Publishing an event writes the event, its in-app notifications and
//     the jobs that email and post it in one transaction (Store.PublishEvent):
//     an event is either delivered everywhere it should be or nowhere.
//   - An event with a DedupeKey is published at most once per tenant, so
//     producers may report a crossing they are unsure they reported.
//   - A user sees and marks only their own notifications; everything is
//     scoped by tenant in the store, and another tenant's row is not found.
//   - Email goes only to users who opted in to the event's kind, with the
//     tenant's SMTP settings, over egress. Webhooks are posted through the
//     tenant's egress HTTP client, signed (see Sign), retried with backoff
//     by the job queue, and each attempt is logged (the newest
//     MaxDeliveriesKept per webhook are kept).
//   - A webhook's signing secret is shown once, at creation; at rest it is
//     sealed by the keyring, bound to its tenant and webhook.
package notify
