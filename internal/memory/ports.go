package memory

import "context"

// This file holds what the memory module needs of the model gateway, in
// its own terms: the composition root adapts the gateway to these ports,
// so the module imports no other.

// ModelRequest is a chat completion asked of the gateway, as a user of
// the tenant: the tenant's routing, budgets and spend log apply.
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

// Models calls chat models. Its errors are *nodus.Error with the gateway's
// message.
type Models interface {
	// Complete returns the whole answer.
	Complete(ctx context.Context, req ModelRequest) (string, error)
}

// Embedder embeds texts with a tenant's embedding model, one vector per
// text, in order.
type Embedder interface {
	Embed(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error)
}
