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

// This file holds the rollups of tracing (migrations tracing 0005 and
// 0009; see tracing/rollup.go): marking the (tenant, day)s a write
// touched, the job's rebuild of a marked day and of a marked month (from
// its days' rows: trace_rollup_months), and the reads aggregates are made
// of. Months are marked by triggers on trace_rollups, so whatever writes a
// day's rows marks its month.
//
// A mark is an upsert that replaces the day's token with a new one, so
// the rebuild can tell whether the day was marked again while it read:
// it clears the mark only when the token is still the one it listed
// before reading. Marking with DO NOTHING would let a batch committed
// during a rebuild lose its mark. On PostgreSQL the upsert locks the
// mark's row until the batch commits; afterIngest runs last in the batch,
// so concurrent batches of one tenant and day wait on each other only for
// their commits, and the days are marked in order so they cannot
// deadlock.

// rolledUpTypes is the observations rollups add up: generations and
// embeddings, the types with usage and cost. Written as the predicate of
// the partial index observations_generation_start (tracing migration
// 0008), so both engines read the index.
const rolledUpTypes = `type IN ('GENERATION', 'EMBEDDING')`

// rollupChunk bounds the rows (and so the placeholders) of one statement.
const rollupChunk = 128

// markRollupsOfBatch marks the days a batch's rows bear on: each
// observation's start day (whatever its type, as an update may have
// turned a generation into something else) and, for one the batch moved
// to another day, the day it left; and for each trace the days of its
// stored generations, whose user and chatbot come from it.
func markRollupsOfBatch(ctx context.Context, tx *Tx, tenantID string, b *ingested) error {
	days := map[string]bool{}
	for i := range b.observations {
		days[tracing.DayOf(b.observations[i].StartTime)] = true
	}
	for _, at := range b.movedFromDays {
		days[tracing.DayOf(at)] = true
	}
	// A trace's generations count for its user (and chatbot), so a
	// patched trace marks the days of all of them; a trace new with the
	// batch has them all in the batch.
	traceIDs := map[string]bool{}
	for i := range b.traces {
		if !b.summarized[b.traces[i].ID] {
			traceIDs[b.traces[i].ID] = true
		}
	}
	if err := generationDays(ctx, tx, tenantID, slices.Sorted(maps.Keys(traceIDs)), days); err != nil {
		return err
	}
	return markRollupDays(ctx, tx, tenantID, days)
}

// markRollupsOfTraces marks the days of the generations of traces about
// to be deleted (retention), so their figures leave the rollups too.
func markRollupsOfTraces(ctx context.Context, tx *Tx, tenantID string, traceIDs []any) error {
	ids := make([]string, len(traceIDs))
	for i, id := range traceIDs {
		ids[i], _ = id.(string)
	}
	days := map[string]bool{}
	if err := generationDays(ctx, tx, tenantID, ids, days); err != nil {
		return err
	}
	return markRollupDays(ctx, tx, tenantID, days)
}

// generationDays adds to days the start days of the generations of
// traces (by the index on (tenant_id, trace_id)).
func generationDays(ctx context.Context, tx *Tx, tenantID string, traceIDs []string, days map[string]bool) error {
	for chunk := range shapedChunks(traceIDs, rollupChunk) {
		args := make([]any, 0, len(chunk)+1)
		args = append(args, tenantID)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := tx.Query(ctx, `SELECT start_time FROM observations WHERE tenant_id = ? AND `+rolledUpTypes+`
			AND trace_id IN (`+placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var at time.Time
			if err := rows.Scan(&at); err != nil {
				rows.Close()
				return err
			}
			days[tracing.DayOf(at)] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// markRollupDays marks a tenant's days dirty with a fresh token.
func markRollupDays(ctx context.Context, tx *Tx, tenantID string, days map[string]bool) error {
	token := nodus.NewID()
	var sorted []string
	for d := range days {
		// A year outside 0001–9999 cannot be a day of the table (nor of
		// any query): leave it rather than fail the batch.
		if len(d) == len(tracing.DayFormat) {
			sorted = append(sorted, d)
		}
	}
	slices.Sort(sorted)
	for chunk := range shapedChunks(sorted, rollupChunk) {
		args := make([]any, 0, 3*len(chunk))
		values := make([]string, len(chunk))
		for i, d := range chunk {
			values[i] = "(?, ?, ?)"
			args = append(args, tenantID, d, token)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO trace_rollup_dirty (tenant_id, day, token) VALUES `+
			strings.Join(values, ", ")+` ON CONFLICT (tenant_id, day) DO UPDATE SET token = excluded.token`, args...); err != nil {
			return err
		}
	}
	return nil
}

// RollupTraces rebuilds up to limit marked days, newest first, of every
// tenant; see tracing.RollupStore.
func (db *DB) RollupTraces(ctx context.Context, limit int) (int, error) {
	return db.rebuildMarked(ctx, db.rebuildRollupDay,
		`SELECT tenant_id, day, token FROM trace_rollup_dirty ORDER BY day DESC, tenant_id LIMIT ?`, limit)
}

// rebuildMarked lists marks (tenant, period, token) with query, across
// tenants, then rebuilds each in turn; it returns how many it rebuilt.
func (db *DB) rebuildMarked(ctx context.Context, rebuild func(ctx context.Context, tenantID, period, token string) error,
	query string, args ...any) (int, error) {
	if err := requireAllTenants(ctx); err != nil {
		return 0, err
	}
	type mark struct{ tenant, period, token string }
	var marks []mark
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m mark
			if err := rows.Scan(&m.tenant, &m.period, &m.token); err != nil {
				return err
			}
			marks = append(marks, m)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	for i, m := range marks {
		if err := rebuild(ctx, m.tenant, m.period, m.token); err != nil {
			return i, err
		}
	}
	return len(marks), nil
}

// rebuildRollupDay replaces a tenant's rollup rows of a day by what its
// generations add up to now. It reads outside the write transaction, so
// a large day never holds SQLite's one writer while it is read; the
// token, listed before the read, tells whether the read may have missed
// a batch.
func (db *DB) rebuildRollupDay(ctx context.Context, tenantID, day, token string) error {
	start, err := time.Parse(tracing.DayFormat, day)
	if err != nil {
		return nodus.Errorf(nodus.EINTERNAL, "rollup day %q: %v", day, err)
	}
	b := tracing.NewPeriodRollup(start)
	err = db.Read(ctx, func(tx *Tx) error {
		// The literal types match the partial index on generations.
		rows, err := tx.Query(ctx, `SELECT o.trace_id, o.model, o.level, o.start_time, o.end_time,
			o.completion_start_time, o.usage_details, o.cost_details, COALESCE(t.user_id, ''), t.metadata
			FROM observations o LEFT JOIN traces t ON t.tenant_id = o.tenant_id AND t.id = o.trace_id
			WHERE o.tenant_id = ? AND o.`+rolledUpTypes+` AND o.start_time >= ? AND o.start_time < ?`,
			tenantID, start, start.Add(24*time.Hour))
		if err != nil {
			return err
		}
		defer rows.Close()
		// A trace's generations share its chatbot: parse its metadata once.
		chatbots := map[string]string{}
		for rows.Next() {
			var o tracing.Observation
			var usage, cost, userID string
			var metadata *string
			if err := rows.Scan(&o.TraceID, &o.Model, &o.Level, &o.StartTime, &o.EndTime, &o.CompletionStartTime,
				&usage, &cost, &userID, &metadata); err != nil {
				return err
			}
			if err := decodeJSON("observation usage_details", usage, &o.UsageDetails); err != nil {
				return err
			}
			if err := decodeJSON("observation cost_details", cost, &o.CostDetails); err != nil {
				return err
			}
			chatbot, ok := chatbots[o.TraceID]
			if !ok {
				chatbot = tracing.ChatbotID(rawOf(metadata))
				chatbots[o.TraceID] = chatbot
			}
			b.Add(&o, userID, chatbot)
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		// Lock the mark: two runs rebuilding one day take turns, and one
		// that finds the mark gone leaves the day to the run that cleared it.
		var current string
		err := tx.QueryRow(ctx, `SELECT token FROM trace_rollup_dirty WHERE tenant_id = ? AND day = ?`+
			tx.Dialect().ForUpdate(), tenantID, day).Scan(&current)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := replaceRollups(ctx, tx, dayRollups, tenantID, day, b); err != nil {
			return err
		}
		if current != token {
			return nil // marked again meanwhile: the next run reads again
		}
		_, err = tx.Exec(ctx, `DELETE FROM trace_rollup_dirty WHERE tenant_id = ? AND day = ? AND token = ?`,
			tenantID, day, token)
		return err
	})
}

// rollupTable is where a period's rows are kept: trace_rollups for days,
// trace_rollup_months for months.
type rollupTable struct{ name, period string }

var (
	dayRollups   = rollupTable{"trace_rollups", "day"}
	monthRollups = rollupTable{"trace_rollup_months", "month"}
)

// replaceRollups replaces a tenant's rows of a day (or month) in t by
// b's, at every grain. Writing day rows marks their month (the triggers
// of tracing migration 0009).
func replaceRollups(ctx context.Context, tx *Tx, t rollupTable, tenantID, period string, b *tracing.PeriodRollup) error {
	if _, err := tx.Exec(ctx, `DELETE FROM `+t.name+` WHERE tenant_id = ? AND `+t.period+` = ?`, tenantID, period); err != nil {
		return err
	}
	for _, grain := range tracing.Grains() {
		if err := insertRollups(ctx, tx, t, tenantID, grain, period, b.Rows(grain)); err != nil {
			return err
		}
	}
	return nil
}

// RollupTraceMonths rebuilds up to limit marked months that start before
// before, newest first, of every tenant; see tracing.RollupStore.
func (db *DB) RollupTraceMonths(ctx context.Context, before time.Time, limit int) (int, error) {
	return db.rebuildMarked(ctx, db.rebuildRollupMonth, `SELECT tenant_id, month, token FROM trace_rollup_dirty_months
		WHERE month < ? ORDER BY month DESC, tenant_id LIMIT ?`, tracing.DayOf(before), limit)
}

// rebuildRollupMonth replaces a tenant's month rows by the sum of its
// days' rows, as rebuildRollupDay does a day from its generations: read
// outside the write transaction, the mark cleared only when its token is
// still the one listed before the read.
func (db *DB) rebuildRollupMonth(ctx context.Context, tenantID, month, token string) error {
	start, err := time.Parse(tracing.DayFormat, month)
	if err != nil || start.Day() != 1 {
		return nodus.Errorf(nodus.EINTERNAL, "rollup month %q is not a month's first day", month)
	}
	b := tracing.NewPeriodRollup(start)
	err = db.Read(ctx, func(tx *Tx) error {
		for _, grain := range tracing.Grains() {
			err := scanRollupRows(ctx, tx, dayRollups, tenantID, grain, start, start.AddDate(0, 1, -1), func(r *tracing.Rollup) error {
				b.AddRow(grain, r)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var current string
		err := tx.QueryRow(ctx, `SELECT token FROM trace_rollup_dirty_months WHERE tenant_id = ? AND month = ?`+
			tx.Dialect().ForUpdate(), tenantID, month).Scan(&current)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // rebuilt by another run, or the tenant purged
		}
		if err != nil {
			return err
		}
		if err := replaceRollups(ctx, tx, monthRollups, tenantID, month, b); err != nil {
			return err
		}
		if current != token {
			return nil // a day rewritten meanwhile: the next run reads again
		}
		_, err = tx.Exec(ctx, `DELETE FROM trace_rollup_dirty_months WHERE tenant_id = ? AND month = ? AND token = ?`,
			tenantID, month, token)
		return err
	})
}

// DirtyRollupMonths returns the scoped tenant's marked months from from
// to to; see tracing.RollupStore.
func (db *DB) DirtyRollupMonths(ctx context.Context, from, to time.Time) ([]time.Time, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return nil, err
	}
	var months []time.Time
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT month FROM trace_rollup_dirty_months WHERE tenant_id = ? AND month >= ? AND month <= ?`,
			tenantID, tracing.DayOf(from), tracing.DayOf(to))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var month string
			if err := rows.Scan(&month); err != nil {
				return err
			}
			m, err := time.Parse(tracing.DayFormat, month)
			if err != nil {
				return nodus.Errorf(nodus.EINTERNAL, "rollup month %q: %v", month, err)
			}
			months = append(months, m)
		}
		return rows.Err()
	})
	return months, err
}

const rollupFigures = `requests, errors, input_tokens, output_tokens, total_tokens, cost, latency_sum_ms, latency_count,
	ttft_sum_ms, ttft_count, latency_hist`

func insertRollups(ctx context.Context, tx *Tx, t rollupTable, tenantID, grain, period string, rows []*tracing.Rollup) error {
	row := "(" + placeholders(17) + ")"
	for chunk := range shapedChunks(rows, rollupChunk) {
		args := make([]any, 0, 17*len(chunk))
		values := make([]string, len(chunk))
		for i, r := range chunk {
			values[i] = row
			args = append(args, tenantID, grain, period, r.Model, r.UserID, r.ChatbotID, r.Requests, r.Errors, r.InputTokens,
				r.OutputTokens, r.TotalTokens, r.Cost, r.LatencySumMs, r.LatencyCount, r.TTFTSumMs, r.TTFTCount,
				r.Latency.String())
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+t.name+` (tenant_id, grain, `+t.period+`, model, user_id, chatbot_id, `+
			rollupFigures+`) VALUES `+strings.Join(values, ", "), args...); err != nil {
			return err
		}
	}
	return nil
}

// ScanRollups calls fn with each of the scoped tenant's rollup rows of
// a grain for the days from to to; see tracing.RollupStore.
func (db *DB) ScanRollups(ctx context.Context, grain string, from, to time.Time, fn func(*tracing.Rollup) error) error {
	return db.scanRollups(ctx, dayRollups, grain, from, to, fn)
}

// ScanMonthRollups calls fn with each of the scoped tenant's month rows of
// a grain for the months from to to; see tracing.RollupStore.
func (db *DB) ScanMonthRollups(ctx context.Context, grain string, from, to time.Time, fn func(*tracing.Rollup) error) error {
	return db.scanRollups(ctx, monthRollups, grain, tracing.MonthOf(from), tracing.MonthOf(to), fn)
}

func (db *DB) scanRollups(ctx context.Context, t rollupTable, grain string, from, to time.Time, fn func(*tracing.Rollup) error) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Read(ctx, func(tx *Tx) error {
		return scanRollupRows(ctx, tx, t, tenantID, grain, from, to, fn)
	})
}

// scanRollupRows calls fn with each of a tenant's rows of a grain in t
// from one day (or month) to another, in tx. The *Rollup is reused.
func scanRollupRows(ctx context.Context, tx *Tx, t rollupTable, tenantID, grain string, from, to time.Time,
	fn func(*tracing.Rollup) error) error {
	rows, err := tx.Query(ctx, `SELECT `+t.period+`, model, user_id, chatbot_id, `+rollupFigures+` FROM `+t.name+`
		WHERE tenant_id = ? AND grain = ? AND `+t.period+` >= ? AND `+t.period+` <= ?`,
		tenantID, grain, tracing.DayOf(from), tracing.DayOf(to))
	if err != nil {
		return err
	}
	defer rows.Close()
	var r tracing.Rollup
	var day, lastDay, hist string
	for rows.Next() {
		if err := rows.Scan(&day, &r.Model, &r.UserID, &r.ChatbotID, &r.Requests, &r.Errors, &r.InputTokens,
			&r.OutputTokens, &r.TotalTokens, &r.Cost, &r.LatencySumMs, &r.LatencyCount, &r.TTFTSumMs, &r.TTFTCount,
			&hist); err != nil {
			return err
		}
		if day != lastDay { // neighbouring rows mostly share a day: parse it once
			if r.Day, err = time.Parse(tracing.DayFormat, day); err != nil {
				return nodus.Errorf(nodus.EINTERNAL, "rollup day %q: %v", day, err)
			}
			lastDay = day
		}
		r.Latency.Reset()
		if err := r.Latency.AddEncoded(hist); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}
