// Package store owns every byte Nodus keeps in a database: connections to
// SQLite and PostgreSQL, transactions, the SQL of every module and the
// migrations that shape each database.
//
// SQL is written once, in the subset both engines accept, with ? placeholders
// (rebound to $n for PostgreSQL). The few real differences live on Dialect.
// Driver errors are turned into nodus error codes at this boundary, so no
// caller ever inspects a driver error.
//
// Every exported method owns its transaction: callers hand a function to
// DB.Write or DB.Read and never see Begin or Commit.
//
// # SQLite
//
// Each SQLite database runs in WAL mode with two pools: one connection for
// writes (SQLite allows one writer at a time; queueing in Go is cheaper and
// fairer than spinning on SQLITE_BUSY) and a pool of query_only connections
// for reads, which WAL lets run beside the writer. Writes begin with BEGIN
// IMMEDIATE so a transaction never fails half-way on a lock upgrade, and a
// busy timeout covers other processes (a `nodus migrate` beside a running
// server).
//
// synchronous=NORMAL is the default: a commit is written to the WAL before it
// returns, so a crash of the process (even SIGKILL) loses nothing that was
// acknowledged. On power loss or an operating-system crash the
// transactions since the most recent WAL sync (the background checkpoint
// syncs it, within about a second of a commit) may be rolled back; the
// database is never corrupted. Operators who need every acknowledged commit
// to survive power loss set NODUS_SQLITE_SYNCHRONOUS=FULL, which syncs the WAL
// on every commit at a cost in write latency.
//
// Times are stored as fixed-width UTC text (2006-01-02T15:04:05.000000Z) so
// they sort as text and round-trip at PostgreSQL's microsecond precision; Tx
// converts time.Time arguments and scan targets transparently.
//
// # PostgreSQL
//
// PostgreSQL uses pgx's native pool: DATABASE_POOL_SIZE connections at most,
// a wait of DATABASE_POOL_TIMEOUT for a free one, connections recycled after
// DATABASE_POOL_RECYCLE and pinged before use once they have been idle.
package store
