package store

import (
	"context"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of the gateway's spend log: the batched write
// that inserts logs, adds them to the daily rollups and settles budgets in
// one transaction, and the reads and retention of the logs.

// maxChunkRows bounds the rows of one multi-row statement: 256 spend-log
// rows are 6,144 parameters, well under SQLite's limit of 32,766.
const maxChunkRows = 256

// spendChunkRows bounds the rows of one spend-log insert, whose 24
// columns make 256 rows some 19 KB of SQL: past stmtCacheMaxQuery, so it
// was parsed again for every batch (2% of nodus's CPU under load). 128
// rows stay prepared.
const spendChunkRows = 128

// cleanText makes free text storable on both engines: PostgreSQL refuses
// NUL and invalid UTF-8 in TEXT, and one such value (a client's "user"
// field) must not make a whole batch of spend logs fail forever.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

func cleanSpendLog(l *gateway.SpendLog) {
	for _, s := range []*string{&l.RequestID, &l.ClientRequestID, &l.TenantID, &l.KeyID, &l.UserID, &l.EndUser,
		&l.CallType, &l.Model, &l.DeploymentID, &l.Provider, &l.UpstreamModel, &l.Status, &l.ErrorClass, &l.TraceID} {
		*s = cleanText(*s)
	}
}

const spendColumns = `request_id, tenant_id, key_id, user_id, end_user, call_type, model, deployment_id, provider,
	upstream_model, prompt_tokens, completion_tokens, cached_tokens, usage_estimated, cost_micros, started_at, ended_at,
	ttft_ms, status, status_code, error_class, trace_id, metadata, client_request_id`

const spendColumnCount = 24

// spendArgs appends a log's column values to args.
func spendArgs(args []any, l *gateway.SpendLog) []any {
	// The metadata is a copy of the key's, valid JSON when the key was
	// stored; should it not encode, the row is kept without it rather than
	// refused with its cost.
	meta := "{}"
	if len(l.Metadata) > 0 {
		if b, err := json.Marshal(l.Metadata); err == nil {
			meta = string(b)
		}
	}
	return append(args, l.RequestID, l.TenantID, l.KeyID, l.UserID, l.EndUser, l.CallType, l.Model, l.DeploymentID,
		l.Provider, l.UpstreamModel, l.PromptTokens, l.CompletionTokens, l.CachedTokens, l.UsageEstimated, l.CostMicros,
		l.StartedAt, l.EndedAt, millis(l.TTFT), l.Status, int64(l.StatusCode), l.ErrorClass, l.TraceID, meta,
		l.ClientRequestID)
}

func scanSpendLog(row interface{ Scan(...any) error }, l *gateway.SpendLog) error {
	var ttft, code int64
	var meta string
	if err := row.Scan(&l.RequestID, &l.TenantID, &l.KeyID, &l.UserID, &l.EndUser, &l.CallType, &l.Model,
		&l.DeploymentID, &l.Provider, &l.UpstreamModel, &l.PromptTokens, &l.CompletionTokens, &l.CachedTokens,
		&l.UsageEstimated, &l.CostMicros, &l.StartedAt, &l.EndedAt, &ttft, &l.Status, &code, &l.ErrorClass,
		&l.TraceID, &meta, &l.ClientRequestID); err != nil {
		return err
	}
	l.TTFT, l.StatusCode = fromMillis(ttft), int(code)
	return decodeJSON("spend log metadata", meta, &l.Metadata)
}

// WriteSpend inserts spend logs of any tenants (no scope needed), adds the
// rows it inserted to the daily rollups and applies the budget increments,
// in one transaction. A row whose request id is already stored is skipped
// with its rollup share, so a retried batch counts once.
//
// Increments are per budget for the whole batch, so a batch only partly
// stored before (a request id reused across batches; the spend writer
// retries a batch unchanged, so it never sends one) has them scaled by the
// share of its cost that was new.
//
// Rows are inserted in request-id order and rollups and budgets updated in
// key order, so concurrent batches on PostgreSQL lock rows in one order
// and cannot deadlock.
func (db *DB) WriteSpend(ctx context.Context, logs []gateway.SpendLog, budgets []gateway.BudgetSpend) error {
	ctx = crossTenant(ctx)
	if len(logs) == 0 && len(budgets) == 0 {
		return nil
	}
	rows := slices.Clone(logs)
	for i := range rows {
		cleanSpendLog(&rows[i])
	}
	slices.SortFunc(rows, func(a, b gateway.SpendLog) int { return strings.Compare(a.RequestID, b.RequestID) })
	return db.Write(ctx, func(tx *Tx) error {
		inserted, err := insertSpendLogs(ctx, tx, rows)
		if err != nil {
			return err
		}
		newRows := keepInserted(rows, inserted)
		if err := upsertDailySpend(ctx, tx, rollUp(newRows)); err != nil {
			return err
		}
		return addBudgetSpend(ctx, tx, budgetShare(budgets, rows, newRows))
	})
}

// insertSpendLogs inserts rows in multi-row statements, skipping request
// ids already stored, and returns the ids it inserted.
func insertSpendLogs(ctx context.Context, tx *Tx, rows []gateway.SpendLog) (map[string]bool, error) {
	inserted := make(map[string]bool, len(rows))
	args := make([]any, 0, min(len(rows), spendChunkRows)*spendColumnCount)
	for _, n := range chunkSizes(len(rows), spendChunkRows) {
		args = args[:0]
		keys := make([]string, n)
		for i := range rows[:n] {
			args = spendArgs(args, &rows[i])
			keys[i] = rows[i].RequestID
		}
		if err := insertNew(ctx, tx, spendInsertSQL(n), ` RETURNING request_id`, args, keys, inserted); err != nil {
			return nil, err
		}
		rows = rows[n:]
	}
	return inserted, nil
}

// spendInsertSQL inserts n spend-log rows, skipping those whose request
// id is stored already (insertNew learns which).
func spendInsertSQL(n int) string {
	return `INSERT INTO gateway_spend_logs (` + spendColumns + `) VALUES ` + valuesSQL(n, spendColumnCount) +
		` ON CONFLICT (request_id) DO NOTHING`
}

// keepInserted returns the rows the insert stored: those whose id it
// returned, each id once (a batch may hold an id twice).
func keepInserted(rows []gateway.SpendLog, inserted map[string]bool) []gateway.SpendLog {
	out := make([]gateway.SpendLog, 0, len(inserted))
	for _, r := range rows {
		if inserted[r.RequestID] {
			out = append(out, r)
			delete(inserted, r.RequestID)
		}
	}
	return out
}

type dailyKey struct{ tenant, day, key, user, model, provider string }

// rollUp sums rows into daily rollup rows, sorted by their key. A
// cancelled request is neither a success nor a failure.
func rollUp(rows []gateway.SpendLog) []gateway.DailySpend {
	sums := make(map[dailyKey]*gateway.DailySpend)
	for _, r := range rows {
		k := dailyKey{r.TenantID, r.StartedAt.UTC().Format(time.DateOnly), r.KeyID, r.UserID, r.Model, r.Provider}
		d := sums[k]
		if d == nil {
			d = &gateway.DailySpend{TenantID: k.tenant, Day: k.day, KeyID: k.key, UserID: k.user, Model: k.model,
				Provider: k.provider}
			sums[k] = d
		}
		d.Requests++
		switch r.Status {
		case gateway.StatusSuccess:
			d.Successes++
		case gateway.StatusError:
			d.Failures++
		}
		d.PromptTokens += r.PromptTokens
		d.CompletionTokens += r.CompletionTokens
		d.CachedTokens += r.CachedTokens
		d.CostMicros += r.CostMicros
	}
	out := make([]gateway.DailySpend, 0, len(sums))
	for _, d := range sums {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b gateway.DailySpend) int {
		for _, c := range [][2]string{{a.TenantID, b.TenantID}, {a.Day, b.Day}, {a.KeyID, b.KeyID},
			{a.UserID, b.UserID}, {a.Model, b.Model}, {a.Provider, b.Provider}} {
			if n := strings.Compare(c[0], c[1]); n != 0 {
				return n
			}
		}
		return 0
	})
	return out
}

const dailyColumns = `tenant_id, day, key_id, user_id, model, provider, requests, successes, failures, prompt_tokens,
	completion_tokens, cached_tokens, cost_micros`

// upsertDailySpend adds rollup rows to the stored ones.
func upsertDailySpend(ctx context.Context, tx *Tx, days []gateway.DailySpend) error {
	for _, n := range chunkSizes(len(days), maxChunkRows) {
		args := make([]any, 0, n*13)
		for _, d := range days[:n] {
			args = append(args, d.TenantID, d.Day, d.KeyID, d.UserID, d.Model, d.Provider, d.Requests, d.Successes,
				d.Failures, d.PromptTokens, d.CompletionTokens, d.CachedTokens, d.CostMicros)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO gateway_daily_spend (`+dailyColumns+`) VALUES `+valuesSQL(n, 13)+`
			ON CONFLICT (tenant_id, day, key_id, user_id, model, provider) DO UPDATE SET
			requests = gateway_daily_spend.requests + excluded.requests,
			successes = gateway_daily_spend.successes + excluded.successes,
			failures = gateway_daily_spend.failures + excluded.failures,
			prompt_tokens = gateway_daily_spend.prompt_tokens + excluded.prompt_tokens,
			completion_tokens = gateway_daily_spend.completion_tokens + excluded.completion_tokens,
			cached_tokens = gateway_daily_spend.cached_tokens + excluded.cached_tokens,
			cost_micros = gateway_daily_spend.cost_micros + excluded.cost_micros`, args...); err != nil {
			return err
		}
		days = days[n:]
	}
	return nil
}

// budgetShare merges the increments by budget, sorted by id, and scales
// them to the part of the batch that was new (see WriteSpend): all of it
// when every row was inserted, none when none was.
func budgetShare(budgets []gateway.BudgetSpend, rows, newRows []gateway.SpendLog) []gateway.BudgetSpend {
	if len(newRows) == 0 && len(rows) > 0 {
		return nil
	}
	sums := make(map[string]int64, len(budgets))
	for _, b := range budgets {
		sums[b.BudgetID] += b.Micros
	}
	var total, fresh int64
	for _, r := range rows {
		total += r.CostMicros
	}
	for _, r := range newRows {
		fresh += r.CostMicros
	}
	partial := len(newRows) < len(rows) && total != 0
	out := make([]gateway.BudgetSpend, 0, len(sums))
	for id, micros := range sums {
		if partial {
			// micros × fresh / total can overflow int64; this path is rare.
			v := new(big.Int).Mul(big.NewInt(micros), big.NewInt(fresh))
			micros = v.Quo(v, big.NewInt(total)).Int64()
		}
		if micros != 0 {
			out = append(out, gateway.BudgetSpend{BudgetID: id, Micros: micros})
		}
	}
	slices.SortFunc(out, func(a, b gateway.BudgetSpend) int { return strings.Compare(a.BudgetID, b.BudgetID) })
	return out
}

// addBudgetSpend adds increments to budgets' spend, many per statement. A
// budget deleted meanwhile is skipped. The casts give PostgreSQL the types
// of the VALUES list, whose columns both engines name column1, column2.
func addBudgetSpend(ctx context.Context, tx *Tx, incs []gateway.BudgetSpend) error {
	for _, n := range chunkSizes(len(incs), maxChunkRows) {
		args := make([]any, 0, 2*n)
		var values strings.Builder
		for i, b := range incs[:n] {
			if i > 0 {
				values.WriteString(", ")
			}
			values.WriteString("(CAST(? AS TEXT), CAST(? AS BIGINT))")
			args = append(args, b.BudgetID, b.Micros)
		}
		if _, err := tx.Exec(ctx, `UPDATE gateway_budgets SET spend = gateway_budgets.spend + v.column2
			FROM (VALUES `+values.String()+`) AS v WHERE gateway_budgets.id = v.column1`, args...); err != nil {
			return err
		}
		incs = incs[n:]
	}
	return nil
}

// The spend cursor is the (started_at, request_id) of the last row of a
// page, which is unique and the order of the listing.
func encodeSpendCursor(l gateway.SpendLog) string { return timeKey(l.StartedAt, l.RequestID) }

// ListSpend returns a page of the spend logs in scope, newest first, with
// the filter's conditions.
func (db *DB) ListSpend(ctx context.Context, f gateway.SpendFilter, cursor string, limit int) ([]gateway.SpendLog, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + spendColumns + ` FROM gateway_spend_logs WHERE ` + cond
	if !f.From.IsZero() {
		q += ` AND started_at >= ?`
		args = append(args, f.From)
	}
	if !f.To.IsZero() {
		q += ` AND started_at < ?`
		args = append(args, f.To)
	}
	for _, eq := range []struct{ col, v string }{{"key_id", f.KeyID}, {"user_id", f.UserID}, {"model", f.Model},
		{"status", f.Status}, {"client_request_id", f.ClientRequestID}} {
		if eq.v != "" {
			q += ` AND ` + eq.col + ` = ?`
			args = append(args, eq.v)
		}
	}
	if cursor != "" {
		at, id, err := decodeTimeCursor(cursor, anyID)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (started_at < ? OR (started_at = ? AND request_id < ?))`
		args = append(args, at, at, id)
	}
	q += ` ORDER BY started_at DESC, request_id DESC LIMIT ?`
	return listPage(ctx, db, q, args, pageSize(limit), scanSpendLog, encodeSpendCursor)
}

// ListDailySpend returns the rollup rows in scope for days in [from, to]
// (YYYY-MM-DD; "" leaves that end open), by day and then key, user, model
// and provider.
func (db *DB) ListDailySpend(ctx context.Context, from, to string) ([]gateway.DailySpend, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + dailyColumns + ` FROM gateway_daily_spend WHERE ` + cond
	for _, bound := range []struct{ op, day string }{{">=", from}, {"<=", to}} {
		if bound.day == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, bound.day); err != nil {
			return nil, nodus.Errorf(nodus.EINVALID, "day %q is not YYYY-MM-DD", bound.day)
		}
		q += ` AND day ` + bound.op + ` ?`
		args = append(args, bound.day)
	}
	q += ` ORDER BY day, tenant_id, key_id, user_id, model, provider`
	return listAll(ctx, db, q, args, func(row interface{ Scan(...any) error }, d *gateway.DailySpend) error {
		return row.Scan(&d.TenantID, &d.Day, &d.KeyID, &d.UserID, &d.Model, &d.Provider, &d.Requests, &d.Successes,
			&d.Failures, &d.PromptTokens, &d.CompletionTokens, &d.CachedTokens, &d.CostMicros)
	})
}

// DeleteSpendBefore removes up to limit of the oldest spend logs in scope
// that started before t, and returns how many. Retention calls it until it
// returns less than limit: small transactions keep the write lock short
// and memory flat. The daily rollups are kept.
func (db *DB) DeleteSpendBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nodus.Errorf(nodus.EINVALID, "limit must be positive")
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		n, err = tx.Exec(ctx, `DELETE FROM gateway_spend_logs WHERE request_id IN (SELECT request_id FROM gateway_spend_logs
			WHERE `+cond+` AND started_at < ? ORDER BY started_at LIMIT ?)`, append(args, t, limit)...)
		return err
	})
	return int(n), err
}
