package notebook

import (
	"context"
	"net/http"
)

// This file holds what notebooks need of the other modules, in their own
// terms; notebookwire adapts the knowledge, recordings, identity and
// gateway services to these ports, so the modules never import each other.

// Documents reads a knowledge-base document's text for a tenant: ENOTFOUND
// for a document that is not the tenant's, ECONFLICT for one not indexed
// yet.
type Documents interface {
	DocumentText(ctx context.Context, tenantID, id string) (title, text string, err error)
}

// Recordings reads a completed recording's transcript as a user of a
// tenant: ENOTFOUND for one the user may not read (another tenant's, or
// another user's where recordings are private), ECONFLICT for one not
// transcribed yet.
type Recordings interface {
	Transcript(ctx context.Context, tenantID, userID, id string) (title, text string, err error)
}

// Users tells whether a user is an active member of a tenant: only those
// may be given a share.
type Users interface {
	Member(ctx context.Context, tenantID, userID string) (bool, error)
}

// Web opens HTTP clients for a tenant whose every connection its egress
// policy checks (*egress.Service is one).
type Web interface {
	Client(tenantID string) *http.Client
}

// ModelRequest is a chat completion asked of the gateway as a user of the
// tenant: its routing, budgets and spend log apply.
type ModelRequest struct {
	TenantID  string
	UserID    string
	Model     string
	Messages  []ModelMessage
	MaxTokens int64
}

// ModelMessage is one message of a ModelRequest.
type ModelMessage struct {
	Role    string // system, user or assistant
	Content string
}

// ModelCall is what the gateway recorded of a call.
type ModelCall struct {
	Model      string
	RequestID  string
	CostMicros int64
}

// Models calls chat models through the gateway in process. Errors are
// *nodus.Error with the gateway's message.
type Models interface {
	Complete(ctx context.Context, req ModelRequest) (string, *ModelCall, error)
	// CountTokens counts a text's tokens as the model would (an estimate
	// when its tokenizer is not known).
	CountTokens(model, text string) int64
}

// StreamModels is Models that can also stream an answer: delta gets it
// piece by piece, and an error from delta stops the call. The call's
// record comes back even when it failed after it started. A Models
// without it answers a streamed turn in one piece.
type StreamModels interface {
	Stream(ctx context.Context, req ModelRequest, delta func(string) error) (*ModelCall, error)
}

// Defaults tells a tenant's own chat model (its settings), used by a
// notebook that names none: "" when the tenant has none either.
type Defaults interface {
	ChatModel(ctx context.Context, tenantID string) (string, error)
}
