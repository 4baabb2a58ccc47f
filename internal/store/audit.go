package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// auditLockKey serialises audit appends on PostgreSQL, so two appenders
// never read the same last row. It differs from migrationLockKey. On
// SQLite the write transaction's BEGIN IMMEDIATE does the same.
const auditLockKey = 0x6175646974 // "audit"

// auditWalkBatch is how many rows WalkAudit reads per transaction.
const auditWalkBatch = 1000

const auditColumns = `id, seq, created_at, COALESCE(tenant_id, ''), actor_id, actor_kind, action,
	target_type, target_id, address, user_agent, changes, prev_hash, hash`

// AppendAudit gives e the next Seq, the last entry's hash as PrevHash and
// its own Hash, and inserts it. Appends are serialised, so the chain has no
// gaps or forks under concurrent appenders. Time is stored truncated to the
// microsecond. It is not tenant scoped: e names its tenant.
func (db *DB) AppendAudit(ctx context.Context, e *audit.Entry) error {
	ctx = crossTenant(ctx)
	changes, err := audit.MarshalChanges(e.Changes)
	if err != nil {
		return nodus.WrapError(err, nodus.EINVALID, "audit changes cannot be encoded as JSON")
	}
	row := *e
	row.Time = row.Time.UTC().Truncate(time.Microsecond)
	err = db.Write(ctx, func(tx *Tx) error {
		if tx.Dialect() == Postgres {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(?)", int64(auditLockKey)); err != nil {
				return err
			}
		}
		var last int64
		prev := audit.GenesisHash
		err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").Scan(&last, &prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		row.Seq, row.PrevHash = last+1, prev
		row.Hash = row.ComputeHash()
		var tenantID any // NULL for platform-level entries
		if row.TenantID != "" {
			tenantID = row.TenantID
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_log (id, seq, created_at, tenant_id, actor_id, actor_kind, action,
			target_type, target_id, address, user_agent, changes, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			row.ID, row.Seq, row.Time, tenantID, row.ActorID, row.ActorKind, row.Action,
			row.TargetType, row.TargetID, row.Address, row.UserAgent, string(changes), row.PrevHash, row.Hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: append audit entry: %w", err)
	}
	*e = row
	return nil
}

// ListAudit returns the entries f selects, newest first, and the cursor of
// the next page. A tenant scope sees its own entries only; the all-tenants
// scope sees every entry, platform-level ones included.
func (db *DB) ListAudit(ctx context.Context, f audit.Filter) ([]audit.Entry, string, error) {
	tenantID, all, ok := nodus.TenantScope(ctx)
	if !ok {
		return nil, "", nodus.ErrNoScope
	}
	limit := f.Limit
	if limit <= 0 {
		limit = audit.DefaultLimit
	}
	limit = min(limit, audit.MaxLimit)

	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if !all {
		add("tenant_id = ?", tenantID)
	}
	if f.TenantID != "" {
		add("tenant_id = ?", f.TenantID)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if f.TargetType != "" {
		add("target_type = ?", f.TargetType)
	}
	if f.TargetID != "" {
		add("target_id = ?", f.TargetID)
	}
	if !f.Since.IsZero() {
		add("created_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		add("created_at < ?", f.Until.UTC())
	}
	if f.Cursor != "" {
		seq, err := decodeAuditCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		add("seq < ?", seq)
	}
	q := "SELECT " + auditColumns + " FROM audit_log"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, limit+1)

	var out []audit.Entry
	err := db.Read(ctx, func(tx *Tx) error {
		var err error
		out, err = queryAudit(ctx, tx, q, args...)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: list audit entries: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeAuditCursor(out[limit-1].Seq)
	}
	return out, next, nil
}

// WalkAudit calls fn with every entry in Seq order, across tenants, for
// verification. It reads in batches, each in its own transaction, and calls
// fn outside them; the log only grows, so the batches join up.
func (db *DB) WalkAudit(ctx context.Context, fn func(audit.Entry) error) error {
	ctx = crossTenant(ctx)
	var after int64
	for {
		var batch []audit.Entry
		err := db.Read(ctx, func(tx *Tx) error {
			var err error
			batch, err = queryAudit(ctx, tx, "SELECT "+auditColumns+" FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
				after, auditWalkBatch)
			return err
		})
		// The rows before an unreadable one are still walked, so a
		// verifier reports the first break, whichever kind it is.
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		if err != nil {
			return fmt.Errorf("store: walk audit entries: %w", err)
		}
		if len(batch) < auditWalkBatch {
			return nil
		}
		after = batch[len(batch)-1].Seq
	}
}

// queryAudit reads entries. On an error it also returns the entries read
// before it.
func queryAudit(ctx context.Context, tx *Tx, q string, args ...any) ([]audit.Entry, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var changes string
		if err := rows.Scan(&e.ID, &e.Seq, &e.Time, &e.TenantID, &e.ActorID, &e.ActorKind, &e.Action,
			&e.TargetType, &e.TargetID, &e.Address, &e.UserAgent, &changes, &e.PrevHash, &e.Hash); err != nil {
			// A value edited into something unreadable (a time on SQLite).
			if len(out) > 0 {
				return out, fmt.Errorf("read audit_log row after seq %d: %w", out[len(out)-1].Seq, err)
			}
			return out, fmt.Errorf("read audit_log row: %w", err)
		}
		if e.Changes, err = audit.UnmarshalChanges([]byte(changes)); err != nil {
			// Only a hand edit of the table produces this.
			return out, &audit.ChainError{Seq: e.Seq, ID: e.ID, Problem: audit.ProblemUnreadable, Detail: err.Error()}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// The cursor is the seq of the last entry of a page, encoded so callers
// treat it as opaque.
const auditCursorPrefix = "a1:"

func encodeAuditCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(auditCursorPrefix + strconv.FormatInt(seq, 10)))
}

func decodeAuditCursor(c string) (int64, error) {
	invalid := nodus.Errorf(nodus.EINVALID, "invalid cursor")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, invalid
	}
	s, ok := strings.CutPrefix(string(b), auditCursorPrefix)
	if !ok {
		return 0, invalid
	}
	seq, err := strconv.ParseInt(s, 10, 64)
	if err != nil || seq <= 0 {
		return 0, invalid
	}
	return seq, nil
}
