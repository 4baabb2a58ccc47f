package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file holds the SQL of LLM tracing (internal/tracing) in the
// tracing database (set "tracing", migration 0001): traces,
// observations, scores, the envelope ids already ingested, and the
// Langfuse key pairs.
//
// Ingestion (tracing_ingest.go) merges a batch set-based: the rows it
// touches are read under a lock, patched in Go (tracing.*Patch.Apply) and
// written back whole, a few statements per table rather than per event.
// Each trace carries a summary of its observations (migration 0004:
// total_cost, level, observation_count, latency_ms), recomputed in the
// ingestion transaction, so lists filter on it without reading them.
//
// JSON values are TEXT as sent, NULL when never sent; tags and the usage
// and cost maps are JSON, '[]' or '{}' when empty, reading back as nil.

// The store implements the tracing database.
var _ tracing.Store = (*DB)(nil)

const traceColumns = `tenant_id, id, name, user_id, session_id, release, version, environment, tags, public,
	input, output, metadata, timestamp, created_at, updated_at, total_cost, level, observation_count, latency_ms`

const observationColumns = `tenant_id, id, trace_id, parent_observation_id, type, name, start_time, end_time,
	completion_start_time, input, output, metadata, level, status_message, version, environment, model,
	model_parameters, usage_details, cost_details, prompt_name, prompt_version, created_at, updated_at`

const scoreColumns = `tenant_id, id, trace_id, observation_id, name, value, string_value, data_type, comment, source,
	timestamp, created_at, updated_at`

type scanner = interface{ Scan(...any) error }

func rawArg(r json.RawMessage) any {
	if r == nil {
		return nil
	}
	return string(r)
}

func rawOf(s *string) json.RawMessage {
	if s == nil {
		return nil
	}
	return json.RawMessage(*s)
}

func scanTrace(row scanner, t *tracing.Trace) error {
	var tags string
	var input, output, metadata *string
	if err := row.Scan(&t.TenantID, &t.ID, &t.Name, &t.UserID, &t.SessionID, &t.Release, &t.Version, &t.Environment,
		&tags, &t.Public, &input, &output, &metadata, &t.Timestamp, &t.CreatedAt, &t.UpdatedAt, &t.TotalCost, &t.Level,
		&t.ObservationCount, &t.LatencyMS); err != nil {
		return err
	}
	t.Input, t.Output, t.Metadata = rawOf(input), rawOf(output), rawOf(metadata)
	return decodeJSON("trace tags", tags, &t.Tags)
}

func scanObservation(row scanner, o *tracing.Observation) error {
	var input, output, metadata, params *string
	var usage, cost string
	if err := row.Scan(&o.TenantID, &o.ID, &o.TraceID, &o.ParentObservationID, &o.Type, &o.Name, &o.StartTime,
		&o.EndTime, &o.CompletionStartTime, &input, &output, &metadata, &o.Level, &o.StatusMessage, &o.Version,
		&o.Environment, &o.Model, &params, &usage, &cost, &o.PromptName, &o.PromptVersion, &o.CreatedAt,
		&o.UpdatedAt); err != nil {
		return err
	}
	o.Input, o.Output, o.Metadata, o.ModelParameters = rawOf(input), rawOf(output), rawOf(metadata), rawOf(params)
	if err := decodeJSON("observation usage_details", usage, &o.UsageDetails); err != nil {
		return err
	}
	return decodeJSON("observation cost_details", cost, &o.CostDetails)
}

func scanScore(row scanner, s *tracing.Score) error {
	return row.Scan(&s.TenantID, &s.ID, &s.TraceID, &s.ObservationID, &s.Name, &s.Value, &s.StringValue, &s.DataType,
		&s.Comment, &s.Source, &s.Timestamp, &s.CreatedAt, &s.UpdatedAt)
}

// FindTrace returns a trace in scope, or ENOTFOUND.
func (db *DB) FindTrace(ctx context.Context, id string) (tracing.Trace, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return tracing.Trace{}, err
	}
	var t tracing.Trace
	err = db.Read(ctx, func(tx *Tx) error {
		err := scanTrace(tx.QueryRow(ctx, `SELECT `+traceColumns+` FROM traces WHERE id = ? AND `+cond,
			append([]any{id}, args...)...), &t)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "trace %s not found", id)
		}
		return err
	})
	return t, err
}

// FindObservation returns an observation in scope, or ENOTFOUND.
func (db *DB) FindObservation(ctx context.Context, id string) (tracing.Observation, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return tracing.Observation{}, err
	}
	var o tracing.Observation
	err = db.Read(ctx, func(tx *Tx) error {
		err := scanObservation(tx.QueryRow(ctx, `SELECT `+observationColumns+` FROM observations WHERE id = ? AND `+cond,
			append([]any{id}, args...)...), &o)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "observation %s not found", id)
		}
		return err
	})
	return o, err
}

// ListTraces returns a page of traces in scope matching f, newest first
// by (timestamp, id), and the next page's cursor.
func (db *DB) ListTraces(ctx context.Context, f tracing.TraceFilter, cursor string, limit int) ([]tracing.Trace, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + traceColumns + ` FROM traces WHERE ` + cond
	add := func(clause string, v ...any) {
		q += ` AND ` + clause
		args = append(args, v...)
	}
	if !f.From.IsZero() {
		add(`timestamp >= ?`, f.From)
	}
	if !f.To.IsZero() {
		add(`timestamp < ?`, f.To)
	}
	for col, v := range map[string]string{"user_id": f.UserID, "session_id": f.SessionID, "name": f.Name} {
		if v != "" {
			add(col+` = ?`, v)
		}
	}
	for _, tag := range f.Tags {
		if db.Dialect() == Postgres {
			add(`tags::jsonb @> jsonb_build_array(?::text)`, tag)
		} else {
			add(`EXISTS (SELECT 1 FROM json_each(traces.tags) WHERE json_each.value = ?)`, tag)
		}
	}
	if f.Model != "" {
		// Each trace walked is one seek in observations_model (only
		// observations naming a model are in it). Gathering the model's
		// trace ids first instead costs as much as the model is common.
		add(`EXISTS (SELECT 1 FROM observations o WHERE o.tenant_id = traces.tenant_id AND o.model = ?
			AND o.model <> '' AND o.trace_id = traces.id)`, f.Model)
	}
	if f.Level != "" {
		levels := levelsFrom(f.Level)
		if levels == nil {
			return nil, "", nodus.Errorf(nodus.EINVALID, "unknown level %q", f.Level)
		}
		add(`level IN (`+placeholders(len(levels))+`)`, levels...)
	}
	if f.MinCost != nil {
		add(`total_cost >= ?`, *f.MinCost)
	}
	if f.MaxCost != nil {
		add(`total_cost <= ?`, *f.MaxCost)
	}
	if cursor != "" {
		at, id, err := decodeTimeCursor(cursor, anyID)
		if err != nil {
			return nil, "", err
		}
		add(`(timestamp < ? OR timestamp = ? AND id < ?)`, at, at, id)
	}
	q += ` ORDER BY timestamp DESC, id DESC LIMIT ?`
	page, next, err := listPage(ctx, db, q, args, pageSize(limit), scanTrace, func(t tracing.Trace) string { return t.ID })
	if err != nil || next == "" {
		return page, "", err
	}
	return page, encodeTimeCursor(page[len(page)-1].Timestamp, page[len(page)-1].ID), nil
}

// levelsFrom lists the levels at least as severe as level, nil for a
// level that is none.
func levelsFrom(level string) []any {
	severity := []string{tracing.LevelDebug, tracing.LevelDefault, tracing.LevelWarning, tracing.LevelError}
	i := slices.Index(severity, level)
	if i < 0 {
		return nil
	}
	var out []any
	for _, l := range severity[i:] {
		out = append(out, l)
	}
	return out
}

// ListObservations returns a trace's observations in scope by start time.
func (db *DB) ListObservations(ctx context.Context, traceID string) ([]tracing.Observation, error) {
	return listTraceRows(ctx, db, `SELECT `+observationColumns+` FROM observations WHERE trace_id = ? AND %s
		ORDER BY start_time, id`, traceID, scanObservation)
}

// ListScores returns a trace's scores in scope by time.
func (db *DB) ListScores(ctx context.Context, traceID string) ([]tracing.Score, error) {
	return listTraceRows(ctx, db, `SELECT `+scoreColumns+` FROM scores WHERE trace_id = ? AND %s
		ORDER BY timestamp, id`, traceID, scanScore)
}

func listTraceRows[T any](ctx context.Context, db *DB, query, traceID string, scan func(scanner, *T) error) ([]T, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	query = strings.Replace(query, "%s", cond, 1)
	var out []T
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, query, append([]any{traceID}, args...)...)
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
	return out, err
}

const tracingKeyColumns = `id, tenant_id, public_key, secret_hash, name, created_by, created_at, last_used_at`

func scanTracingKey(row scanner, k *tracing.Key) error {
	return row.Scan(&k.ID, &k.TenantID, &k.PublicKey, &k.SecretHash, &k.Name, &k.CreatedBy, &k.CreatedAt, &k.LastUsedAt)
}

// CreateTracingKey stores a key pair of the scoped tenant.
func (db *DB) CreateTracingKey(ctx context.Context, k tracing.Key) error {
	tenantID, err := createTenant(ctx, k.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("tracing key", k.ID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tracing_keys (`+tracingKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, tenantID, k.PublicKey, k.SecretHash, k.Name, k.CreatedBy, k.CreatedAt, k.LastUsedAt)
		return err
	})
}

// FindTracingKey returns the key pair in scope with a public key, or
// ENOTFOUND.
func (db *DB) FindTracingKey(ctx context.Context, publicKey string) (tracing.Key, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return tracing.Key{}, err
	}
	var k tracing.Key
	err = db.Read(ctx, func(tx *Tx) error {
		err := scanTracingKey(tx.QueryRow(ctx, `SELECT `+tracingKeyColumns+` FROM tracing_keys WHERE public_key = ? AND `+
			cond, append([]any{publicKey}, args...)...), &k)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "no such tracing key")
		}
		return err
	})
	return k, err
}

// ListTracingKeys returns the key pairs in scope, oldest first.
func (db *DB) ListTracingKeys(ctx context.Context) ([]tracing.Key, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []tracing.Key
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+tracingKeyColumns+` FROM tracing_keys WHERE `+cond+
			` ORDER BY created_at, id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k tracing.Key
			if err := scanTracingKey(rows, &k); err != nil {
				return err
			}
			out = append(out, k)
		}
		return rows.Err()
	})
	return out, err
}

// DeleteTracingKey removes a key pair in scope, or is ENOTFOUND.
func (db *DB) DeleteTracingKey(ctx context.Context, id string) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM tracing_keys WHERE id = ? AND `+cond, append([]any{id}, args...)...)
		if err == nil && n == 0 {
			err = nodus.Errorf(nodus.ENOTFOUND, "tracing key %s not found", id)
		}
		return err
	})
}

// TouchTracingKey records when a key pair in scope was last used.
func (db *DB) TouchTracingKey(ctx context.Context, id string, at time.Time) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `UPDATE tracing_keys SET last_used_at = ? WHERE id = ? AND `+cond,
			append([]any{at, id}, args...)...)
		return err
	})
}

// DeleteTracingTenant removes every tracing row of the scoped tenant in
// one transaction. Running it again is a no-op.
func (db *DB) DeleteTracingTenant(ctx context.Context) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		for _, table := range []string{"scores", "observations", "traces", "ingestion_events", "tracing_keys", "tracing_settings", "trace_sessions", "trace_users",
			"trace_rollups", "trace_rollup_dirty", "trace_rollup_months", "trace_rollup_dirty_months"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tenantID); err != nil {
				return err
			}
		}
		return nil
	})
}
