package chat

import (
	"context"
	"encoding/json"
	"time"
)

// This file holds the chat module's stored records and the Store interface
// the main database implements (internal/store/chat.go). Every record
// belongs to one tenant; the store filters by the tenant scope in the
// context, as every other Nodus store does.

// Chatbot is a tenant's assistant: a model, a prompt and the knowledge
// bases it answers from.
type Chatbot struct {
	ID             string
	TenantID       string
	Name           string // unique within the tenant
	Description    string
	SystemPrompt   string
	ModelName      string   // a gateway model name of the tenant (nodus/extractive works offline)
	Temperature    *float64 // nil for the model's default
	MaxTokens      int      // the answer's bound; 0 for DefaultMaxTokens
	ContextTokens  int      // the model's context window; 0 for Config.ContextTokens
	KnowledgeBases []string // ids, in the order their sources are listed
	Retrieval      RetrievalOverrides
	MemoryEnabled  bool
	WelcomeMessage string
	IsActive       bool
	CreatedBy      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// RetrievalOverrides replace the knowledge bases' own retrieval settings
// for the chatbot's searches; zero values keep them.
type RetrievalOverrides struct {
	TopK           int      `json:"top_k,omitempty"`
	ScoreThreshold *float64 `json:"score_threshold,omitempty"`
	Mode           string   `json:"mode,omitempty"`
	HybridWeight   *float64 `json:"hybrid_weight,omitempty"`
}

// Conversation is one user's exchange with a chatbot.
type Conversation struct {
	ID        string
	TenantID  string
	ChatbotID string
	UserID    string
	Title     string // set from the first exchange, renamable
	Archived  bool
	CreatedAt time.Time
	UpdatedAt time.Time // the last message's time
}

// Message roles.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleSystem    = "system"
)

// Message is one turn of a conversation.
type Message struct {
	ID             string
	TenantID       string
	ConversationID string
	Role           string
	Content        string
	// Metadata of an assistant message: model, deployment, usage, cost,
	// latency, time to first token, citations, request and trace ids,
	// and whether the answer is partial (MessageMetadata, as JSON).
	Metadata  json.RawMessage
	Feedback  *Feedback
	CreatedAt time.Time
}

// Feedback is a user's rating of an assistant message.
type Feedback struct {
	Rating    string // "like" or "dislike"
	Comment   string
	UpdatedAt time.Time
}

// Feedback ratings.
const (
	RatingLike    = "like"
	RatingDislike = "dislike"
)

// Store is the chat module's persistence. Reads and writes are scoped to
// the tenant in ctx; another tenant's records are ENOTFOUND.
type Store interface {
	// CreateChatbot stores a chatbot of the scoped tenant. maxChatbots
	// (0 for no limit) is the tenant's quota, checked in the same
	// transaction under a lock, so concurrent creations never exceed it
	// (EFORBIDDEN once reached). A name the tenant already uses is
	// ECONFLICT; a knowledge base not of the tenant is ENOTFOUND.
	CreateChatbot(ctx context.Context, b Chatbot, maxChatbots int) error
	FindChatbot(ctx context.Context, id string) (Chatbot, error)
	// ListChatbots returns a page by id and the next page's cursor, ""
	// after the last.
	ListChatbots(ctx context.Context, cursor string, limit int) ([]Chatbot, string, error)
	// UpdateChatbot reads the chatbot under a lock, applies change (an
	// error aborts) and writes it back with its knowledge bases.
	UpdateChatbot(ctx context.Context, id string, change func(*Chatbot) error) (Chatbot, error)
	// DeleteChatbot removes it with its conversations and messages.
	DeleteChatbot(ctx context.Context, id string) error

	// CreateConversation stores a conversation of a chatbot of the tenant.
	CreateConversation(ctx context.Context, c Conversation) error
	FindConversation(ctx context.Context, id string) (Conversation, error)
	// ListConversations returns a page of conversations, newest first
	// (by UpdatedAt, then id), filtered by f, and the next page's cursor.
	ListConversations(ctx context.Context, f ConversationFilter, cursor string, limit int) ([]Conversation, string, error)
	// UpdateConversation reads under a lock, applies change, writes back.
	UpdateConversation(ctx context.Context, id string, change func(*Conversation) error) (Conversation, error)
	// DeleteConversation removes it with its messages.
	DeleteConversation(ctx context.Context, id string) error

	// AddMessage appends a message to its conversation and sets the
	// conversation's UpdatedAt to the message's time, in one transaction.
	AddMessage(ctx context.Context, m Message) error
	// ListMessages returns a conversation's messages, oldest first: the
	// last limit of them (all when limit <= 0).
	ListMessages(ctx context.Context, conversationID string, limit int) ([]Message, error)
	FindMessage(ctx context.Context, id string) (Message, error)
	// SetFeedback records (or with nil, clears) a message's feedback.
	SetFeedback(ctx context.Context, messageID string, f *Feedback) (Message, error)

	// DeleteChatTenant removes every chat record of the scoped tenant, for
	// the tenant's deletion. Running it again is a no-op.
	DeleteChatTenant(ctx context.Context) error
}

// ConversationFilter narrows a conversation list.
type ConversationFilter struct {
	UserID    string // "" for every user's (an admin's review)
	ChatbotID string // "" for every chatbot's
	Archived  *bool  // nil for both
}
