package store

import (
	"context"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
)

// ListKeysExpiring returns up to limit active virtual keys in scope that
// expire in [from, to), by expiry then id, after the key (afterExpiry,
// afterID) when afterID is set: the key-expiry sweep pages through every
// tenant's keys with it (the all-tenants scope).
func (db *DB) ListKeysExpiring(ctx context.Context, from, to time.Time, afterExpiry time.Time, afterID string, limit int) ([]gateway.Key, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + keyColumns + ` FROM gateway_keys WHERE ` + cond +
		` AND status = ? AND expires_at IS NOT NULL AND expires_at >= ? AND expires_at < ?`
	args = append(args, gateway.KeyActive, from.UTC(), to.UTC())
	if afterID != "" {
		q += ` AND (expires_at > ? OR (expires_at = ? AND id > ?))`
		args = append(args, afterExpiry.UTC(), afterExpiry.UTC(), afterID)
	}
	q += ` ORDER BY expires_at, id LIMIT ?`
	args = append(args, pageSize(limit))
	var out []gateway.Key
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k gateway.Key
			if err := scanKey(rows, &k); err != nil {
				return err
			}
			out = append(out, k)
		}
		return rows.Err()
	})
	return out, err
}
