package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vault"
)

// This file holds the SQL of the vault's machine identities and their
// access tokens, in the vault database. Only SHA-256 hashes of client
// secrets and tokens are stored. The lookups by client id and by token
// hash are sign-in lookups: they need no scope, since they are how a
// machine's request gets one.

const machineColumns = `id, tenant_id, name, client_id, secret_hash, token_ttl_seconds, token_use_limit, allowed_cidrs,
	is_active, created_at, created_by, updated_at, updated_by, last_used_at`

// machineColumnsAs is machineColumns of the table aliased m.
const machineColumnsAs = `m.id, m.tenant_id, m.name, m.client_id, m.secret_hash, m.token_ttl_seconds, m.token_use_limit,
	m.allowed_cidrs, m.is_active, m.created_at, m.created_by, m.updated_at, m.updated_by, m.last_used_at`

func machineDest(m *vault.Machine, cidrs *string) []any {
	return []any{&m.ID, &m.TenantID, &m.Name, &m.ClientID, &m.SecretHash, &m.TokenTTLSeconds, &m.TokenUseLimit, cidrs,
		&m.IsActive, &m.CreatedAt, &m.CreatedBy, &m.UpdatedAt, &m.UpdatedBy, &m.LastUsedAt}
}

func decodeCIDRs(m *vault.Machine, cidrs string) error {
	if err := json.Unmarshal([]byte(cidrs), &m.AllowedCIDRs); err != nil {
		return fmt.Errorf("store: machine identity %s: allowed_cidrs: %w", m.ID, err)
	}
	if m.AllowedCIDRs == nil {
		m.AllowedCIDRs = []string{}
	}
	return nil
}

func scanMachine(row interface{ Scan(...any) error }, m *vault.Machine) error {
	var cidrs string
	if err := row.Scan(machineDest(m, &cidrs)...); err != nil {
		return err
	}
	return decodeCIDRs(m, cidrs)
}

func encodeCIDRs(cidrs []string) string {
	if len(cidrs) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(cidrs) // a []string always encodes
	return string(b)
}

func errMachineNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "machine identity %s not found", id)
}

// CreateVaultMachine stores a machine identity of the scoped tenant.
func (db *DB) CreateVaultMachine(ctx context.Context, m vault.Machine) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO vault_machines (`+machineColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
			m.ID, tenantID, m.Name, m.ClientID, m.SecretHash, m.TokenTTLSeconds, m.TokenUseLimit, encodeCIDRs(m.AllowedCIDRs),
			m.IsActive, m.CreatedAt, m.CreatedBy, m.UpdatedAt, m.UpdatedBy)
		return err
	})
}

// FindVaultMachine returns a machine identity in scope, or ENOTFOUND.
func (db *DB) FindVaultMachine(ctx context.Context, id string) (vault.Machine, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return vault.Machine{}, err
	}
	var m vault.Machine
	err = db.Read(ctx, func(tx *Tx) error {
		return scanMachine(tx.QueryRow(ctx, `SELECT `+machineColumns+` FROM vault_machines WHERE id = ? AND `+cond,
			append([]any{id}, args...)...), &m)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return m, errMachineNotFound(id)
	}
	return m, err
}

// ListVaultMachines returns a page of the machine identities in scope, by
// id.
func (db *DB) ListVaultMachines(ctx context.Context, cursor string, limit int) ([]vault.Machine, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + machineColumns + ` FROM vault_machines WHERE ` + cond
	if after != "" {
		q += ` AND id > ?`
		args = append(args, after)
	}
	return listPage(ctx, db, q+` ORDER BY id LIMIT ?`, args, pageSize(limit), scanMachine, func(m vault.Machine) string { return m.ID })
}

// UpdateVaultMachine reads and locks a machine identity of the scoped
// tenant, applies change and writes the result back, deleting the
// identity's tokens when change asks to, in one transaction.
func (db *DB) UpdateVaultMachine(ctx context.Context, id string, change func(m *vault.Machine) (bool, error)) (before, after vault.Machine, err error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return before, after, err
	}
	err = db.Write(ctx, func(tx *Tx) error {
		err := scanMachine(tx.QueryRow(ctx, `SELECT `+machineColumns+` FROM vault_machines WHERE id = ? AND tenant_id = ?`+
			tx.Dialect().ForUpdate(), id, tenantID), &before)
		if errors.Is(err, sql.ErrNoRows) {
			return errMachineNotFound(id)
		}
		if err != nil {
			return err
		}
		after = before
		after.AllowedCIDRs = slices.Clone(before.AllowedCIDRs)
		revoke, err := change(&after)
		if err != nil {
			return err
		}
		if after.ID != before.ID || after.TenantID != before.TenantID || after.ClientID != before.ClientID {
			return nodus.Errorf(nodus.EINTERNAL, "a machine identity's id, tenant and client id never change")
		}
		if _, err := tx.Exec(ctx, `UPDATE vault_machines SET name = ?, secret_hash = ?, token_ttl_seconds = ?, token_use_limit = ?,
			allowed_cidrs = ?, is_active = ?, updated_at = ?, updated_by = ? WHERE id = ? AND tenant_id = ?`,
			after.Name, after.SecretHash, after.TokenTTLSeconds, after.TokenUseLimit, encodeCIDRs(after.AllowedCIDRs),
			after.IsActive, after.UpdatedAt, after.UpdatedBy, id, tenantID); err != nil {
			return err
		}
		if revoke {
			_, err = tx.Exec(ctx, `DELETE FROM vault_machine_tokens WHERE machine_id = ? AND tenant_id = ?`, id, tenantID)
		}
		return err
	})
	return before, after, err
}

// DeleteVaultMachine removes a machine identity of the scoped tenant with
// its tokens and grants, and returns it.
func (db *DB) DeleteVaultMachine(ctx context.Context, id string) (vault.Machine, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return vault.Machine{}, err
	}
	var m vault.Machine
	err = db.Write(ctx, func(tx *Tx) error {
		err := scanMachine(tx.QueryRow(ctx, `SELECT `+machineColumns+` FROM vault_machines WHERE id = ? AND tenant_id = ?`+
			tx.Dialect().ForUpdate(), id, tenantID), &m)
		if errors.Is(err, sql.ErrNoRows) {
			return errMachineNotFound(id)
		}
		if err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM vault_machine_tokens WHERE machine_id = ? AND tenant_id = ?`,
			`DELETE FROM vault_grants WHERE subject_type = 'machine' AND subject = ? AND tenant_id = ?`,
			`DELETE FROM vault_machines WHERE id = ? AND tenant_id = ?`,
		} {
			if _, err := tx.Exec(ctx, q, id, tenantID); err != nil {
				return err
			}
		}
		return nil
	})
	return m, err
}

// FindVaultMachineByClientID returns the machine identity with clientID,
// of any tenant: the sign-in lookup of a machine login.
func (db *DB) FindVaultMachineByClientID(ctx context.Context, clientID string) (vault.Machine, error) {
	ctx = crossTenant(ctx)
	var m vault.Machine
	err := db.Read(ctx, func(tx *Tx) error {
		return scanMachine(tx.QueryRow(ctx, `SELECT `+machineColumns+` FROM vault_machines WHERE client_id = ?`, clientID), &m)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return m, nodus.Errorf(nodus.ENOTFOUND, "no such machine identity")
	}
	return m, err
}

// CreateVaultMachineToken stores an access token of an identity of the
// scoped tenant and records the login in its last_used_at.
func (db *DB) CreateVaultMachineToken(ctx context.Context, t vault.MachineToken) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	if t.TenantID != tenantID {
		return nodus.Errorf(nodus.EINTERNAL, "machine token of another tenant")
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `UPDATE vault_machines SET last_used_at = ? WHERE id = ? AND tenant_id = ?`, t.CreatedAt, t.MachineID, tenantID)
		if err != nil {
			return err
		}
		if n == 0 {
			return errMachineNotFound(t.MachineID)
		}
		var uses any
		if t.UsesLeft != nil {
			uses = *t.UsesLeft
		}
		_, err = tx.Exec(ctx, `INSERT INTO vault_machine_tokens (token_hash, machine_id, tenant_id, expires_at, uses_left, created_at, address)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, t.Hash, t.MachineID, tenantID, t.ExpiresAt, uses, t.CreatedAt, t.Address)
		return err
	})
}

// FindVaultMachineToken returns the access token with hash and its
// identity, of any tenant: the sign-in lookup of a machine's request.
func (db *DB) FindVaultMachineToken(ctx context.Context, hash string) (vault.MachineToken, vault.Machine, error) {
	ctx = crossTenant(ctx)
	var t vault.MachineToken
	var m vault.Machine
	err := db.Read(ctx, func(tx *Tx) error {
		var cidrs string
		var uses sql.NullInt64
		err := tx.QueryRow(ctx, `SELECT k.token_hash, k.machine_id, k.tenant_id, k.expires_at, k.uses_left, k.created_at, k.address, `+
			machineColumnsAs+` FROM vault_machine_tokens k JOIN vault_machines m ON m.id = k.machine_id AND m.tenant_id = k.tenant_id
			WHERE k.token_hash = ?`, hash).
			Scan(append([]any{&t.Hash, &t.MachineID, &t.TenantID, &t.ExpiresAt, &uses, &t.CreatedAt, &t.Address}, machineDest(&m, &cidrs)...)...)
		if err != nil {
			return err
		}
		if uses.Valid {
			n := int(uses.Int64)
			t.UsesLeft = &n
		}
		return decodeCIDRs(&m, cidrs)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return t, m, nodus.Errorf(nodus.ENOTFOUND, "no such machine token")
	}
	return t, m, err
}

// SpendVaultMachineToken takes one use of a live token of the scoped
// tenant with uses left. The decrement is one conditional UPDATE: on
// SQLite writers are serialised, and on PostgreSQL a concurrent UPDATE of
// the same row waits for the first to commit and then re-checks
// uses_left > 0 against the new value, so no two callers take the last
// use.
func (db *DB) SpendVaultMachineToken(ctx context.Context, hash string, now time.Time) (int, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return 0, err
	}
	var left int
	err = db.Write(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `UPDATE vault_machine_tokens SET uses_left = uses_left - 1
			WHERE token_hash = ? AND tenant_id = ? AND expires_at > ? AND uses_left > 0 RETURNING uses_left`,
			hash, tenantID, now).Scan(&left)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nodus.Errorf(nodus.ENOTFOUND, "no live machine token with a use left")
	}
	return left, err
}

// DeleteExpiredVaultMachineTokens removes the tokens in scope that expired
// by now or have no use left.
func (db *DB) DeleteExpiredVaultMachineTokens(ctx context.Context, now time.Time) (int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		n, err = tx.Exec(ctx, `DELETE FROM vault_machine_tokens WHERE (expires_at <= ? OR uses_left = 0) AND `+cond,
			append([]any{now}, args...)...)
		return err
	})
	return int(n), err
}
