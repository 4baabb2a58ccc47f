package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of the LLM gateway's configuration in the gateway
// database: deployments, router settings, virtual keys, budgets and price
// overrides. gateway_spend.go holds the spend log and its rollups.
//
// Durations are stored as integer milliseconds. JSON columns hold "[]" or
// "{}" when empty, and an empty list or map reads back as nil so a record
// round-trips unchanged.

// The store implements the gateway database.
var _ gateway.Store = (*DB)(nil)

// createTenant returns the scoped tenant a new record belongs to, refusing
// a record that names another tenant: that is a bug in the caller, and
// silently moving the record would hide it.
func createTenant(ctx context.Context, recordTenant string) (string, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return "", err
	}
	if recordTenant != "" && recordTenant != tenantID {
		return "", nodus.Errorf(nodus.EINTERNAL, "record of another tenant")
	}
	return tenantID, nil
}

func requireID(kind, id string) error {
	if id == "" {
		return nodus.Errorf(nodus.EINVALID, "%s id is required", kind)
	}
	return nil
}

func millis(d time.Duration) int64 { return d.Milliseconds() }

func fromMillis(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// encodeJSON stores v as JSON; empty stands for nil or empty values.
func encodeJSON(v any, empty string, isEmpty bool) (string, error) {
	if isEmpty {
		return empty, nil
	}
	if b, ok := appendFast(nil, v); ok {
		return string(b), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", nodus.WrapError(err, nodus.EINVALID, "invalid JSON value")
	}
	return string(b), nil
}

// decodeJSON reads a JSON column into v, leaving v nil for "[]" and "{}".
func decodeJSON(col, s string, v any) error {
	if s == "" || s == "[]" || s == "{}" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("store: gateway %s: %w", col, err)
	}
	return nil
}

// blobArg passes an empty hash as NULL.
func blobArg(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Deployments.

const deploymentColumns = `id, tenant_id, model_name, provider, upstream_model, base_url, api_key_handle, api_version, mode,
	weight, rpm, tpm, max_concurrency, timeout_ms, is_active, created_at, created_by, updated_at, updated_by`

func scanDeployment(row interface{ Scan(...any) error }, d *gateway.Deployment) error {
	var timeout int64
	if err := row.Scan(&d.ID, &d.TenantID, &d.ModelName, &d.Provider, &d.UpstreamModel, &d.BaseURL, &d.APIKeyHandle,
		&d.APIVersion, &d.Mode, &d.Weight, &d.RPM, &d.TPM, &d.MaxConcurrency, &timeout, &d.IsActive,
		&d.CreatedAt, &d.CreatedBy, &d.UpdatedAt, &d.UpdatedBy); err != nil {
		return err
	}
	d.Timeout = fromMillis(timeout)
	return nil
}

func errDeploymentNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "deployment %s not found", id)
}

// CreateDeployment stores a deployment of the scoped tenant.
func (db *DB) CreateDeployment(ctx context.Context, d gateway.Deployment) error {
	tenantID, err := createTenant(ctx, d.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("deployment", d.ID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO gateway_deployments (`+deploymentColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, tenantID, d.ModelName, d.Provider, d.UpstreamModel, d.BaseURL, d.APIKeyHandle, d.APIVersion, d.Mode,
			d.Weight, d.RPM, d.TPM, d.MaxConcurrency, millis(d.Timeout), d.IsActive, d.CreatedAt, d.CreatedBy,
			d.UpdatedAt, d.UpdatedBy)
		return err
	})
}

// FindDeployment returns a deployment in scope, or ENOTFOUND.
func (db *DB) FindDeployment(ctx context.Context, id string) (gateway.Deployment, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return gateway.Deployment{}, err
	}
	var d gateway.Deployment
	err = db.Read(ctx, func(tx *Tx) error {
		return scanDeployment(tx.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM gateway_deployments WHERE id = ? AND `+cond,
			append([]any{id}, args...)...), &d)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return d, errDeploymentNotFound(id)
	}
	return d, err
}

// ListDeployments returns the deployments in scope by model name, then id.
func (db *DB) ListDeployments(ctx context.Context) ([]gateway.Deployment, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	return listAll(ctx, db, `SELECT `+deploymentColumns+` FROM gateway_deployments WHERE `+cond+
		` ORDER BY model_name, id`, args, scanDeployment)
}

// UpdateDeployment replaces a deployment in scope; its tenant and creation
// stay as they were.
func (db *DB) UpdateDeployment(ctx context.Context, d gateway.Deployment) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `UPDATE gateway_deployments SET model_name = ?, provider = ?, upstream_model = ?, base_url = ?,
			api_key_handle = ?, api_version = ?, mode = ?, weight = ?, rpm = ?, tpm = ?, max_concurrency = ?, timeout_ms = ?,
			is_active = ?, updated_at = ?, updated_by = ? WHERE id = ? AND `+cond,
			append([]any{d.ModelName, d.Provider, d.UpstreamModel, d.BaseURL, d.APIKeyHandle, d.APIVersion, d.Mode,
				d.Weight, d.RPM, d.TPM, d.MaxConcurrency, millis(d.Timeout), d.IsActive, d.UpdatedAt, d.UpdatedBy, d.ID},
				args...)...)
		if err == nil && n == 0 {
			return errDeploymentNotFound(d.ID)
		}
		return err
	})
}

// DeleteDeployment removes a deployment in scope.
func (db *DB) DeleteDeployment(ctx context.Context, id string) error {
	return db.deleteByID(ctx, "gateway_deployments", id, errDeploymentNotFound)
}

// deleteByID removes the row id of table if it is in scope.
func (db *DB) deleteByID(ctx context.Context, table, id string, notFound func(string) error) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE id = ? AND `+cond, append([]any{id}, args...)...)
		if err == nil && n == 0 {
			return notFound(id)
		}
		return err
	})
}

// listAll reads every row of a query.
func listAll[T any](ctx context.Context, db *DB, query string, args []any,
	scan func(row interface{ Scan(...any) error }, item *T) error) ([]T, error) {
	var out []T
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var item T
			if err := scan(rows, &item); err != nil {
				return err
			}
			out = append(out, item)
		}
		return rows.Err()
	})
	return out, err
}

// Router settings.

// FindRouterSettings returns the scoped tenant's routing rules, or
// ENOTFOUND when it has none and the defaults apply.
func (db *DB) FindRouterSettings(ctx context.Context) (gateway.RouterSettings, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return gateway.RouterSettings{}, err
	}
	s := gateway.RouterSettings{TenantID: tenantID}
	var window, cooldown int64
	var fallbacks string
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT strategy, num_retries, allowed_fails, fail_window_ms, cooldown_ms, fallbacks,
			updated_at, updated_by FROM gateway_router_settings WHERE tenant_id = ?`, tenantID).
			Scan(&s.Strategy, &s.NumRetries, &s.AllowedFails, &window, &cooldown, &fallbacks, &s.UpdatedAt, &s.UpdatedBy)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return s, nodus.Errorf(nodus.ENOTFOUND, "no router settings")
	}
	if err != nil {
		return s, err
	}
	s.FailWindow, s.CooldownTime = fromMillis(window), fromMillis(cooldown)
	return s, decodeJSON("router settings fallbacks", fallbacks, &s.Fallbacks)
}

// UpdateRouterSettings creates or replaces the scoped tenant's routing
// rules.
func (db *DB) UpdateRouterSettings(ctx context.Context, s gateway.RouterSettings) error {
	tenantID, err := createTenant(ctx, s.TenantID)
	if err != nil {
		return err
	}
	fallbacks, err := encodeJSON(s.Fallbacks, "{}", len(s.Fallbacks) == 0)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO gateway_router_settings (tenant_id, strategy, num_retries, allowed_fails,
			fail_window_ms, cooldown_ms, fallbacks, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET strategy = excluded.strategy, num_retries = excluded.num_retries,
			allowed_fails = excluded.allowed_fails, fail_window_ms = excluded.fail_window_ms,
			cooldown_ms = excluded.cooldown_ms, fallbacks = excluded.fallbacks, updated_at = excluded.updated_at,
			updated_by = excluded.updated_by`,
			tenantID, s.Strategy, s.NumRetries, s.AllowedFails, millis(s.FailWindow), millis(s.CooldownTime), fallbacks,
			s.UpdatedAt, s.UpdatedBy)
		return err
	})
}

// Virtual keys.

const keyColumns = `id, tenant_id, name, hash, prefix, user_id, models, rpm, tpm, max_parallel, expires_at, metadata,
	status, previous_hash, previous_valid_until, created_at, created_by, updated_at, updated_by, last_used_at`

func scanKey(row interface{ Scan(...any) error }, k *gateway.Key) error {
	var models, meta string
	if err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Hash, &k.Prefix, &k.UserID, &models, &k.RPM, &k.TPM,
		&k.MaxParallel, &k.ExpiresAt, &meta, &k.Status, &k.PreviousHash, &k.PreviousValidUntil, &k.CreatedAt,
		&k.CreatedBy, &k.UpdatedAt, &k.UpdatedBy, &k.LastUsedAt); err != nil {
		return err
	}
	if len(k.PreviousHash) == 0 {
		k.PreviousHash = nil
	}
	if err := decodeJSON("key models", models, &k.Models); err != nil {
		return err
	}
	return decodeJSON("key metadata", meta, &k.Metadata)
}

// keyJSON encodes a key's JSON columns.
func keyJSON(k gateway.Key) (models, meta string, err error) {
	if models, err = encodeJSON(k.Models, "[]", len(k.Models) == 0); err != nil {
		return "", "", err
	}
	if meta, err = encodeJSON(k.Metadata, "{}", len(k.Metadata) == 0); err != nil {
		return "", "", err
	}
	return models, meta, nil
}

func errKeyNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "key %s not found", id)
}

// CreateKey stores a virtual key of the scoped tenant; ECONFLICT when its
// hash is taken.
func (db *DB) CreateKey(ctx context.Context, k gateway.Key) error {
	tenantID, err := createTenant(ctx, k.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("key", k.ID); err != nil {
		return err
	}
	if len(k.Hash) == 0 {
		return nodus.Errorf(nodus.EINVALID, "key hash is required")
	}
	models, meta, err := keyJSON(k)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO gateway_keys (`+keyColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, tenantID, k.Name, k.Hash, k.Prefix, k.UserID, models, k.RPM, k.TPM, k.MaxParallel, k.ExpiresAt, meta,
			k.Status, blobArg(k.PreviousHash), k.PreviousValidUntil, k.CreatedAt, k.CreatedBy, k.UpdatedAt, k.UpdatedBy,
			k.LastUsedAt)
		return err
	})
}

// FindKey returns a virtual key in scope, or ENOTFOUND.
func (db *DB) FindKey(ctx context.Context, id string) (gateway.Key, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return gateway.Key{}, err
	}
	var k gateway.Key
	err = db.Read(ctx, func(tx *Tx) error {
		return scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM gateway_keys WHERE id = ? AND `+cond,
			append([]any{id}, args...)...), &k)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return k, errKeyNotFound(id)
	}
	return k, err
}

// FindKeyByHash returns the key whose current or previous secret hashes to
// hash (secrets are 256 random bits: no two keys share one). It is a
// sign-in lookup and needs no scope. Whether a previous secret is still
// within its grace period is for the caller to check against
// PreviousValidUntil.
func (db *DB) FindKeyByHash(ctx context.Context, hash []byte) (gateway.Key, error) {
	ctx = crossTenant(ctx)
	var k gateway.Key
	if len(hash) == 0 {
		return k, nodus.Errorf(nodus.ENOTFOUND, "key not found")
	}
	err := db.Read(ctx, func(tx *Tx) error {
		return scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM gateway_keys WHERE hash = ? OR previous_hash = ?
			LIMIT 1`, hash, hash), &k)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return k, nodus.Errorf(nodus.ENOTFOUND, "key not found")
	}
	return k, err
}

// ListKeys returns a page of the keys in scope, by id.
func (db *DB) ListKeys(ctx context.Context, cursor string, limit int) ([]gateway.Key, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	return listPage(ctx, db, `SELECT `+keyColumns+` FROM gateway_keys WHERE id > ? AND `+cond+` ORDER BY id LIMIT ?`,
		append([]any{after}, args...), pageSize(limit), scanKey, func(k gateway.Key) string { return k.ID })
}

// UpdateKey replaces a key in scope, its hashes included (rotation); its
// tenant, creation and last use stay as they were. ECONFLICT when the new
// hash is another key's.
func (db *DB) UpdateKey(ctx context.Context, k gateway.Key) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	if len(k.Hash) == 0 {
		return nodus.Errorf(nodus.EINVALID, "key hash is required")
	}
	models, meta, err := keyJSON(k)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `UPDATE gateway_keys SET name = ?, hash = ?, prefix = ?, user_id = ?, models = ?, rpm = ?,
			tpm = ?, max_parallel = ?, expires_at = ?, metadata = ?, status = ?, previous_hash = ?,
			previous_valid_until = ?, updated_at = ?, updated_by = ? WHERE id = ? AND `+cond,
			append([]any{k.Name, k.Hash, k.Prefix, k.UserID, models, k.RPM, k.TPM, k.MaxParallel, k.ExpiresAt, meta,
				k.Status, blobArg(k.PreviousHash), k.PreviousValidUntil, k.UpdatedAt, k.UpdatedBy, k.ID}, args...)...)
		if err == nil && n == 0 {
			return errKeyNotFound(k.ID)
		}
		return err
	})
}

// DeleteKey removes a key in scope.
func (db *DB) DeleteKey(ctx context.Context, id string) error {
	return db.deleteByID(ctx, "gateway_keys", id, errKeyNotFound)
}

// TouchKeys records that the keys ids were used at at. It needs no scope:
// the gateway batches touches of every tenant's keys. A touch never moves
// last use backwards, so batches may arrive out of order.
func (db *DB) TouchKeys(ctx context.Context, at time.Time, ids []string) error {
	ctx = crossTenant(ctx)
	if len(ids) == 0 {
		return nil
	}
	return db.Write(ctx, func(tx *Tx) error {
		for _, chunk := range chunkSizes(len(ids), maxChunkRows) {
			marks := placeholders(chunk)
			args := append([]any{at, at}, stringArgs(ids[:chunk])...)
			if _, err := tx.Exec(ctx, `UPDATE gateway_keys SET last_used_at = ?
				WHERE (last_used_at IS NULL OR last_used_at < ?) AND id IN (`+marks+`)`, args...); err != nil {
				return err
			}
			ids = ids[chunk:]
		}
		return nil
	})
}

// Budgets.

const budgetColumns = `id, tenant_id, scope, subject_id, max_micros, period, reset_at, spend, updated_at, updated_by`

func scanBudget(row interface{ Scan(...any) error }, b *gateway.Budget) error {
	return row.Scan(&b.ID, &b.TenantID, &b.Scope, &b.SubjectID, &b.MaxMicros, &b.Period, &b.ResetAt, &b.Spend,
		&b.UpdatedAt, &b.UpdatedBy)
}

func errBudgetNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "budget %s not found", id)
}

// CreateBudget stores a budget of the scoped tenant; ECONFLICT when the
// tenant has one for the same scope and subject.
func (db *DB) CreateBudget(ctx context.Context, b gateway.Budget) error {
	tenantID, err := createTenant(ctx, b.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("budget", b.ID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO gateway_budgets (`+budgetColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID, tenantID, b.Scope, b.SubjectID, b.MaxMicros, b.Period, b.ResetAt, b.Spend, b.UpdatedAt, b.UpdatedBy)
		return err
	})
}

// FindBudget returns the scoped tenant's budget for a scope and subject
// ("" for the tenant itself), or ENOTFOUND.
func (db *DB) FindBudget(ctx context.Context, scope, subjectID string) (gateway.Budget, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return gateway.Budget{}, err
	}
	var b gateway.Budget
	err = db.Read(ctx, func(tx *Tx) error {
		return scanBudget(tx.QueryRow(ctx, `SELECT `+budgetColumns+` FROM gateway_budgets
			WHERE tenant_id = ? AND scope = ? AND subject_id = ?`, tenantID, scope, subjectID), &b)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return b, nodus.Errorf(nodus.ENOTFOUND, "no %s budget for %q", scope, subjectID)
	}
	return b, err
}

// ListBudgets returns the budgets in scope by scope, subject and id.
func (db *DB) ListBudgets(ctx context.Context) ([]gateway.Budget, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	return listAll(ctx, db, `SELECT `+budgetColumns+` FROM gateway_budgets WHERE `+cond+
		` ORDER BY tenant_id, scope, subject_id, id`, args, scanBudget)
}

// BudgetChanges returns every tenant's budgets changed, created or
// deleted at or after cursor since (0: every budget, and no deletions),
// and the cursor for the next read. It needs no scope: replicas sharing
// budgets read them back with it.
//
// The next cursor is taken before the rows are read, so a write committed
// between the two is read again next time rather than missed: on SQLite
// the change counter's value, on PostgreSQL the oldest transaction still
// running (pg_snapshot_xmin), since transactions stamp rows when they
// write them but commit in any order.
func (db *DB) BudgetChanges(ctx context.Context, since int64) (gateway.BudgetChanges, error) {
	ctx = crossTenant(ctx)
	if since < 0 {
		return gateway.BudgetChanges{}, nodus.Errorf(nodus.EINVALID, "budget changes: negative cursor %d", since)
	}
	cursor, marker, arg := `SELECT seq + 1 FROM gateway_budget_clock`, `change_seq`, `?`
	if db.dialect == Postgres {
		cursor, marker, arg = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`, `change_xid`, `?::text::xid8`
	}
	var out gateway.BudgetChanges
	err := db.Read(ctx, func(tx *Tx) error {
		out = gateway.BudgetChanges{}
		if err := tx.QueryRow(ctx, cursor).Scan(&out.Next); err != nil {
			return fmt.Errorf("store: budget changes: cursor: %w", err)
		}
		query, args := `SELECT `+budgetColumns+` FROM gateway_budgets ORDER BY id`, []any(nil)
		if since > 0 {
			query, args = `SELECT `+budgetColumns+` FROM gateway_budgets WHERE `+marker+` >= `+arg,
				[]any{sinceArg(db.dialect, since)}
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b gateway.Budget
			if err := scanBudget(rows, &b); err != nil {
				return err
			}
			out.Budgets = append(out.Budgets, b)
		}
		if err := rows.Err(); err != nil || since == 0 {
			return err
		}
		// A budget deleted and then created again under its id is read as
		// it is now: its row is newer than its tombstone.
		trows, err := tx.Query(ctx, `SELECT id FROM gateway_budget_tombstones WHERE `+marker+` >= `+arg,
			sinceArg(db.dialect, since))
		if err != nil {
			return err
		}
		defer trows.Close()
		for trows.Next() {
			var id string
			if err := trows.Scan(&id); err != nil {
				return err
			}
			out.Deleted = append(out.Deleted, id)
		}
		if err := trows.Err(); err != nil || len(out.Deleted) == 0 {
			return err
		}
		// Deletions are few: the set of ids read is built only for them.
		live := make(map[string]bool, len(out.Budgets))
		for _, b := range out.Budgets {
			live[b.ID] = true
		}
		out.Deleted = slices.DeleteFunc(out.Deleted, func(id string) bool { return live[id] })
		if len(out.Deleted) == 0 {
			out.Deleted = nil
		}
		return nil
	})
	if err != nil {
		return gateway.BudgetChanges{}, err
	}
	return out, nil
}

// sinceArg is a change cursor as the dialect's query takes it: an integer
// on SQLite, the text of a transaction id on PostgreSQL.
func sinceArg(d Dialect, since int64) any {
	if d == Postgres {
		return strconv.FormatInt(since, 10)
	}
	return since
}

// PruneBudgetTombstones deletes the tombstones of budgets deleted before
// t; it returns how many. A replica whose last read of budget changes is
// older than the oldest tombstone kept must read every budget again.
func (db *DB) PruneBudgetTombstones(ctx context.Context, t time.Time) (int64, error) {
	ctx = crossTenant(ctx)
	var n int64
	err := db.Write(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM gateway_budget_tombstones WHERE deleted_at < ?`, t.Unix())
		return err
	})
	return n, err
}

// UpdateBudget changes a budget's cap, period and reset time. Scope,
// subject and spend are left alone: spend moves only by WriteSpend's
// increments and ResetBudget, so an edit never loses settled spend.
func (db *DB) UpdateBudget(ctx context.Context, b gateway.Budget) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `UPDATE gateway_budgets SET max_micros = ?, period = ?, reset_at = ?, updated_at = ?,
			updated_by = ? WHERE id = ? AND `+cond,
			append([]any{b.MaxMicros, b.Period, b.ResetAt, b.UpdatedAt, b.UpdatedBy, b.ID}, args...)...)
		if err == nil && n == 0 {
			return errBudgetNotFound(b.ID)
		}
		return err
	})
}

// DeleteBudget removes a budget in scope.
func (db *DB) DeleteBudget(ctx context.Context, id string) error {
	return db.deleteByID(ctx, "gateway_budgets", id, errBudgetNotFound)
}

// ResetBudget starts a budget's next period: spend 0 and reset_at next,
// if reset_at is still prev. Several instances may notice the same period
// end; the condition lets exactly one of them reset it. ENOTFOUND when the
// budget is not in scope.
func (db *DB) ResetBudget(ctx context.Context, id string, prev, next time.Time) (bool, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return false, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		n, err = tx.Exec(ctx, `UPDATE gateway_budgets SET spend = 0, reset_at = ? WHERE id = ? AND reset_at = ? AND `+cond,
			append([]any{next, id, prev}, args...)...)
		if err != nil || n == 1 {
			return err
		}
		var found string
		err := tx.QueryRow(ctx, `SELECT id FROM gateway_budgets WHERE id = ? AND `+cond, append([]any{id}, args...)...).
			Scan(&found)
		if errors.Is(err, sql.ErrNoRows) {
			return errBudgetNotFound(id)
		}
		return err
	})
	return n == 1, err
}

// Price overrides.

// SetPriceOverride creates or replaces the scoped tenant's price of a
// model.
func (db *DB) SetPriceOverride(ctx context.Context, p gateway.PriceOverride) error {
	tenantID, err := createTenant(ctx, p.TenantID)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO gateway_prices (tenant_id, model, input, cached_input, output, updated_at,
			updated_by) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, model) DO UPDATE SET input = excluded.input, cached_input = excluded.cached_input,
			output = excluded.output, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			tenantID, p.Model, p.Price.Input, p.Price.CachedInput, p.Price.Output, p.UpdatedAt, p.UpdatedBy)
		return err
	})
}

// DeletePriceOverride removes the scoped tenant's price of a model, or
// returns ENOTFOUND.
func (db *DB) DeletePriceOverride(ctx context.Context, model string) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM gateway_prices WHERE tenant_id = ? AND model = ?`, tenantID, model)
		if err == nil && n == 0 {
			return nodus.Errorf(nodus.ENOTFOUND, "no price override for %s", model)
		}
		return err
	})
}

// ListPriceOverrides returns the price overrides in scope by model.
func (db *DB) ListPriceOverrides(ctx context.Context) ([]gateway.PriceOverride, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	return listAll(ctx, db, `SELECT tenant_id, model, input, cached_input, output, updated_at, updated_by
		FROM gateway_prices WHERE `+cond+` ORDER BY tenant_id, model`, args,
		func(row interface{ Scan(...any) error }, p *gateway.PriceOverride) error {
			return row.Scan(&p.TenantID, &p.Model, &p.Price.Input, &p.Price.CachedInput, &p.Price.Output,
				&p.UpdatedAt, &p.UpdatedBy)
		})
}

// DeleteGatewayTenant removes every gateway record of the scoped tenant,
// spend history included, in one transaction.
func (db *DB) DeleteGatewayTenant(ctx context.Context) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		for _, table := range []string{"gateway_deployments", "gateway_router_settings", "gateway_keys",
			"gateway_budgets", "gateway_prices", "gateway_spend_logs", "gateway_daily_spend"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tenantID); err != nil {
				return fmt.Errorf("store: delete gateway tenant: %s: %w", table, err)
			}
		}
		return nil
	})
}
