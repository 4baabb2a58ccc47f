package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestStmtCache: the SQLite writer prepares a data statement after the
// transaction that first ran it and reuses it after; DDL is never cached,
// a statement that cannot be prepared outside its transaction is run
// unprepared from then on, and results are the same either way.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{URL: "sqlite:" + filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	write := func(fn func(*Tx) error) {
		t.Helper()
		if err := db.Write(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	write(func(tx *Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`)
		return err
	})
	const insert = `INSERT INTO kv (k, v) VALUES (?, ?)`
	const sum = `SELECT COALESCE(SUM(v), 0) FROM kv WHERE k <> ?`
	for i := range 3 {
		write(func(tx *Tx) error {
			if _, err := tx.Exec(ctx, insert, string(rune('a'+i)), i+1); err != nil {
				return err
			}
			var got int
			if err := tx.QueryRow(ctx, sum, "").Scan(&got); err != nil {
				return err
			}
			if want := (i + 1) * (i + 2) / 2; got != want {
				t.Fatalf("round %d: sum %d, want %d", i, got, want)
			}
			return nil
		})
	}
	db.stmts.mu.Lock()
	_, ins := db.stmts.stmts[insert]
	_, sel := db.stmts.stmts[sum]
	ddl := len(db.stmts.stmts)
	db.stmts.mu.Unlock()
	if !ins || !sel || ddl != 2 {
		t.Fatalf("cached: insert %v, select %v, %d statements (the DDL must not be)", ins, sel, ddl)
	}

	// A table that lives only inside one transaction.
	const scratch = `INSERT INTO scratch (x) VALUES (1)`
	write(func(tx *Tx) error {
		for _, q := range []string{`CREATE TABLE scratch (x INTEGER)`, scratch, `DROP TABLE scratch`} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	db.stmts.mu.Lock()
	failed := db.stmts.failed[scratch]
	db.stmts.mu.Unlock()
	if !failed {
		t.Fatal("a statement that cannot be prepared outside its transaction was not set aside")
	}
	if st := db.stmts.lookup(scratch); st != nil || db.stmts.pending() {
		t.Fatal("a failed statement is looked up or wanted again")
	}

	// Reads through the read pool never touch the cache; closing empties it.
	if err := db.Read(ctx, func(tx *Tx) error {
		var n int
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM kv`).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	if db.stmts.pending() {
		t.Fatal("a read was noted for the writer's cache")
	}
}

// TestStmtCacheBoundedByText: multi-row statements of every size fill the
// cache only up to stmtCacheMaxText of SQL (their programs are in
// proportion), and those past it run unprepared with the same results.
func TestStmtCacheBoundedByText(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{URL: "sqlite:" + filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE kv (k INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	next := 0
	for rows := 1; rows <= 300; rows++ {
		args := make([]any, 0, 4*rows)
		for range rows {
			args = append(args, next, "a", "b", "c")
			next++
		}
		if err := db.Write(ctx, func(tx *Tx) error {
			n, err := tx.Exec(ctx, `INSERT INTO kv (k, a, b, c) VALUES `+valuesSQL(rows, 4), args...)
			if err == nil && n != int64(rows) {
				t.Fatalf("%d rows inserted, want %d", n, rows)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		db.stmts.mu.Lock()
		text, cached := db.stmts.text, len(db.stmts.stmts)
		db.stmts.mu.Unlock()
		if text > stmtCacheMaxText {
			t.Fatalf("after %d rows: %d bytes of SQL cached, more than %d", rows, text, stmtCacheMaxText)
		}
		if rows == 300 && (cached < 50 || cached >= 300) {
			t.Fatalf("%d statements cached: want the first sizes, not none and not all", cached)
		}
	}
	var n int
	if err := db.Read(ctx, func(tx *Tx) error { return tx.QueryRow(ctx, `SELECT COUNT(*) FROM kv`).Scan(&n) }); err != nil || n != next {
		t.Fatalf("%d rows, %v; want %d", n, err, next)
	}
}

// TestBatchStatementsCacheable: the multi-row statements a busy gateway
// runs on every batch fit the statement cache at their widest, so they
// are parsed once, not per batch.
func TestBatchStatementsCacheable(t *testing.T) {
	for _, c := range []struct {
		name  string
		query string
	}{
		{"spend-log insert", spendInsertSQL(spendChunkRows)},
		{"observation insert", `INSERT INTO observations (` + strings.Join(observationTable.write, ", ") + `) VALUES ` +
			valuesSQL(ingestChunk, len(observationTable.write)) + ` ON CONFLICT DO NOTHING RETURNING id`},
		{"trace upsert", `INSERT INTO traces (` + strings.Join(traceTable.write, ", ") + `) VALUES ` +
			valuesSQL(ingestChunk, len(traceTable.write)) + ` ON CONFLICT (tenant_id, id) DO UPDATE SET ` + traceTable.upsertSet()},
	} {
		if !cacheable(c.query) {
			t.Errorf("%s: %d bytes of SQL, not cached (the bound is %d)", c.name, len(c.query), stmtCacheMaxQuery)
		}
	}
}
