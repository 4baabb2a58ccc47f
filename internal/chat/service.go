// Package chat runs a tenant's chatbots: their settings, the users'
// conversations and messages, and the chat turn, which retrieves from the
// chatbot's knowledge bases, fits the conversation into the model's
// context, calls the gateway in process as the user and streams the
// answer with its citations (turn.go).
package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Quotas tells a tenant's chatbot quota (0 for no limit).
type Quotas interface {
	MaxChatbots(ctx context.Context, tenantID string) (int, error)
}

// Auditor records changes and reviews; *audit.Service is one.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Config assembles a Service.
type Config struct {
	Store     Store
	Knowledge Searcher // nil: chatbots answer without retrieval
	Models    Models   // nil: every turn fails, the gateway being down
	Quotas    Quotas   // nil: no quota
	Memory    Memory   // nil: chatbots with memory on neither recall nor remember
	Tracer    Tracer   // nil: turns are not traced
	Audit     Auditor  // nil records nothing
	Logger    *slog.Logger
	Now       func() time.Time
	// ContextTokens is the prompt budget of a model whose window is not
	// known: the system prompt, the sources, the history and the question
	// must fit in it with the answer's MaxTokens. DefaultContextTokens if 0.
	ContextTokens int
}

// Defaults of a turn.
const (
	DefaultContextTokens = 8192
	DefaultMaxTokens     = 1024
	MaxSources           = 8     // passages a turn's prompt cites at most
	MaxMemories          = 5     // memories a turn's prompt recalls at most
	MaxMessageBytes      = 32000 // a user message longer than this is refused
	historyMessages      = 50    // earlier messages considered for the prompt
)

// Service is the chat module. It is safe for concurrent use.
type Service struct {
	store         Store
	knowledge     Searcher
	models        Models
	quotas        Quotas
	memory        Memory
	tracer        Tracer
	audit         Auditor
	log           *slog.Logger
	now           func() time.Time
	contextTokens int
}

// NewService builds the service; a store is required.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("chat: a store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = nodus.SystemClock{}.Now
	}
	if cfg.ContextTokens <= 0 {
		cfg.ContextTokens = DefaultContextTokens
	}
	return &Service{store: cfg.Store, knowledge: cfg.Knowledge, models: cfg.Models, quotas: cfg.Quotas, memory: cfg.Memory, tracer: cfg.Tracer, audit: cfg.Audit,
		log: cfg.Logger, now: cfg.Now, contextTokens: cfg.ContextTokens}, nil
}

// Actor is who calls: a user of the tenant in scope.
type Actor struct {
	TenantID string
	UserID   string
	Admin    bool // org_admin or super_admin: manages chatbots, reviews every conversation
	// Entry carries the actor, address and user agent of audit entries.
	Entry audit.Entry
}

func (a Actor) ctx(ctx context.Context) context.Context { return nodus.WithTenant(ctx, a.TenantID) }

func (s *Service) record(ctx context.Context, a Actor, action, targetType, targetID string, changes map[string]audit.Change) error {
	if s.audit == nil {
		return nil
	}
	if err := s.audit.Record(ctx, a.Entry.About(a.TenantID, action, targetType, targetID, changes)); err != nil {
		return fmt.Errorf("chat: audit %s: %w", action, err)
	}
	return nil
}

// PurgeTenant removes every chat record of a tenant (a tenant purger).
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	if err := s.store.DeleteChatTenant(nodus.WithTenant(ctx, tenantID)); err != nil {
		return fmt.Errorf("chat: purge tenant %s: %w", tenantID, err)
	}
	return nil
}

func invalid(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + field, Fields: map[string]string{field: msg}}
}

func notFound(what, id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "%s %s not found", what, id)
}
