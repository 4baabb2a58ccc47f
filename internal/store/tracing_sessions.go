package store

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file holds sessions and users as views (migration tracing 0006):
// trace_sessions and trace_users keep one small row per session id and
// user id a tenant's traces carry, with when it was first and last seen.
// The ingestion transaction widens them from the merged traces
// (upsertTraceSessions, called by afterIngest); deleting a trace, by hand
// or by retention, settles them (settleTraceGroups), as does a trace
// moved to another session or user or in time (afterIngest). Listing reads these
// rows, so a page costs its rows and not a scan of the tenant's traces;
// the counts and costs of a page are aggregates over traces_session and
// traces_user for the page's ids alone.

// groupChunk bounds the rows of one multi-row upsert: 4 parameters a row
// stays far below both engines' parameter limits.
const groupChunk = 256

// sessionSample bounds the traces of one session read for its user ids
// and environment.
const sessionSample = 200

// seenSpan is the first and last trace time of a session or user within
// a batch.
type seenSpan struct{ first, last time.Time }

func widen(m map[string]*seenSpan, id string, at time.Time) {
	if id == "" {
		return
	}
	s := m[id]
	switch {
	case s == nil:
		m[id] = &seenSpan{first: at, last: at}
	case at.Before(s.first):
		s.first = at
	case at.After(s.last):
		s.last = at
	}
}

// upsertTraceSessions widens the sessions and users of a batch's merged
// traces in tx. Each id is written once per batch, in sorted order, so two
// batches touching the same ids lock them in the same order.
func upsertTraceSessions(ctx context.Context, tx *Tx, tenantID string, traces []tracing.Trace) error {
	sessions, users := map[string]*seenSpan{}, map[string]*seenSpan{}
	for i := range traces {
		widen(sessions, traces[i].SessionID, traces[i].Timestamp)
		widen(users, traces[i].UserID, traces[i].Timestamp)
	}
	if err := upsertSeen(ctx, tx, "trace_sessions", "session_id", tenantID, sessions); err != nil {
		return err
	}
	return upsertSeen(ctx, tx, "trace_users", "user_id", tenantID, users)
}

func upsertSeen(ctx context.Context, tx *Tx, table, col, tenantID string, seen map[string]*seenSpan) error {
	ids := slices.Sorted(maps.Keys(seen))
	for chunk := range shapedChunks(ids, groupChunk) {
		args := make([]any, 0, 4*len(chunk))
		for _, id := range chunk {
			args = append(args, tenantID, id, seen[id].first, seen[id].last)
		}
		// The WHERE skips rewriting a row the batch does not widen, the
		// common case of a session's every later trace.
		_, err := tx.Exec(ctx, `INSERT INTO `+table+` (tenant_id, `+col+`, first_seen, last_seen) VALUES `+
			strings.Repeat(`(?, ?, ?, ?), `, len(chunk)-1)+`(?, ?, ?, ?)
			ON CONFLICT (tenant_id, `+col+`) DO UPDATE SET
				first_seen = CASE WHEN excluded.first_seen < `+table+`.first_seen THEN excluded.first_seen ELSE `+table+`.first_seen END,
				last_seen = CASE WHEN excluded.last_seen > `+table+`.last_seen THEN excluded.last_seen ELSE `+table+`.last_seen END
			WHERE excluded.first_seen < `+table+`.first_seen OR excluded.last_seen > `+table+`.last_seen`, args...)
		if err != nil {
			return err
		}
	}
	return nil
}

// settleTraceGroups brings sessions and users of a tenant in step after
// some of their traces were deleted: a row with no trace left goes, the
// others get their first and last seen from the traces that remain (a
// min and max over traces_session and traces_user).
func settleTraceGroups(ctx context.Context, tx *Tx, tenantID string, sessions, users []string) error {
	for _, g := range []struct {
		table, col string
		ids        []string
	}{{"trace_sessions", "session_id", sessions}, {"trace_users", "user_id", users}} {
		for chunk := range shapedChunks(g.ids, groupChunk) {
			args := append([]any{tenantID}, anys(chunk)...)
			in := g.col + ` IN (` + placeholders(len(chunk)) + `)`
			own := `traces.tenant_id = ` + g.table + `.tenant_id AND traces.` + g.col + ` = ` + g.table + `.` + g.col
			if _, err := tx.Exec(ctx, `DELETE FROM `+g.table+` WHERE tenant_id = ? AND `+in+`
				AND NOT EXISTS (SELECT 1 FROM traces WHERE `+own+`)`, args...); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE `+g.table+` SET
				first_seen = (SELECT MIN(timestamp) FROM traces WHERE `+own+`),
				last_seen = (SELECT MAX(timestamp) FROM traces WHERE `+own+`)
				WHERE tenant_id = ? AND `+in, args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// seenRow is a row of trace_sessions or trace_users.
type seenRow struct {
	id          string
	first, last time.Time
}

func scanSeen(row scanner, r *seenRow) error {
	return row.Scan(&r.id, &r.first, &r.last)
}

// listSeen reads a keyset page of trace_sessions or trace_users in scope,
// newest activity first, and the next page's cursor.
func listSeen(ctx context.Context, tx *Tx, table, col, cond string, args []any, cursor string, limit int) ([]seenRow, string, error) {
	q := `SELECT ` + col + `, first_seen, last_seen FROM ` + table + ` WHERE ` + cond
	args = slices.Clone(args)
	if cursor != "" {
		at, id, err := decodeTimeCursor(cursor, anyID)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (last_seen < ? OR last_seen = ? AND ` + col + ` < ?)`
		args = append(args, at, at, id)
	}
	rows, err := tx.Query(ctx, q+` ORDER BY last_seen DESC, `+col+` DESC LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []seenRow
	for rows.Next() {
		var r seenRow
		if err := scanSeen(rows, &r); err != nil {
			return nil, "", err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(out) <= limit {
		return out, "", nil
	}
	out = out[:limit]
	return out, encodeTimeCursor(out[limit-1].last, out[limit-1].id), nil
}

// groupTotals counts the traces of each of a page's sessions or users
// and adds up their cost, in one grouped query over the index on col.
func groupTotals(ctx context.Context, tx *Tx, col, cond string, args []any, ids []string) (map[string]int, map[string]float64, error) {
	counts, costs := map[string]int{}, map[string]float64{}
	if len(ids) == 0 {
		return counts, costs, nil
	}
	rows, err := tx.Query(ctx, `SELECT `+col+`, count(*), `+traceCostSum+` FROM traces WHERE `+cond+` AND `+col+
		` IN (`+placeholders(len(ids))+`) GROUP BY `+col, slices.Concat(args, anys(ids))...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		var cost float64
		if err := rows.Scan(&id, &n, &cost); err != nil {
			return nil, nil, err
		}
		counts[id], costs[id] = n, cost
	}
	return counts, costs, rows.Err()
}

// sessionsOf turns rows of trace_sessions into sessions with their
// counts, costs, user ids and environment.
func sessionsOf(ctx context.Context, tx *Tx, cond string, args []any, rows []seenRow) ([]tracing.Session, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	counts, costs, err := groupTotals(ctx, tx, "session_id", cond, args, ids)
	if err != nil {
		return nil, err
	}
	out := make([]tracing.Session, len(rows))
	for i, r := range rows {
		s := tracing.Session{ID: r.id, FirstSeen: r.first, LastSeen: r.last, TraceCount: counts[r.id], TotalCost: costs[r.id]}
		// The user ids among the session's newest traces, through
		// traces_session: bounded, where DISTINCT over every trace of a
		// long session would not be.
		trows, err := tx.Query(ctx, `SELECT user_id, environment FROM traces WHERE `+cond+` AND session_id = ?
			ORDER BY timestamp DESC, id DESC LIMIT ?`, slices.Concat(args, []any{r.id, sessionSample})...)
		if err != nil {
			return nil, err
		}
		for trows.Next() {
			var user, env string
			if err := trows.Scan(&user, &env); err != nil {
				trows.Close()
				return nil, err
			}
			if s.Environment == "" {
				s.Environment = env
			}
			if user != "" && !slices.Contains(s.UserIDs, user) && len(s.UserIDs) < tracing.MaxSessionUsers {
				s.UserIDs = append(s.UserIDs, user)
			}
		}
		trows.Close()
		if err := trows.Err(); err != nil {
			return nil, err
		}
		slices.Sort(s.UserIDs)
		out[i] = s
	}
	return out, nil
}

// ListTraceSessions returns the sessions in scope by last activity, newest
// first, and the next page's cursor.
func (db *DB) ListTraceSessions(ctx context.Context, cursor string, limit int) ([]tracing.Session, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	var out []tracing.Session
	var next string
	err = db.Read(ctx, func(tx *Tx) error {
		rows, n, err := listSeen(ctx, tx, "trace_sessions", "session_id", cond, args, cursor, pageSize(limit))
		if err != nil {
			return err
		}
		next = n
		out, err = sessionsOf(ctx, tx, cond, args, rows)
		return err
	})
	return out, next, err
}

// PageTraceSessions returns the sessions in scope first seen in [from, to),
// newest first, and how many there are.
func (db *DB) PageTraceSessions(ctx context.Context, from, to time.Time, page, limit int) ([]tracing.Session, int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, 0, err
	}
	f := filter{where: cond, args: args}
	if !from.IsZero() {
		f.add(`first_seen >= ?`, from)
	}
	if !to.IsZero() {
		f.add(`first_seen < ?`, to)
	}
	rows, total, err := pageRows(ctx, db, "trace_sessions", "session_id, first_seen, last_seen", f,
		`first_seen DESC, session_id DESC`, page, limit, scanSeen)
	if err != nil || len(rows) == 0 {
		return nil, total, err
	}
	var out []tracing.Session
	err = db.Read(ctx, func(tx *Tx) error {
		out, err = sessionsOf(ctx, tx, cond, args, rows)
		return err
	})
	return out, total, err
}

// FindTraceSession returns a session in scope, or ENOTFOUND.
func (db *DB) FindTraceSession(ctx context.Context, id string) (tracing.Session, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return tracing.Session{}, err
	}
	var s tracing.Session
	err = db.Read(ctx, func(tx *Tx) error {
		var r seenRow
		err := scanSeen(tx.QueryRow(ctx, `SELECT session_id, first_seen, last_seen FROM trace_sessions WHERE session_id = ? AND `+
			cond, append([]any{id}, args...)...), &r)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "session %s not found", id)
		}
		if err != nil {
			return err
		}
		out, err := sessionsOf(ctx, tx, cond, args, []seenRow{r})
		if err == nil {
			s = out[0]
		}
		return err
	})
	return s, err
}

// ListTraceUsers returns the users in scope by last activity, newest
// first, with their trace counts and costs, and the next page's cursor.
func (db *DB) ListTraceUsers(ctx context.Context, cursor string, limit int) ([]tracing.TraceUser, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	var out []tracing.TraceUser
	var next string
	err = db.Read(ctx, func(tx *Tx) error {
		rows, n, err := listSeen(ctx, tx, "trace_users", "user_id", cond, args, cursor, pageSize(limit))
		if err != nil {
			return err
		}
		next = n
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.id
		}
		counts, costs, err := groupTotals(ctx, tx, "user_id", cond, args, ids)
		if err != nil {
			return err
		}
		out = make([]tracing.TraceUser, len(rows))
		for i, r := range rows {
			out[i] = tracing.TraceUser{ID: r.id, FirstSeen: r.first, LastSeen: r.last, TraceCount: counts[r.id],
				TotalCost: costs[r.id]}
		}
		return nil
	})
	return out, next, err
}
