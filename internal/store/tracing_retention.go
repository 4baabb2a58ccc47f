package store

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the retention of traces (migration tracing 0002): a
// tenant's setting, and the pruning the periodic job runs.

// TracingRetention returns the scoped tenant's retention in days, 0 when
// it keeps its traces (or has never set one).
func (db *DB) TracingRetention(ctx context.Context) (int, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return 0, err
	}
	var days int
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT retention_days FROM tracing_settings WHERE tenant_id = ?`, tenantID).Scan(&days)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return days, err
}

// SetTracingRetention sets the scoped tenant's retention in days.
func (db *DB) SetTracingRetention(ctx context.Context, days int, at time.Time) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tracing_settings (tenant_id, retention_days, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET retention_days = excluded.retention_days, updated_at = excluded.updated_at`,
			tenantID, days, at)
		return err
	})
}

// pruneBatch bounds the traces (or envelope ids) one transaction deletes,
// so pruning a large backlog never holds the writer for long.
const pruneBatch = 1000

// PruneTraces deletes, for every tenant with a retention, its traces whose
// timestamp is older than now less that many days, with their
// observations and scores, and every tenant's envelope ids received before
// dedupBefore. It needs the all-tenants scope and returns how many traces
// it deleted.
func (db *DB) PruneTraces(ctx context.Context, now, dedupBefore time.Time) (int, error) {
	if err := requireAllTenants(ctx); err != nil {
		return 0, err
	}
	type setting struct {
		tenant string
		days   int
	}
	var settings []setting
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT tenant_id, retention_days FROM tracing_settings WHERE retention_days > 0`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s setting
			if err := rows.Scan(&s.tenant, &s.days); err != nil {
				return err
			}
			settings = append(settings, s)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, s := range settings {
		before := now.Add(-time.Duration(s.days) * 24 * time.Hour)
		for {
			n, err := db.pruneTenantTraces(ctx, s.tenant, before)
			deleted += n
			if err != nil {
				return deleted, err
			}
			if n < pruneBatch {
				break
			}
			if err := ctx.Err(); err != nil {
				return deleted, err
			}
		}
	}
	for {
		var n int64
		err := db.Write(ctx, func(tx *Tx) error {
			var err error
			n, err = tx.Exec(ctx, `DELETE FROM ingestion_events WHERE (tenant_id, event_id) IN
				(SELECT tenant_id, event_id FROM ingestion_events WHERE received_at < ? LIMIT ?)`, dedupBefore, pruneBatch)
			return err
		})
		if err != nil {
			return deleted, err
		}
		if n < pruneBatch {
			return deleted, nil
		}
	}
}

// pruneTenantTraces deletes up to pruneBatch of a tenant's traces older
// than before, with their observations and scores, in one transaction.
func (db *DB) pruneTenantTraces(ctx context.Context, tenantID string, before time.Time) (int, error) {
	n := 0
	err := db.Write(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, session_id, user_id FROM traces WHERE tenant_id = ? AND timestamp < ? LIMIT ?`,
			tenantID, before, pruneBatch)
		if err != nil {
			return err
		}
		var ids []any
		// The sessions and users the deleted traces belonged to, settled
		// after them.
		sessions, users := map[string]bool{}, map[string]bool{}
		for rows.Next() {
			var id, session, user string
			if err := rows.Scan(&id, &session, &user); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			sessions[session], users[user] = true, true
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		n = len(ids)
		if err := markRollupsOfTraces(ctx, tx, tenantID, ids); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM scores WHERE tenant_id = ? AND trace_id IN (` + placeholders(len(ids)) + `)`,
			`DELETE FROM observations WHERE tenant_id = ? AND trace_id IN (` + placeholders(len(ids)) + `)`,
			`DELETE FROM traces WHERE tenant_id = ? AND id IN (` + placeholders(len(ids)) + `)`,
		} {
			if _, err := tx.Exec(ctx, q, append([]any{tenantID}, ids...)...); err != nil {
				return err
			}
		}
		delete(sessions, "")
		delete(users, "")
		return settleTraceGroups(ctx, tx, tenantID, slices.Sorted(maps.Keys(sessions)), slices.Sorted(maps.Keys(users)))
	})
	return n, err
}
