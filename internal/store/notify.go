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
	"github.com/nodus-os/nodus/internal/notify"
)

// This file holds the SQL of notifications, in the main database
// (migration 0012): events, in-app notifications, email preferences,
// webhooks and their delivery log. Every statement names the tenant of
// ctx's scope (the all-tenants scope has nothing to read here: a user's
// notifications and a webhook always belong to one tenant).

func notifyTenant(ctx context.Context) (string, error) { return nodus.RequireTenant(ctx) }

// PublishNotifyEvent writes an event, its notifications and, through
// enqueue, the jobs of its tasks in one transaction. With a dedupe key
// already used by the tenant it writes nothing and returns false.
func (db *DB) PublishNotifyEvent(ctx context.Context, ev notify.Event, notes []notify.Notification, tasks []notify.Task,
	enqueue func(ctx context.Context, tx *Tx, t notify.Task) error) (bool, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return false, err
	}
	if ev.TenantID != tenantID {
		return false, nodus.ErrNoScope
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return false, fmt.Errorf("store: encode event data: %w", err)
	}
	if ev.Data == nil {
		data = []byte("{}")
	}
	published := false
	err = db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `INSERT INTO notify_events (id, tenant_id, kind, dedupe_key, title, body, link, data, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			ev.ID, tenantID, string(ev.Kind), ev.DedupeKey, ev.Title, ev.Body, ev.Link, string(data), ev.CreatedAt)
		if err != nil || n == 0 {
			return err
		}
		for _, no := range notes {
			if _, err := tx.Exec(ctx, `INSERT INTO notifications (id, tenant_id, user_id, event_id, kind, title, body, link, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, no.ID, tenantID, no.UserID, ev.ID, string(no.Kind), no.Title, no.Body,
				no.Link, no.CreatedAt); err != nil {
				return err
			}
		}
		for _, t := range tasks {
			if enqueue == nil {
				return errors.New("store: notification tasks without a queue")
			}
			if err := enqueue(ctx, tx, t); err != nil {
				return err
			}
		}
		published = true
		return nil
	})
	return published, err
}

// FindNotifyEvent reads one event of the tenant.
func (db *DB) FindNotifyEvent(ctx context.Context, id string) (notify.Event, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return notify.Event{}, err
	}
	var ev notify.Event
	err = db.Read(ctx, func(tx *Tx) error {
		var kind, data string
		err := tx.QueryRow(ctx, `SELECT id, tenant_id, kind, dedupe_key, title, body, link, data, created_at
			FROM notify_events WHERE tenant_id = ? AND id = ?`, tenantID, id).
			Scan(&ev.ID, &ev.TenantID, &kind, &ev.DedupeKey, &ev.Title, &ev.Body, &ev.Link, &data, &ev.CreatedAt)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "event %s not found", id)
		}
		if err != nil {
			return err
		}
		ev.Kind = notify.Kind(kind)
		return json.Unmarshal([]byte(data), &ev.Data)
	})
	return ev, err
}

const notificationColumns = `id, tenant_id, user_id, event_id, kind, title, body, link, created_at, read_at`

func scanNotification(s scanner, n *notify.Notification) error {
	var kind string
	err := s.Scan(&n.ID, &n.TenantID, &n.UserID, &n.EventID, &kind, &n.Title, &n.Body, &n.Link, &n.CreatedAt, &n.ReadAt)
	n.Kind = notify.Kind(kind)
	return err
}

func errNotificationNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "notification %s not found", id)
}

// FindNotification reads one notification of the tenant, whoever's it is
// (the email job's read; users go through the methods naming them).
func (db *DB) FindNotification(ctx context.Context, id string) (notify.Notification, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return notify.Notification{}, err
	}
	var n notify.Notification
	err = db.Read(ctx, func(tx *Tx) error {
		n, err = rowByID(ctx, tx, "notifications", notificationColumns, id, "tenant_id = ?", []any{tenantID}, false,
			scanNotification, errNotificationNotFound)
		return err
	})
	return n, err
}

// ListNotifications returns a page of the user's notifications, newest
// first, and the next page's cursor.
func (db *DB) ListNotifications(ctx context.Context, userID string, f notify.ListFilter) ([]notify.Notification, string, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageSize(f.Limit)
	q := `SELECT ` + notificationColumns + ` FROM notifications WHERE tenant_id = ? AND user_id = ?`
	args := []any{tenantID, userID}
	if f.UnreadOnly {
		q += ` AND read_at IS NULL`
	}
	if after != "" {
		q += ` AND id < ?`
		args = append(args, after)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1)
	out := []notify.Notification{}
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n notify.Notification
			if err := scanNotification(rows, &n); err != nil {
				return err
			}
			out = append(out, n)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCursor(out[limit-1].ID)
	}
	return out, next, nil
}

// CountUnreadNotifications counts the user's unread notifications.
func (db *DB) CountUnreadNotifications(ctx context.Context, userID string) (int, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return 0, err
	}
	var n int
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM notifications WHERE tenant_id = ? AND user_id = ? AND read_at IS NULL`,
			tenantID, userID).Scan(&n)
	})
	return n, err
}

// MarkNotificationRead sets read_at on the user's notification if unset;
// another user's or tenant's is not found.
func (db *DB) MarkNotificationRead(ctx context.Context, userID, id string, at time.Time) error {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM notifications WHERE tenant_id = ? AND user_id = ? AND id = ?`,
			tenantID, userID, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotificationNotFound(id)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE notifications SET read_at = ? WHERE tenant_id = ? AND user_id = ? AND id = ? AND read_at IS NULL`,
			at, tenantID, userID, id)
		return err
	})
}

// MarkAllNotificationsRead marks every unread notification of the user
// read and returns how many there were.
func (db *DB) MarkAllNotificationsRead(ctx context.Context, userID string, at time.Time) (int, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		n, err = tx.Exec(ctx, `UPDATE notifications SET read_at = ? WHERE tenant_id = ? AND user_id = ? AND read_at IS NULL`,
			at, tenantID, userID)
		return err
	})
	return int(n), err
}

// NotificationPrefs returns the user's email opt-ins by kind.
func (db *DB) NotificationPrefs(ctx context.Context, userID string) (map[notify.Kind]bool, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return nil, err
	}
	out := map[notify.Kind]bool{}
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT kind, email FROM notification_prefs WHERE tenant_id = ? AND user_id = ?`, tenantID, userID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var kind string
			var email bool
			if err := rows.Scan(&kind, &email); err != nil {
				return err
			}
			out[notify.Kind(kind)] = email
		}
		return rows.Err()
	})
	return out, err
}

// SetNotificationPrefs upserts the user's opt-ins for the kinds named.
func (db *DB) SetNotificationPrefs(ctx context.Context, userID string, email map[notify.Kind]bool, at time.Time) error {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		for kind, on := range email {
			if _, err := tx.Exec(ctx, `INSERT INTO notification_prefs (tenant_id, user_id, kind, email, updated_at)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, user_id, kind) DO UPDATE SET email = excluded.email, updated_at = excluded.updated_at`,
				tenantID, userID, string(kind), on, at); err != nil {
				return err
			}
		}
		return nil
	})
}

// EmailOptIns returns which of userIDs opted in to email for kind.
func (db *DB) EmailOptIns(ctx context.Context, kind notify.Kind, userIDs []string) (map[string]bool, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	if len(userIDs) == 0 {
		return out, nil
	}
	args := []any{tenantID, string(kind), true}
	for _, id := range userIDs {
		args = append(args, id)
	}
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT user_id FROM notification_prefs WHERE tenant_id = ? AND kind = ? AND email = ?
			AND user_id IN (?`+strings.Repeat(", ?", len(userIDs)-1)+`)`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out[id] = true
		}
		return rows.Err()
	})
	return out, err
}

const webhookColumns = `id, tenant_id, url, secret, kinds, active, created_by, created_at`

func scanWebhook(s scanner, w *notify.Webhook) error {
	var kinds string
	if err := s.Scan(&w.ID, &w.TenantID, &w.URL, &w.SealedSecret, &kinds, &w.Active, &w.CreatedBy, &w.CreatedAt); err != nil {
		return err
	}
	return json.Unmarshal([]byte(kinds), &w.Kinds)
}

func errWebhookNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "webhook %s not found", id)
}

// CreateWebhook adds a webhook unless the tenant already has max.
func (db *DB) CreateWebhook(ctx context.Context, w notify.Webhook, max int) error {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return err
	}
	kinds, err := json.Marshal(w.Kinds)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM webhooks WHERE tenant_id = ?`, tenantID).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return nodus.Errorf(nodus.ECONFLICT, "a tenant has at most %d webhooks; delete one first", max)
		}
		_, err := tx.Exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, tenantID, w.URL, w.SealedSecret, string(kinds), w.Active, w.CreatedBy, w.CreatedAt)
		return err
	})
}

// FindWebhook reads one webhook of the tenant.
func (db *DB) FindWebhook(ctx context.Context, id string) (notify.Webhook, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return notify.Webhook{}, err
	}
	var w notify.Webhook
	err = db.Read(ctx, func(tx *Tx) error {
		w, err = rowByID(ctx, tx, "webhooks", webhookColumns, id, "tenant_id = ?", []any{tenantID}, false, scanWebhook, errWebhookNotFound)
		return err
	})
	return w, err
}

// ListWebhooks returns the tenant's webhooks, oldest first.
func (db *DB) ListWebhooks(ctx context.Context) ([]notify.Webhook, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return nil, err
	}
	return db.queryWebhooks(ctx, `WHERE tenant_id = ? ORDER BY id`, tenantID)
}

// queryWebhooks reads the webhooks a WHERE (and ORDER BY) selects.
func (db *DB) queryWebhooks(ctx context.Context, where string, args ...any) ([]notify.Webhook, error) {
	out := []notify.Webhook{}
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks `+where, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var w notify.Webhook
			if err := scanWebhook(rows, &w); err != nil {
				return err
			}
			out = append(out, w)
		}
		return rows.Err()
	})
	return out, err
}

// DeleteWebhook removes a webhook and its delivery log.
func (db *DB) DeleteWebhook(ctx context.Context, id string) error {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return errWebhookNotFound(id)
		}
		_, err = tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE tenant_id = ? AND webhook_id = ?`, tenantID, id)
		return err
	})
}

const deliveryColumns = `id, tenant_id, webhook_id, event_id, kind, attempt, status, response_code, error, duration_ms, created_at`

// AddWebhookDelivery logs an attempt and deletes the webhook's attempts
// beyond the newest keep, in the same transaction, so the log never grows
// past its bound.
func (db *DB) AddWebhookDelivery(ctx context.Context, d notify.Delivery, keep int) error {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (`+deliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, tenantID, d.WebhookID, d.EventID, string(d.Kind), d.Attempt, d.Status, d.ResponseCode, d.Error,
			d.DurationMS, d.CreatedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE tenant_id = ? AND webhook_id = ? AND id NOT IN (
			SELECT id FROM webhook_deliveries WHERE tenant_id = ? AND webhook_id = ? ORDER BY id DESC LIMIT ?)`,
			tenantID, d.WebhookID, tenantID, d.WebhookID, keep)
		return err
	})
}

// ListWebhookDeliveries returns a webhook's newest attempts first.
func (db *DB) ListWebhookDeliveries(ctx context.Context, webhookID string, limit int) ([]notify.Delivery, error) {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return nil, err
	}
	out := []notify.Delivery{}
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE tenant_id = ? AND webhook_id = ?
			ORDER BY id DESC LIMIT ?`, tenantID, webhookID, pageSize(limit))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d notify.Delivery
			var kind string
			if err := rows.Scan(&d.ID, &d.TenantID, &d.WebhookID, &d.EventID, &kind, &d.Attempt, &d.Status, &d.ResponseCode,
				&d.Error, &d.DurationMS, &d.CreatedAt); err != nil {
				return err
			}
			d.Kind = notify.Kind(kind)
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

// DeleteNotifyTenant deletes every notification row of the tenant.
func (db *DB) DeleteNotifyTenant(ctx context.Context) error {
	tenantID, err := notifyTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		for _, table := range []string{"webhook_deliveries", "webhooks", "notification_prefs", "notifications", "notify_events"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tenantID); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListAllWebhooks returns every tenant's webhooks. It needs the
// all-tenants scope (master key rotation reseals their secrets).
func (db *DB) ListAllWebhooks(ctx context.Context) ([]notify.Webhook, error) {
	if err := requireAllTenants(ctx); err != nil {
		return nil, err
	}
	return db.queryWebhooks(ctx, `ORDER BY tenant_id, id`)
}

// ReplaceWebhookSecret stores sealed as the sealed secret of a tenant's
// webhook if it still holds old, and reports whether it did. It needs the
// all-tenants scope.
func (db *DB) ReplaceWebhookSecret(ctx context.Context, tenantID, id string, old, sealed []byte) (bool, error) {
	if err := requireAllTenants(ctx); err != nil {
		return false, err
	}
	var n int64
	err := db.Write(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.Exec(ctx, `UPDATE webhooks SET secret = ? WHERE tenant_id = ? AND id = ? AND secret = ?`, sealed, tenantID, id, old)
		return err
	})
	return n == 1, err
}
