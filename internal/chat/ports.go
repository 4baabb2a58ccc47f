package chat

import (
	"context"
	"time"
)

// This file holds what the chat module needs of the knowledge bases and of
// the model gateway, in its own terms: the composition roots adapt the
// knowledge and gateway services to these ports (internal/chat/chatwire),
// so the modules never import each other.

// Retrieval modes, as the knowledge module names them.
const (
	ModeFullText = "fulltext"
	ModeVector   = "vector"
	ModeHybrid   = "hybrid"
)

// Bounds the knowledge module sets on a search.
const (
	MaxTopK       = 100
	maxQueryBytes = 4096
)

// SearchRequest is one search of a knowledge base for a turn, as a user
// of the tenant.
type SearchRequest struct {
	TenantID        string
	UserID          string
	KnowledgeBaseID string
	Query           string
	// Zero values take the knowledge base's settings.
	TopK           int
	ScoreThreshold *float64
	Mode           string
	HybridWeight   *float64
}

// Passage is a chunk a search found.
type Passage struct {
	KnowledgeBaseID string
	DocumentID      string
	DocumentName    string
	ChunkID         string
	Position        int // the chunk's index in its document
	Score           float64
	Snippet         string // HTML: escaped, matches in <mark>
	Text            string
	// RecordingID, Start and End place a passage of a recording's
	// transcript in its audio (seconds); "" and nil for other documents.
	RecordingID string
	Start, End  *float64
}

// Searcher searches a tenant's knowledge bases. Its errors are
// *nodus.Error: a knowledge base not found is ENOTFOUND, a search its
// settings cannot run (vector search without an embedding model) EINVALID.
type Searcher interface {
	Search(ctx context.Context, req SearchRequest) ([]Passage, error)
	// DocumentsIndexing counts a knowledge base's documents not
	// searchable yet (pending or processing).
	DocumentsIndexing(ctx context.Context, tenantID, kbID string) (int, error)
}

// ModelRequest is a chat completion asked of the gateway, as a user of
// the tenant: the tenant's routing, budgets and spend log apply.
type ModelRequest struct {
	TenantID     string
	UserID       string
	TraceID      string // the turn's trace
	ParentSpanID string // the turn's span: the call's generation nests under it
	Model        string
	Messages     []ModelMessage
	Temperature  *float64
	MaxTokens    int64
}

// ModelMessage is one message of a ModelRequest.
type ModelMessage struct {
	Role    string // system, user or assistant
	Content string
}

// ModelCall is what the gateway recorded of a finished call (its spend
// log row has the same request id, tokens and cost).
type ModelCall struct {
	Model          string
	DeploymentID   string
	Provider       string
	UpstreamModel  string
	RequestID      string
	Usage          Usage
	UsageEstimated bool
	CostMicros     int64
}

// Usage counts a call's tokens.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Models calls chat models. Its errors are *nodus.Error with the gateway's
// message (a budget spent, a model unknown, an upstream down).
type Models interface {
	// Complete returns the whole answer.
	Complete(ctx context.Context, req ModelRequest) (string, *ModelCall, error)
	// Stream hands the answer to delta piece by piece; an error from delta
	// stops the call. The call's record comes back even when it failed
	// after it started.
	Stream(ctx context.Context, req ModelRequest, delta func(string) error) (*ModelCall, error)
	// CountTokens counts a text's tokens as the model's tokenizer would
	// (an estimate for models whose tokenizer is not known).
	CountTokens(model, text string) int64
}

// Memory is the long-term memory of a chatbot's users, scoped by tenant,
// app (the chatbot) and user.
type Memory interface {
	// Recall returns up to limit memories of the user relevant to query,
	// best first.
	Recall(ctx context.Context, tenantID, app, userID, query string, limit int) ([]string, error)
	// Remember queues a finished exchange to be written to memory in the
	// background: the question and answer messages of a conversation, and
	// the chat model that may extract facts from them.
	Remember(ctx context.Context, r RememberRequest) error
}

// RememberRequest is an exchange to write to memory.
type RememberRequest struct {
	TenantID       string `json:"tenant_id"`
	App            string `json:"app"` // the chatbot's id
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
	QuestionID     string `json:"question_id"`
	AnswerID       string `json:"answer_id"`
	Model          string `json:"model"` // the chatbot's model, for fact extraction
}

// Tracer records a finished turn as a trace (the tracing module), off the
// request path: Turn must not block. The model call is not the tracer's
// to record: the gateway records every call it makes as a generation,
// nested under the turn's span (ModelRequest.ParentSpanID).
type Tracer interface {
	Turn(t TurnTrace)
}

// Step is when a step of a turn ran; zero when it did not.
type Step struct{ Began, Ended time.Time }

// TurnTrace is what a turn's trace shows: the turn, then its retrieval
// and its memory recall as observations (the model call is the gateway's).
type TurnTrace struct {
	TenantID       string
	UserID         string
	TraceID        string // the caller's trace (traceparent), or the turn's own
	OwnTrace       bool   // TraceID is the turn's own: the tracer creates the trace
	SpanID         string // the turn's observation, the parent of its steps
	ChatbotID      string
	ChatbotName    string
	Model          string
	ConversationID string
	MessageID      string // the answer's
	Question       string
	Answer         string
	Turn           Step
	Retrieval      Step
	Sources        []Source
	Recall         Step
	Memories       []string
	Error          string
}
