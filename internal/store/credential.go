package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of sessions and API tokens, in the auth database.
// Lookups by secret hash run before any scope exists (they are how a
// request gets one), so they are unscoped and return the owner with the
// state of their tenant; everything else is scoped.

// principalColumns reads the user u and tenant t of a join.
const principalColumns = `u.id, u.tenant_id, u.email, u.username, u.full_name, u.role, u.is_active,
	u.last_login_at, u.created_at, u.updated_at, u.password_hash, t.is_active`

// CreateSession stores a new session.
func (db *DB) CreateSession(ctx context.Context, s *identity.Session) error {
	ctx = crossTenant(ctx)
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sessions (id_hash, user_id, tenant_id, csrf_token, created_at, last_seen_at,
			expires_at, address, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.IDHash, s.UserID, nullable(s.TenantID), s.CSRFToken, s.CreatedAt, s.LastSeenAt, s.ExpiresAt, s.Address, s.UserAgent)
		return err
	})
}

// FindSession returns the session whose id hashes to idHash, with its
// principal, or ENOTFOUND. Expiry is the caller's decision.
func (db *DB) FindSession(ctx context.Context, idHash string) (*identity.Session, *identity.Principal, error) {
	ctx = crossTenant(ctx)
	var s identity.Session
	var p identity.Principal
	err := db.Read(ctx, func(tx *Tx) error {
		row := tx.QueryRow(ctx, `SELECT s.id_hash, s.user_id, s.tenant_id, s.csrf_token, s.created_at, s.last_seen_at,
			s.expires_at, s.address, s.user_agent, `+principalColumns+`
			FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN tenants t ON t.id = u.tenant_id
			WHERE s.id_hash = ?`, idHash)
		var tenant sql.NullString
		dest := []any{&s.IDHash, &s.UserID, &tenant, &s.CSRFToken, &s.CreatedAt, &s.LastSeenAt, &s.ExpiresAt, &s.Address, &s.UserAgent}
		err := scanWithPrincipal(row, dest, &p)
		s.TenantID = tenant.String
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nodus.Errorf(nodus.ENOTFOUND, "no such session")
	}
	if err != nil {
		return nil, nil, err
	}
	return &s, &p, nil
}

// TouchSession records that a session was used at at.
func (db *DB) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	ctx = crossTenant(ctx)
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?`, at, idHash)
		return err
	})
}

// DeleteSession ends one session (logout). Ending one that is already gone
// is not an error.
func (db *DB) DeleteSession(ctx context.Context, idHash string) error {
	ctx = crossTenant(ctx)
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash)
		return err
	})
}

// DeleteUserSessions ends every session of a user but keep (a password
// change keeps the session that made it; "" keeps none), within the
// context's scope, and returns how many ended.
func (db *DB) DeleteUserSessions(ctx context.Context, userID, keep string) (int64, error) {
	cond, args, err := scopeCond(ctx, "u.tenant_id")
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		n, err = tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?
			AND user_id IN (SELECT u.id FROM users u WHERE `+cond+`)`, append([]any{userID, keep}, args...)...)
		return err
	})
	return n, err
}

// DeleteExpiredSessions removes sessions past their absolute expiry.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	ctx = crossTenant(ctx)
	var n int64
	err := db.Write(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM sessions WHERE expires_at < ?`, now)
		return err
	})
	return n, err
}

const tokenColumns = `k.id, k.user_id, k.tenant_id, k.name, k.prefix, k.token_hash, k.role, k.created_at, k.expires_at, k.last_used_at, k.revoked_at`

func tokenDest(k *identity.Token, tenant, role *sql.NullString) []any {
	return []any{&k.ID, &k.UserID, tenant, &k.Name, &k.Prefix, &k.Hash, role, &k.CreatedAt, &k.ExpiresAt, &k.LastUsedAt, &k.RevokedAt}
}

// CreateToken stores a new API token for a user visible in the context's
// scope.
func (db *DB) CreateToken(ctx context.Context, k *identity.Token) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE id = ? AND `+cond,
			append([]any{k.UserID}, args...)...).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return errUserNotFound(k.UserID)
		}
		_, err := tx.Exec(ctx, `INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, role, created_at,
			expires_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.UserID, nullable(k.TenantID), k.Name, k.Prefix, k.Hash, nullable(string(k.Role)), k.CreatedAt, k.ExpiresAt,
			k.LastUsedAt, k.RevokedAt)
		return err
	})
}

// FindTokenByHash returns the token whose secret hashes to hash, with its
// principal, or ENOTFOUND. Expiry and revocation are the caller's decision.
func (db *DB) FindTokenByHash(ctx context.Context, hash string) (*identity.Token, *identity.Principal, error) {
	ctx = crossTenant(ctx)
	var k identity.Token
	var p identity.Principal
	err := db.Read(ctx, func(tx *Tx) error {
		row := tx.QueryRow(ctx, `SELECT `+tokenColumns+`, `+principalColumns+`
			FROM api_tokens k JOIN users u ON u.id = k.user_id LEFT JOIN tenants t ON t.id = u.tenant_id
			WHERE k.token_hash = ?`, hash)
		var tenant, role sql.NullString
		err := scanWithPrincipal(row, tokenDest(&k, &tenant, &role), &p)
		k.TenantID, k.Role = tenant.String, identity.Role(role.String)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nodus.Errorf(nodus.ENOTFOUND, "no such token")
	}
	if err != nil {
		return nil, nil, err
	}
	return &k, &p, nil
}

// ListTokens returns a user's tokens, newest first, within the context's
// scope.
func (db *DB) ListTokens(ctx context.Context, userID string) ([]identity.Token, error) {
	cond, args, err := scopeCond(ctx, "k.tenant_id")
	if err != nil {
		return nil, err
	}
	var out []identity.Token
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens k WHERE k.user_id = ? AND `+cond+` ORDER BY k.id DESC`,
			append([]any{userID}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k identity.Token
			var tenant, role sql.NullString
			if err := rows.Scan(tokenDest(&k, &tenant, &role)...); err != nil {
				return err
			}
			k.TenantID, k.Role = tenant.String, identity.Role(role.String)
			out = append(out, k)
		}
		return rows.Err()
	})
	return out, err
}

// RevokeToken marks one of a user's tokens revoked.
func (db *DB) RevokeToken(ctx context.Context, userID, tokenID string, at time.Time) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?)
			WHERE id = ? AND user_id = ? AND `+cond, append([]any{at, tokenID, userID}, args...)...)
		if err == nil && n == 0 {
			return nodus.Errorf(nodus.ENOTFOUND, "token %s not found", tokenID)
		}
		return err
	})
}

// TouchToken records that a token was used at at.
func (db *DB) TouchToken(ctx context.Context, tokenID string, at time.Time) error {
	ctx = crossTenant(ctx)
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, at, tokenID)
		return err
	})
}

// scanWithPrincipal scans dest followed by principalColumns into p.
func scanWithPrincipal(row *Row, dest []any, p *identity.Principal) error {
	var tenant sql.NullString
	var role string
	var tenantActive sql.NullBool
	u := &p.User
	dest = append(dest, &u.ID, &tenant, &u.Email, &u.Username, &u.FullName, &role, &u.IsActive,
		&u.LastLoginAt, &u.CreatedAt, &u.UpdatedAt, &u.PasswordHash, &tenantActive)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	u.TenantID, u.Role = tenant.String, identity.Role(role)
	p.TenantActive = u.TenantID == "" || tenantActive.Bool
	return nil
}
