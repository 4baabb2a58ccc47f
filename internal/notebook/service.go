package notebook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Auditor records changes of access; *audit.Service is one.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Config assembles a Service.
type Config struct {
	Store      Store
	Documents  Documents  // nil: document sources are refused
	Recordings Recordings // nil: recording sources are refused
	Users      Users      // nil: nothing can be shared
	Web        Web        // nil: URL sources are refused
	Models     Models     // nil: chat answers fail, summaries are extracts
	Defaults   Defaults   // nil: a notebook without a model has none
	Audit      Auditor    // nil records nothing
	Logger     *slog.Logger
	Now        func() time.Time
	// ContextTokens is the prompt budget of a chat turn: instructions,
	// sources, history and question, with MaxAnswerTokens for the answer.
	// DefaultContextTokens if 0.
	ContextTokens int
}

// Limits and defaults.
const (
	DefaultContextTokens  = 8192
	MaxAnswerTokens       = 1024
	DefaultChatModel      = "nodus/extractive" // chats of a notebook without a model
	MaxNameChars          = 200
	MaxDescriptionChars   = 4000
	MaxTitleChars         = 300
	MaxCardBytes          = 64 << 10
	MaxMessageBytes       = 16 << 10
	MaxSourceTextBytes    = 2 << 20 // a source's text is cut here
	MaxPastedBytes        = 1 << 20 // pasted text longer than this is refused
	MaxSourcesPerNotebook = 200
	MaxCardsPerNotebook   = 500
	MaxURLBytes           = 2048
	MaxURLBodyBytes       = 5 << 20
	URLFetchTimeout       = 30 * time.Second
	historyMessages       = 20
	summaryInputTokens    = 6000 // the text a model summary reads at most
	extractSummaryChars   = 1200 // a summary by extract
)

// Service is the notebooks module. It is safe for concurrent use.
type Service struct {
	store         Store
	documents     Documents
	recordings    Recordings
	users         Users
	web           Web
	models        Models
	defaults      Defaults
	audit         Auditor
	log           *slog.Logger
	now           func() time.Time
	contextTokens int
}

// NewService builds the service; a store is required.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("notebook: a store is required")
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
	return &Service{store: cfg.Store, documents: cfg.Documents, recordings: cfg.Recordings, users: cfg.Users,
		web: cfg.Web, models: cfg.Models, defaults: cfg.Defaults, audit: cfg.Audit, log: cfg.Logger, now: cfg.Now, contextTokens: cfg.ContextTokens}, nil
}

// UseRecordings connects the recordings module after construction (it may
// be built later); nil refuses recording sources again.
func (s *Service) UseRecordings(r Recordings) { s.recordings = r }

// model is the chat model of a notebook: its own, else its tenant's, else
// "" (a lookup that fails counts as none, logged).
func (s *Service) model(ctx context.Context, n Notebook) string {
	if n.Model != "" || s.defaults == nil {
		return n.Model
	}
	m, err := s.defaults.ChatModel(ctx, n.TenantID)
	if err != nil {
		s.log.WarnContext(ctx, "notebook: the tenant's chat model", "tenant", n.TenantID, "error", err)
		return ""
	}
	return m
}

// Actor is who calls: a user of the tenant in scope.
type Actor struct {
	TenantID string
	UserID   string
	// ReadOnly callers (viewers) never write, whatever a share says.
	ReadOnly bool
	// Entry carries the actor, address and user agent of audit entries.
	Entry audit.Entry
}

// record audits a change of who may see a notebook: shares and deletion.
func (s *Service) record(ctx context.Context, a Actor, action, notebookID string, changes map[string]audit.Change) error {
	if s.audit == nil {
		return nil
	}
	if err := s.audit.Record(ctx, a.Entry.About(a.TenantID, action, "notebook", notebookID, changes)); err != nil {
		return fmt.Errorf("notebook: audit %s: %w", action, err)
	}
	return nil
}

func (a Actor) ctx(ctx context.Context) context.Context { return nodus.WithTenant(ctx, a.TenantID) }

// PurgeTenant removes every notebook record of a tenant (a tenant purger).
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	if err := s.store.DeleteNotebookTenant(nodus.WithTenant(ctx, tenantID)); err != nil {
		return fmt.Errorf("notebook: purge tenant %s: %w", tenantID, err)
	}
	return nil
}

// Access levels, in order.
func rank(perm string) int {
	switch perm {
	case PermOwner:
		return 3
	case PermWrite:
		return 2
	case PermRead:
		return 1
	}
	return 0
}

// notebook returns the notebook if the actor holds at least need on it.
// Not holding even read access is ENOTFOUND; holding less than need is
// EFORBIDDEN (the user knows the notebook already).
func (s *Service) notebook(ctx context.Context, a Actor, id, need string) (Notebook, error) {
	if !nodus.ValidID(id) {
		return Notebook{}, notFound("notebook", id)
	}
	n, err := s.store.FindNotebookFor(a.ctx(ctx), id, a.UserID)
	if err != nil {
		return Notebook{}, err
	}
	if a.ReadOnly && rank(n.Permission) > rank(PermRead) {
		n.Permission = PermRead
	}
	if rank(n.Permission) < rank(need) {
		if need == PermOwner {
			return Notebook{}, nodus.Errorf(nodus.EFORBIDDEN, "only the notebook's owner may do this")
		}
		return Notebook{}, nodus.Errorf(nodus.EFORBIDDEN, "this notebook is shared with you for reading only")
	}
	return n, nil
}

// NotebookInput creates or changes a notebook; nil fields keep their value.
type NotebookInput struct {
	Name        *string
	Description *string
	Model       *string
	Archived    *bool
}

func (in NotebookInput) apply(n *Notebook) error {
	if in.Name != nil {
		n.Name = strings.TrimSpace(*in.Name)
	}
	if in.Description != nil {
		n.Description = *in.Description
	}
	if in.Model != nil {
		n.Model = strings.TrimSpace(*in.Model)
	}
	if in.Archived != nil {
		n.Archived = *in.Archived
	}
	switch {
	case n.Name == "":
		return invalid("name", "is required")
	case utf8.RuneCountInString(n.Name) > MaxNameChars:
		return invalid("name", fmt.Sprintf("at most %d characters", MaxNameChars))
	case utf8.RuneCountInString(n.Description) > MaxDescriptionChars:
		return invalid("description", fmt.Sprintf("at most %d characters", MaxDescriptionChars))
	case len(n.Model) > 200:
		return invalid("model", "at most 200 characters")
	case !utf8.ValidString(n.Name + n.Description + n.Model):
		return invalid("name", "is not valid UTF-8")
	}
	return nil
}

// CreateNotebook makes a notebook owned by the actor.
func (s *Service) CreateNotebook(ctx context.Context, a Actor, in NotebookInput) (*Notebook, error) {
	if a.ReadOnly {
		return nil, nodus.Errorf(nodus.EFORBIDDEN, "viewers cannot create notebooks")
	}
	now := s.now().UTC()
	n := Notebook{ID: nodus.NewID(), TenantID: a.TenantID, OwnerID: a.UserID, CreatedAt: now, UpdatedAt: now}
	if err := in.apply(&n); err != nil {
		return nil, err
	}
	if err := s.store.CreateNotebook(a.ctx(ctx), n); err != nil {
		return nil, fmt.Errorf("notebook: create: %w", err)
	}
	n.Permission = PermOwner
	return &n, nil
}

// GetNotebook returns a notebook the actor can read, with their permission.
func (s *Service) GetNotebook(ctx context.Context, a Actor, id string) (*Notebook, error) {
	n, err := s.notebook(ctx, a, id, PermRead)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// ListNotebooks lists the notebooks the actor owns or is shared, most
// recently changed first; archived nil lists both.
func (s *Service) ListNotebooks(ctx context.Context, a Actor, archived *bool, cursor string, limit int) ([]Notebook, string, error) {
	out, next, err := s.store.ListNotebooksFor(a.ctx(ctx), a.UserID, archived, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	if a.ReadOnly {
		for i := range out {
			if rank(out[i].Permission) > rank(PermRead) {
				out[i].Permission = PermRead
			}
		}
	}
	return out, next, nil
}

// UpdateNotebook changes a notebook (write access); archiving it is the
// owner's.
func (s *Service) UpdateNotebook(ctx context.Context, a Actor, id string, in NotebookInput) (*Notebook, error) {
	need := PermWrite
	if in.Archived != nil {
		need = PermOwner
	}
	cur, err := s.notebook(ctx, a, id, need)
	if err != nil {
		return nil, err
	}
	n, err := s.store.UpdateNotebook(a.ctx(ctx), id, func(n *Notebook) error {
		if err := in.apply(n); err != nil {
			return err
		}
		n.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	n.Permission = cur.Permission
	return &n, nil
}

// DeleteNotebook deletes a notebook with everything in it (the owner's).
func (s *Service) DeleteNotebook(ctx context.Context, a Actor, id string) error {
	if _, err := s.notebook(ctx, a, id, PermOwner); err != nil {
		return err
	}
	if err := s.store.DeleteNotebook(a.ctx(ctx), id); err != nil {
		return err
	}
	return s.record(ctx, a, "notebook.delete", id, nil)
}

// touch moves a notebook's updated_at, for its place in lists.
func (s *Service) touch(ctx context.Context, a Actor, id string) {
	if _, err := s.store.UpdateNotebook(a.ctx(ctx), id, func(n *Notebook) error {
		n.UpdatedAt = s.now().UTC()
		return nil
	}); err != nil {
		s.log.WarnContext(ctx, "notebook: touch", "notebook", id, "error", err)
	}
}

// Shares.

// ListShares lists who a notebook is shared with (anyone with access may
// see it).
func (s *Service) ListShares(ctx context.Context, a Actor, id string) ([]Share, error) {
	if _, err := s.notebook(ctx, a, id, PermRead); err != nil {
		return nil, err
	}
	return s.store.ListNotebookShares(a.ctx(ctx), id)
}

// Share gives a user of the tenant read or write access (the owner's).
func (s *Service) Share(ctx context.Context, a Actor, id, userID, permission string) (*Share, error) {
	n, err := s.notebook(ctx, a, id, PermOwner)
	if err != nil {
		return nil, err
	}
	if permission != PermRead && permission != PermWrite {
		return nil, invalid("permission", "must be read or write")
	}
	if userID == n.OwnerID {
		return nil, invalid("user_id", "is the notebook's owner")
	}
	if s.users == nil {
		return nil, nodus.Errorf(nodus.EUNAVAILABLE, "sharing is not available")
	}
	ok, err := s.users.Member(ctx, a.TenantID, userID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("user", userID)
	}
	sh := Share{NotebookID: id, TenantID: a.TenantID, UserID: userID, Permission: permission, CreatedAt: s.now().UTC()}
	if err := s.store.PutNotebookShare(a.ctx(ctx), sh); err != nil {
		return nil, fmt.Errorf("notebook: share: %w", err)
	}
	if err := s.record(ctx, a, "notebook.share", id, map[string]audit.Change{"user_id": {After: userID},
		"permission": {After: permission}}); err != nil {
		return nil, err
	}
	return &sh, nil
}

// Unshare takes a user's access away (the owner's; a user may also leave
// a notebook shared with them).
func (s *Service) Unshare(ctx context.Context, a Actor, id, userID string) error {
	need := PermOwner
	if userID == a.UserID {
		need = PermRead
	}
	if _, err := s.notebook(ctx, a, id, need); err != nil {
		return err
	}
	if err := s.store.DeleteNotebookShare(a.ctx(ctx), id, userID); err != nil {
		return err
	}
	return s.record(ctx, a, "notebook.unshare", id, map[string]audit.Change{"user_id": {Before: userID}})
}

func invalid(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + field, Fields: map[string]string{field: msg}}
}

func notFound(what, id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "%s %s not found", what, id)
}

// validTitle checks a source's or card's title.
func validTitle(t string) error {
	switch {
	case t == "":
		return invalid("title", "is required")
	case utf8.RuneCountInString(t) > MaxTitleChars:
		return invalid("title", fmt.Sprintf("at most %d characters", MaxTitleChars))
	case !utf8.ValidString(t):
		return invalid("title", "is not valid UTF-8")
	}
	return nil
}

// cut returns s cut to at most n bytes at a rune boundary.
func cut(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s, true
}
