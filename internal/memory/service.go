package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vector"
)

// Bounds of the module's inputs.
const (
	MaxNameBytes     = 128      // an app name or user id
	MaxTextChars     = 2000     // a memory's text
	MaxMessages      = 200      // messages of one Add
	MaxMessageBytes  = 64 << 10 // one message of an Add
	MaxFacts         = 20       // facts one Add applies at most
	MaxQueryBytes    = 4096     // a search query
	MaxSearchLimit   = 100      // hits one search returns at most
	DefaultLimit     = 10       // hits a search returns when Limit is 0
	searchCorpus     = 5000     // newest memories of a user a search ranks
	extractInputSize = 32 << 10 // conversation bytes shown to the extraction model
	similarMemories  = 5        // existing memories a decision is shown
	extractMaxTokens = 1024     // the extraction answer's bound
	decideMaxTokens  = 512      // a decision answer's bound
	extractiveModel  = "nodus/extractive"
)

// Config assembles a Service.
type Config struct {
	Store    Store
	Models   Models   // nil: Add keeps salient sentences verbatim
	Embedder Embedder // nil: no vectors; search is full text only
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service is the memory module. It is safe for concurrent use.
type Service struct {
	store    Store
	models   Models
	embedder Embedder
	log      *slog.Logger
	now      func() time.Time
	corpora  *corpusCache // users' memories analysed for search (corpus.go)
}

// NewService builds the service; a store is required.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("memory: a store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = nodus.SystemClock{}.Now
	}
	return &Service{store: cfg.Store, models: cfg.Models, embedder: cfg.Embedder, log: cfg.Logger, now: cfg.Now,
		corpora: newCorpusCache(corpusCacheBytes)}, nil
}

func invalid(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + field, Fields: map[string]string{field: msg}}
}

func notFound(id string) error { return nodus.Errorf(nodus.ENOTFOUND, "memory %s not found", id) }

// tenantCtx checks the tenant and scopes ctx to it.
func tenantCtx(ctx context.Context, tenantID string) (context.Context, error) {
	if tenantID == "" {
		return nil, invalid("tenant_id", "is required")
	}
	return nodus.WithTenant(ctx, tenantID), nil
}

// checkName checks an app name or user id: 1 to 128 bytes of printable
// UTF-8.
func checkName(field, s string) error {
	switch {
	case s == "":
		return invalid(field, "is required")
	case len(s) > MaxNameBytes:
		return invalid(field, fmt.Sprintf("must be at most %d bytes", MaxNameBytes))
	case !utf8.ValidString(s):
		return invalid(field, "must be valid UTF-8")
	case strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return invalid(field, "must be printable (no control characters)")
	}
	return nil
}

// checkScope checks a tenant, app and user and scopes ctx to the tenant.
func checkScope(ctx context.Context, tenantID, app, user string) (context.Context, error) {
	if err := checkName("app_name", app); err != nil {
		return nil, err
	}
	if err := checkName("user_id", user); err != nil {
		return nil, err
	}
	return tenantCtx(ctx, tenantID)
}

// cleanText trims a memory's text and collapses its whitespace, and
// checks its length.
func cleanText(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", invalid("text", "must be valid UTF-8")
	}
	s := strings.Join(strings.Fields(text), " ")
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "", invalid("text", "is required")
	case n > MaxTextChars:
		return "", invalid("text", fmt.Sprintf("must be at most %d characters", MaxTextChars))
	}
	return s, nil
}

// embed returns the unit vectors of texts under model, nil for a text
// whose vector has no direction; nil altogether without a model or an
// embedder.
func (s *Service) embed(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error) {
	if model == "" || s.embedder == nil || len(texts) == 0 {
		return nil, nil
	}
	vecs, err := s.embedder.Embed(ctx, tenantID, model, texts)
	if err != nil {
		return nil, err
	}
	if len(vecs) != len(texts) {
		return nil, fmt.Errorf("memory: embedder returned %d vectors for %d texts", len(vecs), len(texts))
	}
	for i, v := range vecs {
		if !vector.Normalize(v) {
			vecs[i] = nil
		}
	}
	return vecs, nil
}

// Get returns a memory of the tenant, or ENOTFOUND. The caller checks that
// its app and user are the asker's.
func (s *Service) Get(ctx context.Context, tenantID, id string) (Memory, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return Memory{}, err
	}
	if !nodus.ValidID(id) {
		return Memory{}, notFound(id)
	}
	return s.store.FindMemory(ctx, id)
}

// ListInput selects a page of a user's memories of an app.
type ListInput struct {
	TenantID string
	AppName  string
	UserID   string
	Cursor   string
	Limit    int // 0 for the store's default page
}

// List returns a page of a user's memories of an app, newest first, and
// the next page's cursor ("" after the last).
func (s *Service) List(ctx context.Context, in ListInput) ([]Memory, string, error) {
	ctx, err := checkScope(ctx, in.TenantID, in.AppName, in.UserID)
	if err != nil {
		return nil, "", err
	}
	return s.store.ListMemories(ctx, in.AppName, in.UserID, in.Cursor, in.Limit)
}

// Update replaces a memory's text, recording an UPDATE by actor. A memory
// with a vector is embedded again with its model; without an embedder, or
// if embedding fails, it keeps no vector rather than a stale one.
// The same text is a no-op; text another memory of the user has is
// ECONFLICT.
func (s *Service) Update(ctx context.Context, tenantID, id, text, actor string) (Memory, error) {
	old, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return Memory{}, err
	}
	text, err = cleanText(text)
	if err != nil {
		return Memory{}, err
	}
	if text == old.Text {
		return old, nil
	}
	model := old.EmbeddingModel
	var vec []float32
	if model != "" {
		vecs, err := s.embed(ctx, tenantID, model, []string{text})
		if err != nil {
			s.log.WarnContext(ctx, "memory: embed updated memory", "memory", id, "error", err)
		}
		if len(vecs) == 1 {
			vec = vecs[0]
		}
	}
	ctx = nodus.WithTenant(ctx, tenantID)
	m, err := s.update(ctx, id, text, model, vec, actor)
	if err == nil {
		s.wroteMemory(ctx, m, false)
	}
	return m, err
}

// update writes a memory's new text and vector (none when vec is nil)
// with its UPDATE history.
func (s *Service) update(ctx context.Context, id, text, model string, vec []float32, actor string) (Memory, error) {
	now := s.now()
	if vec == nil {
		model = ""
	}
	m, err := s.store.UpdateMemory(ctx, id, func(m *Memory) error {
		m.Text, m.Hash, m.EmbeddingModel, m.Embedding, m.UpdatedAt = text, Hash(text), model, vec, now
		return nil
	}, HistoryEntry{ID: nodus.NewID(), Actor: actor, CreatedAt: now})
	if err != nil {
		return Memory{}, fmt.Errorf("memory: update %s: %w", id, err)
	}
	return m, nil
}

// Delete removes a memory of the tenant, recording a DELETE by actor. Its
// history stays.
func (s *Service) Delete(ctx context.Context, tenantID, id, actor string) error {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return err
	}
	if !nodus.ValidID(id) {
		return notFound(id)
	}
	now := s.now()
	m, err := s.store.DeleteMemory(ctx, id, HistoryEntry{ID: nodus.NewID(), Actor: actor, CreatedAt: now})
	if err != nil {
		return fmt.Errorf("memory: delete %s: %w", id, err)
	}
	s.wroteMemory(ctx, m, true)
	return nil
}

// DeleteAll removes every memory of a user of an app, each with a DELETE
// by actor in its history, and returns how many it removed.
func (s *Service) DeleteAll(ctx context.Context, tenantID, app, user, actor string) (int, error) {
	ctx, err := checkScope(ctx, tenantID, app, user)
	if err != nil {
		return 0, err
	}
	n, err := s.store.DeleteMemories(ctx, app, user, HistoryEntry{Actor: actor, CreatedAt: s.now()})
	s.corpora.forget(corpusKey{tenantID, app, user})
	if err != nil {
		return 0, fmt.Errorf("memory: delete all: %w", err)
	}
	return n, nil
}

// History returns a memory's changes, oldest first, also after it was
// deleted; ENOTFOUND when the tenant has none for that id.
func (s *Service) History(ctx context.Context, tenantID, id string) ([]HistoryEntry, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, notFound(id)
	}
	return s.store.ListMemoryHistory(ctx, id)
}

// PurgeTenant removes every memory and history row of a tenant (a tenant
// purger).
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	err := s.store.DeleteMemoryTenant(nodus.WithTenant(ctx, tenantID))
	s.corpora.forgetTenant(tenantID)
	if err != nil {
		return fmt.Errorf("memory: purge tenant %s: %w", tenantID, err)
	}
	return nil
}
