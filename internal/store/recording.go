package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/recordings"
)

// This file holds the SQL of recordings, in the main database (migration
// 0013). Every statement names the tenant of ctx's scope, except
// StalledRecordings, the sweep's read across tenants.

const recordingColumns = `id, tenant_id, user_id, title, filename, blob_id, mime, size_bytes, duration_s, status,
	status_detail, error, language, text, segments, summary, key_points, model, summary_model, processing_ms,
	created_at, updated_at`

func scanRecording(s scanner, r *recordings.Recording) error {
	var segments, points string
	if err := s.Scan(&r.ID, &r.TenantID, &r.UserID, &r.Title, &r.Filename, &r.BlobID, &r.MIME, &r.Size, &r.Duration,
		&r.Status, &r.StatusDetail, &r.Error, &r.Language, &r.Text, &segments, &r.Summary, &points, &r.Model,
		&r.SummaryModel, &r.ProcessingMS, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(segments), &r.Segments); err != nil {
		return fmt.Errorf("store: recording %s segments: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(points), &r.KeyPoints); err != nil {
		return fmt.Errorf("store: recording %s key points: %w", r.ID, err)
	}
	return nil
}

func recordingArgs(r recordings.Recording) ([]any, error) {
	if r.Segments == nil {
		r.Segments = []recordings.Segment{}
	}
	if r.KeyPoints == nil {
		r.KeyPoints = []string{}
	}
	segments, err := json.Marshal(r.Segments)
	if err != nil {
		return nil, fmt.Errorf("store: encode segments: %w", err)
	}
	points, err := json.Marshal(r.KeyPoints)
	if err != nil {
		return nil, fmt.Errorf("store: encode key points: %w", err)
	}
	return []any{r.ID, r.TenantID, r.UserID, r.Title, r.Filename, r.BlobID, r.MIME, r.Size, r.Duration, r.Status,
		r.StatusDetail, r.Error, r.Language, r.Text, string(segments), r.Summary, string(points), r.Model,
		r.SummaryModel, r.ProcessingMS, r.CreatedAt.UTC(), r.UpdatedAt.UTC()}, nil
}

func errRecordingNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "recording %s not found", id)
}

// RecordingEnqueue queues a recording's processing inside a transaction
// of the store (the job queue's InsertTx).
type RecordingEnqueue func(ctx context.Context, tx *Tx, tenantID, recordingID string) error

// CreateRecording writes a new recording of the scope's tenant and, with
// enqueue, queues its processing in the same transaction.
func (db *DB) CreateRecording(ctx context.Context, r recordings.Recording, enqueue RecordingEnqueue) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	if r.TenantID != tenantID {
		return nodus.ErrNoScope
	}
	args, err := recordingArgs(r)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO recordings (`+recordingColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
			return err
		}
		if enqueue != nil {
			return enqueue(ctx, tx, r.TenantID, r.ID)
		}
		return nil
	})
}

// FindRecording reads one recording in the scope.
func (db *DB) FindRecording(ctx context.Context, id string) (recordings.Recording, error) {
	return readInScope(ctx, db, func(tx *Tx, cond string, args []any) (recordings.Recording, error) {
		return rowByID(ctx, tx, "recordings", recordingColumns, id, cond, args, false, scanRecording, errRecordingNotFound)
	})
}

// ListRecordings returns a page of the scope's recordings, newest first,
// by (created_at, id), and the next page's cursor.
func (db *DB) ListRecordings(ctx context.Context, f recordings.Filter, cursor string, limit int) ([]recordings.Recording, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + recordingColumns + ` FROM recordings WHERE ` + cond
	if f.UserID != "" {
		q += ` AND user_id = ?`
		args = append(args, f.UserID)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if cursor != "" {
		at, id, err := decodeTimeCursor(cursor, nodus.ValidID)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (created_at < ? OR created_at = ? AND id < ?)`
		args = append(args, at, at, id)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	page, next, err := listPage(ctx, db, q, args, pageSize(limit), scanRecording,
		func(r recordings.Recording) string { return r.ID })
	if err != nil || next == "" {
		return page, "", err
	}
	last := page[len(page)-1]
	return page, encodeTimeCursor(last.CreatedAt, last.ID), nil
}

// UpdateRecording applies change to the locked row and writes it back;
// with enqueue it also queues the recording's processing in the same
// transaction. The id, tenant, user, blob and creation time never change.
func (db *DB) UpdateRecording(ctx context.Context, id string, change func(*recordings.Recording) error, enqueue RecordingEnqueue) (recordings.Recording, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return recordings.Recording{}, err
	}
	var out recordings.Recording
	err = db.Write(ctx, func(tx *Tx) error {
		old, err := rowByID(ctx, tx, "recordings", recordingColumns, id, cond, args, true, scanRecording, errRecordingNotFound)
		if err != nil {
			return err
		}
		r := old
		r.Segments = append([]recordings.Segment(nil), old.Segments...)
		r.KeyPoints = append([]string(nil), old.KeyPoints...)
		if err := change(&r); err != nil {
			return err
		}
		r.ID, r.TenantID, r.UserID, r.BlobID, r.CreatedAt = old.ID, old.TenantID, old.UserID, old.BlobID, old.CreatedAt
		vals, err := recordingArgs(r)
		if err != nil {
			return err
		}
		// vals is in recordingColumns order: title and filename (3, 4),
		// mime to processing_ms (6 to 19), updated_at (21).
		set := append(append(append([]any{}, vals[3:5]...), vals[6:20]...), vals[21], r.ID, r.TenantID)
		if _, err := tx.Exec(ctx, `UPDATE recordings SET title = ?, filename = ?, mime = ?, size_bytes = ?, duration_s = ?,
			status = ?, status_detail = ?, error = ?, language = ?, text = ?, segments = ?, summary = ?, key_points = ?,
			model = ?, summary_model = ?, processing_ms = ?, updated_at = ? WHERE id = ? AND tenant_id = ?`,
			set...); err != nil {
			return err
		}
		out = r
		if enqueue != nil {
			return enqueue(ctx, tx, r.TenantID, r.ID)
		}
		return nil
	})
	if err != nil {
		return recordings.Recording{}, err
	}
	return out, nil
}

// QueueRecording queues a recording's processing through enqueue, in a
// transaction of its own.
func (db *DB) QueueRecording(ctx context.Context, tenantID, id string, enqueue RecordingEnqueue) error {
	if _, err := nodus.RequireTenant(ctx); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error { return enqueue(ctx, tx, tenantID, id) })
}

// DeleteRecording removes a recording of the scope and returns it.
func (db *DB) DeleteRecording(ctx context.Context, id string) (recordings.Recording, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return recordings.Recording{}, err
	}
	var r recordings.Recording
	err = db.Write(ctx, func(tx *Tx) error {
		if r, err = rowByID(ctx, tx, "recordings", recordingColumns, id, cond, args, true, scanRecording, errRecordingNotFound); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM recordings WHERE id = ? AND tenant_id = ?`, r.ID, r.TenantID)
		return err
	})
	return r, err
}

// StalledRecordings lists, across every tenant the scope covers, the
// recordings pending, and those transcribing or summarising with no
// update since before, oldest first. It needs the all-tenants scope or a
// tenant's.
func (db *DB) StalledRecordings(ctx context.Context, before time.Time, limit int) ([]recordings.Recording, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []recordings.Recording
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+recordingColumns+` FROM recordings WHERE `+cond+`
			AND (status = 'pending' OR status IN ('transcribing', 'summarising') AND updated_at < ?)
			ORDER BY updated_at, id LIMIT ?`, append(args, before.UTC(), pageSize(limit))...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r recordings.Recording
			if err := scanRecording(rows, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// DeleteRecordingsTenant removes the scope tenant's recordings and
// returns their blob ids.
func (db *DB) DeleteRecordingsTenant(ctx context.Context) ([]string, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return nil, err
	}
	var blobs []string
	err = db.Write(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT blob_id FROM recordings WHERE tenant_id = ?`, tenantID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			blobs = append(blobs, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM recordings WHERE tenant_id = ?`, tenantID)
		return err
	})
	return blobs, err
}
