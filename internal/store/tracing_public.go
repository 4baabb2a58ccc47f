package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file holds the SQL of Langfuse's public read API
// (internal/tracing/public.go): pages by number with their totals, a
// trace's figures, and deletes. A page reads at most its rows; its total
// is a count over the index the filters pick (traces_timestamp,
// traces_user, traces_session, observations_start, scores_time), and a
// trace's figures are the summary ingestion keeps on it (migration 0004),
// never its observations loaded into memory.

// traceOrderColumns maps Langfuse's orderBy keys to columns.
var traceOrderColumns = map[string]string{"timestamp": "timestamp", "name": "name", "userId": "user_id",
	"sessionId": "session_id", "release": "release", "version": "version", "id": "id"}

// filter is a WHERE clause built condition by condition.
type filter struct {
	where string
	args  []any
}

func (f *filter) add(clause string, v ...any) {
	f.where += ` AND ` + clause
	f.args = append(f.args, v...)
}

// equal adds col = v when v is set.
func (f *filter) equal(col, v string) {
	if v != "" {
		f.add(col+` = ?`, v)
	}
}

// oneOf adds col IN (vs) when vs has any.
func (f *filter) oneOf(col string, vs []string) {
	if len(vs) > 0 {
		f.add(col+` IN (`+placeholders(len(vs))+`)`, anys(vs)...)
	}
}

func anys(vs []string) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// qualify prefixes each column of a column list with a table alias.
func qualify(columns, alias string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// pageRows counts the rows of from matching f and reads the page'th page
// of limit of them in order.
func pageRows[T any](ctx context.Context, db *DB, from, columns string, f filter, order string, page, limit int,
	scan func(scanner, *T) error) ([]T, int, error) {
	var out []T
	var total int
	offset := (page - 1) * limit
	err := db.Read(ctx, func(tx *Tx) error {
		out = out[:0]
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+from+` WHERE `+f.where, f.args...).Scan(&total); err != nil {
			return err
		}
		if total <= offset {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM `+from+` WHERE `+f.where+` ORDER BY `+order+` LIMIT ? OFFSET ?`,
			slices.Concat(f.args, []any{limit, offset})...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v T
			if err := scan(rows, &v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, total, err
}

// tagCond is the condition that a trace holds tag.
func tagCond(d Dialect) string {
	if d == Postgres {
		return `tags::jsonb @> jsonb_build_array(?::text)`
	}
	return `EXISTS (SELECT 1 FROM json_each(traces.tags) WHERE json_each.value = ?)`
}

// PageTraces returns a page of the traces in scope matching q, in q's
// order (then by id), and how many match.
func (db *DB) PageTraces(ctx context.Context, q tracing.TraceQuery) ([]tracing.Trace, int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, 0, err
	}
	f := filter{where: cond, args: args}
	if !q.From.IsZero() {
		f.add(`timestamp >= ?`, q.From)
	}
	if !q.To.IsZero() {
		f.add(`timestamp < ?`, q.To)
	}
	f.equal("user_id", q.UserID)
	f.equal("session_id", q.SessionID)
	f.equal("name", q.Name)
	f.equal("release", q.Release)
	f.equal("version", q.Version)
	f.oneOf("environment", q.Environments)
	for _, tag := range q.Tags {
		f.add(tagCond(db.Dialect()), tag)
	}
	col, ok := traceOrderColumns[q.OrderBy]
	if !ok {
		col = "timestamp"
	}
	dir := ` DESC`
	if q.Asc {
		dir = ` ASC`
	}
	order := col + dir
	if col != "id" {
		order += `, id` + dir
	}
	return pageRows(ctx, db, "traces", traceColumns, f, order, q.Page, q.Limit, scanTrace)
}

// TraceRefs lists some of the observation and score ids of traces in
// scope; see tracing.PublicStore.
func (db *DB) TraceRefs(ctx context.Context, traceIDs []string, maxIDs int) (map[string]tracing.TraceRefs, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	out := make(map[string]tracing.TraceRefs, len(traceIDs))
	err = db.Read(ctx, func(tx *Tx) error {
		clear(out)
		for _, id := range traceIDs {
			var r tracing.TraceRefs
			var err error
			// No ORDER BY: the ids come off observations_trace and
			// scores_trace as they lie, so a trace of 100,000
			// observations stops at maxIDs instead of being sorted whole.
			if r.ObservationIDs, err = firstIDs(ctx, tx, `SELECT id FROM observations WHERE `+cond+` AND trace_id = ? LIMIT ?`,
				slices.Concat(args, []any{id, maxIDs})); err != nil {
				return err
			}
			if r.ScoreIDs, err = firstIDs(ctx, tx, `SELECT id FROM scores WHERE `+cond+` AND trace_id = ? LIMIT ?`,
				slices.Concat(args, []any{id, maxIDs})); err != nil {
				return err
			}
			if r.ObservationIDs != nil || r.ScoreIDs != nil {
				out[id] = r
			}
		}
		return nil
	})
	return out, err
}

// firstIDs reads a column of ids, sorted so that a complete list reads
// the same every time.
func firstIDs(ctx context.Context, tx *Tx, query string, args []any) ([]string, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, rows.Err()
}

// ListTraceObservations returns up to max of a trace's observations in
// scope by start time, and whether it has more.
func (db *DB) ListTraceObservations(ctx context.Context, traceID string, max int) ([]tracing.Observation, bool, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, false, err
	}
	var out []tracing.Observation
	err = db.Read(ctx, func(tx *Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT `+observationColumns+` FROM observations WHERE trace_id = ? AND `+cond+`
			ORDER BY start_time, id LIMIT ?`, slices.Concat([]any{traceID}, args, []any{max + 1})...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o tracing.Observation
			if err := scanObservation(rows, &o); err != nil {
				return err
			}
			out = append(out, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, false, err
	}
	if len(out) > max {
		return out[:max], true, nil
	}
	return out, false, nil
}

// DeleteTrace removes a trace of the scoped tenant with its observations
// and scores in one transaction, marks its generations' rollup days
// dirty, and drops its session and user when it was their last trace.
func (db *DB) DeleteTrace(ctx context.Context, id string) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var session, user string
		err := tx.QueryRow(ctx, `SELECT session_id, user_id FROM traces WHERE tenant_id = ? AND id = ?`+
			tx.Dialect().ForUpdate(), tenantID, id).Scan(&session, &user)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "trace %s not found", id)
		}
		if err != nil {
			return err
		}
		// Its generations' days are rebuilt without them, as retention does.
		if err := markRollupsOfTraces(ctx, tx, tenantID, []any{id}); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM scores WHERE tenant_id = ? AND trace_id = ?`,
			`DELETE FROM observations WHERE tenant_id = ? AND trace_id = ?`,
			`DELETE FROM traces WHERE tenant_id = ? AND id = ?`,
		} {
			if _, err := tx.Exec(ctx, q, tenantID, id); err != nil {
				return err
			}
		}
		return settleTraceGroups(ctx, tx, tenantID, nonEmpty(session), nonEmpty(user))
	})
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// PageObservations returns a page of the observations in scope matching
// q, newest first, and how many match.
func (db *DB) PageObservations(ctx context.Context, q tracing.ObservationQuery) ([]tracing.Observation, int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, 0, err
	}
	f := filter{where: cond, args: args}
	f.equal("name", q.Name)
	f.equal("type", q.Type)
	f.equal("trace_id", q.TraceID)
	f.equal("parent_observation_id", q.ParentObservationID)
	f.oneOf("environment", q.Environments)
	if !q.From.IsZero() {
		f.add(`start_time >= ?`, q.From)
	}
	if !q.To.IsZero() {
		f.add(`start_time < ?`, q.To)
	}
	if q.UserID != "" {
		// The user's traces through traces_user, then their observations
		// through observations_trace.
		f.add(`trace_id IN (SELECT id FROM traces WHERE `+cond+` AND user_id = ?)`, append(slices.Clone(args), q.UserID)...)
	}
	return pageRows(ctx, db, "observations", observationColumns, f, `start_time DESC, id DESC`, q.Page, q.Limit,
		scanObservation)
}

// scoreViewFrom joins a score to its trace for the fields Langfuse's
// score list shows beside it.
const scoreViewFrom = `scores s LEFT JOIN traces t ON t.tenant_id = s.tenant_id AND t.id = s.trace_id`

var scoreViewColumns = qualify(scoreColumns, "s") + `, COALESCE(t.user_id, ''), COALESCE(t.tags, '[]'),
	COALESCE(t.environment, '')`

func scanScoreView(row scanner, v *tracing.ScoreView) error {
	var tags string
	s := &v.Score
	if err := row.Scan(&s.TenantID, &s.ID, &s.TraceID, &s.ObservationID, &s.Name, &s.Value, &s.StringValue,
		&s.DataType, &s.Comment, &s.Source, &s.Timestamp, &s.CreatedAt, &s.UpdatedAt, &v.TraceUserID, &tags,
		&v.TraceEnvironment); err != nil {
		return err
	}
	return decodeJSON("trace tags", tags, &v.TraceTags)
}

// PageScores returns a page of the scores in scope matching q, newest
// first, and how many match.
func (db *DB) PageScores(ctx context.Context, q tracing.ScoreQuery) ([]tracing.ScoreView, int, error) {
	cond, args, err := scopeCond(ctx, "s.tenant_id")
	if err != nil {
		return nil, 0, err
	}
	f := filter{where: cond, args: args}
	f.equal("s.name", q.Name)
	f.equal("s.trace_id", q.TraceID)
	f.equal("s.source", q.Source)
	f.equal("s.data_type", q.DataType)
	f.equal("t.user_id", q.UserID)
	if !q.From.IsZero() {
		f.add(`s.timestamp >= ?`, q.From)
	}
	if !q.To.IsZero() {
		f.add(`s.timestamp < ?`, q.To)
	}
	return pageRows(ctx, db, scoreViewFrom, scoreViewColumns, f, `s.timestamp DESC, s.id DESC`, q.Page, q.Limit,
		scanScoreView)
}

// FindScore returns a score in scope with its trace's fields, or
// ENOTFOUND.
func (db *DB) FindScore(ctx context.Context, id string) (tracing.ScoreView, error) {
	cond, args, err := scopeCond(ctx, "s.tenant_id")
	if err != nil {
		return tracing.ScoreView{}, err
	}
	var v tracing.ScoreView
	err = db.Read(ctx, func(tx *Tx) error {
		err := scanScoreView(tx.QueryRow(ctx, `SELECT `+scoreViewColumns+` FROM `+scoreViewFrom+` WHERE s.id = ? AND `+cond,
			append([]any{id}, args...)...), &v)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "score %s not found", id)
		}
		return err
	})
	return v, err
}

// DeleteScore removes a score in scope, or is ENOTFOUND.
func (db *DB) DeleteScore(ctx context.Context, id string) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM scores WHERE id = ? AND `+cond, append([]any{id}, args...)...)
		if err == nil && n == 0 {
			err = nodus.Errorf(nodus.ENOTFOUND, "score %s not found", id)
		}
		return err
	})
}

// traceCostSum adds up the total cost (migration 0004) of grouped traces.
const traceCostSum = `COALESCE(SUM(total_cost), 0)`
