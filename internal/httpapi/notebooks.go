package httpapi

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notebook"
)

// This file serves notebooks (Llibreta): a user's notebooks and those
// shared with them, their sources, cards and chat sessions. Members read
// (content.read) and write (content.write) as their role allows; within
// that, the notebook service checks the caller's share: the owner may do
// everything, a write share the content, a read share reading and
// chatting. A notebook the caller neither owns nor shares is not found,
// whoever the caller is.

// Body limits of the notebook routes.
const (
	notebookMaxBody       = 16 << 10
	notebookSourceMaxBody = notebook.MaxPastedBytes + 16<<10
	notebookCardMaxBody   = notebook.MaxCardBytes + 16<<10
	notebookAskMaxBody    = notebook.MaxMessageBytes + 4<<10
	notebookSourceTimeout = 2 * time.Minute // a URL is fetched within the request
	notebookAskTimeout    = 5 * time.Minute
)

func (s *Server) notebookActor(r *http.Request) (notebook.Actor, error) {
	if s.deps.Notebooks == nil {
		return notebook.Actor{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "notebooks are not available"}
	}
	_, tenantID, err := s.egressTenant(r)
	if err != nil {
		return notebook.Actor{}, err
	}
	c := callerFrom(r.Context())
	role := c.principal.User.Role // a token's role already capped at its owner's current one
	return notebook.Actor{TenantID: tenantID, UserID: c.principal.User.ID, ReadOnly: role == identity.RoleViewer,
		Entry: egressActor(r)}, nil
}

func (s *Server) notebookAnswer(status int, fn func(r *http.Request, a notebook.Actor) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		a, err := s.notebookActor(r)
		if err != nil {
			return nil, err
		}
		return fn(r, a)
	})
}

type notebookView struct {
	ID          string    `json:"id"`
	OwnerID     string    `json:"owner_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Model       string    `json:"model"`
	Archived    bool      `json:"archived"`
	Permission  string    `json:"permission"` // the caller's: owner, write or read
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewNotebook(n *notebook.Notebook) notebookView {
	return notebookView{ID: n.ID, OwnerID: n.OwnerID, Name: n.Name, Description: n.Description, Model: n.Model,
		Archived: n.Archived, Permission: n.Permission, CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt}
}

type shareView struct {
	UserID     string    `json:"user_id"`
	Permission string    `json:"permission"`
	CreatedAt  time.Time `json:"created_at"`
}

type sourceView struct {
	ID            string    `json:"id"`
	Kind          string    `json:"kind"`
	Ref           string    `json:"ref"`
	Title         string    `json:"title"`
	ContextLevel  string    `json:"context_level"`
	Status        string    `json:"status"`
	Summary       string    `json:"summary"`
	SummaryMethod string    `json:"summary_method"`
	SummaryNote   string    `json:"summary_note"`
	TextBytes     int       `json:"text_bytes"`
	Text          *string   `json:"text,omitempty"` // one source's, not a list's
	CreatedBy     string    `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func viewSource(src *notebook.Source, withText bool) sourceView {
	v := sourceView{ID: src.ID, Kind: src.Kind, Ref: src.Ref, Title: src.Title, ContextLevel: src.ContextLevel,
		Status: src.Status, Summary: src.Summary, SummaryMethod: src.SummaryMethod, SummaryNote: src.SummaryNote,
		TextBytes: len(src.FullText), CreatedBy: src.CreatedBy, CreatedAt: src.CreatedAt, UpdatedAt: src.UpdatedAt}
	if withText {
		v.Text = &src.FullText
	}
	return v
}

type cardView struct {
	ID        string              `json:"id"`
	Title     string              `json:"title"`
	Content   string              `json:"content"`
	Kind      string              `json:"kind"`
	Position  int                 `json:"position"`
	Pinned    bool                `json:"pinned"`
	Citations []notebook.Citation `json:"citations"`
	CreatedBy string              `json:"created_by"`
	CreatedAt time.Time           `json:"created_at"`
	UpdatedAt time.Time           `json:"updated_at"`
}

func viewCard(c *notebook.Card) cardView {
	cites := c.Citations
	if cites == nil {
		cites = []notebook.Citation{}
	}
	return cardView{ID: c.ID, Title: c.Title, Content: c.Content, Kind: c.Kind, Position: c.Position, Pinned: c.Pinned,
		Citations: cites, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func viewCards(cards []notebook.Card) []cardView {
	out := make([]cardView, len(cards))
	for i := range cards {
		out[i] = viewCard(&cards[i])
	}
	return out
}

type notebookChatView struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func viewNotebookChat(c *notebook.Chat) notebookChatView {
	return notebookChatView{ID: c.ID, Title: c.Title, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

type notebookMessageView struct {
	ID        string          `json:"id"`
	Role      string          `json:"role"`
	Content   string          `json:"content"`
	Metadata  json.RawMessage `json:"metadata"`
	CreatedAt time.Time       `json:"created_at"`
}

func viewNotebookMessage(m *notebook.Message) notebookMessageView {
	md := m.Metadata
	if len(md) == 0 {
		md = json.RawMessage(`{}`)
	}
	return notebookMessageView{ID: m.ID, Role: m.Role, Content: m.Content, Metadata: md, CreatedAt: m.CreatedAt}
}

// Notebooks.

type notebookRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Model       *string `json:"model"`
	Archived    *bool   `json:"archived"`
}

func (in notebookRequest) input() notebook.NotebookInput {
	return notebook.NotebookInput{Name: in.Name, Description: in.Description, Model: in.Model, Archived: in.Archived}
}

func (s *Server) handleListNotebooks() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		var archived *bool
		switch r.URL.Query().Get("archived") {
		case "":
		case "true":
			archived = new(bool)
			*archived = true
		case "false":
			archived = new(bool)
		default:
			return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid query",
				Fields: map[string]string{"archived": "must be true or false"}}
		}
		list, next, err := s.deps.Notebooks.ListNotebooks(r.Context(), a, archived, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]notebookView, len(list))
		for i := range list {
			out[i] = viewNotebook(&list[i])
		}
		return map[string]any{"notebooks": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleCreateNotebook() http.Handler {
	return s.notebookAnswer(http.StatusCreated, func(r *http.Request, a notebook.Actor) (any, error) {
		var req notebookRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		n, err := s.deps.Notebooks.CreateNotebook(r.Context(), a, req.input())
		if err != nil {
			return nil, err
		}
		return map[string]any{"notebook": viewNotebook(n)}, nil
	})
}

func (s *Server) handleGetNotebook() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		n, err := s.deps.Notebooks.GetNotebook(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"notebook": viewNotebook(n)}, nil
	})
}

func (s *Server) handleUpdateNotebook() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		var req notebookRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		n, err := s.deps.Notebooks.UpdateNotebook(r.Context(), a, r.PathValue("id"), req.input())
		if err != nil {
			return nil, err
		}
		return map[string]any{"notebook": viewNotebook(n)}, nil
	})
}

func (s *Server) handleDeleteNotebook() http.Handler {
	return s.notebookAnswer(http.StatusNoContent, func(r *http.Request, a notebook.Actor) (any, error) {
		return nil, s.deps.Notebooks.DeleteNotebook(r.Context(), a, r.PathValue("id"))
	})
}

// Shares.

func (s *Server) handleListNotebookShares() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		shares, err := s.deps.Notebooks.ListShares(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		out := make([]shareView, len(shares))
		for i, sh := range shares {
			out[i] = shareView{UserID: sh.UserID, Permission: sh.Permission, CreatedAt: sh.CreatedAt}
		}
		return map[string]any{"shares": out}, nil
	})
}

func (s *Server) handlePutNotebookShare() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		var req struct {
			Permission string `json:"permission"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		sh, err := s.deps.Notebooks.Share(r.Context(), a, r.PathValue("id"), r.PathValue("member"), req.Permission)
		if err != nil {
			return nil, err
		}
		return map[string]any{"share": shareView{UserID: sh.UserID, Permission: sh.Permission, CreatedAt: sh.CreatedAt}}, nil
	})
}

func (s *Server) handleDeleteNotebookShare() http.Handler {
	return s.notebookAnswer(http.StatusNoContent, func(r *http.Request, a notebook.Actor) (any, error) {
		return nil, s.deps.Notebooks.Unshare(r.Context(), a, r.PathValue("id"), r.PathValue("member"))
	})
}

// Sources.

func (s *Server) handleListNotebookSources() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		srcs, err := s.deps.Notebooks.ListSources(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		out := make([]sourceView, len(srcs))
		for i := range srcs {
			out[i] = viewSource(&srcs[i], false)
		}
		return map[string]any{"sources": out}, nil
	})
}

func (s *Server) handleAddNotebookSource() http.Handler {
	return s.notebookAnswer(http.StatusCreated, func(r *http.Request, a notebook.Actor) (any, error) {
		var req struct {
			Kind         string `json:"kind"`
			DocumentID   string `json:"document_id"`
			RecordingID  string `json:"recording_id"`
			URL          string `json:"url"`
			Text         string `json:"text"`
			Title        string `json:"title"`
			ContextLevel string `json:"context_level"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		in := notebook.SourceInput{Kind: req.Kind, Text: req.Text, Title: req.Title, ContextLevel: req.ContextLevel}
		switch req.Kind {
		case notebook.KindDocument:
			in.Ref = req.DocumentID
		case notebook.KindRecording:
			in.Ref = req.RecordingID
		case notebook.KindURL:
			in.Ref = req.URL
		}
		src, err := s.deps.Notebooks.AddSource(r.Context(), a, r.PathValue("id"), in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"source": viewSource(src, false)}, nil
	})
}

func (s *Server) handleGetNotebookSource() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		src, err := s.deps.Notebooks.GetSource(r.Context(), a, r.PathValue("id"), r.PathValue("source"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"source": viewSource(src, true)}, nil
	})
}

func (s *Server) handleUpdateNotebookSource() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		var req struct {
			Title        *string `json:"title"`
			ContextLevel *string `json:"context_level"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		src, err := s.deps.Notebooks.UpdateSource(r.Context(), a, r.PathValue("id"), r.PathValue("source"),
			notebook.SourceChange{Title: req.Title, ContextLevel: req.ContextLevel})
		if err != nil {
			return nil, err
		}
		return map[string]any{"source": viewSource(src, false)}, nil
	})
}

func (s *Server) handleDeleteNotebookSource() http.Handler {
	return s.notebookAnswer(http.StatusNoContent, func(r *http.Request, a notebook.Actor) (any, error) {
		return nil, s.deps.Notebooks.DeleteSource(r.Context(), a, r.PathValue("id"), r.PathValue("source"))
	})
}

// Cards.

type cardRequest struct {
	Title   *string `json:"title"`
	Content *string `json:"content"`
	Pinned  *bool   `json:"pinned"`
}

func (s *Server) handleListNotebookCards() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		cards, err := s.deps.Notebooks.ListCards(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"cards": viewCards(cards)}, nil
	})
}

func (s *Server) handleCreateNotebookCard() http.Handler {
	return s.notebookAnswer(http.StatusCreated, func(r *http.Request, a notebook.Actor) (any, error) {
		var req cardRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		c, err := s.deps.Notebooks.CreateCard(r.Context(), a, r.PathValue("id"),
			notebook.CardInput{Title: req.Title, Content: req.Content, Pinned: req.Pinned})
		if err != nil {
			return nil, err
		}
		return map[string]any{"card": viewCard(c)}, nil
	})
}

func (s *Server) handleUpdateNotebookCard() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		var req cardRequest
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		c, err := s.deps.Notebooks.UpdateCard(r.Context(), a, r.PathValue("id"), r.PathValue("card"),
			notebook.CardInput{Title: req.Title, Content: req.Content, Pinned: req.Pinned})
		if err != nil {
			return nil, err
		}
		return map[string]any{"card": viewCard(c)}, nil
	})
}

func (s *Server) handleDeleteNotebookCard() http.Handler {
	return s.notebookAnswer(http.StatusNoContent, func(r *http.Request, a notebook.Actor) (any, error) {
		return nil, s.deps.Notebooks.DeleteCard(r.Context(), a, r.PathValue("id"), r.PathValue("card"))
	})
}

func (s *Server) handleReorderNotebookCards() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		var req struct {
			CardIDs []string `json:"card_ids"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		cards, err := s.deps.Notebooks.ReorderCards(r.Context(), a, r.PathValue("id"), req.CardIDs)
		if err != nil {
			return nil, err
		}
		return map[string]any{"cards": viewCards(cards)}, nil
	})
}

// Chats.

func (s *Server) handleListNotebookChats() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		chats, next, err := s.deps.Notebooks.ListChats(r.Context(), a, r.PathValue("id"), cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]notebookChatView, len(chats))
		for i := range chats {
			out[i] = viewNotebookChat(&chats[i])
		}
		return map[string]any{"chats": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleCreateNotebookChat() http.Handler {
	return s.notebookAnswer(http.StatusCreated, func(r *http.Request, a notebook.Actor) (any, error) {
		var req struct {
			Title string `json:"title"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		c, err := s.deps.Notebooks.CreateChat(r.Context(), a, r.PathValue("id"), req.Title)
		if err != nil {
			return nil, err
		}
		return map[string]any{"chat": viewNotebookChat(c)}, nil
	})
}

func (s *Server) handleGetNotebookChat() http.Handler {
	return s.notebookAnswer(http.StatusOK, func(r *http.Request, a notebook.Actor) (any, error) {
		c, msgs, err := s.deps.Notebooks.GetChat(r.Context(), a, r.PathValue("id"), r.PathValue("chat"))
		if err != nil {
			return nil, err
		}
		out := make([]notebookMessageView, len(msgs))
		for i := range msgs {
			out[i] = viewNotebookMessage(&msgs[i])
		}
		return map[string]any{"chat": viewNotebookChat(c), "messages": out}, nil
	})
}

func (s *Server) handleDeleteNotebookChat() http.Handler {
	return s.notebookAnswer(http.StatusNoContent, func(r *http.Request, a notebook.Actor) (any, error) {
		return nil, s.deps.Notebooks.DeleteChat(r.Context(), a, r.PathValue("id"), r.PathValue("chat"))
	})
}

// handleAskNotebook runs a chat turn. A model that failed still leaves the
// question and an empty answer with its error in the session; the
// response is then the error. With "stream": true the answer is
// Server-Sent Events: message_start (the ids and the sources it may cite),
// message (a piece of the answer), message_end (its metadata) or error.
func (s *Server) handleAskNotebook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.notebookActor(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req struct {
			Message string `json:"message"`
			Stream  bool   `json:"stream"`
		}
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		id, chatID := r.PathValue("id"), r.PathValue("chat")
		if !req.Stream {
			t, err := s.deps.Notebooks.Ask(r.Context(), a, id, chatID, req.Message)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			s.writeJSON(w, r, http.StatusOK, map[string]any{"question": viewNotebookMessage(&t.Question),
				"answer": viewNotebookMessage(&t.Answer), "citations": t.Metadata.Citations})
			return
		}
		sink := &notebookSink{w: w}
		defer sink.stop()
		t, err := s.deps.Notebooks.AskStream(r.Context(), a, id, chatID, req.Message, sink)
		switch {
		case !sink.started():
			s.writeError(w, r, err) // nothing was streamed: an ordinary answer
		case err != nil && r.Context().Err() != nil:
			// The client left; what arrived is stored.
		case err != nil:
			code := nodus.ErrorCode(err)
			sink.event("error", map[string]any{"message_id": t.Answer.ID, "code": code, "status": StatusOf(code),
				"message": t.Metadata.Error})
		default:
			sink.event("message_end", map[string]any{"message_id": t.Answer.ID, "metadata": t.Metadata})
		}
	})
}

// notebookSink streams a notebook turn as Server-Sent Events, with a
// keep-alive ping while the model is slow; its writes are serialised.
type notebookSink struct {
	w    http.ResponseWriter
	mu   sync.Mutex
	es   *eventStream
	t    *notebook.Turn
	done chan struct{}
	err  error // the first write error: the client is gone
}

func (n *notebookSink) started() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.es != nil
}

// Started opens the stream with message_start and starts the pinger.
func (n *notebookSink) Started(t *notebook.Turn) error {
	n.mu.Lock()
	n.es, n.t, n.done = newEventStream(n.w), t, make(chan struct{})
	done := n.done
	n.mu.Unlock()
	go func() {
		tick := time.NewTicker(chatPing)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				n.mu.Lock()
				if n.err == nil {
					n.err = n.es.comment("ping")
				}
				n.mu.Unlock()
			}
		}
	}()
	return n.event("message_start", map[string]any{"chat_id": t.Question.ChatID, "question_id": t.Question.ID,
		"message_id": t.Answer.ID, "citations": t.Metadata.Citations})
}

// Delta sends a piece of the answer.
func (n *notebookSink) Delta(text string) error {
	return n.event("message", map[string]any{"message_id": n.t.Answer.ID, "answer": text})
}

func (n *notebookSink) event(name string, data any) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return n.err
	}
	n.err = n.es.send([]sseEvent{{name, data}}, "")
	return n.err
}

func (n *notebookSink) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done != nil {
		close(n.done)
		n.done = nil
	}
}

func (s *Server) handleSaveNotebookAnswer() http.Handler {
	return s.notebookAnswer(http.StatusCreated, func(r *http.Request, a notebook.Actor) (any, error) {
		var req struct {
			Title string `json:"title"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		c, err := s.deps.Notebooks.SaveAnswer(r.Context(), a, r.PathValue("id"), r.PathValue("chat"), r.PathValue("message"), req.Title)
		if err != nil {
			return nil, err
		}
		return map[string]any{"card": viewCard(c)}, nil
	})
}
