package store

import (
	"context"
	"iter"
	"math/bits"
	"strings"
)

// chunkSizes splits n rows into statements of maxRows rows and then
// decreasing powers of two (500 with 256 → 256, 128, 64, 32, 16, 4). A
// batch of any size so takes a few statements, and there are few distinct
// statement texts: the SQLite writer's statement cache, PostgreSQL's
// prepared-statement cache and Rebind's cache keep one entry per text,
// where a text per batch size would be parsed anew each time.
func chunkSizes(n, maxRows int) []int {
	var out []int
	for n > 0 {
		size := min(n, maxRows)
		if size < maxRows {
			size = 1 << (bits.Len(uint(size)) - 1)
		}
		out = append(out, size)
		n -= size
	}
	return out
}

// shapedChunks yields s in the runs chunkSizes gives.
func shapedChunks[S ~[]E, E any](s S, maxRows int) iter.Seq[S] {
	return func(yield func(S) bool) {
		for _, n := range chunkSizes(len(s), maxRows) {
			if !yield(s[:n:n]) {
				return
			}
			s = s[n:]
		}
	}
}

// valuesSQL returns "(?, ?), (?, ?)": rows groups of cols placeholders.
func valuesSQL(rows, cols int) string {
	group := "(" + placeholders(cols) + ")"
	var b strings.Builder
	b.Grow(rows * (len(group) + 2))
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(group)
	}
	return b.String()
}

// insertNew runs insert, a multi-row INSERT … ON CONFLICT … DO NOTHING of
// the rows with keys, and adds to inserted the key of each row it stored;
// returning is the clause that makes the insert return those keys
// (" RETURNING id").
//
// On SQLite the insert first runs without it, inside a savepoint: when it
// stored every row, as it almost always does (the rows are new), the keys
// are known without asking. RETURNING there runs the whole insert and
// keeps each returned row in a temporary table before the first comes
// back; without it, recording a batch of gateway calls took about 7% less
// time (BenchmarkRecordGatewayCalls). When a row was skipped (it existed,
// or the batch holds its key twice) the insert is rolled back to the
// savepoint and run again with RETURNING. PostgreSQL always returns: a
// row another transaction inserts meanwhile is common there, and a
// savepoint is a subtransaction.
func insertNew(ctx context.Context, tx *Tx, insert, returning string, args []any, keys []string,
	inserted map[string]bool) error {
	if tx.Dialect() == SQLite {
		all, err := insertAll(ctx, tx, insert, args, len(keys))
		if err != nil {
			return err
		}
		if all {
			for _, k := range keys {
				inserted[k] = true
			}
			return nil
		}
	}
	rs, err := tx.Query(ctx, insert+returning, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var k string
		if err := rs.Scan(&k); err != nil {
			return err
		}
		inserted[k] = true
	}
	return rs.Err()
}

// insertAll runs insert, of rows rows, in a savepoint and reports whether
// it stored every one; when it did not, it is undone.
func insertAll(ctx context.Context, tx *Tx, insert string, args []any, rows int) (bool, error) {
	if _, err := tx.Exec(ctx, `SAVEPOINT insert_new`); err != nil {
		return false, err
	}
	n, err := tx.Exec(ctx, insert, args...)
	if err == nil && n != int64(rows) {
		_, err = tx.Exec(ctx, `ROLLBACK TO insert_new`)
	}
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `RELEASE insert_new`); err != nil {
		return false, err
	}
	return n == int64(rows), nil
}
