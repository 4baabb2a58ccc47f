package chat

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the management of chatbots and conversations. Every
// member of a tenant reads its chatbots; admins change them, audited.
// A user sees their own conversations; an admin may review all of the
// tenant's, and each such review is audited.

// Bounds of a chatbot's settings.
const (
	MaxNameLength         = 200
	MaxDescriptionLength  = 2000
	MaxSystemPromptLength = 32000
	MaxWelcomeLength      = 4000
	MaxTitleLength        = 200
	MaxKnowledgeBases     = 10
	MaxAnswerTokens       = 32768
	MinContextTokens      = 1024
	MaxContextTokens      = 2_000_000
)

// ChatbotInput creates or changes a chatbot; nil fields keep their value
// (or take the default on creation).
type ChatbotInput struct {
	Name           *string
	Description    *string
	SystemPrompt   *string
	ModelName      *string
	Temperature    **float64 // set to nil to use the model's default
	MaxTokens      *int
	ContextTokens  *int
	KnowledgeBases *[]string
	Retrieval      *RetrievalOverrides
	MemoryEnabled  *bool
	WelcomeMessage *string
	IsActive       *bool
}

func (in ChatbotInput) apply(b *Chatbot) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&b.Name, in.Name)
	set(&b.Description, in.Description)
	set(&b.SystemPrompt, in.SystemPrompt)
	set(&b.ModelName, in.ModelName)
	set(&b.WelcomeMessage, in.WelcomeMessage)
	if in.Temperature != nil {
		b.Temperature = *in.Temperature
	}
	if in.MaxTokens != nil {
		b.MaxTokens = *in.MaxTokens
	}
	if in.ContextTokens != nil {
		b.ContextTokens = *in.ContextTokens
	}
	if in.KnowledgeBases != nil {
		b.KnowledgeBases = slices.Clone(*in.KnowledgeBases)
	}
	if in.Retrieval != nil {
		b.Retrieval = *in.Retrieval
	}
	if in.MemoryEnabled != nil {
		b.MemoryEnabled = *in.MemoryEnabled
	}
	if in.IsActive != nil {
		b.IsActive = *in.IsActive
	}
}

// Validate checks a chatbot's fields, all at once: EINVALID with a
// message per field.
func (b Chatbot) Validate() error {
	f := map[string]string{}
	text := func(field, v string, max int, required bool) {
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > max || (required && strings.TrimSpace(v) == "") {
			f[field] = fmt.Sprintf("at most %d characters of valid UTF-8", max)
			if required {
				f[field] = "required, " + f[field]
			}
		}
	}
	text("name", b.Name, MaxNameLength, true)
	if hasControl(b.Name) {
		f["name"] = "must not contain control characters"
	}
	text("description", b.Description, MaxDescriptionLength, false)
	text("system_prompt", b.SystemPrompt, MaxSystemPromptLength, false)
	text("welcome_message", b.WelcomeMessage, MaxWelcomeLength, false)
	if b.ModelName == "" || len(b.ModelName) > 200 || hasControl(b.ModelName) || strings.TrimSpace(b.ModelName) != b.ModelName {
		f["model_name"] = "required: a model name of the tenant's gateway, at most 200 characters"
	}
	if t := b.Temperature; t != nil && (math.IsNaN(*t) || *t < 0 || *t > 2) {
		f["temperature"] = "must be 0 to 2"
	}
	if b.MaxTokens < 0 || b.MaxTokens > MaxAnswerTokens {
		f["max_tokens"] = fmt.Sprintf("must be 1 to %d, or 0 for %d", MaxAnswerTokens, DefaultMaxTokens)
	}
	if b.ContextTokens != 0 && (b.ContextTokens < MinContextTokens || b.ContextTokens > MaxContextTokens) {
		f["context_tokens"] = fmt.Sprintf("must be %d to %d, or 0 for the server's default", MinContextTokens, MaxContextTokens)
	} else if b.ContextTokens != 0 && b.MaxTokens >= b.ContextTokens {
		f["max_tokens"] = "must leave room for the prompt within context_tokens"
	}
	if len(b.KnowledgeBases) > MaxKnowledgeBases {
		f["knowledge_bases"] = fmt.Sprintf("at most %d", MaxKnowledgeBases)
	}
	seen := map[string]bool{}
	for _, id := range b.KnowledgeBases {
		if !nodus.ValidID(id) || seen[id] {
			f["knowledge_bases"] = "must be distinct knowledge base ids"
		}
		seen[id] = true
	}
	r := b.Retrieval
	if r.TopK < 0 || r.TopK > MaxTopK {
		f["retrieval.top_k"] = fmt.Sprintf("must be 1 to %d, or 0 for the knowledge base's", MaxTopK)
	}
	if r.Mode != "" && r.Mode != ModeFullText && r.Mode != ModeVector && r.Mode != ModeHybrid {
		f["retrieval.mode"] = "must be fulltext, vector or hybrid, or empty for the knowledge base's"
	}
	if t := r.ScoreThreshold; t != nil && (math.IsNaN(*t) || math.IsInf(*t, 0)) {
		f["retrieval.score_threshold"] = "must be a number"
	}
	if w := r.HybridWeight; w != nil && !(*w >= 0 && *w <= 1) {
		f["retrieval.hybrid_weight"] = "must be 0 to 1"
	}
	if len(f) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(f))
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + strings.Join(names, ", "), Fields: f}
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

func forbidden(what string) error {
	return nodus.Errorf(nodus.EFORBIDDEN, "only an admin may %s", what)
}

// CreateChatbot creates a chatbot of the actor's tenant, within its quota
// of chatbots (EFORBIDDEN once reached).
func (s *Service) CreateChatbot(ctx context.Context, a Actor, in ChatbotInput) (*Chatbot, error) {
	if !a.Admin {
		return nil, forbidden("manage chatbots")
	}
	now := s.now().UTC()
	b := Chatbot{ID: nodus.NewID(), TenantID: a.TenantID, CreatedBy: a.UserID, IsActive: true, CreatedAt: now, UpdatedAt: now}
	in.apply(&b)
	if err := b.Validate(); err != nil {
		return nil, err
	}
	limit := 0
	if s.quotas != nil {
		var err error
		if limit, err = s.quotas.MaxChatbots(ctx, a.TenantID); err != nil {
			return nil, fmt.Errorf("chat: the tenant's quota: %w", err)
		}
	}
	if err := s.store.CreateChatbot(a.ctx(ctx), b, limit); err != nil {
		return nil, fmt.Errorf("chat: create chatbot: %w", err)
	}
	return &b, s.record(ctx, a, "chat.chatbot_create", "chatbot", b.ID, chatbotChanges(nil, &b))
}

// GetChatbot returns one of the tenant's chatbots.
func (s *Service) GetChatbot(ctx context.Context, a Actor, id string) (*Chatbot, error) {
	if !nodus.ValidID(id) {
		return nil, notFound("chatbot", id)
	}
	b, err := s.store.FindChatbot(a.ctx(ctx), id)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// ListChatbots lists a page of the tenant's chatbots and the next cursor.
func (s *Service) ListChatbots(ctx context.Context, a Actor, cursor string, limit int) ([]Chatbot, string, error) {
	return s.store.ListChatbots(a.ctx(ctx), cursor, limit)
}

// UpdateChatbot changes a chatbot's settings.
func (s *Service) UpdateChatbot(ctx context.Context, a Actor, id string, in ChatbotInput) (*Chatbot, error) {
	if !a.Admin {
		return nil, forbidden("manage chatbots")
	}
	if !nodus.ValidID(id) {
		return nil, notFound("chatbot", id)
	}
	var before Chatbot
	b, err := s.store.UpdateChatbot(a.ctx(ctx), id, func(b *Chatbot) error {
		before = *b
		before.KnowledgeBases = slices.Clone(b.KnowledgeBases)
		in.apply(b)
		b.UpdatedAt = s.now().UTC()
		return b.Validate()
	})
	if err != nil {
		return nil, err
	}
	return &b, s.record(ctx, a, "chat.chatbot_update", "chatbot", id, chatbotChanges(&before, &b))
}

// DeleteChatbot removes a chatbot with its conversations.
func (s *Service) DeleteChatbot(ctx context.Context, a Actor, id string) error {
	if !a.Admin {
		return forbidden("manage chatbots")
	}
	if !nodus.ValidID(id) {
		return notFound("chatbot", id)
	}
	if err := s.store.DeleteChatbot(a.ctx(ctx), id); err != nil {
		return err
	}
	return s.record(ctx, a, "chat.chatbot_delete", "chatbot", id, nil)
}

// chatbotChanges lists what changed, for the audit log: settings, never a
// conversation.
func chatbotChanges(b, a *Chatbot) map[string]audit.Change {
	if b == nil {
		b = &Chatbot{}
	}
	out := map[string]audit.Change{}
	add := func(k string, before, after any, changed bool) {
		if changed {
			out[k] = audit.Change{Before: before, After: after}
		}
	}
	add("name", b.Name, a.Name, b.Name != a.Name)
	add("description", b.Description, a.Description, b.Description != a.Description)
	add("system_prompt", b.SystemPrompt, a.SystemPrompt, b.SystemPrompt != a.SystemPrompt)
	add("model_name", b.ModelName, a.ModelName, b.ModelName != a.ModelName)
	add("max_tokens", b.MaxTokens, a.MaxTokens, b.MaxTokens != a.MaxTokens)
	add("context_tokens", b.ContextTokens, a.ContextTokens, b.ContextTokens != a.ContextTokens)
	add("knowledge_bases", b.KnowledgeBases, a.KnowledgeBases, !slices.Equal(b.KnowledgeBases, a.KnowledgeBases))
	add("memory_enabled", b.MemoryEnabled, a.MemoryEnabled, b.MemoryEnabled != a.MemoryEnabled)
	add("is_active", b.IsActive, a.IsActive, b.IsActive != a.IsActive)
	add("welcome_message", b.WelcomeMessage, a.WelcomeMessage, b.WelcomeMessage != a.WelcomeMessage)
	tb, ta := b.Temperature, a.Temperature
	add("temperature", tb, ta, (tb == nil) != (ta == nil) || tb != nil && ta != nil && *tb != *ta)
	add("retrieval", b.Retrieval, a.Retrieval, fmt.Sprint(b.Retrieval) != fmt.Sprint(a.Retrieval))
	return out
}

// Conversations.

// ListConversations lists conversations newest first: the actor's own,
// or, with all (admins only; audited as a review), every user's of the
// tenant.
func (s *Service) ListConversations(ctx context.Context, a Actor, f ConversationFilter, all bool, cursor string, limit int) ([]Conversation, string, error) {
	f.UserID = a.UserID
	if all {
		if !a.Admin {
			return nil, "", forbidden("review other users' conversations")
		}
		f.UserID = ""
		if err := s.record(ctx, a, "chat.conversations_review", "tenant", a.TenantID, nil); err != nil {
			return nil, "", err
		}
	}
	return s.store.ListConversations(a.ctx(ctx), f, cursor, limit)
}

// conversation returns a conversation the actor may read: their own, or
// any of the tenant's for an admin (audited as a review when not theirs).
func (s *Service) conversation(ctx context.Context, a Actor, id string, write bool) (Conversation, error) {
	if !nodus.ValidID(id) {
		return Conversation{}, notFound("conversation", id)
	}
	c, err := s.store.FindConversation(a.ctx(ctx), id)
	if err != nil {
		return Conversation{}, err
	}
	if c.UserID == a.UserID {
		return c, nil
	}
	// Another user's: an admin may review it (read, delete), never write
	// in it; anyone else is told it does not exist.
	if !a.Admin || write {
		return Conversation{}, notFound("conversation", id)
	}
	return c, s.record(ctx, a, "chat.conversation_review", "conversation", id, nil)
}

// GetConversation returns a conversation with its messages, oldest first.
func (s *Service) GetConversation(ctx context.Context, a Actor, id string) (*Conversation, []Message, error) {
	c, err := s.conversation(ctx, a, id, false)
	if err != nil {
		return nil, nil, err
	}
	msgs, err := s.store.ListMessages(a.ctx(ctx), id, 0)
	if err != nil {
		return nil, nil, err
	}
	return &c, msgs, nil
}

// ConversationInput renames or archives a conversation.
type ConversationInput struct {
	Title    *string
	Archived *bool
}

// UpdateConversation renames or archives one of the actor's conversations.
func (s *Service) UpdateConversation(ctx context.Context, a Actor, id string, in ConversationInput) (*Conversation, error) {
	if _, err := s.conversation(ctx, a, id, true); err != nil {
		return nil, err
	}
	if in.Title != nil {
		t := strings.TrimSpace(*in.Title)
		if t == "" || utf8.RuneCountInString(t) > MaxTitleLength || !utf8.ValidString(t) || hasControl(t) {
			return nil, invalid("title", fmt.Sprintf("required, at most %d characters, no control characters", MaxTitleLength))
		}
		in.Title = &t
	}
	c, err := s.store.UpdateConversation(a.ctx(ctx), id, func(c *Conversation) error {
		if in.Title != nil {
			c.Title = *in.Title
		}
		if in.Archived != nil {
			c.Archived = *in.Archived
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// DeleteConversation removes a conversation: the actor's own, or (audited)
// any of the tenant's for an admin.
func (s *Service) DeleteConversation(ctx context.Context, a Actor, id string) error {
	c, err := s.conversation(ctx, a, id, false)
	if err != nil {
		return err
	}
	if err := s.store.DeleteConversation(a.ctx(ctx), id); err != nil {
		return err
	}
	if c.UserID != a.UserID {
		return s.record(ctx, a, "chat.conversation_delete", "conversation", id, nil)
	}
	return nil
}

// SetFeedback rates an assistant message of one of the actor's
// conversations; a nil feedback clears it.
func (s *Service) SetFeedback(ctx context.Context, a Actor, messageID string, f *Feedback) (*Message, error) {
	if !nodus.ValidID(messageID) {
		return nil, notFound("message", messageID)
	}
	m, err := s.store.FindMessage(a.ctx(ctx), messageID)
	if err != nil {
		return nil, err
	}
	if _, err := s.conversation(ctx, a, m.ConversationID, true); err != nil {
		return nil, notFound("message", messageID)
	}
	if f != nil {
		if f.Rating != RatingLike && f.Rating != RatingDislike {
			return nil, invalid("rating", "must be like or dislike")
		}
		if utf8.RuneCountInString(f.Comment) > 2000 || !utf8.ValidString(f.Comment) {
			return nil, invalid("comment", "at most 2000 characters")
		}
		f.UpdatedAt = s.now().UTC()
	}
	out, err := s.store.SetFeedback(a.ctx(ctx), messageID, f)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Exchange returns a question and its answer, for the background writer of
// memory: ENOTFOUND when either is gone (the conversation was deleted) or
// not of that conversation.
func (s *Service) Exchange(ctx context.Context, tenantID, conversationID, questionID, answerID string) (question, answer *Message, err error) {
	tctx := nodus.WithTenant(ctx, tenantID)
	var out [2]*Message
	for i, id := range []string{questionID, answerID} {
		if !nodus.ValidID(id) {
			return nil, nil, notFound("message", id)
		}
		m, err := s.store.FindMessage(tctx, id)
		if err != nil {
			return nil, nil, err
		}
		if m.ConversationID != conversationID {
			return nil, nil, notFound("message", id)
		}
		out[i] = &m
	}
	return out[0], out[1], nil
}
