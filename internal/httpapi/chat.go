package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file serves chatbots, conversations and the chat turn. Every member
// of a tenant reads its chatbots; admins change them; users and admins
// chat (viewers read only). A user's conversations are theirs; an admin's
// review of another's is audited by the chat service.

// chatPing is how often a chat stream sends a keep-alive while the model
// thinks.
const chatPing = 10 * time.Second

func (s *Server) chatActor(r *http.Request) (chat.Actor, error) {
	if s.deps.Chat == nil {
		return chat.Actor{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "chat is not available"}
	}
	_, tenantID, err := s.egressTenant(r)
	if err != nil {
		return chat.Actor{}, err
	}
	c := callerFrom(r.Context())
	role := c.principal.User.Role // a token's role already capped at its owner's current one
	return chat.Actor{TenantID: tenantID, UserID: c.principal.User.ID,
		Admin: role == identity.RoleOrgAdmin || role == identity.RoleSuperAdmin, Entry: egressActor(r)}, nil
}

func (s *Server) chatAnswer(status int, fn func(r *http.Request, a chat.Actor) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		a, err := s.chatActor(r)
		if err != nil {
			return nil, err
		}
		return fn(r, a)
	})
}

type chatbotView struct {
	ID             string                  `json:"id"`
	Name           string                  `json:"name"`
	Description    string                  `json:"description"`
	SystemPrompt   string                  `json:"system_prompt"`
	ModelName      string                  `json:"model_name"`
	Temperature    *float64                `json:"temperature"`
	MaxTokens      int                     `json:"max_tokens"`
	ContextTokens  int                     `json:"context_tokens"`
	KnowledgeBases []string                `json:"knowledge_bases"`
	Retrieval      chat.RetrievalOverrides `json:"retrieval"`
	MemoryEnabled  bool                    `json:"memory_enabled"`
	WelcomeMessage string                  `json:"welcome_message"`
	IsActive       bool                    `json:"is_active"`
	CreatedBy      string                  `json:"created_by"`
	CreatedAt      time.Time               `json:"created_at"`
	UpdatedAt      time.Time               `json:"updated_at"`
}

func viewChatbot(b *chat.Chatbot) chatbotView {
	kbs := b.KnowledgeBases
	if kbs == nil {
		kbs = []string{}
	}
	return chatbotView{ID: b.ID, Name: b.Name, Description: b.Description, SystemPrompt: b.SystemPrompt,
		ModelName: b.ModelName, Temperature: b.Temperature, MaxTokens: b.MaxTokens, ContextTokens: b.ContextTokens,
		KnowledgeBases: kbs,
		Retrieval:      b.Retrieval, MemoryEnabled: b.MemoryEnabled, WelcomeMessage: b.WelcomeMessage, IsActive: b.IsActive,
		CreatedBy: b.CreatedBy, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt}
}

// chatbotRequest is a chatbot's body; absent fields keep their value, and
// "temperature": null returns to the model's default.
type chatbotRequest struct {
	Name           *string                  `json:"name"`
	Description    *string                  `json:"description"`
	SystemPrompt   *string                  `json:"system_prompt"`
	ModelName      *string                  `json:"model_name"`
	Temperature    json.RawMessage          `json:"temperature"`
	MaxTokens      *int                     `json:"max_tokens"`
	ContextTokens  *int                     `json:"context_tokens"`
	KnowledgeBases *[]string                `json:"knowledge_bases"`
	Retrieval      *chat.RetrievalOverrides `json:"retrieval"`
	MemoryEnabled  *bool                    `json:"memory_enabled"`
	WelcomeMessage *string                  `json:"welcome_message"`
	IsActive       *bool                    `json:"is_active"`
}

func (in chatbotRequest) input() (chat.ChatbotInput, error) {
	out := chat.ChatbotInput{Name: in.Name, Description: in.Description, SystemPrompt: in.SystemPrompt,
		ModelName: in.ModelName, MaxTokens: in.MaxTokens, ContextTokens: in.ContextTokens, KnowledgeBases: in.KnowledgeBases, Retrieval: in.Retrieval,
		MemoryEnabled: in.MemoryEnabled, WelcomeMessage: in.WelcomeMessage, IsActive: in.IsActive}
	if in.Temperature != nil {
		var t *float64
		if err := json.Unmarshal(in.Temperature, &t); err != nil {
			return out, &nodus.Error{Code: nodus.EINVALID, Message: "invalid temperature",
				Fields: map[string]string{"temperature": "must be a number or null"}}
		}
		out.Temperature = &t
	}
	return out, nil
}

func (s *Server) handleListChatbots() http.Handler {
	return s.chatAnswer(http.StatusOK, func(r *http.Request, a chat.Actor) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		bots, next, err := s.deps.Chat.ListChatbots(r.Context(), a, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]chatbotView, len(bots))
		for i := range bots {
			out[i] = viewChatbot(&bots[i])
		}
		return map[string]any{"chatbots": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleCreateChatbot() http.Handler {
	return s.chatAnswer(http.StatusCreated, func(r *http.Request, a chat.Actor) (any, error) {
		var req chatbotRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		in, err := req.input()
		if err != nil {
			return nil, err
		}
		b, err := s.deps.Chat.CreateChatbot(r.Context(), a, in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"chatbot": viewChatbot(b)}, nil
	})
}

func (s *Server) handleGetChatbot() http.Handler {
	return s.chatAnswer(http.StatusOK, func(r *http.Request, a chat.Actor) (any, error) {
		b, err := s.deps.Chat.GetChatbot(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"chatbot": viewChatbot(b)}, nil
	})
}

func (s *Server) handleUpdateChatbot() http.Handler {
	return s.chatAnswer(http.StatusOK, func(r *http.Request, a chat.Actor) (any, error) {
		var req chatbotRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		in, err := req.input()
		if err != nil {
			return nil, err
		}
		b, err := s.deps.Chat.UpdateChatbot(r.Context(), a, r.PathValue("id"), in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"chatbot": viewChatbot(b)}, nil
	})
}

func (s *Server) handleDeleteChatbot() http.Handler {
	return s.chatAnswer(http.StatusNoContent, func(r *http.Request, a chat.Actor) (any, error) {
		return nil, s.deps.Chat.DeleteChatbot(r.Context(), a, r.PathValue("id"))
	})
}

type conversationView struct {
	ID        string    `json:"id"`
	ChatbotID string    `json:"chatbot_id"`
	UserID    string    `json:"user_id"`
	Title     string    `json:"title"`
	Archived  bool      `json:"archived"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func viewConversation(c *chat.Conversation) conversationView {
	return conversationView{ID: c.ID, ChatbotID: c.ChatbotID, UserID: c.UserID, Title: c.Title, Archived: c.Archived,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

type feedbackView struct {
	Rating    string    `json:"rating"`
	Comment   string    `json:"comment"`
	UpdatedAt time.Time `json:"updated_at"`
}

type messageView struct {
	ID             string          `json:"id"`
	ConversationID string          `json:"conversation_id"`
	Role           string          `json:"role"`
	Content        string          `json:"content"`
	Metadata       json.RawMessage `json:"metadata"`
	Feedback       *feedbackView   `json:"feedback"`
	CreatedAt      time.Time       `json:"created_at"`
}

func viewMessage(m *chat.Message) messageView {
	v := messageView{ID: m.ID, ConversationID: m.ConversationID, Role: m.Role, Content: m.Content, Metadata: m.Metadata,
		CreatedAt: m.CreatedAt}
	if len(v.Metadata) == 0 {
		v.Metadata = json.RawMessage(`{}`)
	}
	if f := m.Feedback; f != nil {
		v.Feedback = &feedbackView{Rating: f.Rating, Comment: f.Comment, UpdatedAt: f.UpdatedAt}
	}
	return v
}

// handleListConversations lists the caller's conversations, or with
// all=true (admins; audited) every user's of the tenant, newest first;
// chatbot_id and archived (true or false) filter them.
func (s *Server) handleListConversations() http.Handler {
	return s.chatAnswer(http.StatusOK, func(r *http.Request, a chat.Actor) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		q := r.URL.Query()
		f := chat.ConversationFilter{ChatbotID: q.Get("chatbot_id")}
		if v := q.Get("archived"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid archived",
					Fields: map[string]string{"archived": "must be true or false"}}
			}
			f.Archived = &b
		}
		all := q.Get("all") == "true"
		convs, next, err := s.deps.Chat.ListConversations(r.Context(), a, f, all, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]conversationView, len(convs))
		for i := range convs {
			out[i] = viewConversation(&convs[i])
		}
		return map[string]any{"conversations": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleGetConversation() http.Handler {
	return s.chatAnswer(http.StatusOK, func(r *http.Request, a chat.Actor) (any, error) {
		c, msgs, err := s.deps.Chat.GetConversation(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		out := make([]messageView, len(msgs))
		for i := range msgs {
			out[i] = viewMessage(&msgs[i])
		}
		return map[string]any{"conversation": viewConversation(c), "messages": out}, nil
	})
}

func (s *Server) handleUpdateConversation() http.Handler {
	return s.chatAnswer(http.StatusOK, func(r *http.Request, a chat.Actor) (any, error) {
		var in struct {
			Title    *string `json:"title"`
			Archived *bool   `json:"archived"`
		}
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		c, err := s.deps.Chat.UpdateConversation(r.Context(), a, r.PathValue("id"),
			chat.ConversationInput{Title: in.Title, Archived: in.Archived})
		if err != nil {
			return nil, err
		}
		return map[string]any{"conversation": viewConversation(c)}, nil
	})
}

func (s *Server) handleDeleteConversation() http.Handler {
	return s.chatAnswer(http.StatusNoContent, func(r *http.Request, a chat.Actor) (any, error) {
		return nil, s.deps.Chat.DeleteConversation(r.Context(), a, r.PathValue("id"))
	})
}

func (s *Server) handleSetFeedback() http.Handler {
	return s.chatAnswer(http.StatusOK, func(r *http.Request, a chat.Actor) (any, error) {
		var in struct {
			Rating  string `json:"rating"`
			Comment string `json:"comment"`
		}
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		m, err := s.deps.Chat.SetFeedback(r.Context(), a, r.PathValue("id"), &chat.Feedback{Rating: in.Rating, Comment: in.Comment})
		if err != nil {
			return nil, err
		}
		return map[string]any{"message": viewMessage(m)}, nil
	})
}

func (s *Server) handleClearFeedback() http.Handler {
	return s.chatAnswer(http.StatusNoContent, func(r *http.Request, a chat.Actor) (any, error) {
		_, err := s.deps.Chat.SetFeedback(r.Context(), a, r.PathValue("id"), nil)
		return nil, err
	})
}

// chatRequest is a chat turn's body.
type chatRequest struct {
	Message        string `json:"message"`
	ConversationID string `json:"conversation_id"`
	Stream         *bool  `json:"stream"` // default true
}

// chatMaxBody bounds a turn's body: a message of chat.MaxMessageBytes in
// \uXXXX escapes, with room for the rest.
const chatMaxBody = 6*chat.MaxMessageBytes + 4<<10

// handleChat runs a chat turn. Streaming (the default), it answers with
// Server-Sent Events, after Dify's vocabulary: message_start (ids and
// the citations), message (an answer delta), message_end (usage, cost,
// latency, citations), error, and a ping comment every 10 s; every event
// carries the conversation and message ids. Errors before the answer
// starts are plain JSON errors with their status. With "stream": false
// the same content comes back as one JSON object.
func (s *Server) handleChat() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.chatActor(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req chatRequest
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		in := chat.TurnInput{ChatbotID: r.PathValue("id"), ConversationID: req.ConversationID, Message: req.Message,
			TraceID: traceIDOf(r)}
		if req.Stream != nil && !*req.Stream {
			t, err := s.deps.Chat.Turn(r.Context(), a, in, nil)
			if t == nil {
				s.writeError(w, r, err)
				return
			}
			if err != nil && t.Answer.Content == "" {
				s.writeError(w, r, err)
				return
			}
			s.writeJSON(w, r, http.StatusOK, turnView(t))
			return
		}
		sink := &chatSink{s: s, w: w}
		defer sink.stop()
		t, err := s.deps.Chat.Turn(r.Context(), a, in, sink)
		if !sink.started() {
			// Nothing was streamed: the error is an ordinary answer.
			s.writeError(w, r, err)
			return
		}
		if err != nil {
			if r.Context().Err() != nil {
				return // the client left; the partial answer is stored
			}
			sink.event("error", map[string]any{"conversation_id": t.Conversation.ID, "message_id": t.Answer.ID,
				"code": nodus.ErrorCode(err), "status": StatusOf(nodus.ErrorCode(err)), "message": t.Metadata.Error})
			return
		}
		sink.event("message_end", map[string]any{"conversation_id": t.Conversation.ID, "message_id": t.Answer.ID,
			"metadata": t.Metadata})
	})
}

func turnView(t *chat.Turn) map[string]any {
	return map[string]any{"conversation_id": t.Conversation.ID, "conversation_title": t.Conversation.Title,
		"question_id": t.Question.ID, "message_id": t.Answer.ID, "answer": t.Answer.Content, "metadata": t.Metadata}
}

// traceIDOf is the trace id of an incoming W3C traceparent header.
func traceIDOf(r *http.Request) string {
	tp := r.Header.Get("traceparent")
	if len(tp) == 55 && tp[2] == '-' && tp[35] == '-' {
		return tp[3:35]
	}
	return ""
}

// chatSink streams a turn as Server-Sent Events, with a keep-alive ping
// while the model is slow. Its writes are serialised: the pinger and the
// turn write from different goroutines.
type chatSink struct {
	s    *Server
	w    http.ResponseWriter
	mu   sync.Mutex
	es   *eventStream
	t    *chat.Turn
	done chan struct{}
	err  error // the first write error: the client is gone
}

func (c *chatSink) started() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.es != nil
}

// Started opens the stream with message_start, and starts the pinger.
func (c *chatSink) Started(t *chat.Turn) error {
	c.mu.Lock()
	c.es, c.t, c.done = newEventStream(c.w), t, make(chan struct{})
	c.mu.Unlock()
	go c.ping(c.done)
	return c.event("message_start", map[string]any{"conversation_id": t.Conversation.ID,
		"conversation_title": t.Conversation.Title, "question_id": t.Question.ID, "message_id": t.Answer.ID,
		"citations": t.Metadata.Citations, "notice": t.Metadata.Notice})
}

// Delta sends a piece of the answer.
func (c *chatSink) Delta(text string) error {
	return c.event("message", map[string]any{"conversation_id": c.t.Conversation.ID, "message_id": c.t.Answer.ID,
		"answer": text})
}

func (c *chatSink) event(name string, data any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.err = c.es.send([]sseEvent{{name, data}}, "")
	return c.err
}

func (c *chatSink) ping(done <-chan struct{}) {
	tick := time.NewTicker(chatPing)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			c.mu.Lock()
			if c.err == nil {
				c.err = c.es.comment("ping")
			}
			c.mu.Unlock()
		}
	}
}

func (c *chatSink) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		close(c.done)
		c.done = nil
	}
}
