package notebook

import (
	"context"
	"encoding/json"
	"time"
)

// Permissions of a share, and of the owner.
const (
	PermRead  = "read"
	PermWrite = "write"
	PermOwner = "owner"
)

// Source kinds.
const (
	KindDocument  = "document"
	KindRecording = "recording"
	KindText      = "text"
	KindURL       = "url"
)

// Context levels of a source in chat.
const (
	LevelExcluded = "excluded"
	LevelSummary  = "summary"
	LevelFull     = "full"
)

// Source statuses: its text is captured when it is added; its summary
// follows.
const (
	StatusSummarising = "summarising"
	StatusReady       = "ready"
)

// Summary methods.
const (
	SummaryModel   = "model"   // written by the notebook's chat model
	SummaryExtract = "extract" // the text's opening, without a model
)

// Card kinds.
const (
	CardHuman = "human"
	CardAI    = "ai"
)

// Notebook is a user's notebook.
type Notebook struct {
	ID          string
	TenantID    string
	OwnerID     string
	Name        string
	Description string
	// Model is the gateway model that chats and summarises; "" chats with
	// nodus/extractive and summarises by extract.
	Model     string
	Archived  bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// Permission is the reader's: owner, write or read (set by the store
	// for the user it was asked for).
	Permission string
}

// Share gives a user of the tenant access to a notebook.
type Share struct {
	NotebookID string
	TenantID   string
	UserID     string
	Permission string // read or write
	CreatedAt  time.Time
}

// Source is a notebook's source.
type Source struct {
	ID            string
	NotebookID    string
	TenantID      string
	Kind          string
	Ref           string // document or recording id, URL; "" for text
	Title         string
	ContextLevel  string
	Status        string
	FullText      string
	Summary       string
	SummaryMethod string
	SummaryNote   string // why the summary is an extract, when it is
	CreatedBy     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Citation links a card or an answer to a source it cites.
type Citation struct {
	N        int    `json:"n,omitempty"` // the source's number in the answer's prompt
	SourceID string `json:"source_id"`
	Title    string `json:"title"`
	Quote    string `json:"quote,omitempty"`
	Cited    bool   `json:"cited,omitempty"` // the answer refers to it as [n]
}

// Card is a notebook's note.
type Card struct {
	ID         string
	NotebookID string
	TenantID   string
	Title      string
	Content    string // Markdown
	Kind       string
	Position   int
	Pinned     bool
	Citations  []Citation
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Chat is one user's chat session in a notebook.
type Chat struct {
	ID         string
	NotebookID string
	TenantID   string
	UserID     string
	Title      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Message roles.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one message of a chat session.
type Message struct {
	ID        string
	ChatID    string
	TenantID  string
	Role      string
	Content   string
	Metadata  json.RawMessage // an answer's AnswerMetadata
	CreatedAt time.Time
}

// AnswerMetadata is what an answer records of how it was made.
type AnswerMetadata struct {
	Model      string     `json:"model"`
	RequestID  string     `json:"request_id,omitempty"` // the gateway's, as in its spend log
	CostMicros int64      `json:"cost_micros,omitempty"`
	Citations  []Citation `json:"citations"`
	Truncated  []string   `json:"truncated,omitempty"` // ids of full sources cut to fit the budget
	Error      string     `json:"error,omitempty"`
}

// Store is what the service needs of the main database
// (internal/store/notebook.go). Every method works within the tenant scope
// of ctx. Lookups of a user's notebook go through FindNotebookFor, which
// answers ENOTFOUND for a notebook the user neither owns nor shares.
type Store interface {
	CreateNotebook(ctx context.Context, n Notebook) error
	// FindNotebook reads a notebook whoever asks: for background work.
	FindNotebook(ctx context.Context, id string) (Notebook, error)
	FindNotebookFor(ctx context.Context, id, userID string) (Notebook, error)
	ListNotebooksFor(ctx context.Context, userID string, archived *bool, cursor string, limit int) ([]Notebook, string, error)
	UpdateNotebook(ctx context.Context, id string, change func(*Notebook) error) (Notebook, error)
	DeleteNotebook(ctx context.Context, id string) error
	PutNotebookShare(ctx context.Context, s Share) error
	DeleteNotebookShare(ctx context.Context, notebookID, userID string) error
	ListNotebookShares(ctx context.Context, notebookID string) ([]Share, error)

	// CreateNotebookSource stores a source and queues its summary job in
	// the same transaction.
	CreateNotebookSource(ctx context.Context, s Source) error
	FindNotebookSource(ctx context.Context, notebookID, id string) (Source, error)
	ListNotebookSources(ctx context.Context, notebookID string) ([]Source, error)
	CountNotebookSources(ctx context.Context, notebookID string) (int, error)
	UpdateNotebookSource(ctx context.Context, notebookID, id string, change func(*Source) error) (Source, error)
	DeleteNotebookSource(ctx context.Context, notebookID, id string) error

	CreateNotebookCard(ctx context.Context, c Card) (Card, error) // appended: its position is set by the store
	FindNotebookCard(ctx context.Context, notebookID, id string) (Card, error)
	ListNotebookCards(ctx context.Context, notebookID string) ([]Card, error)
	UpdateNotebookCard(ctx context.Context, notebookID, id string, change func(*Card) error) (Card, error)
	DeleteNotebookCard(ctx context.Context, notebookID, id string) error
	// ReorderNotebookCards sets the cards' positions to the order of ids,
	// which must name every card of the notebook once.
	ReorderNotebookCards(ctx context.Context, notebookID string, ids []string, at time.Time) ([]Card, error)

	CreateNotebookChat(ctx context.Context, c Chat) error
	FindNotebookChat(ctx context.Context, notebookID, id, userID string) (Chat, error)
	ListNotebookChats(ctx context.Context, notebookID, userID, cursor string, limit int) ([]Chat, string, error)
	DeleteNotebookChat(ctx context.Context, notebookID, id, userID string) error
	// AddNotebookMessages stores messages of a chat and moves its
	// updated_at (and sets its title when it has none).
	AddNotebookMessages(ctx context.Context, chatID, title string, at time.Time, msgs ...Message) error
	ListNotebookMessages(ctx context.Context, chatID string) ([]Message, error)

	DeleteNotebookTenant(ctx context.Context) error
}
