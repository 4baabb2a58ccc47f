// Package jobs runs Nodus's background work on River, in the main database.
//
// A job is inserted in the same transaction as the write that causes it
// (Queue.InsertTx with the caller's store.Tx), so it exists exactly when
// that write commits. Jobs run at least once and retry with backoff, so every
// worker must be idempotent. On SQLite, River shares the store's one write
// connection and polls for work (SQLite has no LISTEN/NOTIFY); on PostgreSQL
// it uses the pgx pool and is woken by notifications.
//
// Never call a non-transactional insert from inside a store transaction on
// SQLite: it would wait for the write connection the transaction holds.
// That is why Queue offers only InsertTx.
package jobs
