package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TimeFormat is how SQLite stores times: fixed-width UTC with microseconds,
// so text order is time order and values match PostgreSQL's precision.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// Tx is a transaction on either engine. Module SQL runs through it with ?
// placeholders; it rebinds them, converts times for SQLite and maps driver
// errors to nodus error codes.
type Tx struct {
	dialect Dialect
	sqlTx   *sql.Tx    // SQLite
	stmts   *stmtCache // SQLite's writer: its prepared statements
	pgTx    pgx.Tx     // PostgreSQL
}

// sqliteStmt returns query's prepared statement in the transaction, or
// nil to run it unprepared.
func (tx *Tx) sqliteStmt(ctx context.Context, query string) *sql.Stmt {
	if tx.stmts == nil {
		return nil
	}
	if st := tx.stmts.lookup(query); st != nil {
		return tx.sqlTx.StmtContext(ctx, st)
	}
	return nil
}

// Dialect reports the engine the transaction runs on.
func (tx *Tx) Dialect() Dialect { return tx.dialect }

// SQLTx returns the underlying database/sql transaction on SQLite and nil on
// PostgreSQL. It exists for libraries that must join the caller's
// transaction, such as the job queue.
func (tx *Tx) SQLTx() *sql.Tx { return tx.sqlTx }

// PgxTx returns the underlying pgx transaction on PostgreSQL and nil on
// SQLite. See SQLTx.
func (tx *Tx) PgxTx() pgx.Tx { return tx.pgTx }

// Exec runs a statement and returns the number of rows it affected.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if tx.dialect == Postgres {
		tag, err := tx.pgTx.Exec(ctx, Postgres.Rebind(query), args...)
		if err != nil {
			return 0, mapError(err)
		}
		return tag.RowsAffected(), nil
	}
	var res sql.Result
	var err error
	if st := tx.sqliteStmt(ctx, query); st != nil {
		res, err = st.ExecContext(ctx, sqliteArgs(args)...)
	} else {
		res, err = tx.sqlTx.ExecContext(ctx, query, sqliteArgs(args)...)
	}
	if err != nil {
		return 0, mapError(err)
	}
	n, err := res.RowsAffected()
	return n, mapError(err)
}

// Query runs a query that returns rows. The caller must close the rows.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	if tx.dialect == Postgres {
		rows, err := tx.pgTx.Query(ctx, Postgres.Rebind(query), args...)
		if err != nil {
			return nil, mapError(err)
		}
		return &Rows{pg: rows}, nil
	}
	var rows *sql.Rows
	var err error
	if st := tx.sqliteStmt(ctx, query); st != nil {
		rows, err = st.QueryContext(ctx, sqliteArgs(args)...)
	} else {
		rows, err = tx.sqlTx.QueryContext(ctx, query, sqliteArgs(args)...)
	}
	if err != nil {
		return nil, mapError(err)
	}
	return &Rows{sql: rows}, nil
}

// QueryRow runs a query that returns at most one row. Its Scan returns
// sql.ErrNoRows on both engines when there is none.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *Row {
	if tx.dialect == Postgres {
		return &Row{pg: tx.pgTx.QueryRow(ctx, Postgres.Rebind(query), args...)}
	}
	if st := tx.sqliteStmt(ctx, query); st != nil {
		return &Row{sql: st.QueryRowContext(ctx, sqliteArgs(args)...)}
	}
	return &Row{sql: tx.sqlTx.QueryRowContext(ctx, query, sqliteArgs(args)...)}
}

// Rows is the result of Query.
type Rows struct {
	sql *sql.Rows
	pg  pgx.Rows
}

// Next prepares the next row for Scan.
func (r *Rows) Next() bool {
	if r.pg != nil {
		return r.pg.Next()
	}
	return r.sql.Next()
}

// Scan copies the current row into dest.
func (r *Rows) Scan(dest ...any) error {
	if r.pg != nil {
		return scanPostgres(r.pg.Scan, dest)
	}
	return scanSQLite(r.sql.Scan, dest)
}

// Err returns the error that stopped iteration, if any.
func (r *Rows) Err() error {
	if r.pg != nil {
		return mapError(r.pg.Err())
	}
	return mapError(r.sql.Err())
}

// Close releases the rows. It is safe to call more than once.
func (r *Rows) Close() error {
	if r.pg != nil {
		r.pg.Close()
		return nil
	}
	return r.sql.Close()
}

// Row is the result of QueryRow.
type Row struct {
	sql *sql.Row
	pg  pgx.Row
}

// Scan copies the row into dest, or returns sql.ErrNoRows.
func (r *Row) Scan(dest ...any) error {
	if r.pg != nil {
		err := scanPostgres(r.pg.Scan, dest)
		if errors.Is(err, pgx.ErrNoRows) {
			return sql.ErrNoRows
		}
		return err
	}
	return scanSQLite(r.sql.Scan, dest)
}

func scanPostgres(scan func(...any) error, dest []any) error {
	if err := scan(dest...); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return mapError(err)
	}
	// pgx decodes timestamptz in the local zone; Nodus works in UTC.
	for _, d := range dest {
		switch t := d.(type) {
		case *time.Time:
			*t = t.UTC()
		case **time.Time:
			if *t != nil {
				u := (*t).UTC()
				*t = &u
			}
		}
	}
	return nil
}

func scanSQLite(scan func(...any) error, dest []any) error {
	conv := dest
	copied := false
	for i, d := range dest {
		var st sqliteTime
		switch t := d.(type) {
		case *time.Time:
			st.t = t
		case **time.Time:
			st.pt = t
		default:
			continue
		}
		if !copied {
			conv = append([]any(nil), dest...)
			copied = true
		}
		conv[i] = st
	}
	err := scan(conv...)
	if errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return mapError(err)
}

// sqliteArgs formats time arguments the way SQLite columns store them.
// Other values pass through; the slice is copied only when needed.
func sqliteArgs(args []any) []any {
	out := args
	copied := false
	for i, a := range args {
		var v any
		switch t := a.(type) {
		case time.Time:
			v = t.UTC().Format(TimeFormat)
		case *time.Time:
			if t == nil {
				v = nil
			} else {
				v = t.UTC().Format(TimeFormat)
			}
		default:
			continue
		}
		if !copied {
			out = append([]any(nil), args...)
			copied = true
		}
		out[i] = v
	}
	return out
}

// sqliteTime scans a stored time into *time.Time (t) or, for nullable
// columns, into **time.Time (pt).
type sqliteTime struct {
	t  *time.Time
	pt **time.Time
}

func (s sqliteTime) Scan(src any) error {
	var v time.Time
	switch x := src.(type) {
	case nil:
		if s.pt != nil {
			*s.pt = nil
			return nil
		}
		return fmt.Errorf("store: NULL time scanned into non-pointer time.Time")
	case string:
		t, err := parseSQLiteTime(x)
		if err != nil {
			return err
		}
		v = t
	case []byte:
		t, err := parseSQLiteTime(string(x))
		if err != nil {
			return err
		}
		v = t
	case time.Time:
		v = x.UTC()
	case int64:
		v = time.Unix(x, 0).UTC()
	default:
		return fmt.Errorf("store: cannot scan %T into time.Time", src)
	}
	if s.pt != nil {
		*s.pt = &v
	} else {
		*s.t = v
	}
	return nil
}

func parseSQLiteTime(s string) (time.Time, error) {
	if t, err := time.Parse(TimeFormat, s); err == nil {
		return t, nil
	}
	// Values written by SQLite itself (CURRENT_TIMESTAMP) or by hand.
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("store: cannot parse time %q", s)
}

// execScript runs a script of several statements, such as a migration. No
// placeholders are rebound, so PostgreSQL's ? operators survive.
func (tx *Tx) execScript(ctx context.Context, script string) error {
	var err error
	if tx.dialect == Postgres {
		_, err = tx.pgTx.Exec(ctx, script)
	} else {
		_, err = tx.sqlTx.ExecContext(ctx, script)
	}
	return mapError(err)
}
