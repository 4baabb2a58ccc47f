package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of tenants and users, in the auth database.

const tenantColumns = `id, name, description, domain, logo_url, is_active, max_users, max_chatbots, created_at, updated_at`

func scanTenant(row interface{ Scan(...any) error }, t *identity.Tenant) error {
	return row.Scan(&t.ID, &t.Name, &t.Description, &t.Domain, &t.LogoURL, &t.IsActive,
		&t.MaxUsers, &t.MaxChatbots, &t.CreatedAt, &t.UpdatedAt)
}

func errTenantNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", id)
}

// CreateTenant inserts a tenant. It needs the platform scope.
func (db *DB) CreateTenant(ctx context.Context, t *identity.Tenant) error {
	if err := requireAllTenants(ctx); err != nil {
		return err
	}
	err := db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenants (`+tenantColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.Description, t.Domain, t.LogoURL, t.IsActive, t.MaxUsers, t.MaxChatbots, t.CreatedAt, t.UpdatedAt)
		return err
	})
	if nodus.ErrorCode(err) == nodus.ECONFLICT {
		return &nodus.Error{Code: nodus.ECONFLICT, Message: "a tenant with this name exists",
			Fields: map[string]string{"name": "already taken"}, Err: err}
	}
	return err
}

// FindTenant returns a tenant visible in the context's scope.
func (db *DB) FindTenant(ctx context.Context, id string) (*identity.Tenant, error) {
	cond, args, err := scopeCond(ctx, "id")
	if err != nil {
		return nil, err
	}
	var t identity.Tenant
	err = db.Read(ctx, func(tx *Tx) error {
		return scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ? AND `+cond,
			append([]any{id}, args...)...), &t)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errTenantNotFound(id)
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTenants returns a page of the tenants visible in the context's scope,
// oldest first, and the cursor of the next page ("" at the end).
func (db *DB) ListTenants(ctx context.Context, limit int, cursor string) ([]identity.Tenant, string, error) {
	cond, args, err := scopeCond(ctx, "id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	return listPage(ctx, db, `SELECT `+tenantColumns+` FROM tenants WHERE id > ? AND `+cond+` ORDER BY id LIMIT ?`,
		append([]any{after}, args...), pageSize(limit), scanTenant, func(t identity.Tenant) string { return t.ID })
}

// UpdateTenant changes the tenant id visible in the context's scope: it
// reads and locks the row, lets change edit it (an error from change
// aborts), and writes every field but the id and creation time back, in
// one transaction, so concurrent updates never lose each other's fields.
// It returns the tenant as written.
func (db *DB) UpdateTenant(ctx context.Context, id string, change func(*identity.Tenant) error) (*identity.Tenant, error) {
	cond, args, err := scopeCond(ctx, "id")
	if err != nil {
		return nil, err
	}
	var t identity.Tenant
	err = db.Write(ctx, func(tx *Tx) error {
		err := scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ? AND `+cond+tx.Dialect().ForUpdate(),
			append([]any{id}, args...)...), &t)
		if errors.Is(err, sql.ErrNoRows) {
			return errTenantNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := change(&t); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tenants SET name = ?, description = ?, domain = ?, logo_url = ?, is_active = ?,
			max_users = ?, max_chatbots = ?, updated_at = ? WHERE id = ?`,
			t.Name, t.Description, t.Domain, t.LogoURL, t.IsActive, t.MaxUsers, t.MaxChatbots, t.UpdatedAt, id)
		return err
	})
	if nodus.ErrorCode(err) == nodus.ECONFLICT && errors.Unwrap(err) != nil {
		return nil, &nodus.Error{Code: nodus.ECONFLICT, Message: "a tenant with this name exists",
			Fields: map[string]string{"name": "already taken"}, Err: err}
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// DeleteTenant deletes a tenant and, by cascade, its users. It needs the
// platform scope.
func (db *DB) DeleteTenant(ctx context.Context, id string) error {
	if err := requireAllTenants(ctx); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM tenants WHERE id = ?`, id)
		if err == nil && n == 0 {
			return errTenantNotFound(id)
		}
		return err
	})
}

const userColumns = `id, tenant_id, email, username, full_name, role, is_active, last_login_at, created_at, updated_at, password_hash`

func scanUser(row interface{ Scan(...any) error }, u *identity.User) error {
	var tenant sql.NullString
	var role string
	if err := row.Scan(&u.ID, &tenant, &u.Email, &u.Username, &u.FullName, &role, &u.IsActive,
		&u.LastLoginAt, &u.CreatedAt, &u.UpdatedAt, &u.PasswordHash); err != nil {
		return err
	}
	u.TenantID, u.Role = tenant.String, identity.Role(role)
	return nil
}

func errUserNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "user %s not found", id)
}

// nullable stores "" as NULL, for the optional tenant of a super_admin.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateUser inserts a user. A tenant scope can create users of its own
// tenant only; the tenant must be active and below its max_users quota,
// checked in the same transaction as the insert.
func (db *DB) CreateUser(ctx context.Context, u *identity.User) error {
	scoped, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return nodus.ErrNoScope
	case !all && u.TenantID != scoped:
		return errTenantNotFound(u.TenantID)
	}
	err := db.Write(ctx, func(tx *Tx) error {
		if u.TenantID != "" {
			var active bool
			var maxUsers, users int
			// Lock the tenant first, then count in a statement of its own:
			// on PostgreSQL (read committed) a count in the locking
			// statement reads the snapshot taken before the lock was
			// granted, and misses the users its holder just added.
			err := tx.QueryRow(ctx, `SELECT is_active, max_users FROM tenants WHERE id = ?`+tx.Dialect().ForUpdate(),
				u.TenantID).Scan(&active, &maxUsers)
			if errors.Is(err, sql.ErrNoRows) {
				return errTenantNotFound(u.TenantID)
			}
			if err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE tenant_id = ?`, u.TenantID).Scan(&users); err != nil {
				return err
			}
			if !active {
				return nodus.Errorf(nodus.ECONFLICT, "tenant %s is deactivated", u.TenantID)
			}
			if maxUsers > 0 && users >= maxUsers {
				return nodus.Errorf(nodus.ECONFLICT, "tenant %s has reached its limit of %d users", u.TenantID, maxUsers)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, nullable(u.TenantID), u.Email, u.Username, u.FullName, string(u.Role), u.IsActive,
			u.LastLoginAt, u.CreatedAt, u.UpdatedAt, u.PasswordHash)
		return err
	})
	if nodus.ErrorCode(err) == nodus.ECONFLICT && errors.Unwrap(err) != nil {
		// The unique indexes: email or username taken (in any tenant, since
		// either signs a person in).
		return &nodus.Error{Code: nodus.ECONFLICT, Message: "email or username already taken",
			Fields: map[string]string{"email": "must be unique", "username": "must be unique"}, Err: err}
	}
	return err
}

// FindUser returns a user visible in the context's scope. In a tenant
// scope, super_admins (who belong to no tenant) are not visible.
func (db *DB) FindUser(ctx context.Context, id string) (*identity.User, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var u identity.User
	err = db.Read(ctx, func(tx *Tx) error {
		return scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ? AND `+cond,
			append([]any{id}, args...)...), &u)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errUserNotFound(id)
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// FindUserByUsername returns the user in scope whose username is
// username, letter case aside (usernames are unique so), or ENOTFOUND.
func (db *DB) FindUserByUsername(ctx context.Context, username string) (*identity.User, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var u identity.User
	err = db.Read(ctx, func(tx *Tx) error {
		return scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE lower(username) = lower(?) AND `+cond,
			append([]any{username}, args...)...), &u)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "no user %q", username)
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// FindAccountByLogin finds a user by email or username, in any tenant:
// signing in comes before any scope exists, which is why this is the one
// unscoped read of users by name. It returns ENOTFOUND when there is none.
func (db *DB) FindAccountByLogin(ctx context.Context, login string) (*identity.Principal, error) {
	ctx = crossTenant(ctx)
	var p identity.Principal
	err := db.Read(ctx, func(tx *Tx) error {
		return scanWithPrincipal(tx.QueryRow(ctx, `SELECT `+principalColumns+`
			FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id
			WHERE lower(u.email) = lower(?) OR lower(u.username) = lower(?)`, login, login), nil, &p)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "no such account")
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// ListUsers returns a page of the users visible in the context's scope,
// oldest first, and the cursor of the next page ("" at the end).
func (db *DB) ListUsers(ctx context.Context, limit int, cursor string) ([]identity.User, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	return listPage(ctx, db, `SELECT `+userColumns+` FROM users WHERE id > ? AND `+cond+` ORDER BY id LIMIT ?`,
		append([]any{after}, args...), pageSize(limit), scanUser, func(u identity.User) string { return u.ID })
}

// UpdateUser changes the user id visible in the context's scope the way
// UpdateTenant does: read and lock, change, write back in one
// transaction. It writes the profile, role and state, never the password
// or the tenant (a user never moves between tenants), and returns the
// user as written.
func (db *DB) UpdateUser(ctx context.Context, id string, change func(*identity.User) error) (*identity.User, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var u identity.User
	err = db.Write(ctx, func(tx *Tx) error {
		err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ? AND `+cond+tx.Dialect().ForUpdate(),
			append([]any{id}, args...)...), &u)
		if errors.Is(err, sql.ErrNoRows) {
			return errUserNotFound(id)
		}
		if err != nil {
			return err
		}
		tenant := u.TenantID
		if err := change(&u); err != nil {
			return err
		}
		if u.TenantID != tenant {
			return nodus.Errorf(nodus.EINVALID, "a user cannot move between tenants")
		}
		_, err = tx.Exec(ctx, `UPDATE users SET email = ?, username = ?, full_name = ?, role = ?, is_active = ?, updated_at = ?
			WHERE id = ?`, u.Email, u.Username, u.FullName, string(u.Role), u.IsActive, u.UpdatedAt, id)
		return err
	})
	if nodus.ErrorCode(err) == nodus.ECONFLICT && errors.Unwrap(err) != nil {
		return nil, &nodus.Error{Code: nodus.ECONFLICT, Message: "email or username already taken",
			Fields: map[string]string{"email": "must be unique", "username": "must be unique"}, Err: err}
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// SetPasswordHash replaces a user's password hash.
func (db *DB) SetPasswordHash(ctx context.Context, userID, hash string, at time.Time) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ? AND `+cond,
			append([]any{hash, at, userID}, args...)...)
		if err == nil && n == 0 {
			return errUserNotFound(userID)
		}
		return err
	})
}

// RecordLogin sets a user's last_login_at. Like FindAccountByLogin it runs
// before a scope exists, on the id that sign-in just verified.
func (db *DB) RecordLogin(ctx context.Context, userID string, at time.Time) error {
	ctx = crossTenant(ctx)
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`, at, userID)
		return err
	})
}

// DeleteUser deletes a user visible in the context's scope.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM users WHERE id = ? AND `+cond, append([]any{id}, args...)...)
		if err == nil && n == 0 {
			return errUserNotFound(id)
		}
		return err
	})
}

// listPage runs a keyset page query whose last placeholder is its LIMIT,
// fetching one row more than n to learn whether another page follows, and
// returns the page and the cursor of the next one ("" at the end).
func listPage[T any](ctx context.Context, db *DB, query string, args []any, n int,
	scan func(row interface{ Scan(...any) error }, item *T) error, id func(T) string) ([]T, string, error) {
	var out []T
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, query, append(args, n+1)...)
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
	if err != nil {
		return nil, "", err
	}
	if len(out) <= n {
		return out, "", nil
	}
	out = out[:n]
	return out, encodeCursor(id(out[n-1])), nil
}

// CountUsers returns how many users the context's scope holds.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	var n int
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE `+cond, args...).Scan(&n)
	})
	return n, err
}
