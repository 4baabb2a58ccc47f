package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Dialect names a database engine and holds what differs between them.
type Dialect int

const (
	SQLite Dialect = iota + 1
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "unknown"
}

// ForUpdate is the clause that locks the rows a SELECT reads until the
// transaction ends: PostgreSQL needs it for read-then-write checks (quotas);
// SQLite's single writer already excludes every other writer.
func (d Dialect) ForUpdate() string {
	if d == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// placeholders is n placeholders for a query's IN list or VALUES row: "?, ?, ?".
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// rebindCache holds queries already rebound for PostgreSQL. Queries are
// constants in the source, so the cache is bounded by the program's text.
var rebindCache sync.Map

// Rebind turns the ? placeholders of a shared query into the dialect's form.
// Question marks inside string literals, quoted identifiers and comments are
// left alone.
func (d Dialect) Rebind(query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
		return query
	}
	if q, ok := rebindCache.Load(query); ok {
		return q.(string)
	}
	q := rebindDollar(query)
	rebindCache.Store(query, q)
	return q
}

func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			// Copy the quoted run; a doubled quote is an escaped quote and
			// simply reopens the run on the next iteration.
			j := strings.IndexByte(query[i+1:], c)
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+1])
			i += j
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+4])
			i += j + 3
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// SQLite extended result codes this package maps. See
// https://www.sqlite.org/rescode.html.
const (
	sqliteBusy                 = 5
	sqliteLocked               = 6
	sqliteReadOnly             = 8
	sqliteFull                 = 13
	sqliteConstraintCheck      = 275
	sqliteConstraintForeignKey = 787
	sqliteConstraintNotNull    = 1299
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

// mapError turns a driver error into a *nodus.Error with the matching code.
// Errors it does not recognise are returned unchanged and surface as
// EINTERNAL. It never matches on error text.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var ne *nodus.Error
	if errors.As(err, &ne) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nodus.WrapError(err, nodus.ETIMEOUT, "database operation timed out")
	}

	var se *sqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); {
		case code == sqliteConstraintUnique || code == sqliteConstraintPrimaryKey:
			return nodus.WrapError(err, nodus.ECONFLICT, "already exists")
		case code == sqliteConstraintForeignKey:
			return nodus.WrapError(err, nodus.ECONFLICT, "conflicts with related data")
		case code == sqliteConstraintCheck || code == sqliteConstraintNotNull:
			return nodus.WrapError(err, nodus.EINVALID, "invalid value")
		case code&0xff == sqliteBusy || code&0xff == sqliteLocked:
			return nodus.WrapError(err, nodus.EUNAVAILABLE, "database is busy")
		case code&0xff == sqliteFull || code&0xff == sqliteReadOnly:
			return nodus.WrapError(err, nodus.EUNAVAILABLE, "database cannot be written")
		}
		return err
	}

	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return nodus.WrapError(err, nodus.ECONFLICT, "already exists")
		case "23503":
			return nodus.WrapError(err, nodus.ECONFLICT, "conflicts with related data")
		case "23502", "23514", "22001", "22003", "22P02":
			return nodus.WrapError(err, nodus.EINVALID, "invalid value")
		case "40001", "40P01":
			return nodus.WrapError(err, nodus.ECONFLICT, "concurrent update, retry")
		case "57014":
			return nodus.WrapError(err, nodus.ETIMEOUT, "database operation timed out")
		case "53300", "57P01", "57P02", "57P03":
			return nodus.WrapError(err, nodus.EUNAVAILABLE, "database unavailable")
		}
		if strings.HasPrefix(pe.Code, "08") {
			return nodus.WrapError(err, nodus.EUNAVAILABLE, "database unavailable")
		}
		return err
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return nodus.WrapError(err, nodus.EUNAVAILABLE, "database unavailable")
	}
	return err
}
