package tracing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Key pair shapes: Langfuse's prefixes, then random bits (128 for the
// public key, which only names the pair; 256 for the secret).
const (
	PublicKeyPrefix = "pk-lf-"
	SecretKeyPrefix = "sk-lf-"
	MaxKeyName      = 128
	MaxListLimit    = 100
	keyTouchEvery   = time.Minute // last_used_at is written at most this often
)

// Config assembles a Service.
type Config struct {
	Store  Store
	Logger *slog.Logger
	Now    func() time.Time
	// TenantActive reports whether a tenant may still send traces; nil
	// takes every tenant of a key as active.
	TenantActive func(ctx context.Context, tenantID string) (bool, error)
	// Prices, when set, prices generations sent with usage and no cost.
	Prices PriceFunc
}

// Service is the tracing module. It is safe for concurrent use.
type Service struct {
	store        Store
	log          *slog.Logger
	now          func() time.Time
	tenantActive func(ctx context.Context, tenantID string) (bool, error)
	prices       PriceFunc
}

// NewService builds the service; a store is required.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("tracing: a store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = nodus.SystemClock{}.Now
	}
	return &Service{store: cfg.Store, log: cfg.Logger, now: cfg.Now, tenantActive: cfg.TenantActive, prices: cfg.Prices}, nil
}

func invalid(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + field, Fields: map[string]string{field: msg}}
}

func tenantCtx(ctx context.Context, tenantID string) (context.Context, error) {
	if tenantID == "" {
		return nil, invalid("tenant_id", "is required")
	}
	return nodus.WithTenant(ctx, tenantID), nil
}

// Outcome is one event's answer in a 207: status 201, or 400 with a
// message.
type Outcome struct {
	ID      string
	Status  int
	Message string
}

// Result is the answer to a batch.
type Result struct {
	Successes []Outcome
	Errors    []Outcome
}

// Ingest applies a batch of Langfuse envelopes for a tenant in one
// transaction. A malformed event is reported in Result.Errors and the
// rest are applied; an envelope already applied is a success that
// changes nothing. An error means nothing was applied.
func (s *Service) Ingest(ctx context.Context, tenantID string, batch []json.RawMessage) (Result, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return Result{}, err
	}
	if len(batch) > MaxBatchEvents {
		return Result{}, nodus.Errorf(nodus.EINVALID, "a batch holds at most %d events, this one %d", MaxBatchEvents, len(batch))
	}
	now := s.now()
	res := Result{Successes: []Outcome{}, Errors: []Outcome{}}
	events := make([]Event, 0, len(batch))
	for _, raw := range batch {
		id, ev, err := decodeEvent(raw, now)
		var bad *eventError
		switch {
		case errors.Is(err, errSkip):
		case errors.As(err, &bad):
			res.Errors = append(res.Errors, Outcome{ID: id, Status: 400, Message: bad.msg})
			continue
		case err != nil:
			return Result{}, err
		default:
			events = append(events, ev)
		}
		res.Successes = append(res.Successes, Outcome{ID: id, Status: 201})
	}
	if len(events) > 0 {
		s.priceEvents(ctx, tenantID, events)
		if _, err := s.store.IngestEvents(ctx, events, now); err != nil {
			return Result{}, fmt.Errorf("tracing: ingest: %w", err)
		}
	}
	return res, nil
}

// Authenticate returns the key pair of publicKey when secret is its
// secret, else EUNAUTHORIZED; a deactivated tenant's key is refused too.
func (s *Service) Authenticate(ctx context.Context, publicKey, secret string) (Key, error) {
	denied := nodus.Errorf(nodus.EUNAUTHORIZED, "invalid public or secret key")
	if !strings.HasPrefix(publicKey, PublicKeyPrefix) || !strings.HasPrefix(secret, SecretKeyPrefix) ||
		len(publicKey) > 128 || len(secret) > 128 {
		return Key{}, denied
	}
	k, err := s.store.FindTracingKey(nodus.WithAllTenants(ctx), publicKey)
	sum := sha256.Sum256([]byte(secret))
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return Key{}, denied
	}
	if err != nil {
		return Key{}, err
	}
	if subtle.ConstantTimeCompare(sum[:], k.SecretHash) != 1 {
		return Key{}, denied
	}
	if s.tenantActive != nil {
		active, err := s.tenantActive(ctx, k.TenantID)
		if err != nil {
			return Key{}, err
		}
		if !active {
			return Key{}, denied
		}
	}
	if now := s.now(); k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= keyTouchEvery {
		if err := s.store.TouchTracingKey(nodus.WithTenant(ctx, k.TenantID), k.ID, now); err != nil {
			s.log.WarnContext(ctx, "tracing: record key use", "key", k.ID, "err", err)
		}
	}
	return k, nil
}

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// CreateKey makes a key pair for a tenant and returns it with its secret,
// which is never shown again.
func (s *Service) CreateKey(ctx context.Context, tenantID, name, actor string) (Key, string, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return Key{}, "", err
	}
	name = strings.TrimSpace(name)
	if len(name) > MaxKeyName || !utf8.ValidString(name) {
		return Key{}, "", invalid("name", fmt.Sprintf("must be at most %d bytes of UTF-8", MaxKeyName))
	}
	pub := make([]byte, 16)
	_, _ = rand.Read(pub)
	secret := SecretKeyPrefix + randomText(32)
	sum := sha256.Sum256([]byte(secret))
	k := Key{ID: nodus.NewID(), TenantID: tenantID, PublicKey: PublicKeyPrefix + hex.EncodeToString(pub),
		SecretHash: sum[:], Name: name, CreatedBy: actor, CreatedAt: s.now()}
	if err := s.store.CreateTracingKey(ctx, k); err != nil {
		return Key{}, "", fmt.Errorf("tracing: create key: %w", err)
	}
	return k, secret, nil
}

// ListKeys returns a tenant's key pairs, oldest first, without secrets.
func (s *Service) ListKeys(ctx context.Context, tenantID string) ([]Key, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return s.store.ListTracingKeys(ctx)
}

// DeleteKey removes a tenant's key pair; its traces stay.
func (s *Service) DeleteKey(ctx context.Context, tenantID, id string) error {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return err
	}
	if !nodus.ValidID(id) {
		return nodus.Errorf(nodus.ENOTFOUND, "tracing key %s not found", id)
	}
	return s.store.DeleteTracingKey(ctx, id)
}

// ListTraces returns a page of a tenant's traces, newest first, and the
// next page's cursor ("" after the last).
func (s *Service) ListTraces(ctx context.Context, tenantID string, f TraceFilter, cursor string, limit int) ([]Trace, string, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	if len(f.Tags) > MaxTags {
		return nil, "", invalid("tags", fmt.Sprintf("at most %d", MaxTags))
	}
	return s.store.ListTraces(ctx, f, cursor, limit)
}

// ObservationNode is an observation with its children, by start time.
type ObservationNode struct {
	Observation
	Children []*ObservationNode
}

// TraceDetail is a trace with its observation tree and its scores.
type TraceDetail struct {
	Trace        Trace
	Observations []*ObservationNode // the top level
	Scores       []Score
}

// GetTrace returns a tenant's trace with its observations as a tree and
// its scores; another tenant's is ENOTFOUND.
func (s *Service) GetTrace(ctx context.Context, tenantID, id string) (TraceDetail, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return TraceDetail{}, err
	}
	t, err := s.store.FindTrace(ctx, id)
	if err != nil {
		return TraceDetail{}, err
	}
	obs, err := s.store.ListObservations(ctx, id)
	if err != nil {
		return TraceDetail{}, err
	}
	scores, err := s.store.ListScores(ctx, id)
	if err != nil {
		return TraceDetail{}, err
	}
	return TraceDetail{Trace: t, Observations: Tree(obs), Scores: scores}, nil
}

// Tree nests observations under their parents, each level ordered by
// start time (then id). An observation whose parent is not in the list
// (not arrived yet, or its own ancestor) stays at the top level.
func Tree(obs []Observation) []*ObservationNode {
	nodes := make(map[string]*ObservationNode, len(obs))
	for i := range obs {
		nodes[obs[i].ID] = &ObservationNode{Observation: obs[i]}
	}
	// rooted reports whether following parent links from n reaches the top
	// without a cycle.
	rooted := func(n *ObservationNode) bool {
		seen := map[string]bool{n.ID: true}
		for p := nodes[n.ParentObservationID]; p != nil; p = nodes[p.ParentObservationID] {
			if seen[p.ID] {
				return false
			}
			seen[p.ID] = true
		}
		return true
	}
	var top []*ObservationNode
	for i := range obs {
		n := nodes[obs[i].ID]
		if p := nodes[n.ParentObservationID]; p != nil && p != n && rooted(n) {
			p.Children = append(p.Children, n)
		} else {
			top = append(top, n)
		}
	}
	var order func([]*ObservationNode)
	order = func(ns []*ObservationNode) {
		slices.SortFunc(ns, func(a, b *ObservationNode) int {
			if c := a.StartTime.Compare(b.StartTime); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		for _, n := range ns {
			order(n.Children)
		}
	}
	order(top)
	return top
}

// ScoreInput is a score a member gives a trace or one of its
// observations.
type ScoreInput struct {
	TraceID       string
	ObservationID string
	Name          string
	Value         json.RawMessage // a number or a string
	DataType      string          // "" to infer from the value
	Comment       string
}

// CreateScore scores a tenant's trace (or an observation of it) as
// annotated by a member. A trace or observation of another tenant is
// ENOTFOUND.
func (s *Service) CreateScore(ctx context.Context, tenantID string, in ScoreInput) (Score, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return Score{}, err
	}
	if in.TraceID == "" {
		return Score{}, invalid("trace_id", "is required")
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || len(name) > MaxKeyName || !utf8.ValidString(name) {
		return Score{}, invalid("name", fmt.Sprintf("is required, at most %d bytes", MaxKeyName))
	}
	if len(in.Comment) > 64<<10 || !utf8.ValidString(in.Comment) {
		return Score{}, invalid("comment", "must be at most 64 KiB of UTF-8")
	}
	if _, err := s.store.FindTrace(ctx, in.TraceID); err != nil {
		return Score{}, err
	}
	if in.ObservationID != "" {
		o, err := s.store.FindObservation(ctx, in.ObservationID)
		if err != nil {
			return Score{}, err
		}
		if o.TraceID != in.TraceID {
			return Score{}, nodus.Errorf(nodus.ENOTFOUND, "observation %s not found in trace %s", in.ObservationID, in.TraceID)
		}
	}
	now := s.now()
	p := &ScorePatch{ID: nodus.NewID(), TraceID: in.TraceID, ObservationID: &in.ObservationID, Name: &name,
		Comment: &in.Comment, Source: SourceAnnotation, Timestamp: &now}
	if in.DataType != "" {
		p.DataType = &in.DataType
	}
	if err := scoreValue(p, sent(in.Value)); err != nil {
		return Score{}, invalid("value", err.Error())
	}
	if _, err := s.store.IngestEvents(ctx, []Event{{ID: p.ID, Timestamp: now, Score: p}}, now); err != nil {
		return Score{}, fmt.Errorf("tracing: create score: %w", err)
	}
	sc := Score{TenantID: tenantID, ID: p.ID, Source: SourceAnnotation, CreatedAt: now, UpdatedAt: now}
	p.Apply(&sc)
	return sc, nil
}

// PurgeTenant removes every trace, observation, score, key pair and
// ingestion record of a tenant (a tenant purger).
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	if err := s.store.DeleteTracingTenant(nodus.WithTenant(ctx, tenantID)); err != nil {
		return fmt.Errorf("tracing: purge tenant %s: %w", tenantID, err)
	}
	return nil
}
