package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notebook"
)

// This file stores the notebooks module's records (migration main 0014):
// notebooks, their shares, sources, cards, chat sessions and messages.
// Every query is limited to the tenant scope of ctx; a user's notebook is
// read through FindNotebookFor and ListNotebooksFor, which also check that
// the user owns it or it is shared with them.

const notebookColumns = `n.id, n.tenant_id, n.owner_id, n.name, n.description, n.model, n.archived, n.created_at, n.updated_at`

func scanNotebook(row scanner, n *notebook.Notebook) error {
	return row.Scan(&n.ID, &n.TenantID, &n.OwnerID, &n.Name, &n.Description, &n.Model, &n.Archived, &n.CreatedAt,
		&n.UpdatedAt, &n.Permission)
}

func errNotebookNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "notebook %s not found", id)
}

// CreateNotebook stores a notebook of the scoped tenant.
func (db *DB) CreateNotebook(ctx context.Context, n notebook.Notebook) error {
	tenantID, err := createTenant(ctx, n.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("notebook", n.ID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO notebooks (id, tenant_id, owner_id, name, description, model, archived, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n.ID, tenantID, n.OwnerID, n.Name, n.Description, n.Model, n.Archived, n.CreatedAt, n.UpdatedAt)
		return err
	})
}

// notebookFor reads a notebook in scope that userID owns or is shared,
// with userID's permission; "" for userID reads it whoever asks (the
// permission is then "owner").
func notebookFor(ctx context.Context, tx *Tx, id, userID, cond string, args []any, lock bool) (notebook.Notebook, error) {
	var n notebook.Notebook
	q := `SELECT ` + notebookColumns + `, COALESCE(CASE WHEN n.owner_id = ? OR ? = '' THEN 'owner' ELSE s.permission END, '')
		FROM notebooks n LEFT JOIN notebook_shares s ON s.notebook_id = n.id AND s.user_id = ?
		WHERE n.id = ? AND ` + cond + ` AND (n.owner_id = ? OR ? = '' OR s.user_id IS NOT NULL)`
	if lock && tx.Dialect() == Postgres {
		q += ` FOR UPDATE OF n` // not the share: the nullable side of the join
	}
	err := scanNotebook(tx.QueryRow(ctx, q, append(append([]any{userID, userID, userID, id}, args...), userID, userID)...), &n)
	if errors.Is(err, sql.ErrNoRows) {
		return n, errNotebookNotFound(id)
	}
	return n, err
}

// FindNotebookFor returns a notebook in scope that userID owns or is
// shared, with userID's permission; ENOTFOUND otherwise.
func (db *DB) FindNotebookFor(ctx context.Context, id, userID string) (notebook.Notebook, error) {
	if userID == "" {
		return notebook.Notebook{}, errNotebookNotFound(id)
	}
	return db.findNotebook(ctx, id, userID)
}

// FindNotebook returns a notebook in scope whoever asks, for background
// work; its permission reads "owner".
func (db *DB) FindNotebook(ctx context.Context, id string) (notebook.Notebook, error) {
	return db.findNotebook(ctx, id, "")
}

func (db *DB) findNotebook(ctx context.Context, id, userID string) (notebook.Notebook, error) {
	cond, args, err := scopeCond(ctx, "n.tenant_id")
	if err != nil {
		return notebook.Notebook{}, err
	}
	var n notebook.Notebook
	err = db.Read(ctx, func(tx *Tx) (err error) {
		n, err = notebookFor(ctx, tx, id, userID, cond, args, false)
		return err
	})
	return n, err
}

// ListNotebooksFor returns a page of the notebooks in scope that userID
// owns or is shared, most recently changed first by (updated_at, id), and
// the next page's cursor; archived nil lists both.
func (db *DB) ListNotebooksFor(ctx context.Context, userID string, archived *bool, cursor string, limit int) ([]notebook.Notebook, string, error) {
	cond, args, err := scopeCond(ctx, "n.tenant_id")
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + notebookColumns + `, COALESCE(CASE WHEN n.owner_id = ? THEN 'owner' ELSE s.permission END, '')
		FROM notebooks n LEFT JOIN notebook_shares s ON s.notebook_id = n.id AND s.user_id = ?
		WHERE ` + cond + ` AND (n.owner_id = ? OR s.user_id IS NOT NULL)`
	args = append(append([]any{userID, userID}, args...), userID)
	if archived != nil {
		q += ` AND n.archived = ?`
		args = append(args, *archived)
	}
	if cursor != "" {
		at, id, err := decodeTimeCursor(cursor, nodus.ValidID)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (n.updated_at < ? OR n.updated_at = ? AND n.id < ?)`
		args = append(args, at, at, id)
	}
	q += ` ORDER BY n.updated_at DESC, n.id DESC LIMIT ?`
	page, next, err := listPage(ctx, db, q, args, pageSize(limit), scanNotebook,
		func(n notebook.Notebook) string { return n.ID })
	if err != nil || next == "" {
		return page, "", err
	}
	last := page[len(page)-1]
	return page, encodeTimeCursor(last.UpdatedAt, last.ID), nil
}

// UpdateNotebook reads a notebook in scope under a lock, applies change and
// writes back its name, description, model, archived flag and update time.
func (db *DB) UpdateNotebook(ctx context.Context, id string, change func(*notebook.Notebook) error) (notebook.Notebook, error) {
	cond, args, err := scopeCond(ctx, "n.tenant_id")
	if err != nil {
		return notebook.Notebook{}, err
	}
	var n notebook.Notebook
	err = db.Write(ctx, func(tx *Tx) error {
		old, err := notebookFor(ctx, tx, id, "", cond, args, true)
		if err != nil {
			return err
		}
		n = old
		if err := change(&n); err != nil {
			return err
		}
		n.ID, n.TenantID, n.OwnerID, n.CreatedAt = old.ID, old.TenantID, old.OwnerID, old.CreatedAt
		_, err = tx.Exec(ctx, `UPDATE notebooks SET name = ?, description = ?, model = ?, archived = ?, updated_at = ? WHERE id = ?`,
			n.Name, n.Description, n.Model, n.Archived, n.UpdatedAt, id)
		return err
	})
	return n, err
}

// notebookChildren are the tables of a notebook's records, children first.
var notebookChildren = []struct{ table, where string }{
	{"notebook_messages", `chat_id IN (SELECT id FROM notebook_chats WHERE notebook_id = ?)`},
	{"notebook_chats", `notebook_id = ?`},
	{"notebook_cards", `notebook_id = ?`},
	{"notebook_sources", `notebook_id = ?`},
	{"notebook_shares", `notebook_id = ?`},
}

// DeleteNotebook removes a notebook in scope with everything in it.
func (db *DB) DeleteNotebook(ctx context.Context, id string) error {
	cond, args, err := scopeCond(ctx, "n.tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := notebookFor(ctx, tx, id, "", cond, args, true)
		if err != nil {
			return err
		}
		for _, c := range notebookChildren {
			if _, err := tx.Exec(ctx, `DELETE FROM `+c.table+` WHERE tenant_id = ? AND `+c.where, n.TenantID, id); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM notebooks WHERE id = ?`, id)
		return err
	})
}

// DeleteNotebookTenant removes every notebook record of the scoped tenant.
// Running it again is a no-op.
func (db *DB) DeleteNotebookTenant(ctx context.Context) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		for _, table := range []string{"notebook_messages", "notebook_chats", "notebook_cards", "notebook_sources",
			"notebook_shares", "notebooks"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tenantID); err != nil {
				return err
			}
		}
		return nil
	})
}

// requireNotebook checks, in tx, that a notebook is in scope.
func requireNotebook(ctx context.Context, tx *Tx, id string) (string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return "", err
	}
	var tenantID string
	err = tx.QueryRow(ctx, `SELECT tenant_id FROM notebooks WHERE id = ? AND `+cond, append([]any{id}, args...)...).Scan(&tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errNotebookNotFound(id)
	}
	return tenantID, err
}

// Shares.

// PutNotebookShare shares a notebook in scope with a user, or changes the
// permission of an existing share.
func (db *DB) PutNotebookShare(ctx context.Context, s notebook.Share) error {
	if _, err := createTenant(ctx, s.TenantID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		tenantID, err := requireNotebook(ctx, tx, s.NotebookID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO notebook_shares (notebook_id, tenant_id, user_id, permission, created_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (notebook_id, user_id) DO UPDATE SET permission = excluded.permission`,
			s.NotebookID, tenantID, s.UserID, s.Permission, s.CreatedAt)
		return err
	})
}

// DeleteNotebookShare removes a user's share of a notebook in scope
// (ENOTFOUND when there is none).
func (db *DB) DeleteNotebookShare(ctx context.Context, notebookID, userID string) error {
	return db.Write(ctx, func(tx *Tx) error {
		tenantID, err := requireNotebook(ctx, tx, notebookID)
		if err != nil {
			return err
		}
		n, err := tx.Exec(ctx, `DELETE FROM notebook_shares WHERE tenant_id = ? AND notebook_id = ? AND user_id = ?`,
			tenantID, notebookID, userID)
		if err == nil && n == 0 {
			return nodus.Errorf(nodus.ENOTFOUND, "the notebook is not shared with user %s", userID)
		}
		return err
	})
}

// ListNotebookShares lists a notebook's shares, oldest first.
func (db *DB) ListNotebookShares(ctx context.Context, notebookID string) ([]notebook.Share, error) {
	out := []notebook.Share{}
	err := db.Read(ctx, func(tx *Tx) error {
		tenantID, err := requireNotebook(ctx, tx, notebookID)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT notebook_id, tenant_id, user_id, permission, created_at FROM notebook_shares
			WHERE tenant_id = ? AND notebook_id = ? ORDER BY created_at, user_id`, tenantID, notebookID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s notebook.Share
			if err := rows.Scan(&s.NotebookID, &s.TenantID, &s.UserID, &s.Permission, &s.CreatedAt); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}

// Sources.

const notebookSourceColumns = `id, notebook_id, tenant_id, kind, ref, title, context_level, status, full_text, summary,
	summary_method, summary_note, created_by, created_at, updated_at`

func scanNotebookSource(row scanner, s *notebook.Source) error {
	return row.Scan(&s.ID, &s.NotebookID, &s.TenantID, &s.Kind, &s.Ref, &s.Title, &s.ContextLevel, &s.Status, &s.FullText,
		&s.Summary, &s.SummaryMethod, &s.SummaryNote, &s.CreatedBy, &s.CreatedAt, &s.UpdatedAt)
}

func errSourceNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "source %s not found", id)
}

// CreateNotebookSource stores a source of a notebook in scope and, in the
// same transaction, runs after (which queues its summary job) when set.
func (db *DB) CreateNotebookSource(ctx context.Context, s notebook.Source, after func(ctx context.Context, tx *Tx) error) error {
	if _, err := createTenant(ctx, s.TenantID); err != nil {
		return err
	}
	if err := requireID("source", s.ID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		tenantID, err := requireNotebook(ctx, tx, s.NotebookID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notebook_sources (`+notebookSourceColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.NotebookID, tenantID, s.Kind, s.Ref, s.Title, s.ContextLevel, s.Status, s.FullText, s.Summary,
			s.SummaryMethod, s.SummaryNote, s.CreatedBy, s.CreatedAt, s.UpdatedAt); err != nil {
			return err
		}
		if after != nil {
			return after(ctx, tx)
		}
		return nil
	})
}

func findNotebookSource(ctx context.Context, tx *Tx, notebookID, id string, lock bool) (notebook.Source, error) {
	var s notebook.Source
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return s, err
	}
	q := `SELECT ` + notebookSourceColumns + ` FROM notebook_sources WHERE id = ? AND notebook_id = ? AND ` + cond
	if lock {
		q += tx.Dialect().ForUpdate()
	}
	err = scanNotebookSource(tx.QueryRow(ctx, q, append([]any{id, notebookID}, args...)...), &s)
	if errors.Is(err, sql.ErrNoRows) {
		return s, errSourceNotFound(id)
	}
	return s, err
}

// FindNotebookSource returns a source of a notebook in scope.
func (db *DB) FindNotebookSource(ctx context.Context, notebookID, id string) (notebook.Source, error) {
	var s notebook.Source
	err := db.Read(ctx, func(tx *Tx) (err error) {
		s, err = findNotebookSource(ctx, tx, notebookID, id, false)
		return err
	})
	return s, err
}

// ListNotebookSources lists a notebook's sources, oldest first.
func (db *DB) ListNotebookSources(ctx context.Context, notebookID string) ([]notebook.Source, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	out := []notebook.Source{}
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+notebookSourceColumns+` FROM notebook_sources WHERE notebook_id = ? AND `+cond+
			` ORDER BY id`, append([]any{notebookID}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s notebook.Source
			if err := scanNotebookSource(rows, &s); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}

// CountNotebookSources counts a notebook's sources.
func (db *DB) CountNotebookSources(ctx context.Context, notebookID string) (int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	var n int
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM notebook_sources WHERE notebook_id = ? AND `+cond,
			append([]any{notebookID}, args...)...).Scan(&n)
	})
	return n, err
}

// UpdateNotebookSource reads a source under a lock, applies change and
// writes back its title, context level, status and summary.
func (db *DB) UpdateNotebookSource(ctx context.Context, notebookID, id string, change func(*notebook.Source) error) (notebook.Source, error) {
	var s notebook.Source
	err := db.Write(ctx, func(tx *Tx) error {
		old, err := findNotebookSource(ctx, tx, notebookID, id, true)
		if err != nil {
			return err
		}
		s = old
		if err := change(&s); err != nil {
			return err
		}
		s.ID, s.NotebookID, s.TenantID, s.Kind, s.Ref, s.FullText, s.CreatedBy, s.CreatedAt =
			old.ID, old.NotebookID, old.TenantID, old.Kind, old.Ref, old.FullText, old.CreatedBy, old.CreatedAt
		_, err = tx.Exec(ctx, `UPDATE notebook_sources SET title = ?, context_level = ?, status = ?, summary = ?,
			summary_method = ?, summary_note = ?, updated_at = ? WHERE id = ?`,
			s.Title, s.ContextLevel, s.Status, s.Summary, s.SummaryMethod, s.SummaryNote, s.UpdatedAt, id)
		return err
	})
	return s, err
}

// DeleteNotebookSource removes a source of a notebook in scope.
func (db *DB) DeleteNotebookSource(ctx context.Context, notebookID, id string) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM notebook_sources WHERE id = ? AND notebook_id = ? AND `+cond,
			append([]any{id, notebookID}, args...)...)
		if err == nil && n == 0 {
			return errSourceNotFound(id)
		}
		return err
	})
}

// Cards.

const notebookCardColumns = `id, notebook_id, tenant_id, title, content, kind, position, pinned, citations, created_by, created_at, updated_at`

func scanNotebookCard(row scanner, c *notebook.Card) error {
	var cites string
	if err := row.Scan(&c.ID, &c.NotebookID, &c.TenantID, &c.Title, &c.Content, &c.Kind, &c.Position, &c.Pinned, &cites,
		&c.CreatedBy, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return err
	}
	c.Citations = []notebook.Citation{}
	return json.Unmarshal([]byte(cites), &c.Citations)
}

func errCardNotFound(id string) error { return nodus.Errorf(nodus.ENOTFOUND, "card %s not found", id) }

func citationsJSON(c []notebook.Citation) (string, error) {
	if c == nil {
		c = []notebook.Citation{}
	}
	b, err := json.Marshal(c)
	return string(b), err
}

// CreateNotebookCard stores a card at the end of a notebook in scope and
// returns it with its position.
func (db *DB) CreateNotebookCard(ctx context.Context, c notebook.Card) (notebook.Card, error) {
	if _, err := createTenant(ctx, c.TenantID); err != nil {
		return c, err
	}
	if err := requireID("card", c.ID); err != nil {
		return c, err
	}
	cites, err := citationsJSON(c.Citations)
	if err != nil {
		return c, err
	}
	err = db.Write(ctx, func(tx *Tx) error {
		tenantID, err := requireNotebook(ctx, tx, c.NotebookID)
		if err != nil {
			return err
		}
		c.TenantID = tenantID
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(position), -1) + 1 FROM notebook_cards WHERE tenant_id = ? AND notebook_id = ?`,
			tenantID, c.NotebookID).Scan(&c.Position); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO notebook_cards (`+notebookCardColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.NotebookID, tenantID, c.Title, c.Content, c.Kind, c.Position, c.Pinned, cites, c.CreatedBy, c.CreatedAt, c.UpdatedAt)
		return err
	})
	return c, err
}

func findNotebookCard(ctx context.Context, tx *Tx, notebookID, id string, lock bool) (notebook.Card, error) {
	var c notebook.Card
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return c, err
	}
	q := `SELECT ` + notebookCardColumns + ` FROM notebook_cards WHERE id = ? AND notebook_id = ? AND ` + cond
	if lock {
		q += tx.Dialect().ForUpdate()
	}
	err = scanNotebookCard(tx.QueryRow(ctx, q, append([]any{id, notebookID}, args...)...), &c)
	if errors.Is(err, sql.ErrNoRows) {
		return c, errCardNotFound(id)
	}
	return c, err
}

// FindNotebookCard returns a card of a notebook in scope.
func (db *DB) FindNotebookCard(ctx context.Context, notebookID, id string) (notebook.Card, error) {
	var c notebook.Card
	err := db.Read(ctx, func(tx *Tx) (err error) {
		c, err = findNotebookCard(ctx, tx, notebookID, id, false)
		return err
	})
	return c, err
}

func listNotebookCards(ctx context.Context, tx *Tx, notebookID string) ([]notebook.Card, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT `+notebookCardColumns+` FROM notebook_cards WHERE notebook_id = ? AND `+cond+
		` ORDER BY position, id`, append([]any{notebookID}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []notebook.Card{}
	for rows.Next() {
		var c notebook.Card
		if err := scanNotebookCard(rows, &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ListNotebookCards lists a notebook's cards by position.
func (db *DB) ListNotebookCards(ctx context.Context, notebookID string) ([]notebook.Card, error) {
	var out []notebook.Card
	err := db.Read(ctx, func(tx *Tx) (err error) {
		out, err = listNotebookCards(ctx, tx, notebookID)
		return err
	})
	return out, err
}

// UpdateNotebookCard reads a card under a lock, applies change and writes
// back its title, content and pinned flag.
func (db *DB) UpdateNotebookCard(ctx context.Context, notebookID, id string, change func(*notebook.Card) error) (notebook.Card, error) {
	var c notebook.Card
	err := db.Write(ctx, func(tx *Tx) error {
		old, err := findNotebookCard(ctx, tx, notebookID, id, true)
		if err != nil {
			return err
		}
		c = old
		if err := change(&c); err != nil {
			return err
		}
		c.ID, c.NotebookID, c.TenantID, c.Kind, c.Position, c.Citations, c.CreatedBy, c.CreatedAt =
			old.ID, old.NotebookID, old.TenantID, old.Kind, old.Position, old.Citations, old.CreatedBy, old.CreatedAt
		_, err = tx.Exec(ctx, `UPDATE notebook_cards SET title = ?, content = ?, pinned = ?, updated_at = ? WHERE id = ?`,
			c.Title, c.Content, c.Pinned, c.UpdatedAt, id)
		return err
	})
	return c, err
}

// DeleteNotebookCard removes a card of a notebook in scope.
func (db *DB) DeleteNotebookCard(ctx context.Context, notebookID, id string) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		n, err := tx.Exec(ctx, `DELETE FROM notebook_cards WHERE id = ? AND notebook_id = ? AND `+cond,
			append([]any{id, notebookID}, args...)...)
		if err == nil && n == 0 {
			return errCardNotFound(id)
		}
		return err
	})
}

// ReorderNotebookCards gives a notebook's cards the positions of ids,
// which must name each of them once (EINVALID otherwise).
func (db *DB) ReorderNotebookCards(ctx context.Context, notebookID string, ids []string, at time.Time) ([]notebook.Card, error) {
	var out []notebook.Card
	err := db.Write(ctx, func(tx *Tx) error {
		tenantID, err := requireNotebook(ctx, tx, notebookID)
		if err != nil {
			return err
		}
		cards, err := listNotebookCards(ctx, tx, notebookID)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, c := range cards {
			have[c.ID] = true
		}
		if len(ids) != len(cards) {
			return &nodus.Error{Code: nodus.EINVALID, Message: "invalid card_ids",
				Fields: map[string]string{"card_ids": "must name each of the notebook's cards once"}}
		}
		for i, id := range ids {
			if !have[id] {
				return &nodus.Error{Code: nodus.EINVALID, Message: "invalid card_ids",
					Fields: map[string]string{"card_ids": "names a card not in this notebook"}}
			}
			if _, err := tx.Exec(ctx, `UPDATE notebook_cards SET position = ? WHERE tenant_id = ? AND id = ?`, i, tenantID, id); err != nil {
				return err
			}
		}
		out, err = listNotebookCards(ctx, tx, notebookID)
		return err
	})
	return out, err
}

// Chats and messages.

const notebookChatColumns = `id, notebook_id, tenant_id, user_id, title, created_at, updated_at`

func scanNotebookChat(row scanner, c *notebook.Chat) error {
	return row.Scan(&c.ID, &c.NotebookID, &c.TenantID, &c.UserID, &c.Title, &c.CreatedAt, &c.UpdatedAt)
}

func errChatNotFound(id string) error { return nodus.Errorf(nodus.ENOTFOUND, "chat %s not found", id) }

// CreateNotebookChat stores a chat session in a notebook in scope.
func (db *DB) CreateNotebookChat(ctx context.Context, c notebook.Chat) error {
	if _, err := createTenant(ctx, c.TenantID); err != nil {
		return err
	}
	if err := requireID("chat", c.ID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		tenantID, err := requireNotebook(ctx, tx, c.NotebookID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO notebook_chats (`+notebookChatColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.NotebookID, tenantID, c.UserID, c.Title, c.CreatedAt, c.UpdatedAt)
		return err
	})
}

// FindNotebookChat returns userID's chat session in a notebook in scope.
func (db *DB) FindNotebookChat(ctx context.Context, notebookID, id, userID string) (notebook.Chat, error) {
	return readInScope(ctx, db, func(tx *Tx, cond string, args []any) (notebook.Chat, error) {
		var c notebook.Chat
		err := scanNotebookChat(tx.QueryRow(ctx, `SELECT `+notebookChatColumns+` FROM notebook_chats
			WHERE id = ? AND notebook_id = ? AND user_id = ? AND `+cond, append([]any{id, notebookID, userID}, args...)...), &c)
		if errors.Is(err, sql.ErrNoRows) {
			return c, errChatNotFound(id)
		}
		return c, err
	})
}

// ListNotebookChats returns a page of userID's chat sessions in a notebook,
// newest first by (updated_at, id), and the next page's cursor.
func (db *DB) ListNotebookChats(ctx context.Context, notebookID, userID, cursor string, limit int) ([]notebook.Chat, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + notebookChatColumns + ` FROM notebook_chats WHERE notebook_id = ? AND user_id = ? AND ` + cond
	args = append([]any{notebookID, userID}, args...)
	if cursor != "" {
		at, id, err := decodeTimeCursor(cursor, nodus.ValidID)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (updated_at < ? OR updated_at = ? AND id < ?)`
		args = append(args, at, at, id)
	}
	q += ` ORDER BY updated_at DESC, id DESC LIMIT ?`
	page, next, err := listPage(ctx, db, q, args, pageSize(limit), scanNotebookChat, func(c notebook.Chat) string { return c.ID })
	if err != nil || next == "" {
		if page == nil {
			page = []notebook.Chat{}
		}
		return page, "", err
	}
	last := page[len(page)-1]
	return page, encodeTimeCursor(last.UpdatedAt, last.ID), nil
}

// DeleteNotebookChat removes userID's chat session with its messages.
func (db *DB) DeleteNotebookChat(ctx context.Context, notebookID, id, userID string) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var tenantID string
		err := tx.QueryRow(ctx, `SELECT tenant_id FROM notebook_chats WHERE id = ? AND notebook_id = ? AND user_id = ? AND `+cond,
			append([]any{id, notebookID, userID}, args...)...).Scan(&tenantID)
		if errors.Is(err, sql.ErrNoRows) {
			return errChatNotFound(id)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM notebook_messages WHERE tenant_id = ? AND chat_id = ?`, tenantID, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM notebook_chats WHERE id = ?`, id)
		return err
	})
}

// AddNotebookMessages stores messages of a chat session in scope, moves its
// updated_at to at and, when title is set and it has none, titles it.
func (db *DB) AddNotebookMessages(ctx context.Context, chatID, title string, at time.Time, msgs ...notebook.Message) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var tenantID string
		err := tx.QueryRow(ctx, `SELECT tenant_id FROM notebook_chats WHERE id = ? AND `+cond+tx.Dialect().ForUpdate(),
			append([]any{chatID}, args...)...).Scan(&tenantID)
		if errors.Is(err, sql.ErrNoRows) {
			return errChatNotFound(chatID)
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			md := string(m.Metadata)
			if md == "" {
				md = "{}"
			}
			if _, err := tx.Exec(ctx, `INSERT INTO notebook_messages (id, chat_id, tenant_id, role, content, metadata, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, m.ID, chatID, tenantID, m.Role, m.Content, md, m.CreatedAt); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE notebook_chats SET updated_at = ?, title = CASE WHEN title = '' THEN ? ELSE title END
			WHERE id = ?`, at, title, chatID)
		return err
	})
}

// ListNotebookMessages lists a chat session's messages, oldest first.
func (db *DB) ListNotebookMessages(ctx context.Context, chatID string) ([]notebook.Message, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	out := []notebook.Message{}
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, chat_id, tenant_id, role, content, metadata, created_at FROM notebook_messages
			WHERE chat_id = ? AND `+cond+` ORDER BY id`, append([]any{chatID}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m notebook.Message
			var md string
			if err := rows.Scan(&m.ID, &m.ChatID, &m.TenantID, &m.Role, &m.Content, &md, &m.CreatedAt); err != nil {
				return err
			}
			m.Metadata = json.RawMessage(md)
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}
