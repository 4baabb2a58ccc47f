package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
)

// stmtCache keeps the SQLite writer's statements prepared. Parsing and
// planning a statement is a sixth of a busy writer's time (tracing
// ingestion: 3 s of 17.5 s in the write lock), and the writer is the one
// serial path of a SQLite Nodus, so statements the writer runs again and
// again are prepared once and reused (modernc.org/sqlite keeps a prepared
// statement's program and only rebinds it).
//
// The writer has one connection, which a transaction holds, so a
// statement cannot be prepared on the pool from inside a transaction
// without waiting for itself. A statement seen inside a transaction is
// noted instead, and prepared after the transaction has given the
// connection back; later transactions use it through Tx.StmtContext,
// which reuses the connection's prepared handle. SQLite re-prepares a
// statement itself when the schema changes under it.
type stmtCache struct {
	pool *sql.DB

	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
	failed map[string]bool // would not prepare outside their transaction
	text   int             // bytes of SQL in stmts and wanted
	closed bool
}

// Bounds: statements of variable shape (multi-row inserts, IN lists) are
// cached while there is room and run unprepared after, and very long ones
// are never cached. A prepared statement holds a program and registers in
// proportion to its text, up to about 25 times its length for a multi-row
// insert, so the cache is bounded by its texts' total length too: 512 KiB
// of SQL is at most some 12 MB of programs, where 512 multi-row statements
// of every batch size were over 100 MB. It binds only when the cached
// statements average over 1 KiB, i.e. when long multi-row statements fill
// it; ordinary statements are a few hundred bytes.
const (
	stmtCacheSize     = 512
	stmtCacheMaxQuery = 16 << 10
	stmtCacheMaxText  = 512 << 10
)

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}, failed: map[string]bool{}}
}

// cacheable tells whether a statement is worth preparing: data
// statements, not DDL, PRAGMAs or scripts.
func cacheable(query string) bool {
	if len(query) > stmtCacheMaxQuery {
		return false
	}
	q := strings.TrimLeft(query, " \t\r\n")
	if len(q) < 6 {
		return false
	}
	switch strings.ToUpper(q[:6]) {
	case "SELECT", "INSERT", "UPDATE", "DELETE":
		return true
	}
	return false
}

// lookup returns the prepared statement for query, or nil, noting a
// cacheable query to be prepared after the transaction.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st
	}
	if !c.closed && !c.failed[query] && !c.wanted[query] && len(c.stmts)+len(c.wanted) < stmtCacheSize &&
		c.text+len(query) <= stmtCacheMaxText && cacheable(query) {
		c.wanted[query] = true
		c.text += len(query)
	}
	return nil
}

// pending tells whether statements wait to be prepared.
func (c *stmtCache) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.wanted) > 0
}

// prepareWanted prepares the statements noted since the last call. It
// must run with no transaction of the caller open on the pool.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	queries := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		queries = append(queries, q)
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range queries {
		st, err := c.pool.PrepareContext(ctx, q)
		c.mu.Lock()
		switch {
		case err != nil && ctx.Err() == nil:
			// A statement naming what only its transaction creates: run it
			// unprepared from now on.
			c.failed[q] = true
			c.text -= len(q)
		case err != nil:
			c.text -= len(q)
		case c.closed || c.stmts[q] != nil:
			st.Close()
			c.text -= len(q)
		default:
			c.stmts[q] = st
		}
		c.mu.Unlock()
	}
}

// close closes every prepared statement; lookups find none after it.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for q, st := range c.stmts {
		errs = append(errs, st.Close())
		delete(c.stmts, q)
	}
	return errors.Join(errs...)
}
