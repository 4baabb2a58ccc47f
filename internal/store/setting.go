package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/settings"
)

// This file holds the SQL of settings, in the auth database: platform rows
// have no tenant, tenant overrides belong to one.

const settingColumns = `id, tenant_id, key, value, updated_at, updated_by`

func scanSetting(row interface{ Scan(...any) error }, s *settings.Setting) error {
	var tenant sql.NullString
	if err := row.Scan(&s.ID, &tenant, &s.Key, &s.Value, &s.UpdatedAt, &s.UpdatedBy); err != nil {
		return err
	}
	s.TenantID = tenant.String
	return nil
}

// ListSettings returns the platform's settings rows and, when tenantID is
// not "", that tenant's, in one snapshot. Any scope may read the platform's
// rows, which every tenant inherits; a tenant outside the scope, or none
// at all, is ENOTFOUND.
func (db *DB) ListSettings(ctx context.Context, tenantID string) ([]settings.Setting, error) {
	if _, _, ok := nodus.TenantScope(ctx); !ok {
		return nil, nodus.ErrNoScope
	}
	query, args := `SELECT `+settingColumns+` FROM settings WHERE tenant_id IS NULL ORDER BY key`, []any(nil)
	if tenantID != "" {
		cond, cargs, err := scopeCond(ctx, "tenant_id")
		if err != nil {
			return nil, err
		}
		query = `SELECT ` + settingColumns + ` FROM settings WHERE tenant_id IS NULL OR (tenant_id = ? AND ` + cond + `)
			ORDER BY tenant_id NULLS FIRST, key`
		args = append([]any{tenantID}, cargs...)
	}
	var out []settings.Setting
	err := db.Read(ctx, func(tx *Tx) error {
		if tenantID != "" {
			if err := visibleTenant(ctx, tx, tenantID, false); err != nil {
				return err
			}
		}
		var err error
		out, err = querySettings(ctx, tx, query, args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// querySettings reads the settings rows of a query of settingColumns.
func querySettings(ctx context.Context, tx *Tx, query string, args ...any) ([]settings.Setting, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []settings.Setting
	for rows.Next() {
		var s settings.Setting
		if err := scanSetting(rows, &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// UpdateSettings upserts put and deletes the keys in remove for one owner
// (tenantID, or the platform for ""), in one transaction, and returns the
// owner's rows for those keys as they were before the change. Platform
// rows need the all-tenants scope; a tenant scope writes its own tenant's
// rows only, and any other tenant is ENOTFOUND. Every row of put must
// belong to the owner.
func (db *DB) UpdateSettings(ctx context.Context, tenantID string, put []settings.Setting, remove []string) ([]settings.Setting, error) {
	if tenantID == "" {
		if err := requireAllTenants(ctx); err != nil {
			return nil, err
		}
	} else if scoped, all, ok := nodus.TenantScope(ctx); !ok {
		return nil, nodus.ErrNoScope
	} else if !all && scoped != tenantID {
		return nil, errTenantNotFound(tenantID)
	}
	keys := make([]string, 0, len(put)+len(remove))
	for _, s := range put {
		if s.TenantID != tenantID {
			return nil, nodus.Errorf(nodus.EINTERNAL, "setting %s belongs to another owner", s.Key)
		}
		keys = append(keys, s.Key)
	}
	keys = append(keys, remove...)

	// owner is the condition on tenant_id: the platform's rows, or the
	// tenant's within the scope.
	owner, ownerArgs := "tenant_id IS NULL", []any(nil)
	if tenantID != "" {
		cond, cargs, err := scopeCond(ctx, "tenant_id")
		if err != nil {
			return nil, err
		}
		owner, ownerArgs = "tenant_id = ? AND "+cond, append([]any{tenantID}, cargs...)
	}
	var before []settings.Setting
	err := db.Write(ctx, func(tx *Tx) error {
		if tenantID != "" {
			// Locking the tenant row serialises concurrent updates of one
			// tenant on PostgreSQL, so "before" is exactly what was replaced.
			if err := visibleTenant(ctx, tx, tenantID, true); err != nil {
				return err
			}
		}
		if len(keys) == 0 {
			return nil
		}
		marks := placeholders(len(keys))
		args := append(append([]any(nil), ownerArgs...), stringArgs(keys)...)
		rows, err := tx.Query(ctx, `SELECT `+settingColumns+` FROM settings WHERE `+owner+` AND key IN (`+marks+`) ORDER BY key`+
			tx.Dialect().ForUpdate(), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s settings.Setting
			if err := scanSetting(rows, &s); err != nil {
				rows.Close()
				return err
			}
			before = append(before, s)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, s := range put {
			if _, err := tx.Exec(ctx, `INSERT INTO settings (`+settingColumns+`) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT ((COALESCE(tenant_id, '')), key)
				DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
				s.ID, nullable(s.TenantID), s.Key, s.Value, s.UpdatedAt, s.UpdatedBy); err != nil {
				return err
			}
		}
		for _, key := range remove {
			if _, err := tx.Exec(ctx, `DELETE FROM settings WHERE `+owner+` AND key = ?`, append(append([]any(nil), ownerArgs...), key)...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return before, nil
}

// visibleTenant fails with ENOTFOUND unless the tenant exists within the
// context's scope; lock holds its row until the transaction ends.
func visibleTenant(ctx context.Context, tx *Tx, tenantID string, lock bool) error {
	cond, args, err := scopeCond(ctx, "id")
	if err != nil {
		return err
	}
	q := `SELECT id FROM tenants WHERE id = ? AND ` + cond
	if lock {
		q += tx.Dialect().ForUpdate()
	}
	var id string
	err = tx.QueryRow(ctx, q, append([]any{tenantID}, args...)...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return errTenantNotFound(tenantID)
	}
	return err
}

func stringArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// ListSettingsByKey returns every owner's row of key: the platform's and
// each tenant's. It needs the all-tenants scope (master key rotation
// reseals the secret in every row).
func (db *DB) ListSettingsByKey(ctx context.Context, key string) ([]settings.Setting, error) {
	if err := requireAllTenants(ctx); err != nil {
		return nil, err
	}
	var out []settings.Setting
	err := db.Read(ctx, func(tx *Tx) error {
		var err error
		out, err = querySettings(ctx, tx, `SELECT `+settingColumns+` FROM settings WHERE key = ? ORDER BY id`, key)
		return err
	})
	return out, err
}

// ReplaceSettingValue writes value into the row with id if the row still
// holds old, and reports whether it did; the row's updated_at and
// updated_by stay (the setting did not change, only how it is sealed). It
// needs the all-tenants scope.
func (db *DB) ReplaceSettingValue(ctx context.Context, id, old, value string) (bool, error) {
	if err := requireAllTenants(ctx); err != nil {
		return false, err
	}
	var n int64
	err := db.Write(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.Exec(ctx, `UPDATE settings SET value = ? WHERE id = ? AND value = ?`, value, id, old)
		return err
	})
	return n == 1, err
}
