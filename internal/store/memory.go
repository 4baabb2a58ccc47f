package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vector"
)

// This file holds the SQL of long-term memory (internal/memory) in the
// main database (migration 0010): adk_conversation_memory and its change
// log, adk_memory_history.
//
// A memory is deleted outright, so its hash is unique among the user's
// memories of the app by a plain UNIQUE constraint. Its history rows are
// written in the transaction of each change and outlive it; only
// DeleteMemoryTenant removes them. Categories and source message ids are
// JSON lists, '[]' when empty, reading back as nil; a memory without a
// vector stores NULL and an empty model.

// The store implements the memory database.
var _ memory.Store = (*DB)(nil)

const memoryColumns = `id, tenant_id, app_name, user_id, memory, hash, categories, session_id, source_message_ids,
	embedding_model, embedding, created_at, updated_at`

func scanMemory(row interface{ Scan(...any) error }, m *memory.Memory) error {
	var categories, sources string
	var embedding []byte
	if err := row.Scan(&m.ID, &m.TenantID, &m.AppName, &m.UserID, &m.Text, &m.Hash, &categories, &m.SessionID,
		&sources, &m.EmbeddingModel, &embedding, &m.CreatedAt, &m.UpdatedAt); err != nil {
		return err
	}
	if err := decodeJSON("memory categories", categories, &m.Categories); err != nil {
		return err
	}
	if err := decodeJSON("memory source_message_ids", sources, &m.SourceMessageIDs); err != nil {
		return err
	}
	if len(embedding) > 0 {
		v, err := vector.Decode(embedding)
		if err != nil {
			return err
		}
		m.Embedding = v
	}
	return nil
}

// memoryArgs returns the JSON and vector columns of m.
func memoryArgs(m memory.Memory) (categories, sources string, embedding any, err error) {
	if categories, err = encodeJSON(m.Categories, "[]", len(m.Categories) == 0); err != nil {
		return "", "", nil, err
	}
	if sources, err = encodeJSON(m.SourceMessageIDs, "[]", len(m.SourceMessageIDs) == 0); err != nil {
		return "", "", nil, err
	}
	if (len(m.Embedding) == 0) != (m.EmbeddingModel == "") {
		return "", "", nil, nodus.Errorf(nodus.EINTERNAL, "memory vector and embedding model must be set together")
	}
	if len(m.Embedding) > 0 {
		embedding = vector.Encode(m.Embedding)
	}
	return categories, sources, embedding, nil
}

func errMemoryNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "memory %s not found", id)
}

// memoryTaken turns the unique violation of the hash into a clear
// conflict; other errors pass through.
func memoryTaken(err error) error {
	if nodus.ErrorCode(err) == nodus.ECONFLICT && errors.Unwrap(err) != nil {
		return &nodus.Error{Code: nodus.ECONFLICT, Message: "the user already has this memory",
			Fields: map[string]string{"text": "already remembered"}, Err: err}
	}
	return err
}

func insertMemoryHistory(ctx context.Context, tx *Tx, h memory.HistoryEntry) error {
	if err := requireID("memory history", h.ID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO adk_memory_history (id, tenant_id, memory_id, event, old_memory, new_memory,
		actor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		h.ID, h.TenantID, h.MemoryID, h.Event, h.Old, h.New, h.Actor, h.CreatedAt)
	return err
}

// CreateMemory stores a memory of the scoped tenant with its ADD history
// entry in one transaction. The user's memory of the app with the same
// hash is ECONFLICT.
func (db *DB) CreateMemory(ctx context.Context, m memory.Memory, h memory.HistoryEntry) error {
	tenantID, err := createTenant(ctx, m.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("memory", m.ID); err != nil {
		return err
	}
	categories, sources, embedding, err := memoryArgs(m)
	if err != nil {
		return err
	}
	h.TenantID, h.MemoryID, h.Event, h.Old, h.New = tenantID, m.ID, memory.EventAdd, "", m.Text
	err = db.Write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO adk_conversation_memory (`+memoryColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, tenantID, m.AppName, m.UserID, m.Text, m.Hash, categories, m.SessionID, sources, m.EmbeddingModel,
			embedding, m.CreatedAt, m.UpdatedAt); err != nil {
			return err
		}
		return insertMemoryHistory(ctx, tx, h)
	})
	return memoryTaken(err)
}

func findMemory(ctx context.Context, tx *Tx, id, cond string, args []any, lock bool) (memory.Memory, error) {
	return rowByID(ctx, tx, "adk_conversation_memory", memoryColumns, id, cond, args, lock, scanMemory, errMemoryNotFound)
}

// FindMemory returns a memory in scope, or ENOTFOUND.
func (db *DB) FindMemory(ctx context.Context, id string) (memory.Memory, error) {
	return readInScope(ctx, db, func(tx *Tx, cond string, args []any) (memory.Memory, error) {
		return findMemory(ctx, tx, id, cond, args, false)
	})
}

// FindMemoryByHash returns the user's memory of the app in scope with the
// hash, or ENOTFOUND.
func (db *DB) FindMemoryByHash(ctx context.Context, appName, userID, hash string) (memory.Memory, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return memory.Memory{}, err
	}
	var m memory.Memory
	err = db.Read(ctx, func(tx *Tx) error {
		err := scanMemory(tx.QueryRow(ctx, `SELECT `+memoryColumns+` FROM adk_conversation_memory
			WHERE app_name = ? AND user_id = ? AND hash = ? AND `+cond,
			append([]any{appName, userID, hash}, args...)...), &m)
		if errors.Is(err, sql.ErrNoRows) {
			return nodus.Errorf(nodus.ENOTFOUND, "no such memory")
		}
		return err
	})
	return m, err
}

// ListMemories returns a page of the user's memories of the app in scope,
// newest first by (updated_at, id), and the next page's cursor.
func (db *DB) ListMemories(ctx context.Context, appName, userID, cursor string, limit int) ([]memory.Memory, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + memoryColumns + ` FROM adk_conversation_memory WHERE ` + cond + ` AND app_name = ? AND user_id = ?`
	args = append(args, appName, userID)
	if cursor != "" {
		at, id, err := decodeTimeCursor(cursor, nodus.ValidID)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (updated_at < ? OR updated_at = ? AND id < ?)`
		args = append(args, at, at, id)
	}
	q += ` ORDER BY updated_at DESC, id DESC LIMIT ?`
	page, next, err := listPage(ctx, db, q, args, pageSize(limit), scanMemory,
		func(m memory.Memory) string { return m.ID })
	if err != nil || next == "" {
		return page, "", err
	}
	return page, encodeTimeCursor(page[len(page)-1].UpdatedAt, page[len(page)-1].ID), nil
}

// LoadMemoryCorpus returns the version of the memories of the user of
// the app in scope (0 when they never had one) and the newest limit of
// them, newest first. The version is read first: a write that lands
// between the two reads leaves a version older than the memories, which
// costs its reader one more load, never a stale answer.
func (db *DB) LoadMemoryCorpus(ctx context.Context, appName, userID string, limit int) (int64, []memory.Memory, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, nil, err
	}
	var version int64
	var out []memory.Memory
	err = db.Read(ctx, func(tx *Tx) error {
		version, out = 0, nil
		var err error
		if version, err = memoryVersion(ctx, tx, cond, args, appName, userID); err != nil || limit <= 0 {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+memoryColumns+` FROM adk_conversation_memory WHERE `+cond+
			` AND app_name = ? AND user_id = ? ORDER BY updated_at DESC, id DESC LIMIT ?`,
			append(args, appName, userID, limit)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m memory.Memory
			if err := scanMemory(rows, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	return version, out, err
}

// MemoryVersion returns the version of the memories of the user of the
// app in scope: it moves on with every write to them (a trigger), and is
// 0 when they never had one.
func (db *DB) MemoryVersion(ctx context.Context, appName, userID string) (int64, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	var version int64
	err = db.Read(ctx, func(tx *Tx) error {
		var err error
		version, err = memoryVersion(ctx, tx, cond, args, appName, userID)
		return err
	})
	return version, err
}

func memoryVersion(ctx context.Context, tx *Tx, cond string, args []any, appName, userID string) (int64, error) {
	var version int64
	err := tx.QueryRow(ctx, `SELECT version FROM adk_memory_versions WHERE `+cond+` AND app_name = ? AND user_id = ?`,
		append(args, appName, userID)...).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return version, err
}

// UpdateMemory reads a memory in scope under a lock, applies change and
// writes back its text, hash, categories, vector and update time, with
// the UPDATE history entry, in one transaction.
func (db *DB) UpdateMemory(ctx context.Context, id string, change func(*memory.Memory) error, h memory.HistoryEntry) (memory.Memory, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return memory.Memory{}, err
	}
	var m memory.Memory
	err = db.Write(ctx, func(tx *Tx) error {
		old, err := findMemory(ctx, tx, id, cond, args, true)
		if err != nil {
			return err
		}
		m = old
		if err := change(&m); err != nil {
			return err
		}
		// Only the content changes; who and where it belongs to stay.
		m.ID, m.TenantID, m.AppName, m.UserID = old.ID, old.TenantID, old.AppName, old.UserID
		m.SessionID, m.SourceMessageIDs, m.CreatedAt = old.SessionID, old.SourceMessageIDs, old.CreatedAt
		categories, _, embedding, err := memoryArgs(m)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE adk_conversation_memory SET memory = ?, hash = ?, categories = ?,
			embedding_model = ?, embedding = ?, updated_at = ? WHERE id = ?`,
			m.Text, m.Hash, categories, m.EmbeddingModel, embedding, m.UpdatedAt, id); err != nil {
			return err
		}
		h.TenantID, h.MemoryID, h.Event, h.Old, h.New = old.TenantID, id, memory.EventUpdate, old.Text, m.Text
		return insertMemoryHistory(ctx, tx, h)
	})
	if err != nil {
		return memory.Memory{}, memoryTaken(err)
	}
	return m, nil
}

// DeleteMemory removes a memory in scope and writes its DELETE history
// entry in one transaction; the memory's history stays.
func (db *DB) DeleteMemory(ctx context.Context, id string, h memory.HistoryEntry) (memory.Memory, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return memory.Memory{}, err
	}
	var m memory.Memory
	err = db.Write(ctx, func(tx *Tx) error {
		m, err = findMemory(ctx, tx, id, cond, args, true)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM adk_conversation_memory WHERE id = ?`, id); err != nil {
			return err
		}
		h.TenantID, h.MemoryID, h.Event, h.Old, h.New = m.TenantID, id, memory.EventDelete, m.Text, ""
		return insertMemoryHistory(ctx, tx, h)
	})
	if err != nil {
		return memory.Memory{}, err
	}
	return m, nil
}

// DeleteMemories removes every memory of the user of the app in scope,
// each with a DELETE history entry, in one transaction.
func (db *DB) DeleteMemories(ctx context.Context, appName, userID string, h memory.HistoryEntry) (int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	var n int
	err = db.Write(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, tenant_id, memory FROM adk_conversation_memory WHERE `+cond+
			` AND app_name = ? AND user_id = ?`+tx.Dialect().ForUpdate(), append(args, appName, userID)...)
		if err != nil {
			return err
		}
		var gone []memory.HistoryEntry
		for rows.Next() {
			e := h
			e.Event, e.New = memory.EventDelete, ""
			if err := rows.Scan(&e.MemoryID, &e.TenantID, &e.Old); err != nil {
				rows.Close()
				return err
			}
			gone = append(gone, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, e := range gone {
			e.ID = nodus.NewID()
			if _, err := tx.Exec(ctx, `DELETE FROM adk_conversation_memory WHERE id = ?`, e.MemoryID); err != nil {
				return err
			}
			if err := insertMemoryHistory(ctx, tx, e); err != nil {
				return err
			}
		}
		n = len(gone)
		return nil
	})
	return n, err
}

// ListMemoryHistory returns a memory's history in scope, oldest first,
// also after the memory was deleted; ENOTFOUND when it has none.
func (db *DB) ListMemoryHistory(ctx context.Context, memoryID string) ([]memory.HistoryEntry, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []memory.HistoryEntry
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, tenant_id, memory_id, event, old_memory, new_memory, actor, created_at
			FROM adk_memory_history WHERE memory_id = ? AND `+cond+` ORDER BY created_at, id`,
			append([]any{memoryID}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h memory.HistoryEntry
			if err := rows.Scan(&h.ID, &h.TenantID, &h.MemoryID, &h.Event, &h.Old, &h.New, &h.Actor,
				&h.CreatedAt); err != nil {
				return err
			}
			out = append(out, h)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errMemoryNotFound(memoryID)
	}
	return out, nil
}

// DeleteMemoryTenant removes every memory, history and version row of the
// scoped tenant in one transaction. Running it again is a no-op.
func (db *DB) DeleteMemoryTenant(ctx context.Context) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		// The memories first: their triggers move the versions, which go
		// next.
		for _, q := range []string{`DELETE FROM adk_conversation_memory WHERE tenant_id = ?`,
			`DELETE FROM adk_memory_history WHERE tenant_id = ?`, `DELETE FROM adk_memory_versions WHERE tenant_id = ?`} {
			if _, err := tx.Exec(ctx, q, tenantID); err != nil {
				return err
			}
		}
		return nil
	})
}
