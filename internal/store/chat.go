package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"hash/fnv"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of chatbots, their knowledge base links,
// conversations and messages, in the main database (migration 0009).
//
// A chatbot's knowledge bases are rows of chatbot_knowledge_bases in
// position order; the foreign key to knowledge_bases cascades, so a
// deleted knowledge base leaves no link behind. A message's seq orders its
// conversation: AddMessage assigns the next one under the conversation's
// lock. A message's metadata is JSON text, '{}' when empty, and reads back
// as nil then, so a record round-trips unchanged.

// The store implements the chat database.
var _ chat.Store = (*DB)(nil)

// Chatbots.

const chatbotColumns = `id, tenant_id, name, description, system_prompt, model_name, temperature, max_tokens,
	context_tokens, retrieval, memory_enabled, welcome_message, is_active, created_by, created_at, updated_at`

func scanChatbot(row interface{ Scan(...any) error }, b *chat.Chatbot) error {
	var retrieval string
	if err := row.Scan(&b.ID, &b.TenantID, &b.Name, &b.Description, &b.SystemPrompt, &b.ModelName, &b.Temperature,
		&b.MaxTokens, &b.ContextTokens, &retrieval, &b.MemoryEnabled, &b.WelcomeMessage, &b.IsActive, &b.CreatedBy, &b.CreatedAt,
		&b.UpdatedAt); err != nil {
		return err
	}
	return decodeJSON("chatbot retrieval", retrieval, &b.Retrieval)
}

func errChatbotNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "chatbot %s not found", id)
}

// chatbotNameTaken turns the unique violation of (tenant_id, name) into a
// field error; other errors pass through.
func chatbotNameTaken(err error) error {
	if nodus.ErrorCode(err) == nodus.ECONFLICT && errors.Unwrap(err) != nil {
		return &nodus.Error{Code: nodus.ECONFLICT, Message: "a chatbot with this name exists",
			Fields: map[string]string{"name": "already taken"}, Err: err}
	}
	return err
}

// chatbotQuotaKey is the PostgreSQL advisory lock key that serialises a
// tenant's chatbot creations, so two cannot both count below the quota.
// A collision with another key only serialises more than needed.
func chatbotQuotaKey(tenantID string) int64 {
	h := fnv.New64a()
	h.Write([]byte("nodus/chatbot-quota/"))
	h.Write([]byte(tenantID))
	return int64(h.Sum64())
}

// CreateChatbot stores a chatbot of the scoped tenant with its knowledge
// bases, which must be the tenant's (ENOTFOUND otherwise). With maxChatbots
// > 0 the tenant's chatbots are counted in the same transaction, under an
// advisory lock on PostgreSQL (SQLite's single writer already serialises),
// and EFORBIDDEN once the quota is reached. A name the tenant uses is
// ECONFLICT.
func (db *DB) CreateChatbot(ctx context.Context, b chat.Chatbot, maxChatbots int) error {
	tenantID, err := createTenant(ctx, b.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("chatbot", b.ID); err != nil {
		return err
	}
	retrieval, err := encodeJSON(b.Retrieval, "{}", b.Retrieval == (chat.RetrievalOverrides{}))
	if err != nil {
		return err
	}
	if err := uniqueKnowledgeBases(b.KnowledgeBases); err != nil {
		return err
	}
	err = db.Write(ctx, func(tx *Tx) error {
		if err := requireChatKnowledgeBases(ctx, tx, tenantID, b.KnowledgeBases); err != nil {
			return err
		}
		if maxChatbots > 0 {
			if tx.Dialect() == Postgres {
				if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(?)", chatbotQuotaKey(tenantID)); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM chatbots WHERE tenant_id = ?`, tenantID).
				Scan(&n); err != nil {
				return err
			}
			if n >= maxChatbots {
				return nodus.Errorf(nodus.EFORBIDDEN, "the tenant has reached its limit of %d chatbots", maxChatbots)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO chatbots (`+chatbotColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID, tenantID, b.Name, b.Description, b.SystemPrompt, b.ModelName, b.Temperature, b.MaxTokens,
			b.ContextTokens, retrieval, b.MemoryEnabled, b.WelcomeMessage, b.IsActive, b.CreatedBy, b.CreatedAt, b.UpdatedAt); err != nil {
			return err
		}
		return insertChatbotLinks(ctx, tx, tenantID, b.ID, b.KnowledgeBases)
	})
	return chatbotNameTaken(err)
}

// uniqueKnowledgeBases refuses a knowledge base listed twice, which the
// link table's primary key would otherwise report as a name conflict.
func uniqueKnowledgeBases(ids []string) error {
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return &nodus.Error{Code: nodus.EINVALID, Message: "knowledge base " + id + " is listed twice",
				Fields: map[string]string{"knowledge_bases": "listed twice: " + id}}
		}
	}
	return nil
}

// requireChatKnowledgeBases fails with ENOTFOUND unless every id is a
// knowledge base of tenantID (the chatbot's tenant, whatever the scope).
func requireChatKnowledgeBases(ctx context.Context, tx *Tx, tenantID string, ids []string) error {
	for _, id := range ids {
		if err := requireKnowledgeBase(ctx, tx, id, "tenant_id = ?", []any{tenantID}); err != nil {
			return err
		}
	}
	return nil
}

func insertChatbotLinks(ctx context.Context, tx *Tx, tenantID, chatbotID string, kbIDs []string) error {
	for i, kbID := range kbIDs {
		if _, err := tx.Exec(ctx, `INSERT INTO chatbot_knowledge_bases (chatbot_id, knowledge_base_id, tenant_id,
			position) VALUES (?, ?, ?, ?)`, chatbotID, kbID, tenantID, i); err != nil {
			return err
		}
	}
	return nil
}

// loadChatbotLinks fills in the KnowledgeBases of bots, in position order,
// with one query.
func loadChatbotLinks(ctx context.Context, tx *Tx, bots []chat.Chatbot) error {
	if len(bots) == 0 {
		return nil
	}
	ids := make([]string, len(bots))
	at := make(map[string]int, len(bots))
	for i, b := range bots {
		ids[i], at[b.ID] = b.ID, i
	}
	rows, err := tx.Query(ctx, `SELECT chatbot_id, knowledge_base_id FROM chatbot_knowledge_bases
		WHERE chatbot_id IN (`+placeholders(len(ids))+`) ORDER BY chatbot_id, position`, stringArgs(ids)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var botID, kbID string
		if err := rows.Scan(&botID, &kbID); err != nil {
			return err
		}
		b := &bots[at[botID]]
		b.KnowledgeBases = append(b.KnowledgeBases, kbID)
	}
	return rows.Err()
}

// findChatbot reads a chatbot in scope with its knowledge bases within tx,
// locking it for the rest of a write transaction when lock is set.
func findChatbot(ctx context.Context, tx *Tx, id, cond string, args []any, lock bool) (chat.Chatbot, error) {
	b, err := rowByID(ctx, tx, "chatbots", chatbotColumns, id, cond, args, lock, scanChatbot, errChatbotNotFound)
	if err != nil {
		return b, err
	}
	bots := []chat.Chatbot{b}
	err = loadChatbotLinks(ctx, tx, bots)
	return bots[0], err
}

// FindChatbot returns a chatbot in scope with its knowledge bases, or
// ENOTFOUND.
func (db *DB) FindChatbot(ctx context.Context, id string) (chat.Chatbot, error) {
	return readInScope(ctx, db, func(tx *Tx, cond string, args []any) (chat.Chatbot, error) {
		return findChatbot(ctx, tx, id, cond, args, false)
	})
}

// ListChatbots returns a page of the chatbots in scope, by id, with their
// knowledge bases.
func (db *DB) ListChatbots(ctx context.Context, cursor string, limit int) ([]chat.Chatbot, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	n := pageSize(limit)
	var out []chat.Chatbot
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+chatbotColumns+` FROM chatbots WHERE id > ? AND `+cond+
			` ORDER BY id LIMIT ?`, append(append([]any{after}, args...), n+1)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var b chat.Chatbot
			if err := scanChatbot(rows, &b); err != nil {
				rows.Close()
				return err
			}
			out = append(out, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return loadChatbotLinks(ctx, tx, out)
	})
	if err != nil {
		return nil, "", err
	}
	if len(out) <= n {
		return out, "", nil
	}
	out = out[:n]
	return out, encodeCursor(out[n-1].ID), nil
}

// UpdateChatbot reads a chatbot in scope under a lock, applies change and
// writes back every field but its id, tenant, creator and creation time,
// with its knowledge bases (which must be the chatbot's tenant's), in one
// transaction.
func (db *DB) UpdateChatbot(ctx context.Context, id string, change func(*chat.Chatbot) error) (chat.Chatbot, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return chat.Chatbot{}, err
	}
	var b chat.Chatbot
	err = db.Write(ctx, func(tx *Tx) error {
		old, err := findChatbot(ctx, tx, id, cond, args, true)
		if err != nil {
			return err
		}
		b = old
		b.KnowledgeBases = slices.Clone(old.KnowledgeBases)
		if err := change(&b); err != nil {
			return err
		}
		b.ID, b.TenantID, b.CreatedBy, b.CreatedAt = old.ID, old.TenantID, old.CreatedBy, old.CreatedAt
		if err := uniqueKnowledgeBases(b.KnowledgeBases); err != nil {
			return err
		}
		if err := requireChatKnowledgeBases(ctx, tx, b.TenantID, b.KnowledgeBases); err != nil {
			return err
		}
		retrieval, err := encodeJSON(b.Retrieval, "{}", b.Retrieval == (chat.RetrievalOverrides{}))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE chatbots SET name = ?, description = ?, system_prompt = ?, model_name = ?,
			temperature = ?, max_tokens = ?, context_tokens = ?, retrieval = ?, memory_enabled = ?, welcome_message = ?, is_active = ?,
			updated_at = ? WHERE id = ?`,
			b.Name, b.Description, b.SystemPrompt, b.ModelName, b.Temperature, b.MaxTokens, b.ContextTokens, retrieval,
			b.MemoryEnabled, b.WelcomeMessage, b.IsActive, b.UpdatedAt, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM chatbot_knowledge_bases WHERE chatbot_id = ?`, id); err != nil {
			return err
		}
		return insertChatbotLinks(ctx, tx, b.TenantID, id, b.KnowledgeBases)
	})
	if err != nil {
		return chat.Chatbot{}, chatbotNameTaken(err)
	}
	if len(b.KnowledgeBases) == 0 {
		b.KnowledgeBases = nil // as a read returns it
	}
	return b, nil
}

// DeleteChatbot removes a chatbot in scope with its knowledge base links,
// conversations and messages, in one transaction.
func (db *DB) DeleteChatbot(ctx context.Context, id string) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var found string
		err := tx.QueryRow(ctx, `SELECT id FROM chatbots WHERE id = ? AND `+cond+tx.Dialect().ForUpdate(),
			append([]any{id}, args...)...).Scan(&found)
		if errors.Is(err, sql.ErrNoRows) {
			return errChatbotNotFound(id)
		}
		if err != nil {
			return err
		}
		// The foreign keys would cascade; deleting children first keeps
		// each statement on its own index.
		return deleteChatRows(ctx, tx,
			`conversation_id IN (SELECT id FROM conversations WHERE chatbot_id = ?)`, `chatbot_id = ?`, `id = ?`,
			[]any{id})
	})
}

// deleteChatRows deletes the messages, conversations, links and chatbots
// the conditions select; each takes args.
func deleteChatRows(ctx context.Context, tx *Tx, msgCond, childCond, botCond string, args []any) error {
	for _, q := range []string{`DELETE FROM messages WHERE ` + msgCond, `DELETE FROM conversations WHERE ` + childCond,
		`DELETE FROM chatbot_knowledge_bases WHERE ` + childCond, `DELETE FROM chatbots WHERE ` + botCond} {
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// DeleteChatTenant removes every chatbot, link, conversation and message
// of the scoped tenant in one transaction. Running it again is a no-op.
func (db *DB) DeleteChatTenant(ctx context.Context) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		return deleteChatRows(ctx, tx, `tenant_id = ?`, `tenant_id = ?`, `tenant_id = ?`, []any{tenantID})
	})
}

// Conversations.

const conversationColumns = `id, tenant_id, chatbot_id, user_id, title, archived, created_at, updated_at`

func scanConversation(row interface{ Scan(...any) error }, c *chat.Conversation) error {
	return row.Scan(&c.ID, &c.TenantID, &c.ChatbotID, &c.UserID, &c.Title, &c.Archived, &c.CreatedAt, &c.UpdatedAt)
}

func errConversationNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "conversation %s not found", id)
}

// CreateConversation stores a conversation of the scoped tenant with one
// of its chatbots (ENOTFOUND otherwise).
func (db *DB) CreateConversation(ctx context.Context, c chat.Conversation) error {
	tenantID, err := createTenant(ctx, c.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("conversation", c.ID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		var found string
		err := tx.QueryRow(ctx, `SELECT id FROM chatbots WHERE id = ? AND tenant_id = ?`, c.ChatbotID, tenantID).
			Scan(&found)
		if errors.Is(err, sql.ErrNoRows) {
			return errChatbotNotFound(c.ChatbotID)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO conversations (`+conversationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, tenantID, c.ChatbotID, c.UserID, c.Title, c.Archived, c.CreatedAt, c.UpdatedAt)
		return err
	})
}

func findConversation(ctx context.Context, tx *Tx, id, cond string, args []any, lock bool) (chat.Conversation, error) {
	return rowByID(ctx, tx, "conversations", conversationColumns, id, cond, args, lock, scanConversation, errConversationNotFound)
}

// FindConversation returns a conversation in scope, or ENOTFOUND.
func (db *DB) FindConversation(ctx context.Context, id string) (chat.Conversation, error) {
	return readInScope(ctx, db, func(tx *Tx, cond string, args []any) (chat.Conversation, error) {
		return findConversation(ctx, tx, id, cond, args, false)
	})
}

// ListConversations returns a page of the conversations in scope that f
// selects, newest first by (updated_at, id), and the next page's cursor.
func (db *DB) ListConversations(ctx context.Context, f chat.ConversationFilter, cursor string, limit int) ([]chat.Conversation, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + conversationColumns + ` FROM conversations WHERE ` + cond
	if f.UserID != "" {
		q += ` AND user_id = ?`
		args = append(args, f.UserID)
	}
	if f.ChatbotID != "" {
		q += ` AND chatbot_id = ?`
		args = append(args, f.ChatbotID)
	}
	if f.Archived != nil {
		q += ` AND archived = ?`
		args = append(args, *f.Archived)
	}
	if cursor != "" {
		at, id, err := decodeTimeCursor(cursor, nodus.ValidID)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (updated_at < ? OR updated_at = ? AND id < ?)`
		args = append(args, at, at, id)
	}
	q += ` ORDER BY updated_at DESC, id DESC LIMIT ?`
	page, next, err := listPage(ctx, db, q, args, pageSize(limit), scanConversation,
		func(c chat.Conversation) string { return c.ID })
	if err != nil || next == "" {
		return page, "", err
	}
	// The order is by time first, so the cursor carries the time too.
	return page, encodeTimeCursor(page[len(page)-1].UpdatedAt, page[len(page)-1].ID), nil
}

// UpdateConversation reads a conversation in scope under a lock, applies
// change and writes back its title, archived flag and update time.
func (db *DB) UpdateConversation(ctx context.Context, id string, change func(*chat.Conversation) error) (chat.Conversation, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return chat.Conversation{}, err
	}
	var c chat.Conversation
	err = db.Write(ctx, func(tx *Tx) error {
		old, err := findConversation(ctx, tx, id, cond, args, true)
		if err != nil {
			return err
		}
		c = old
		if err := change(&c); err != nil {
			return err
		}
		title, archived, updated := c.Title, c.Archived, c.UpdatedAt
		c = old
		c.Title, c.Archived, c.UpdatedAt = title, archived, updated
		_, err = tx.Exec(ctx, `UPDATE conversations SET title = ?, archived = ?, updated_at = ? WHERE id = ?`,
			c.Title, c.Archived, c.UpdatedAt, id)
		return err
	})
	if err != nil {
		return chat.Conversation{}, err
	}
	return c, nil
}

// DeleteConversation removes a conversation in scope with its messages.
func (db *DB) DeleteConversation(ctx context.Context, id string) error {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		if _, err := findConversation(ctx, tx, id, cond, args, true); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM messages WHERE conversation_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM conversations WHERE id = ?`, id)
		return err
	})
}

// Messages.

const messageColumns = `id, tenant_id, conversation_id, role, content, metadata, feedback_rating, feedback_comment,
	feedback_at, created_at`

func scanMessage(row interface{ Scan(...any) error }, m *chat.Message) error {
	var meta string
	var rating sql.NullString
	var comment string
	var at *time.Time
	if err := row.Scan(&m.ID, &m.TenantID, &m.ConversationID, &m.Role, &m.Content, &meta, &rating, &comment, &at,
		&m.CreatedAt); err != nil {
		return err
	}
	if meta != "" && meta != "{}" {
		m.Metadata = json.RawMessage(meta)
	}
	if rating.Valid && at != nil {
		m.Feedback = &chat.Feedback{Rating: rating.String, Comment: comment, UpdatedAt: *at}
	}
	return nil
}

func errMessageNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "message %s not found", id)
}

// feedbackArgs checks f for a message of role and returns its rating,
// comment and time columns: NULL, empty and NULL for nil.
func feedbackArgs(role string, f *chat.Feedback) (rating any, comment string, at any, err error) {
	if f == nil {
		return nil, "", nil, nil
	}
	if role != chat.RoleAssistant {
		return nil, "", nil, nodus.Errorf(nodus.EINVALID, "only an assistant message takes feedback")
	}
	if f.Rating != chat.RatingLike && f.Rating != chat.RatingDislike {
		return nil, "", nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid feedback rating",
			Fields: map[string]string{"rating": "must be like or dislike"}}
	}
	return f.Rating, f.Comment, f.UpdatedAt, nil
}

// AddMessage appends a message to a conversation of the scoped tenant
// (ENOTFOUND otherwise), after its last one, and sets the conversation's
// update time to the message's, in one transaction.
func (db *DB) AddMessage(ctx context.Context, m chat.Message) error {
	tenantID, err := createTenant(ctx, m.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("message", m.ID); err != nil {
		return err
	}
	switch m.Role {
	case chat.RoleUser, chat.RoleAssistant, chat.RoleSystem:
	default:
		return &nodus.Error{Code: nodus.EINVALID, Message: "invalid message role",
			Fields: map[string]string{"role": "must be user, assistant or system"}}
	}
	meta := "{}"
	if len(m.Metadata) > 0 {
		if !json.Valid(m.Metadata) {
			return nodus.Errorf(nodus.EINVALID, "message metadata is not valid JSON")
		}
		meta = string(m.Metadata)
	}
	rating, comment, at, err := feedbackArgs(m.Role, m.Feedback)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		// The conversation's lock serialises appends, so seq has no gaps
		// or duplicates.
		if _, err := findConversation(ctx, tx, m.ConversationID, "tenant_id = ?", []any{tenantID}, true); err != nil {
			return err
		}
		var seq int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) + 1 FROM messages WHERE conversation_id = ?`,
			m.ConversationID).Scan(&seq); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO messages (id, tenant_id, conversation_id, seq, role, content, metadata,
			feedback_rating, feedback_comment, feedback_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, tenantID, m.ConversationID, seq, m.Role, m.Content, meta, rating, comment, at,
			m.CreatedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE conversations SET updated_at = ? WHERE id = ?`, m.CreatedAt, m.ConversationID)
		return err
	})
}

// ListMessages returns the messages of a conversation in scope (ENOTFOUND
// otherwise), oldest first: the last limit of them, or all when limit <= 0.
func (db *DB) ListMessages(ctx context.Context, conversationID string, limit int) ([]chat.Message, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []chat.Message
	err = db.Read(ctx, func(tx *Tx) error {
		if _, err := findConversation(ctx, tx, conversationID, cond, args, false); err != nil {
			return err
		}
		q := `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = ? ORDER BY seq DESC`
		qargs := []any{conversationID}
		if limit > 0 {
			q += ` LIMIT ?`
			qargs = append(qargs, limit)
		}
		rows, err := tx.Query(ctx, q, qargs...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m chat.Message
			if err := scanMessage(rows, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

func findMessage(ctx context.Context, tx *Tx, id, cond string, args []any, lock bool) (chat.Message, error) {
	return rowByID(ctx, tx, "messages", messageColumns, id, cond, args, lock, scanMessage, errMessageNotFound)
}

// FindMessage returns a message in scope, or ENOTFOUND.
func (db *DB) FindMessage(ctx context.Context, id string) (chat.Message, error) {
	return readInScope(ctx, db, func(tx *Tx, cond string, args []any) (chat.Message, error) {
		return findMessage(ctx, tx, id, cond, args, false)
	})
}

// SetFeedback records the feedback on an assistant message in scope, or
// with nil clears it, and returns the message. Other roles are EINVALID.
func (db *DB) SetFeedback(ctx context.Context, messageID string, f *chat.Feedback) (chat.Message, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return chat.Message{}, err
	}
	var m chat.Message
	err = db.Write(ctx, func(tx *Tx) error {
		m, err = findMessage(ctx, tx, messageID, cond, args, true)
		if err != nil {
			return err
		}
		if m.Role != chat.RoleAssistant {
			return nodus.Errorf(nodus.EINVALID, "only an assistant message takes feedback")
		}
		rating, comment, at, err := feedbackArgs(m.Role, f)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET feedback_rating = ?, feedback_comment = ?, feedback_at = ?
			WHERE id = ?`, rating, comment, at, messageID); err != nil {
			return err
		}
		m.Feedback = nil
		if f != nil {
			fb := *f
			m.Feedback = &fb
		}
		return nil
	})
	if err != nil {
		return chat.Message{}, err
	}
	return m, nil
}
