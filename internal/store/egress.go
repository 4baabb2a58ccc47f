package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of egress policies, in the main database:
// tenant_egress_policies (a tenant's mode), egress_rules (a tenant's rules,
// or the platform's with tenant_id NULL) and egress_address_exceptions
// (platform only). Tenants live in the auth database, so there is no
// foreign key to them: the scope alone decides whose rows a query
// touches. Every scope reads the platform's rules; a tenant's mode and
// rules are read and written in that tenant's scope or the all-tenants
// one; the platform's rules and the exceptions are written, and the
// exceptions read, only in the all-tenants scope.

// egressLockKey serialises egress writes on PostgreSQL, so two replacing
// a tenant's rules at once cannot leave the union of both. SQLite's
// single writer already does. It differs from the other advisory keys.
const egressLockKey = 0x656772657373 // "egress"

func lockEgress(ctx context.Context, tx *Tx) error {
	if tx.Dialect() != Postgres {
		return nil
	}
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(?)", int64(egressLockKey))
	return err
}

// egressTenant checks that ctx's scope covers tenantID and returns the
// scope condition on tenant_id, which every query on the tenant's rows
// also carries.
func egressTenant(ctx context.Context, tenantID string) (string, []any, error) {
	id, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return "", nil, nodus.ErrNoScope
	case tenantID == "":
		return "", nil, nodus.Errorf(nodus.EINVALID, "an egress policy belongs to a tenant")
	case !all && id != tenantID:
		return "", nil, errTenantNotFound(tenantID)
	}
	return scopeCond(ctx, "tenant_id")
}

const egressRuleColumns = `id, tenant_id, host, port, path_prefix, comment, created_at, created_by`

func scanEgressRules(rows *Rows) ([]egress.Rule, error) {
	defer rows.Close()
	var out []egress.Rule
	for rows.Next() {
		var r egress.Rule
		var tenant sql.NullString
		if err := rows.Scan(&r.ID, &tenant, &r.Host, &r.Port, &r.PathPrefix, &r.Comment, &r.CreatedAt, &r.CreatedBy); err != nil {
			return nil, err
		}
		r.TenantID = tenant.String
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	egress.SortRules(out)
	return out, nil
}

func findEgressPolicy(ctx context.Context, tx *Tx, tenantID, cond string, args []any) (*egress.Policy, error) {
	p := &egress.Policy{TenantID: tenantID, Mode: egress.ModeEnforce}
	var mode string
	err := tx.QueryRow(ctx, `SELECT mode, updated_at, updated_by FROM tenant_egress_policies WHERE tenant_id = ? AND `+cond,
		append([]any{tenantID}, args...)...).Scan(&mode, &p.UpdatedAt, &p.UpdatedBy)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, err
	default:
		p.Mode = egress.Mode(mode)
	}
	rows, err := tx.Query(ctx, `SELECT `+egressRuleColumns+` FROM egress_rules WHERE tenant_id = ? AND `+cond,
		append([]any{tenantID}, args...)...)
	if err != nil {
		return nil, err
	}
	if p.Rules, err = scanEgressRules(rows); err != nil {
		return nil, err
	}
	return p, nil
}

func findEgressPlatform(ctx context.Context, tx *Tx, exceptions bool) (*egress.Platform, error) {
	rows, err := tx.Query(ctx, `SELECT `+egressRuleColumns+` FROM egress_rules WHERE tenant_id IS NULL`)
	if err != nil {
		return nil, err
	}
	p := &egress.Platform{}
	if p.Rules, err = scanEgressRules(rows); err != nil {
		return nil, err
	}
	if !exceptions {
		return p, nil
	}
	rows, err = tx.Query(ctx, `SELECT id, ip, port, comment, created_at, created_by FROM egress_address_exceptions`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	p.Exceptions = []egress.AddressException{}
	for rows.Next() {
		var e egress.AddressException
		if err := rows.Scan(&e.ID, &e.IP, &e.Port, &e.Comment, &e.CreatedAt, &e.CreatedBy); err != nil {
			return nil, err
		}
		p.Exceptions = append(p.Exceptions, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	egress.SortExceptions(p.Exceptions)
	return p, nil
}

// FindEgressPolicy returns a tenant's mode and rules, in one snapshot: for
// a tenant that never set a policy, enforce with no rules and a zero
// UpdatedAt. Another tenant than the scope's is ENOTFOUND.
func (db *DB) FindEgressPolicy(ctx context.Context, tenantID string) (*egress.Policy, error) {
	cond, args, err := egressTenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var p *egress.Policy
	err = db.Read(ctx, func(tx *Tx) error {
		p, err = findEgressPolicy(ctx, tx, tenantID, cond, args)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// FindEgressPlatform returns the platform's rules to any scope and, on the
// all-tenants scope only, the address exceptions (nil on a tenant scope).
func (db *DB) FindEgressPlatform(ctx context.Context) (*egress.Platform, error) {
	_, all, ok := nodus.TenantScope(ctx)
	if !ok {
		return nil, nodus.ErrNoScope
	}
	var p *egress.Platform
	err := db.Read(ctx, func(tx *Tx) error {
		var err error
		p, err = findEgressPlatform(ctx, tx, all)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// UpdateEgressPolicy reads a tenant's policy, lets change edit it (an
// error from change aborts, returned as is) and, unless the result is the
// SameAs what was read, writes the mode and replaces the rules, all in
// one transaction. It returns the policy before and after (the same when
// nothing changed). The rules must belong to the tenant.
func (db *DB) UpdateEgressPolicy(ctx context.Context, tenantID string, change func(*egress.Policy) error) (before, after *egress.Policy, err error) {
	cond, args, err := egressTenant(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	err = db.Write(ctx, func(tx *Tx) error {
		if err := lockEgress(ctx, tx); err != nil {
			return err
		}
		b, err := findEgressPolicy(ctx, tx, tenantID, cond, args)
		if err != nil {
			return err
		}
		a := *b
		a.Rules = slices.Clone(b.Rules)
		if err := change(&a); err != nil {
			return err
		}
		if a.TenantID != tenantID || slices.ContainsFunc(a.Rules, func(r egress.Rule) bool { return r.TenantID != tenantID }) {
			return nodus.Errorf(nodus.EINTERNAL, "an egress policy cannot change its tenant")
		}
		if a.SameAs(b) {
			before, after = b, b
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_egress_policies (tenant_id, mode, updated_at, updated_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			tenantID, string(a.Mode), a.UpdatedAt, a.UpdatedBy); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM egress_rules WHERE tenant_id = ? AND `+cond, append([]any{tenantID}, args...)...); err != nil {
			return err
		}
		if err := insertEgressRules(ctx, tx, a.Rules); err != nil {
			return err
		}
		before, after = b, &a
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return before, after, nil
}

// UpdateEgressPlatform does for the platform's rules and address
// exceptions what UpdateEgressPolicy does for a tenant's policy. It needs
// the all-tenants scope.
func (db *DB) UpdateEgressPlatform(ctx context.Context, change func(*egress.Platform) error) (before, after *egress.Platform, err error) {
	if err := requireAllTenants(ctx); err != nil {
		return nil, nil, err
	}
	err = db.Write(ctx, func(tx *Tx) error {
		if err := lockEgress(ctx, tx); err != nil {
			return err
		}
		b, err := findEgressPlatform(ctx, tx, true)
		if err != nil {
			return err
		}
		a := egress.Platform{Rules: slices.Clone(b.Rules), Exceptions: slices.Clone(b.Exceptions)}
		if err := change(&a); err != nil {
			return err
		}
		if slices.ContainsFunc(a.Rules, func(r egress.Rule) bool { return r.TenantID != "" }) {
			return nodus.Errorf(nodus.EINTERNAL, "a platform egress rule cannot belong to a tenant")
		}
		if a.SameAs(b) {
			before, after = b, b
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM egress_rules WHERE tenant_id IS NULL`); err != nil {
			return err
		}
		if err := insertEgressRules(ctx, tx, a.Rules); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM egress_address_exceptions`); err != nil {
			return err
		}
		for _, e := range a.Exceptions {
			if _, err := tx.Exec(ctx, `INSERT INTO egress_address_exceptions (id, ip, port, comment, created_at, created_by)
				VALUES (?, ?, ?, ?, ?, ?)`, e.ID, e.IP, e.Port, e.Comment, e.CreatedAt, e.CreatedBy); err != nil {
				return err
			}
		}
		before, after = b, &a
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return before, after, nil
}

func insertEgressRules(ctx context.Context, tx *Tx, rules []egress.Rule) error {
	for _, r := range rules {
		if _, err := tx.Exec(ctx, `INSERT INTO egress_rules (`+egressRuleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, nullable(r.TenantID), r.Host, r.Port, r.PathPrefix, r.Comment, r.CreatedAt, r.CreatedBy); err != nil {
			return err
		}
	}
	return nil
}

// DeleteEgressTenant removes a tenant's egress policy and rules, for the
// deletion of the tenant (tenants live in another database, so no foreign
// key does it). It returns how many rules went; running it again is a
// no-op.
func (db *DB) DeleteEgressTenant(ctx context.Context, tenantID string) (int64, error) {
	cond, args, err := egressTenant(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		if n, err = tx.Exec(ctx, `DELETE FROM egress_rules WHERE tenant_id = ? AND `+cond, append([]any{tenantID}, args...)...); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM tenant_egress_policies WHERE tenant_id = ? AND `+cond, append([]any{tenantID}, args...)...)
		return err
	})
	return n, err
}
