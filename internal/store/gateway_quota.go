package store

import (
	"context"
	"database/sql"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
)

// This file holds the replicas' claims on shared budgets and rate limits
// (gateway.QuotaStore; the scheme is described in
// internal/gateway/quota.go). The rows are bookkeeping across tenants and
// carry no tenant_id; budgets are read in the all-tenants scope.

// ErrClaimLapsed is a claim asked to grow after it expired.
var ErrClaimLapsed = errors.New("store: the replica's claim expired before it was renewed")

// quotaLockKey is the PostgreSQL advisory lock that serialises the claims
// on one quota; SQLite's single writer already does.
func quotaLockKey(quota string) int64 {
	h := fnv.New64a()
	h.Write([]byte("nodus/gateway-quota/"))
	h.Write([]byte(quota))
	return int64(h.Sum64())
}

// ClaimQuotas grows the replica's claims, all or nothing. Each quota is
// locked (in a fixed order, so two replicas claiming on the same budgets
// cannot deadlock), the live claims of every replica are summed, and the
// claim grows by Need plus 1/ExtraShare of what is left beyond it, when
// Need fits. The replica's row is set to Held plus the growth: memory's
// claim is the true one, the row may still count spend written since.
func (db *DB) ClaimQuotas(ctx context.Context, replica string, claims []gateway.QuotaClaim, now, expires time.Time) ([]int64, error) {
	ctx = crossTenant(ctx)
	order := make([]int, len(claims))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(claims[a].Quota, claims[b].Quota) })
	grown := make([]int64, len(claims))
	err := db.Write(ctx, func(tx *Tx) error {
		for _, i := range order {
			c := claims[i]
			if c.Need <= 0 {
				continue
			}
			if tx.Dialect() == Postgres {
				if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(?)", quotaLockKey(c.Quota)); err != nil {
					return err
				}
			}
			capacity, ok, err := quotaCapacity(ctx, tx, c, now)
			if err != nil {
				return err
			}
			var others, lapsed int64
			if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(CASE WHEN replica <> ? AND expires_at > ? THEN amount ELSE 0 END), 0),
				COUNT(CASE WHEN replica = ? AND expires_at <= ? THEN 1 END)
				FROM gateway_quota_claims WHERE quota = ?`, replica, now, replica, now, c.Quota).Scan(&others, &lapsed); err != nil {
				return err
			}
			held := others + max(c.Held, 0)
			if lapsed > 0 {
				// The replica's own claim expired: others may have taken its
				// room, so it must not be revived. The replica's next sync
				// finds it and drops every claim.
				return ErrClaimLapsed
			}
			g := c.Need
			if ok {
				left := capacity - held
				if left < c.Need {
					return &gateway.ErrQuotaExhausted{Index: i}
				}
				if c.ExtraShare > 0 {
					g += (left - c.Need) / c.ExtraShare
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO gateway_quota_claims (quota, replica, amount, expires_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (quota, replica) DO UPDATE SET amount = excluded.amount, expires_at = excluded.expires_at`,
				c.Quota, replica, max(c.Held, 0)+g, expires); err != nil {
				return err
			}
			grown[i] = g
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return grown, nil
}

// quotaCapacity is what a quota may hold in all: a budget's maximum less
// its written spend (its whole maximum once its period has ended, since
// the next call rolls it over), or the limit the claim names. ok is false
// for a budget that no longer exists: nothing bounds it.
func quotaCapacity(ctx context.Context, tx *Tx, c gateway.QuotaClaim, now time.Time) (capacity int64, ok bool, err error) {
	if c.BudgetID == "" {
		return c.Capacity, true, nil
	}
	var maxMicros, spend int64
	var resetAt *time.Time
	err = tx.QueryRow(ctx, `SELECT max_micros, spend, reset_at FROM gateway_budgets WHERE id = ?`, c.BudgetID).
		Scan(&maxMicros, &spend, &resetAt)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if resetAt != nil && !now.Before(*resetAt) {
		spend = 0
	}
	return maxMicros - spend, true, nil
}

// SetQuotaClaims lowers the replica's claims named in lower (0 deletes the
// row) and renews every claim of the replica that is still live; it
// returns how many it renewed. A claim that expired stays expired: others
// may have claimed its room since.
func (db *DB) SetQuotaClaims(ctx context.Context, replica string, lower map[string]int64, now, expires time.Time) (int, error) {
	ctx = crossTenant(ctx)
	quotas := make([]string, 0, len(lower))
	for q := range lower {
		quotas = append(quotas, q)
	}
	slices.Sort(quotas)
	var renewed int64
	err := db.Write(ctx, func(tx *Tx) error {
		for _, q := range quotas {
			var err error
			if lower[q] <= 0 {
				_, err = tx.Exec(ctx, `DELETE FROM gateway_quota_claims WHERE quota = ? AND replica = ?`, q, replica)
			} else {
				_, err = tx.Exec(ctx, `UPDATE gateway_quota_claims SET amount = ? WHERE quota = ? AND replica = ? AND amount > ?`,
					lower[q], q, replica, lower[q])
			}
			if err != nil {
				return err
			}
		}
		var err error
		renewed, err = tx.Exec(ctx, `UPDATE gateway_quota_claims SET expires_at = ? WHERE replica = ? AND expires_at > ?`,
			expires, replica, now)
		return err
	})
	return int(renewed), err
}

// ReleaseQuotas removes every claim of the replica.
func (db *DB) ReleaseQuotas(ctx context.Context, replica string) error {
	return db.Write(crossTenant(ctx), func(tx *Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM gateway_quota_claims WHERE replica = ?`, replica)
		return err
	})
}

var _ gateway.QuotaStore = (*DB)(nil)
