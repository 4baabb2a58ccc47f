package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vault"
)

// This file holds the SQL of the vault: secrets, versions, data keys,
// environments, grants and settings in the vault database, and secret
// handles in the main one. Ciphertext and wrapped keys are BLOB / BYTEA;
// nothing here ever sees plaintext.

const checkName = "check"

// secureDelete makes SQLite overwrite the content it frees in this
// connection (destroyed ciphertext, replaced wrapped keys) instead of
// leaving it in free pages. PostgreSQL's old row versions go at VACUUM.
func secureDelete(ctx context.Context, tx *Tx) error {
	if tx.Dialect() != SQLite {
		return nil
	}
	_, err := tx.Exec(ctx, "PRAGMA secure_delete = ON")
	return err
}

// FindVaultCheck returns the vault's sealed check value, or ENOTFOUND.
func (db *DB) FindVaultCheck(ctx context.Context) ([]byte, error) {
	if _, _, ok := nodus.TenantScope(ctx); !ok {
		return nil, nodus.ErrNoScope
	}
	var v []byte
	err := db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT value FROM vault_meta WHERE name = ?`, checkName).Scan(&v)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "the vault has no check value")
	}
	return v, err
}

// CreateVaultCheck stores the check value; ECONFLICT if one exists. It
// needs the all-tenants scope.
func (db *DB) CreateVaultCheck(ctx context.Context, sealed []byte, at time.Time) error {
	if err := requireAllTenants(ctx); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO vault_meta (name, value, updated_at) VALUES (?, ?, ?)`, checkName, sealed, at)
		return err
	})
}

// UpdateVaultCheck replaces the check value if it is still old.
func (db *DB) UpdateVaultCheck(ctx context.Context, sealed, old []byte, at time.Time) error {
	if err := requireAllTenants(ctx); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		if err := secureDelete(ctx, tx); err != nil {
			return err
		}
		n, err := tx.Exec(ctx, `UPDATE vault_meta SET value = ?, updated_at = ? WHERE name = ? AND value = ?`, sealed, at, checkName, old)
		if err == nil && n == 0 {
			return nodus.Errorf(nodus.ECONFLICT, "the vault's check value changed meanwhile")
		}
		return err
	})
}

const dataKeyColumns = `tenant_id, version, wrapped, master_key_id, created_at, updated_at`

func scanDataKey(row interface{ Scan(...any) error }, dk *vault.DataKey) error {
	var id int
	if err := row.Scan(&dk.TenantID, &dk.Version, &dk.Wrapped, &id, &dk.CreatedAt, &dk.UpdatedAt); err != nil {
		return err
	}
	dk.MasterKeyID = byte(id)
	return nil
}

// FindVaultDataKey returns a version of the scoped tenant's data key (0:
// the newest), or ENOTFOUND.
func (db *DB) FindVaultDataKey(ctx context.Context, version int) (vault.DataKey, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.DataKey{}, err
	}
	q, args := `SELECT `+dataKeyColumns+` FROM vault_data_keys WHERE tenant_id = ? AND version = ?`, []any{tenantID, version}
	if version == 0 {
		q, args = `SELECT `+dataKeyColumns+` FROM vault_data_keys WHERE tenant_id = ? ORDER BY version DESC LIMIT 1`, []any{tenantID}
	}
	var dk vault.DataKey
	err = db.Read(ctx, func(tx *Tx) error { return scanDataKey(tx.QueryRow(ctx, q, args...), &dk) })
	if errors.Is(err, sql.ErrNoRows) {
		return dk, nodus.Errorf(nodus.ENOTFOUND, "no data key version %d", version)
	}
	return dk, err
}

// CreateVaultDataKey stores a data key version of the scoped tenant;
// ECONFLICT when the version exists.
func (db *DB) CreateVaultDataKey(ctx context.Context, dk vault.DataKey) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	if dk.TenantID != tenantID {
		return nodus.Errorf(nodus.EINTERNAL, "data key of another tenant")
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO vault_data_keys (`+dataKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			dk.TenantID, dk.Version, dk.Wrapped, int(dk.MasterKeyID), dk.CreatedAt, dk.UpdatedAt)
		return err
	})
}

// ListVaultDataKeys returns up to limit data keys in scope not wrapped by
// master key notUnder (0: any).
func (db *DB) ListVaultDataKeys(ctx context.Context, notUnder byte, limit int) ([]vault.DataKey, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []vault.DataKey
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+dataKeyColumns+` FROM vault_data_keys WHERE `+cond+` AND master_key_id <> ?
			ORDER BY tenant_id, version LIMIT ?`, append(args, int(notUnder), limit)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var dk vault.DataKey
			if err := scanDataKey(rows, &dk); err != nil {
				return err
			}
			out = append(out, dk)
		}
		return rows.Err()
	})
	return out, err
}

// UpdateVaultDataKeyWrap stores a data key's new wrapping if the row is
// still wrapped by oldMasterKeyID.
func (db *DB) UpdateVaultDataKeyWrap(ctx context.Context, dk vault.DataKey, oldMasterKeyID byte) (bool, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return false, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		if err := secureDelete(ctx, tx); err != nil {
			return err
		}
		n, err = tx.Exec(ctx, `UPDATE vault_data_keys SET wrapped = ?, master_key_id = ?, updated_at = ?
			WHERE tenant_id = ? AND version = ? AND master_key_id = ? AND `+cond,
			append([]any{dk.Wrapped, int(dk.MasterKeyID), dk.UpdatedAt, dk.TenantID, dk.Version, int(oldMasterKeyID)}, args...)...)
		return err
	})
	return n == 1, err
}

// CountVaultDataKeys counts the data keys in scope by master key id.
func (db *DB) CountVaultDataKeys(ctx context.Context) (map[byte]int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	out := map[byte]int{}
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT master_key_id, count(*) FROM vault_data_keys WHERE `+cond+` GROUP BY master_key_id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			out[byte(id)] = n
		}
		return rows.Err()
	})
	return out, err
}

// FindVaultConfig returns the scoped tenant's vault settings, or ENOTFOUND.
func (db *DB) FindVaultConfig(ctx context.Context) (vault.TenantConfig, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.TenantConfig{}, err
	}
	c := vault.TenantConfig{TenantID: tenantID}
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT max_versions, updated_at, updated_by FROM vault_tenants WHERE tenant_id = ?`, tenantID).
			Scan(&c.MaxVersions, &c.UpdatedAt, &c.UpdatedBy)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return c, nodus.Errorf(nodus.ENOTFOUND, "no vault settings")
	}
	return c, err
}

// UpdateVaultConfig creates or replaces the scoped tenant's settings.
func (db *DB) UpdateVaultConfig(ctx context.Context, c vault.TenantConfig) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO vault_tenants (tenant_id, max_versions, updated_at, updated_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET max_versions = excluded.max_versions, updated_at = excluded.updated_at,
			updated_by = excluded.updated_by`, tenantID, c.MaxVersions, c.UpdatedAt, c.UpdatedBy)
		return err
	})
}

// ListSecretEnvironments returns the scoped tenant's custom environments.
func (db *DB) ListSecretEnvironments(ctx context.Context) ([]vault.Environment, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []vault.Environment
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT tenant_id, slug, name, created_at, created_by FROM vault_environments WHERE `+cond+
			` ORDER BY tenant_id, slug`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e vault.Environment
			if err := rows.Scan(&e.TenantID, &e.Slug, &e.Name, &e.CreatedAt, &e.CreatedBy); err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// CreateSecretEnvironment adds a custom environment to the scoped tenant.
func (db *DB) CreateSecretEnvironment(ctx context.Context, e vault.Environment) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO vault_environments (tenant_id, slug, name, created_at, created_by) VALUES (?, ?, ?, ?, ?)`,
			tenantID, e.Slug, e.Name, e.CreatedAt, e.CreatedBy)
		return err
	})
}

// DeleteSecretEnvironment removes a custom environment of the scoped
// tenant that holds no secrets.
func (db *DB) DeleteSecretEnvironment(ctx context.Context, slug string) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var found string
		err := tx.QueryRow(ctx, `SELECT slug FROM vault_environments WHERE tenant_id = ? AND slug = ?`+tx.Dialect().ForUpdate(),
			tenantID, slug).Scan(&found)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "environment %s not found", slug)
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM vault_secrets WHERE tenant_id = ? AND environment = ?`, tenantID, slug).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nodus.Errorf(nodus.ECONFLICT, "environment %s still holds %d secrets (deleted ones included); destroy them first", slug, n)
		}
		_, err = tx.Exec(ctx, `DELETE FROM vault_environments WHERE tenant_id = ? AND slug = ?`, tenantID, slug)
		return err
	})
}

const secretColumns = `id, tenant_id, environment, path, key, comment, tags, metadata, version,
	created_at, created_by, updated_at, updated_by, deleted_at, deleted_by`

// secretColumnsAs is secretColumns of the table aliased s.
var secretColumnsAs = "s." + strings.ReplaceAll(strings.ReplaceAll(secretColumns, "\n\t", " "), ", ", ", s.")

func scanSecret(row interface{ Scan(...any) error }, s *vault.Secret, extra ...any) error {
	var tags, meta string
	dest := append([]any{&s.ID, &s.TenantID, &s.Environment, &s.Path, &s.Key, &s.Comment, &tags, &meta, &s.Version,
		&s.CreatedAt, &s.CreatedBy, &s.UpdatedAt, &s.UpdatedBy, &s.DeletedAt, &s.DeletedBy}, extra...)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(tags), &s.Tags); err != nil {
		return fmt.Errorf("store: secret %s: tags: %w", s.ID, err)
	}
	if s.Tags == nil {
		s.Tags = []string{}
	}
	s.Metadata = json.RawMessage(meta)
	return nil
}

func errSecretNotFound(loc vault.Location) error {
	return nodus.Errorf(nodus.ENOTFOUND, "secret %s not found", loc)
}

// findSecretTx reads a secret of tenantID by location; lock holds its row
// on PostgreSQL until the transaction ends.
func findSecretTx(ctx context.Context, tx *Tx, tenantID string, loc vault.Location, withDeleted, lock bool) (vault.Secret, error) {
	q := `SELECT ` + secretColumns + ` FROM vault_secrets WHERE tenant_id = ? AND environment = ? AND path = ? AND key = ?`
	if !withDeleted {
		q += ` AND deleted_at IS NULL`
	}
	if lock {
		q += tx.Dialect().ForUpdate()
	}
	var s vault.Secret
	err := scanSecret(tx.QueryRow(ctx, q, tenantID, loc.Environment, loc.Path, loc.Key), &s)
	if errors.Is(err, sql.ErrNoRows) {
		return s, errSecretNotFound(loc)
	}
	return s, err
}

// ListSecrets returns a page of the scoped tenant's secrets, by id.
func (db *DB) ListSecrets(ctx context.Context, f vault.SecretFilter) ([]vault.Secret, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + secretColumns + ` FROM vault_secrets WHERE ` + cond + ` AND environment = ?`
	args = append(args, f.Environment)
	switch {
	case f.Recursive && f.Path == "/":
	case f.Recursive:
		q += ` AND (path = ? OR substr(path, 1, ?) = ?)`
		args = append(args, f.Path, len(f.Path)+1, f.Path+"/")
	default:
		q += ` AND path = ?`
		args = append(args, f.Path)
	}
	if !f.IncludeDeleted {
		q += ` AND deleted_at IS NULL`
	}
	if f.Tag != "" {
		// Tags are lower-case [a-z0-9_.:/-]; only _ needs escaping.
		q += ` AND tags LIKE ? ESCAPE '\'`
		args = append(args, `%"`+strings.ReplaceAll(f.Tag, "_", `\_`)+`"%`)
	}
	if after != "" {
		q += ` AND id > ?`
		args = append(args, after)
	}
	q += ` ORDER BY id LIMIT ?`
	return listPage(ctx, db, q, args, f.Limit, func(row interface{ Scan(...any) error }, s *vault.Secret) error {
		return scanSecret(row, s)
	}, func(s vault.Secret) string { return s.ID })
}

// FindSecret returns a secret of the scoped tenant by location.
func (db *DB) FindSecret(ctx context.Context, loc vault.Location, withDeleted bool) (vault.Secret, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.Secret{}, err
	}
	var s vault.Secret
	err = db.Read(ctx, func(tx *Tx) error {
		s, err = findSecretTx(ctx, tx, tenantID, loc, withDeleted, false)
		return err
	})
	return s, err
}

// ListSecretVersions returns the kept versions of a secret of the scoped
// tenant, newest first.
func (db *DB) ListSecretVersions(ctx context.Context, secretID string) ([]vault.VersionInfo, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []vault.VersionInfo
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT version, created_at, created_by, destroyed_at FROM vault_secret_versions
			WHERE secret_id = ? AND `+cond+` ORDER BY version DESC`, append([]any{secretID}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v vault.VersionInfo
			if err := rows.Scan(&v.Version, &v.CreatedAt, &v.CreatedBy, &v.DestroyedAt); err != nil {
				return err
			}
			v.Destroyed = v.DestroyedAt != nil
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}

// FindSecretVersion returns a live secret of the scoped tenant and one of
// its versions (0: the newest) in one query. A version that is not kept
// comes back with Version 0.
func (db *DB) FindSecretVersion(ctx context.Context, loc vault.Location, version int) (vault.Secret, vault.StoredVersion, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.Secret{}, vault.StoredVersion{}, err
	}
	join, args := `v.version = s.version`, []any{}
	if version > 0 {
		join, args = `v.version = ?`, []any{version}
	}
	q := `SELECT ` + secretColumnsAs + `, v.version, v.data_key_version, v.ciphertext, v.created_at, v.created_by, v.destroyed_at
		FROM vault_secrets s LEFT JOIN vault_secret_versions v ON v.secret_id = s.id AND ` + join + `
		WHERE s.tenant_id = ? AND s.environment = ? AND s.path = ? AND s.key = ? AND s.deleted_at IS NULL`
	args = append(args, tenantID, loc.Environment, loc.Path, loc.Key)
	var s vault.Secret
	var v vault.StoredVersion
	var vVersion, vKey sql.NullInt64
	var vBy sql.NullString
	var vAt *time.Time
	err = db.Read(ctx, func(tx *Tx) error {
		return scanSecret(tx.QueryRow(ctx, q, args...), &s, &vVersion, &vKey, &v.Ciphertext, &vAt, &vBy, &v.DestroyedAt)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return s, v, errSecretNotFound(loc)
	}
	if err != nil {
		return s, v, err
	}
	v.SecretID, v.TenantID, v.Location = s.ID, s.TenantID, s.Location
	if vVersion.Valid {
		v.Version, v.DataKeyVersion, v.CreatedBy = int(vVersion.Int64), int(vKey.Int64), vBy.String
		if vAt != nil {
			v.CreatedAt = *vAt
		}
	}
	return s, v, nil
}

// FindSecretValue returns one version (0: the newest) of a live secret of
// the scoped tenant with its ciphertext, and the secret's newest version
// number: the lean read of ResolveHandle, one indexed join over the few
// columns decryption needs. A version that is not kept comes back with
// Version 0.
func (db *DB) FindSecretValue(ctx context.Context, loc vault.Location, version int) (vault.StoredVersion, int, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.StoredVersion{}, 0, err
	}
	join, args := `v.version = s.version`, []any{}
	if version > 0 {
		join, args = `v.version = ?`, []any{version}
	}
	q := `SELECT s.id, s.version, v.version, v.data_key_version, v.ciphertext, v.destroyed_at
		FROM vault_secrets s LEFT JOIN vault_secret_versions v ON v.secret_id = s.id AND ` + join + `
		WHERE s.tenant_id = ? AND s.environment = ? AND s.path = ? AND s.key = ? AND s.deleted_at IS NULL`
	args = append(args, tenantID, loc.Environment, loc.Path, loc.Key)
	v := vault.StoredVersion{TenantID: tenantID, Location: loc}
	var latest int
	var vVersion, vKey sql.NullInt64
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, q, args...).Scan(&v.SecretID, &latest, &vVersion, &vKey, &v.Ciphertext, &v.DestroyedAt)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return v, 0, errSecretNotFound(loc)
	}
	if err != nil {
		return v, 0, err
	}
	v.Version, v.DataKeyVersion = int(vVersion.Int64), int(vKey.Int64)
	return v, latest, nil
}

// WriteSecret writes a new version of a secret of the scoped tenant, with
// check-and-set. Three guards keep concurrent writers with the same
// expected version to one winner on PostgreSQL, whose transactions run
// side by side: the secret row is locked (FOR UPDATE) before its version
// is compared, the version row's primary key (secret_id, version) refuses
// a second version with the same number, and the version counter moves
// only WHERE it still holds the version read. On SQLite writers are
// serialised by BEGIN IMMEDIATE.
func (db *DB) WriteSecret(ctx context.Context, w vault.SecretWrite, seal vault.SealFunc) (vault.Secret, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.Secret{}, err
	}
	if w.TenantID != tenantID {
		return vault.Secret{}, nodus.Errorf(nodus.EINTERNAL, "secret of another tenant")
	}
	tags, err := json.Marshal(w.Tags)
	if err != nil {
		return vault.Secret{}, err
	}
	if w.Tags == nil {
		tags = []byte("[]")
	}
	if len(w.Metadata) == 0 {
		w.Metadata = json.RawMessage("{}")
	}
	var out vault.Secret
	err = db.Write(ctx, func(tx *Tx) error {
		s, err := findSecretTx(ctx, tx, tenantID, w.Location, true, true)
		switch {
		case nodus.ErrorCode(err) == nodus.ENOTFOUND:
			if w.CAS != nil && *w.CAS != 0 {
				return nodus.Errorf(nodus.ECONFLICT, "secret %s does not exist, not at version %d", w.Location, *w.CAS)
			}
			s = vault.Secret{ID: w.ID, TenantID: tenantID, Location: w.Location, CreatedAt: w.At, CreatedBy: w.By}
			if _, err := tx.Exec(ctx, `INSERT INTO vault_secrets (`+secretColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, NULL, '')`,
				s.ID, tenantID, w.Environment, w.Path, w.Key, w.Comment, string(tags), string(w.Metadata),
				w.At, w.By, w.At, w.By); err != nil {
				if nodus.ErrorCode(err) == nodus.ECONFLICT {
					return nodus.WrapError(err, nodus.ECONFLICT, fmt.Sprintf("secret %s was created by another write meanwhile", w.Location))
				}
				return err
			}
		case err != nil:
			return err
		case s.DeletedAt != nil:
			return nodus.Errorf(nodus.ECONFLICT, "secret %s is deleted: undelete or destroy it first", w.Location)
		case w.CAS != nil && *w.CAS == 0:
			return nodus.Errorf(nodus.ECONFLICT, "secret %s exists already (at version %d)", w.Location, s.Version)
		case w.CAS != nil && *w.CAS != s.Version:
			return nodus.Errorf(nodus.ECONFLICT, "secret %s is at version %d, not %d", w.Location, s.Version, *w.CAS)
		}
		version := s.Version + 1
		ct, err := seal(s.ID, version)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO vault_secret_versions (secret_id, version, tenant_id, ciphertext, data_key_version,
			created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)`, s.ID, version, tenantID, ct, w.DataKeyVersion, w.At, w.By); err != nil {
			if nodus.ErrorCode(err) == nodus.ECONFLICT {
				return nodus.WrapError(err, nodus.ECONFLICT, fmt.Sprintf("secret %s moved past version %d meanwhile", w.Location, s.Version))
			}
			return err
		}
		n, err := tx.Exec(ctx, `UPDATE vault_secrets SET version = ?, comment = ?, tags = ?, metadata = ?, updated_at = ?, updated_by = ?
			WHERE id = ? AND tenant_id = ? AND version = ?`, version, w.Comment, string(tags), string(w.Metadata), w.At, w.By,
			s.ID, tenantID, s.Version)
		if err != nil {
			return err
		}
		if n != 1 {
			return nodus.Errorf(nodus.ECONFLICT, "secret %s moved past version %d meanwhile", w.Location, s.Version)
		}
		if w.MaxVersions > 0 && version > w.MaxVersions {
			if err := secureDelete(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM vault_secret_versions WHERE secret_id = ? AND tenant_id = ? AND version <= ?`,
				s.ID, tenantID, version-w.MaxVersions); err != nil {
				return err
			}
		}
		s.Version, s.Comment, s.Tags, s.Metadata, s.UpdatedAt, s.UpdatedBy = version, w.Comment, w.Tags, w.Metadata, w.At, w.By
		out = s
		return nil
	})
	return out, err
}

// DeleteSecret soft-deletes a live secret of the scoped tenant.
func (db *DB) DeleteSecret(ctx context.Context, loc vault.Location, at time.Time, by string) (vault.Secret, error) {
	return db.setSecretDeleted(ctx, loc, &at, by)
}

// UndeleteSecret restores a soft-deleted secret of the scoped tenant.
func (db *DB) UndeleteSecret(ctx context.Context, loc vault.Location, at time.Time, by string) (vault.Secret, error) {
	return db.setSecretDeleted(ctx, loc, nil, by)
}

func (db *DB) setSecretDeleted(ctx context.Context, loc vault.Location, at *time.Time, by string) (vault.Secret, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.Secret{}, err
	}
	var s vault.Secret
	err = db.Write(ctx, func(tx *Tx) error {
		s, err = findSecretTx(ctx, tx, tenantID, loc, true, true)
		if err != nil {
			return err
		}
		if (at != nil) == (s.DeletedAt != nil) { // deleting a deleted secret, or restoring a live one
			return errSecretNotFound(loc)
		}
		deletedBy := ""
		if at != nil {
			deletedBy = by
		}
		_, err = tx.Exec(ctx, `UPDATE vault_secrets SET deleted_at = ?, deleted_by = ? WHERE id = ? AND tenant_id = ?`,
			at, deletedBy, s.ID, tenantID)
		s.DeletedAt, s.DeletedBy = at, deletedBy
		return err
	})
	return s, err
}

// DestroySecretVersions wipes the ciphertext of the listed versions of a
// secret (deleted or not) of the scoped tenant and returns those it wiped.
func (db *DB) DestroySecretVersions(ctx context.Context, loc vault.Location, versions []int, at time.Time) (vault.Secret, []int, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.Secret{}, nil, err
	}
	var s vault.Secret
	destroyed := []int{}
	err = db.Write(ctx, func(tx *Tx) error {
		if s, err = findSecretTx(ctx, tx, tenantID, loc, true, true); err != nil {
			return err
		}
		if err := secureDelete(ctx, tx); err != nil {
			return err
		}
		marks := placeholders(len(versions))
		args := []any{at, s.ID, tenantID}
		for _, v := range versions {
			args = append(args, v)
		}
		rows, err := tx.Query(ctx, `UPDATE vault_secret_versions SET ciphertext = NULL, destroyed_at = ?
			WHERE secret_id = ? AND tenant_id = ? AND ciphertext IS NOT NULL AND version IN (`+marks+`) RETURNING version`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return err
			}
			destroyed = append(destroyed, v)
		}
		return rows.Err()
	})
	return s, destroyed, err
}

// DestroySecret removes a secret of the scoped tenant with every version.
func (db *DB) DestroySecret(ctx context.Context, loc vault.Location) (vault.Secret, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.Secret{}, err
	}
	var s vault.Secret
	err = db.Write(ctx, func(tx *Tx) error {
		if s, err = findSecretTx(ctx, tx, tenantID, loc, true, true); err != nil {
			return err
		}
		if err := secureDelete(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM vault_secret_versions WHERE secret_id = ? AND tenant_id = ?`, s.ID, tenantID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM vault_secrets WHERE id = ? AND tenant_id = ?`, s.ID, tenantID)
		return err
	})
	return s, err
}

// ListStaleSecretVersions returns up to limit versions of the scoped
// tenant with a ciphertext under a data key older than dataKeyVersion.
func (db *DB) ListStaleSecretVersions(ctx context.Context, dataKeyVersion, limit int) ([]vault.StoredVersion, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return nil, err
	}
	var out []vault.StoredVersion
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT v.secret_id, v.tenant_id, s.environment, s.path, s.key, v.version, v.data_key_version,
			v.ciphertext, v.created_at, v.created_by, v.destroyed_at
			FROM vault_secret_versions v JOIN vault_secrets s ON s.id = v.secret_id AND s.tenant_id = v.tenant_id
			WHERE v.tenant_id = ? AND v.data_key_version < ? AND v.ciphertext IS NOT NULL
			ORDER BY v.secret_id, v.version LIMIT ?`, tenantID, dataKeyVersion, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v vault.StoredVersion
			if err := rows.Scan(&v.SecretID, &v.TenantID, &v.Environment, &v.Path, &v.Key, &v.Version, &v.DataKeyVersion,
				&v.Ciphertext, &v.CreatedAt, &v.CreatedBy, &v.DestroyedAt); err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}

// UpdateSecretCiphertexts stores re-encrypted versions of the scoped
// tenant, each only if it still has a ciphertext under its old data key.
func (db *DB) UpdateSecretCiphertexts(ctx context.Context, rs []vault.Reencrypted) (int, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	err = db.Write(ctx, func(tx *Tx) error {
		total = 0
		if err := secureDelete(ctx, tx); err != nil {
			return err
		}
		for _, r := range rs {
			n, err := tx.Exec(ctx, `UPDATE vault_secret_versions SET ciphertext = ?, data_key_version = ?
				WHERE secret_id = ? AND version = ? AND tenant_id = ? AND data_key_version = ? AND ciphertext IS NOT NULL`,
				r.Ciphertext, r.DataKeyVersion, r.SecretID, r.Version, tenantID, r.OldDataKeyVersion)
			if err != nil {
				return err
			}
			total += int(n)
		}
		return nil
	})
	return total, err
}

const grantColumns = `id, tenant_id, subject_type, subject, environment, path_prefix, permission, created_at, created_by`

// ListVaultGrants returns the scoped tenant's grants: all of them for an
// empty filter, else those of f's user and role, or of f's machine
// identity.
func (db *DB) ListVaultGrants(ctx context.Context, f vault.GrantFilter) ([]vault.Grant, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + grantColumns + ` FROM vault_grants WHERE ` + cond
	if f != (vault.GrantFilter{}) {
		// An empty field matches nothing: no grant has an empty subject.
		q += ` AND ((subject_type = 'user' AND subject = ?) OR (subject_type = 'role' AND subject = ?)
			OR (subject_type = 'machine' AND subject = ?))`
		args = append(args, f.UserID, f.Role, f.MachineID)
	}
	q += ` ORDER BY id`
	var out []vault.Grant
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g vault.Grant
			if err := rows.Scan(&g.ID, &g.TenantID, &g.SubjectType, &g.Subject, &g.Environment, &g.PathPrefix, &g.Permission,
				&g.CreatedAt, &g.CreatedBy); err != nil {
				return err
			}
			out = append(out, g)
		}
		return rows.Err()
	})
	return out, err
}

// CreateVaultGrant stores a grant of the scoped tenant.
func (db *DB) CreateVaultGrant(ctx context.Context, g vault.Grant) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO vault_grants (`+grantColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			g.ID, tenantID, g.SubjectType, g.Subject, g.Environment, g.PathPrefix, g.Permission, g.CreatedAt, g.CreatedBy)
		return err
	})
}

// DeleteVaultGrant removes a grant of the scoped tenant and returns it.
func (db *DB) DeleteVaultGrant(ctx context.Context, id string) (vault.Grant, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.Grant{}, err
	}
	var g vault.Grant
	err = db.Write(ctx, func(tx *Tx) error {
		err := tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM vault_grants WHERE id = ? AND tenant_id = ?`, id, tenantID).
			Scan(&g.ID, &g.TenantID, &g.SubjectType, &g.Subject, &g.Environment, &g.PathPrefix, &g.Permission, &g.CreatedAt, &g.CreatedBy)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "grant %s not found", id)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM vault_grants WHERE id = ? AND tenant_id = ?`, id, tenantID)
		return err
	})
	return g, err
}

// Secret handles, in the main database.

const handleColumns = `id, tenant_id, environment, path, key, version, allowed_hosts, purpose, label,
	created_at, created_by, updated_at, updated_by, last_used_at, last_used_by`

func scanHandle(row interface{ Scan(...any) error }, h *vault.Handle) error {
	var hosts string
	if err := row.Scan(&h.ID, &h.TenantID, &h.Environment, &h.Path, &h.Key, &h.Version, &hosts, &h.Purpose, &h.Label,
		&h.CreatedAt, &h.CreatedBy, &h.UpdatedAt, &h.UpdatedBy, &h.LastUsedAt, &h.LastUsedBy); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(hosts), &h.AllowedHosts); err != nil {
		return fmt.Errorf("store: secret handle %s: allowed_hosts: %w", h.ID, err)
	}
	if h.AllowedHosts == nil {
		h.AllowedHosts = []string{}
	}
	return nil
}

func errHandleNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "secret handle %s not found", id)
}

// CreateSecretHandle stores a handle of the scoped tenant.
func (db *DB) CreateSecretHandle(ctx context.Context, h vault.Handle) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	hosts, err := json.Marshal(h.AllowedHosts)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO secret_handles (`+handleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '')`,
			h.ID, tenantID, h.Environment, h.Path, h.Key, h.Version, string(hosts), h.Purpose, h.Label,
			h.CreatedAt, h.CreatedBy, h.UpdatedAt, h.UpdatedBy)
		return err
	})
}

// FindSecretHandle returns a handle in scope, or ENOTFOUND.
func (db *DB) FindSecretHandle(ctx context.Context, id string) (vault.Handle, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return vault.Handle{}, err
	}
	var h vault.Handle
	err = db.Read(ctx, func(tx *Tx) error {
		return scanHandle(tx.QueryRow(ctx, `SELECT `+handleColumns+` FROM secret_handles WHERE id = ? AND `+cond,
			append([]any{id}, args...)...), &h)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return h, errHandleNotFound(id)
	}
	return h, err
}

// ListSecretHandles returns a page of the handles in scope, by id.
func (db *DB) ListSecretHandles(ctx context.Context, cursor string, limit int) ([]vault.Handle, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + handleColumns + ` FROM secret_handles WHERE ` + cond
	if after != "" {
		q += ` AND id > ?`
		args = append(args, after)
	}
	return listPage(ctx, db, q+` ORDER BY id LIMIT ?`, args, pageSize(limit), scanHandle, func(h vault.Handle) string { return h.ID })
}

// UpdateSecretHandle replaces a handle's target, hosts, purpose and label.
func (db *DB) UpdateSecretHandle(ctx context.Context, h vault.Handle) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	hosts, err := json.Marshal(h.AllowedHosts)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `UPDATE secret_handles SET environment = ?, path = ?, key = ?, version = ?, allowed_hosts = ?,
			purpose = ?, label = ?, updated_at = ?, updated_by = ? WHERE id = ? AND tenant_id = ?`,
			h.Environment, h.Path, h.Key, h.Version, string(hosts), h.Purpose, h.Label, h.UpdatedAt, h.UpdatedBy, h.ID, tenantID)
		if err == nil && n == 0 {
			return errHandleNotFound(h.ID)
		}
		return err
	})
}

// DeleteSecretHandle removes a handle of the scoped tenant.
func (db *DB) DeleteSecretHandle(ctx context.Context, id string) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM secret_handles WHERE id = ? AND tenant_id = ?`, id, tenantID)
		if err == nil && n == 0 {
			return errHandleNotFound(id)
		}
		return err
	})
}

// TouchSecretHandle records a use of a handle of the scoped tenant.
func (db *DB) TouchSecretHandle(ctx context.Context, id string, at time.Time, by string) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `UPDATE secret_handles SET last_used_at = ?, last_used_by = ? WHERE id = ? AND tenant_id = ?`,
			at, by, id, tenantID)
		if err == nil && n == 0 {
			return errHandleNotFound(id)
		}
		return err
	})
}

// DeleteVaultTenant removes everything the vault database holds for the
// scoped tenant: secrets and their versions, data keys, environments,
// grants, machine identities and their tokens, and settings, in one
// transaction, and returns how many secrets it removed.
func (db *DB) DeleteVaultTenant(ctx context.Context) (int, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		if err := secureDelete(ctx, tx); err != nil {
			return err
		}
		for _, table := range []string{"vault_secret_versions", "vault_secrets", "vault_data_keys", "vault_environments",
			"vault_grants", "vault_machine_tokens", "vault_machines", "vault_tenants"} {
			rows, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tenantID)
			if err != nil {
				return err
			}
			if table == "vault_secrets" {
				n = rows
			}
		}
		return nil
	})
	return int(n), err
}

// DeleteSecretHandles removes every handle of the scoped tenant and
// returns how many there were.
func (db *DB) DeleteSecretHandles(ctx context.Context) (int, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		n, err = tx.Exec(ctx, `DELETE FROM secret_handles WHERE tenant_id = ?`, tenantID)
		return err
	})
	return int(n), err
}

// The store implements what the vault needs.
var (
	_ vault.Store       = (*DB)(nil)
	_ vault.HandleStore = (*DB)(nil)
)
