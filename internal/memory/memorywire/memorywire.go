// Package memorywire adapts the gateway to the memory module's ports
// (memory.Models, memory.Embedder), and the memory service to the chat
// module's (chat.Memory), for the composition roots: the modules never
// import each other.
package memorywire

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/memory"
)

// Models is a memory.Models over the gateway, called in process as the
// user whose memories are written: the tenant's budgets and spend log
// apply to extraction too.
type Models struct{ Service *gateway.Service }

var _ memory.Models = Models{}

// Complete returns the first choice's answer.
func (m Models) Complete(ctx context.Context, r memory.ModelRequest) (string, error) {
	msgs := make([]gateway.Message, len(r.Messages))
	for i, msg := range r.Messages {
		msgs[i] = gateway.Message{Role: msg.Role, Content: gateway.TextContent(msg.Content)}
	}
	req := &gateway.ChatRequest{Model: r.Model, Messages: msgs}
	if r.MaxTokens > 0 {
		req.MaxTokens = &r.MaxTokens
	}
	resp, _, err := m.Service.Chat(ctx, gateway.Caller{TenantID: r.TenantID, UserID: r.UserID}, req)
	if err != nil {
		return "", gateway.NodusError(err, "model "+r.Model)
	}
	return resp.Text(), nil
}

// Embedder is a memory.Embedder over the gateway.
type Embedder struct{ Service *gateway.Service }

var _ memory.Embedder = Embedder{}

// Embed embeds texts as the tenant.
func (e Embedder) Embed(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error) {
	return e.Service.EmbedTexts(ctx, gateway.Caller{TenantID: tenantID}, model, texts)
}

// ChatMemory is a chat.Memory over the memory service: a chatbot is the
// memory's app. Recall searches by full text; Remember hands the exchange
// to Enqueue (the job queue), whose worker calls Write.
type ChatMemory struct {
	Service *memory.Service
	Enqueue func(ctx context.Context, r chat.RememberRequest) error
}

var _ chat.Memory = ChatMemory{}

// Recall returns the texts of the user's memories most relevant to query.
func (c ChatMemory) Recall(ctx context.Context, tenantID, app, userID, query string, limit int) ([]string, error) {
	hits, err := c.Service.Search(ctx, memory.SearchInput{TenantID: tenantID, AppName: app, UserID: userID,
		Query: truncate(query, memory.MaxQueryBytes), Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Memory.Text
	}
	return out, nil
}

// Remember queues the exchange.
func (c ChatMemory) Remember(ctx context.Context, r chat.RememberRequest) error {
	if c.Enqueue == nil {
		return errors.New("memorywire: no queue to remember through")
	}
	return c.Enqueue(ctx, r)
}

// Write writes an exchange to memory: the background job's work. The
// chatbot's model extracts facts unless it is the offline extractive
// model, which cannot; then the user's salient statements are kept as
// they were said.
func Write(ctx context.Context, chats *chat.Service, mem *memory.Service, r chat.RememberRequest) error {
	q, a, err := chats.Exchange(ctx, r.TenantID, r.ConversationID, r.QuestionID, r.AnswerID)
	if err != nil {
		return err
	}
	model := r.Model
	if model == gateway.ExtractiveModel {
		model = ""
	}
	_, err = mem.Add(ctx, memory.AddInput{TenantID: r.TenantID, AppName: r.App, UserID: r.UserID,
		SessionID: r.ConversationID, Model: model, Actor: "chat",
		Messages: []memory.Message{{ID: q.ID, Role: q.Role, Content: truncate(q.Content, memory.MaxMessageBytes)},
			{ID: a.ID, Role: a.Role, Content: truncate(a.Content, memory.MaxMessageBytes)}}})
	return err
}

// truncate cuts s to at most n bytes at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
