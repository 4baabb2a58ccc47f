package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/agent"
	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the long-term memory's routes, next to the agent
// sessions': /api/v1/agent/apps/{app}/users/{user}/memories/…, with
// mem0's operations (add from messages, search, list, read, update,
// delete, history, delete all). Whose memories follows the sessions'
// rule (agentUser): a user's own, any user of the tenant for admins.

// memoryMaxBody bounds an add: up to memory.MaxMessages messages, whose
// total is bounded here rather than by their count times their limit.
const memoryMaxBody = 1 << 20

type memoryView struct {
	ID               string    `json:"id"`
	AppName          string    `json:"app_name"`
	UserID           string    `json:"user_id"`
	Memory           string    `json:"memory"`
	Hash             string    `json:"hash"`
	Categories       []string  `json:"categories"`
	SessionID        string    `json:"session_id,omitempty"`
	SourceMessageIDs []string  `json:"source_message_ids"`
	EmbeddingModel   string    `json:"embedding_model,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func viewMemory(m *memory.Memory) memoryView {
	v := memoryView{ID: m.ID, AppName: m.AppName, UserID: m.UserID, Memory: m.Text, Hash: m.Hash, Categories: m.Categories,
		SessionID: m.SessionID, SourceMessageIDs: m.SourceMessageIDs, EmbeddingModel: m.EmbeddingModel,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	if v.Categories == nil {
		v.Categories = []string{}
	}
	if v.SourceMessageIDs == nil {
		v.SourceMessageIDs = []string{}
	}
	return v
}

// memoryAnswer is agentAnswer for the memory routes.
func (s *Server) memoryAnswer(status int, fn func(r *http.Request, tenantID, userID string) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		if s.deps.Memory == nil {
			return nil, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "memory is not available"}
		}
		ctx, userID, err := s.agentUser(r)
		if err != nil {
			return nil, err
		}
		tenantID, _, _ := nodus.TenantScope(ctx)
		return fn(r.WithContext(ctx), tenantID, userID)
	})
}

// ownMemory reads a memory by id and checks it is the app's and user's the
// path names: another's is not found.
func (s *Server) ownMemory(ctx context.Context, r *http.Request, tenantID, userID string) (*memory.Memory, error) {
	m, err := s.deps.Memory.Get(ctx, tenantID, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if m.AppName != r.PathValue("app") || m.UserID != userID {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "memory %s not found", r.PathValue("id"))
	}
	return &m, nil
}

func (s *Server) handleAddMemories() http.Handler {
	type message struct {
		ID      string `json:"id"`
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	type request struct {
		Messages       []message `json:"messages"`
		SessionID      string    `json:"session_id"`
		Model          string    `json:"model"`
		EmbeddingModel string    `json:"embedding_model"`
	}
	return s.memoryAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		in := memory.AddInput{TenantID: tenantID, AppName: r.PathValue("app"), UserID: userID, SessionID: req.SessionID,
			Model: req.Model, EmbeddingModel: req.EmbeddingModel, Actor: callerFrom(r.Context()).principal.User.ID}
		for _, m := range req.Messages {
			in.Messages = append(in.Messages, memory.Message{ID: m.ID, Role: m.Role, Content: m.Content})
		}
		return viewChanges(s.deps.Memory.Add(r.Context(), in))
	})
}

type changeView struct {
	Event    string `json:"event"`
	MemoryID string `json:"id,omitempty"`
	Memory   string `json:"memory"`
	Previous string `json:"previous_memory,omitempty"`
}

// viewChanges is the answer to an add: what it did with each fact, and
// the model's error when it failed after some facts were applied.
func viewChanges(changes []memory.Change, err error) (any, error) {
	if err != nil && len(changes) == 0 {
		return nil, err
	}
	out := make([]changeView, len(changes))
	for i, c := range changes {
		out[i] = changeView{Event: c.Event, MemoryID: c.MemoryID, Memory: c.Text, Previous: c.Old}
	}
	body := map[string]any{"results": out}
	if err != nil {
		body["error"] = nodus.ErrorMessage(err)
	}
	return body, nil
}

// viewMemories is a page of memories and the cursor of the next.
func viewMemories(ms []memory.Memory, next string) map[string]any {
	out := make([]memoryView, len(ms))
	for i := range ms {
		out[i] = viewMemory(&ms[i])
	}
	return map[string]any{"memories": out, "next_cursor": next}
}

type memoryHitView struct {
	memoryView
	Score float64 `json:"score"`
}

// viewHits is a search's memories, best first, with their scores.
func viewHits(hits []memory.Hit) map[string]any {
	out := make([]memoryHitView, len(hits))
	for i := range hits {
		out[i] = memoryHitView{viewMemory(&hits[i].Memory), hits[i].Score}
	}
	return map[string]any{"results": out}
}

func (s *Server) handleListMemories() http.Handler {
	return s.memoryAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		ms, next, err := s.deps.Memory.List(r.Context(), memory.ListInput{TenantID: tenantID, AppName: r.PathValue("app"),
			UserID: userID, Cursor: cursor, Limit: limit})
		if err != nil {
			return nil, err
		}
		return viewMemories(ms, next), nil
	})
}

func (s *Server) handleSearchMemories() http.Handler {
	type request struct {
		Query          string `json:"query"`
		Limit          int    `json:"limit"`
		EmbeddingModel string `json:"embedding_model"`
	}
	return s.memoryAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		hits, err := s.deps.Memory.Search(r.Context(), memory.SearchInput{TenantID: tenantID, AppName: r.PathValue("app"),
			UserID: userID, Query: req.Query, Limit: req.Limit, EmbeddingModel: req.EmbeddingModel})
		if err != nil {
			return nil, err
		}
		return viewHits(hits), nil
	})
}

func (s *Server) handleGetMemory() http.Handler {
	return s.memoryAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		m, err := s.ownMemory(r.Context(), r, tenantID, userID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"memory": viewMemory(m)}, nil
	})
}

func (s *Server) handleUpdateMemory() http.Handler {
	return s.memoryAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		var req struct {
			Memory string `json:"memory"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		if _, err := s.ownMemory(r.Context(), r, tenantID, userID); err != nil {
			return nil, err
		}
		m, err := s.deps.Memory.Update(r.Context(), tenantID, r.PathValue("id"), req.Memory,
			callerFrom(r.Context()).principal.User.ID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"memory": viewMemory(&m)}, nil
	})
}

func (s *Server) handleDeleteMemory() http.Handler {
	return s.memoryAnswer(http.StatusNoContent, func(r *http.Request, tenantID, userID string) (any, error) {
		if _, err := s.ownMemory(r.Context(), r, tenantID, userID); err != nil {
			return nil, err
		}
		return nil, s.deps.Memory.Delete(r.Context(), tenantID, r.PathValue("id"), callerFrom(r.Context()).principal.User.ID)
	})
}

func (s *Server) handleDeleteMemories() http.Handler {
	return s.memoryAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		n, err := s.deps.Memory.DeleteAll(r.Context(), tenantID, r.PathValue("app"), userID,
			callerFrom(r.Context()).principal.User.ID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"deleted": n}, nil
	})
}

func (s *Server) handleMemoryHistory() http.Handler {
	type entryView struct {
		ID        string    `json:"id"`
		MemoryID  string    `json:"memory_id"`
		Event     string    `json:"event"`
		Old       string    `json:"old_memory"`
		New       string    `json:"new_memory"`
		Actor     string    `json:"actor"`
		CreatedAt time.Time `json:"created_at"`
	}
	return s.memoryAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		if _, err := s.ownMemory(r.Context(), r, tenantID, userID); err != nil {
			return nil, err
		}
		hs, err := s.deps.Memory.History(r.Context(), tenantID, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		out := make([]entryView, len(hs))
		for i, h := range hs {
			out[i] = entryView{ID: h.ID, MemoryID: h.MemoryID, Event: h.Event, Old: h.Old, New: h.New, Actor: h.Actor,
				CreatedAt: h.CreatedAt}
		}
		return map[string]any{"history": out}, nil
	})
}

// handleAddSessionToMemory is ADK's add_session_to_memory: the text of a
// session's events (the user's as "user", every other author's as
// "assistant") goes through the memory pipeline, as POST …/memories does
// with messages. Only the newest memory.MaxMessages events with text are
// read.
func (s *Server) handleAddSessionToMemory() http.Handler {
	type request struct {
		Model          string `json:"model"`
		EmbeddingModel string `json:"embedding_model"`
	}
	return s.memoryAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		sess, err := s.deps.Agent.Get(r.Context(), agent.GetRequest{AppName: r.PathValue("app"), UserID: userID,
			SessionID: r.PathValue("session")})
		if err != nil {
			return nil, err
		}
		in := memory.AddInput{TenantID: tenantID, AppName: sess.AppName, UserID: userID, SessionID: sess.ID,
			Model: req.Model, EmbeddingModel: req.EmbeddingModel, Actor: callerFrom(r.Context()).principal.User.ID}
		for _, ev := range sess.Events {
			text := eventText(ev.Content)
			if text == "" {
				continue
			}
			role := "assistant"
			if ev.Author == "user" {
				role = "user"
			}
			if len(text) > memory.MaxMessageBytes {
				text = text[:memory.MaxMessageBytes]
				for !utf8.ValidString(text) {
					text = text[:len(text)-1]
				}
			}
			in.Messages = append(in.Messages, memory.Message{ID: ev.ID, Role: role, Content: text})
		}
		if n := len(in.Messages); n > memory.MaxMessages {
			in.Messages = in.Messages[n-memory.MaxMessages:]
		}
		if len(in.Messages) == 0 {
			return map[string]any{"results": []any{}}, nil
		}
		changes, err := s.deps.Memory.Add(r.Context(), in)
		if err != nil && len(changes) == 0 {
			return nil, err
		}
		out := make([]map[string]string, len(changes))
		for i, c := range changes {
			out[i] = map[string]string{"event": c.Event, "id": c.MemoryID, "memory": c.Text, "previous_memory": c.Old}
		}
		body := map[string]any{"results": out}
		if err != nil {
			body["error"] = nodus.ErrorMessage(err)
		}
		return body, nil
	})
}

// eventText joins the text parts of a genai Content.
func eventText(content json.RawMessage) string {
	var c struct {
		Parts []struct {
			Text string `json:"text"`
		} `json:"parts"`
	}
	if len(content) == 0 || json.Unmarshal(content, &c) != nil {
		return ""
	}
	var parts []string
	for _, p := range c.Parts {
		if t := strings.TrimSpace(p.Text); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, "\n")
}
