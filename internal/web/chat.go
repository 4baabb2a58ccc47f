package web

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

type conversationsPage struct {
	pageBase
	Conversations []conversationRow
	Next          string
	Bots          []chat.Chatbot
	Archived      bool // the archived conversations are listed
}

type conversationRow struct {
	chat.Conversation
	BotName string
}

func (s *Server) handleConversations() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.chatActor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		archived := r.URL.Query().Get("archived") == "1"
		convs, next, err := s.deps.Chat.ListConversations(r.Context(), a, chat.ConversationFilter{Archived: &archived}, false,
			r.URL.Query().Get("cursor"), listPage)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		bots, _, err := s.deps.Chat.ListChatbots(r.Context(), a, "", listPage)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		names := map[string]string{}
		for _, b := range bots {
			names[b.ID] = b.Name
		}
		p := conversationsPage{pageBase: s.base(r, v, "Chat"), Archived: archived}
		if next != "" {
			p.Next = pageURL(r.URL.Query(), next)
		}
		for _, b := range bots {
			if b.IsActive {
				p.Bots = append(p.Bots, b)
			}
		}
		for _, c := range convs {
			p.Conversations = append(p.Conversations, conversationRow{Conversation: c, BotName: names[c.ChatbotID]})
		}
		s.render(w, r, http.StatusOK, "conversations", &p)
	})
}

type conversationPage struct {
	pageBase
	Bot          *chat.Chatbot
	Conversation *chat.Conversation // nil for a new conversation
	Messages     []messageView
	CanChat      bool // viewers read only
	CanManage    bool // the viewer's own conversation: rename, archive
}

// messageView is a message as the page shows it.
type messageView struct {
	ID             string
	ConversationID string
	Role           string
	// HTML is an assistant's answer rendered from Markdown by
	// renderMarkdown; a user's message is shown as text.
	HTML      template.HTML
	Text      string
	Citations []chat.Source
	Rating    string
	Partial   bool
	Error     string
	Notice    string
	TraceID   string
	CSRF      string
}

func viewMessage(m *chat.Message, csrf string) messageView {
	mv := messageView{ID: m.ID, ConversationID: m.ConversationID, Role: m.Role, Text: m.Content, CSRF: csrf}
	if m.Role == chat.RoleAssistant {
		mv.HTML = renderMarkdown(m.Content)
		var md chat.MessageMetadata
		if len(m.Metadata) > 0 && json.Unmarshal(m.Metadata, &md) == nil {
			for _, c := range md.Citations {
				if c.Cited {
					mv.Citations = append(mv.Citations, c)
				}
			}
			// An answer that names no source still came from these: show
			// them all rather than none.
			if len(mv.Citations) == 0 {
				mv.Citations = md.Citations
			}
			mv.Partial, mv.Error, mv.Notice, mv.TraceID = md.Partial, md.Error, md.Notice, md.TraceID
		}
	}
	if m.Feedback != nil {
		mv.Rating = m.Feedback.Rating
	}
	return mv
}

// handleConversation shows a conversation, or an empty one with a
// chatbot (/chat/new/{bot}); the first question creates it.
func (s *Server) handleConversation() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.chatActor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p := conversationPage{CanChat: s.perms.Allows(v.user.Role, identity.ActionWriteContent)}
		botID := r.PathValue("bot")
		if id := r.PathValue("id"); id != "" {
			c, msgs, err := s.deps.Chat.GetConversation(r.Context(), a, id)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			p.Conversation, botID = c, c.ChatbotID
			p.CanManage = c.UserID == v.user.ID && s.perms.Allows(v.user.Role, identity.ActionWriteContent)
			p.CanChat = p.CanChat && c.UserID == v.user.ID && !c.Archived
			for i := range msgs {
				if msgs[i].Role != chat.RoleSystem {
					p.Messages = append(p.Messages, viewMessage(&msgs[i], v.session.CSRFToken))
				}
			}
		}
		bot, err := s.deps.Chat.GetChatbot(r.Context(), a, botID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p.Bot = bot
		title := bot.Name
		if p.Conversation != nil && p.Conversation.Title != "" {
			title = p.Conversation.Title
		}
		p.pageBase = s.base(r, v, title)
		s.render(w, r, http.StatusOK, "conversation", &p)
	})
}

// findMessage returns one message of a conversation the viewer may read.
func (s *Server) findMessage(r *http.Request, a chat.Actor) (*chat.Message, error) {
	_, msgs, err := s.deps.Chat.GetConversation(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		if msgs[i].ID == r.PathValue("msg") {
			return &msgs[i], nil
		}
	}
	return nil, nodus.Errorf(nodus.ENOTFOUND, "message %s not found", r.PathValue("msg"))
}

// handleMessageFragment serves one message rendered as the page renders
// it: the chat script swaps it in for the streamed text once the answer
// ends, so Markdown and citations are rendered in one place, here.
func (s *Server) handleMessageFragment() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.chatActor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		m, err := s.findMessage(r, a)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.renderTemplate(w, r, http.StatusOK, "conversation", "message", viewMessage(m, v.session.CSRFToken))
	})
}

func (s *Server) handleFeedback() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.chatActor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var f *chat.Feedback
		switch rating := r.PostFormValue("rating"); rating {
		case chat.RatingLike, chat.RatingDislike:
			f = &chat.Feedback{Rating: rating}
		case "":
		default:
			s.renderError(w, r, v, http.StatusBadRequest, "A rating is like or dislike.")
			return
		}
		if _, err := s.deps.Chat.SetFeedback(r.Context(), a, r.PathValue("msg"), f); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/chat/c/"+r.PathValue("id")+"#m-"+r.PathValue("msg"), http.StatusSeeOther)
	})
}

// handleUpdateConversation renames a conversation (a title field) or
// archives and restores it (an archived field), then returns to the page
// the form was on: the list or the conversation.
func (s *Server) handleUpdateConversation() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.chatActor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var in chat.ConversationInput
		if _, ok := r.PostForm["title"]; ok {
			t := r.PostFormValue("title")
			in.Title = &t
		}
		switch r.PostFormValue("archived") {
		case "true", "false":
			archived := r.PostFormValue("archived") == "true"
			in.Archived = &archived
		case "":
		default:
			s.renderError(w, r, v, http.StatusBadRequest, "archived is true or false.")
			return
		}
		if in.Title == nil && in.Archived == nil {
			s.renderError(w, r, v, http.StatusBadRequest, "Give the conversation a new title, or archive it.")
			return
		}
		id := r.PathValue("id")
		if _, err := s.deps.Chat.UpdateConversation(r.Context(), a, id, in); err != nil {
			if nodus.ErrorCode(err) == nodus.EINVALID {
				s.renderError(w, r, v, http.StatusBadRequest,
					fmt.Sprintf("A title is required: at most %d characters, on one line.", chat.MaxTitleLength))
				return
			}
			s.fail(w, r, err)
			return
		}
		next := safeNext(r.PostFormValue("next"))
		if r.PostFormValue("next") == "" {
			next = "/chat/c/" + id
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
}
