package tracing

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds what Langfuse's public read API (/api/public/traces,
// observations, sessions, scores) and the sessions and users views of
// Nodus's own API need from the service: pages by number checked and
// bounded, the figures Langfuse derives from an observation (latency,
// time to first token, legacy usage, calculated costs), and scores
// written through the API.

// Bounds of the public API.
const (
	DefaultPageLimit = 50 // Langfuse's default page size
	// MaxPage bounds page × limit: an offset costs a walk over the rows
	// it skips, so a page past ten million rows is refused, not scanned.
	MaxPage = 100000
	// MaxTraceObservations and MaxTraceScores bound what one trace's
	// answer holds; past them the answer says it was cut.
	MaxTraceObservations = 10000
	MaxTraceScores       = 1000
	// MaxListedIDs bounds the observation and score ids each row of a
	// trace list names: a trace with 100,000 observations is one row, not
	// a 3 MB one.
	MaxListedIDs = 100
	// MaxSessionTraces bounds the traces of one session's answer.
	MaxSessionTraces = 1000
	// MaxSessionUsers bounds the user ids a session row names.
	MaxSessionUsers = 10
)

// SourceEval is the score source of an evaluator, which Langfuse's score
// filters accept beside API and ANNOTATION.
const SourceEval = "EVAL"

// TraceOrders lists the keys a trace list may be ordered by, as Langfuse
// names them in orderBy ("timestamp.desc").
func TraceOrders() []string {
	return []string{"timestamp", "name", "userId", "sessionId", "release", "version", "id"}
}

// ParseTraceOrder reads Langfuse's orderBy, "field.asc" or "field.desc";
// "" is the default, newest first.
func ParseTraceOrder(s string) (field string, asc bool, err error) {
	if s == "" {
		return "timestamp", false, nil
	}
	field, dir, ok := strings.Cut(s, ".")
	if !ok || (dir != "asc" && dir != "desc") || !slices.Contains(TraceOrders(), field) {
		return "", false, invalid("orderBy", fmt.Sprintf("must be FIELD.asc or FIELD.desc, FIELD one of %s",
			strings.Join(TraceOrders(), ", ")))
	}
	return field, dir == "asc", nil
}

// checkPage fills in a page's defaults and refuses one out of bounds.
func checkPage(page, limit *int) error {
	if *page == 0 {
		*page = 1
	}
	if *limit == 0 {
		*limit = DefaultPageLimit
	}
	if *page < 1 || *page > MaxPage {
		return invalid("page", fmt.Sprintf("must be 1 to %d", MaxPage))
	}
	if *limit < 1 || *limit > MaxListLimit {
		return invalid("limit", fmt.Sprintf("must be 1 to %d", MaxListLimit))
	}
	return nil
}

func checkEnvironments(envs []string) error {
	if len(envs) > MaxTags {
		return invalid("environment", fmt.Sprintf("at most %d", MaxTags))
	}
	return nil
}

// TraceSummary is a row of Langfuse's trace list: the trace (with the
// summary of its observations the store keeps) and the ids of some of its
// observations and scores.
type TraceSummary struct {
	Trace
	TraceRefs
}

// PublicTraces returns a page of a tenant's traces with their figures,
// and how many traces match in all.
func (s *Service) PublicTraces(ctx context.Context, tenantID string, q TraceQuery) ([]TraceSummary, int, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, 0, err
	}
	if err := checkPage(&q.Page, &q.Limit); err != nil {
		return nil, 0, err
	}
	if len(q.Tags) > MaxTags {
		return nil, 0, invalid("tags", fmt.Sprintf("at most %d", MaxTags))
	}
	if err := checkEnvironments(q.Environments); err != nil {
		return nil, 0, err
	}
	if q.Model != "" || q.Level != "" || q.MinCost != nil || q.MaxCost != nil {
		return nil, 0, invalid("filter", "model, level and cost are not filters of this list")
	}
	if q.OrderBy == "" {
		q.OrderBy = "timestamp"
	} else if !slices.Contains(TraceOrders(), q.OrderBy) {
		return nil, 0, invalid("orderBy", "unknown field "+q.OrderBy)
	}
	traces, total, err := s.store.PageTraces(ctx, q)
	if err != nil || len(traces) == 0 {
		return nil, total, err
	}
	ids := make([]string, len(traces))
	for i := range traces {
		ids[i] = traces[i].ID
	}
	refs, err := s.store.TraceRefs(ctx, ids, MaxListedIDs)
	if err != nil {
		return nil, 0, err
	}
	out := make([]TraceSummary, len(traces))
	for i := range traces {
		out[i] = TraceSummary{Trace: traces[i], TraceRefs: refs[traces[i].ID]}
	}
	return out, total, nil
}

// PublicTrace is one trace as Langfuse's API shows it: its observations
// as a flat list by start time and its scores, each list cut at its bound.
type PublicTrace struct {
	Trace                 Trace
	Observations          []Observation
	ObservationsTruncated bool // more than MaxTraceObservations
	Scores                []ScoreView
	ScoresTruncated       bool // more than MaxTraceScores
}

// GetPublicTrace returns a tenant's trace with its observations and
// scores; another tenant's is ENOTFOUND.
func (s *Service) GetPublicTrace(ctx context.Context, tenantID, id string) (PublicTrace, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return PublicTrace{}, err
	}
	if err := findableID("trace", id); err != nil {
		return PublicTrace{}, err
	}
	t, err := s.store.FindTrace(ctx, id)
	if err != nil {
		return PublicTrace{}, err
	}
	obs, more, err := s.store.ListTraceObservations(ctx, id, MaxTraceObservations)
	if err != nil {
		return PublicTrace{}, err
	}
	scores, total, err := s.store.PageScores(ctx, ScoreQuery{TraceID: id, Page: 1, Limit: MaxTraceScores})
	if err != nil {
		return PublicTrace{}, err
	}
	return PublicTrace{Trace: t, Observations: obs, ObservationsTruncated: more, Scores: scores,
		ScoresTruncated: total > len(scores)}, nil
}

// findableID refuses an id no record can have (ids are at most MaxIDBytes)
// as not found, before it reaches the store.
func findableID(kind, id string) error {
	if id == "" || len(id) > MaxIDBytes || !utf8.ValidString(id) {
		return nodus.Errorf(nodus.ENOTFOUND, "%s %s not found", kind, id)
	}
	return nil
}

// DeleteTrace removes a tenant's trace with its observations and scores;
// another tenant's is ENOTFOUND.
func (s *Service) DeleteTrace(ctx context.Context, tenantID, id string) error {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return err
	}
	if err := findableID("trace", id); err != nil {
		return err
	}
	if err := s.store.DeleteTrace(ctx, id); err != nil {
		return fmt.Errorf("tracing: delete trace: %w", err)
	}
	return nil
}

// PublicObservations returns a page of a tenant's observations, newest
// first, and how many match in all.
func (s *Service) PublicObservations(ctx context.Context, tenantID string, q ObservationQuery) ([]Observation, int, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, 0, err
	}
	if err := checkPage(&q.Page, &q.Limit); err != nil {
		return nil, 0, err
	}
	if q.Type != "" && !slices.Contains(ObservationTypes(), q.Type) {
		return nil, 0, invalid("type", "must be one of "+strings.Join(ObservationTypes(), ", "))
	}
	if err := checkEnvironments(q.Environments); err != nil {
		return nil, 0, err
	}
	return s.store.PageObservations(ctx, q)
}

// GetObservation returns a tenant's observation; another tenant's is
// ENOTFOUND.
func (s *Service) GetObservation(ctx context.Context, tenantID, id string) (Observation, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return Observation{}, err
	}
	if err := findableID("observation", id); err != nil {
		return Observation{}, err
	}
	return s.store.FindObservation(ctx, id)
}

// PublicScores returns a page of a tenant's scores, newest first, and
// how many match in all.
func (s *Service) PublicScores(ctx context.Context, tenantID string, q ScoreQuery) ([]ScoreView, int, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, 0, err
	}
	if err := checkPage(&q.Page, &q.Limit); err != nil {
		return nil, 0, err
	}
	if q.Source != "" && !slices.Contains([]string{SourceAPI, SourceAnnotation, SourceEval}, q.Source) {
		return nil, 0, invalid("source", "must be API, ANNOTATION or EVAL")
	}
	if q.DataType != "" && !slices.Contains([]string{DataNumeric, DataCategorical, DataBoolean}, q.DataType) {
		return nil, 0, invalid("dataType", "must be NUMERIC, CATEGORICAL or BOOLEAN")
	}
	return s.store.PageScores(ctx, q)
}

// GetScore returns a tenant's score; another tenant's is ENOTFOUND.
func (s *Service) GetScore(ctx context.Context, tenantID, id string) (ScoreView, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return ScoreView{}, err
	}
	if err := findableID("score", id); err != nil {
		return ScoreView{}, err
	}
	return s.store.FindScore(ctx, id)
}

// DeleteScore removes a tenant's score; another tenant's is ENOTFOUND.
func (s *Service) DeleteScore(ctx context.Context, tenantID, id string) error {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return err
	}
	if err := findableID("score", id); err != nil {
		return err
	}
	return s.store.DeleteScore(ctx, id)
}

// APIScoreInput is a score sent to Langfuse's POST /api/public/scores:
// a ScoreInput and, optionally, the client's id for it (the same id again
// updates the score, as with ingestion).
type APIScoreInput struct {
	ID string
	ScoreInput
}

// CreateAPIScore scores a tenant's trace (or an observation of it) with
// source API. Unlike an ingested score, which may arrive before its
// trace, the trace must exist: the API answers at once, and a trace of
// another tenant is ENOTFOUND rather than an empty trace of the caller's.
func (s *Service) CreateAPIScore(ctx context.Context, tenantID string, in APIScoreInput) (Score, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return Score{}, err
	}
	if in.ID == "" {
		in.ID = nodus.NewID()
	} else if err := checkID("id", in.ID); err != nil {
		return Score{}, invalid("id", err.Error())
	}
	if in.TraceID == "" {
		return Score{}, invalid("traceId", "is required")
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || len(name) > MaxKeyName || !utf8.ValidString(name) {
		return Score{}, invalid("name", fmt.Sprintf("is required, at most %d bytes", MaxKeyName))
	}
	if len(in.Comment) > 64<<10 || !utf8.ValidString(in.Comment) {
		return Score{}, invalid("comment", "must be at most 64 KiB of UTF-8")
	}
	if err := findableID("trace", in.TraceID); err != nil {
		return Score{}, err
	}
	if _, err := s.store.FindTrace(ctx, in.TraceID); err != nil {
		return Score{}, err
	}
	if in.ObservationID != "" {
		if err := findableID("observation", in.ObservationID); err != nil {
			return Score{}, err
		}
		o, err := s.store.FindObservation(ctx, in.ObservationID)
		if err != nil {
			return Score{}, err
		}
		if o.TraceID != in.TraceID {
			return Score{}, nodus.Errorf(nodus.ENOTFOUND, "observation %s not found in trace %s", in.ObservationID, in.TraceID)
		}
	}
	now := s.now()
	p := &ScorePatch{ID: in.ID, TraceID: in.TraceID, ObservationID: &in.ObservationID, Name: &name,
		Comment: &in.Comment, Source: SourceAPI, Timestamp: &now}
	if in.DataType != "" {
		p.DataType = &in.DataType
	}
	if err := scoreValue(p, sent(in.Value)); err != nil {
		return Score{}, invalid("value", err.Error())
	}
	// The envelope id is new each time: the score's own id may repeat, to
	// update it, and must not be mistaken for a retried envelope.
	if _, err := s.store.IngestEvents(ctx, []Event{{ID: nodus.NewID(), Timestamp: now, Score: p}}, now); err != nil {
		return Score{}, fmt.Errorf("tracing: create score: %w", err)
	}
	sc := Score{TenantID: tenantID, ID: p.ID, Source: SourceAPI, CreatedAt: now, UpdatedAt: now}
	p.Apply(&sc)
	return sc, nil
}

// PublicSessions returns a page of a tenant's sessions first seen in
// [from, to) (zero: unbounded), newest first, and how many there are.
func (s *Service) PublicSessions(ctx context.Context, tenantID string, from, to time.Time, page, limit int) ([]Session, int, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, 0, err
	}
	if err := checkPage(&page, &limit); err != nil {
		return nil, 0, err
	}
	return s.store.PageTraceSessions(ctx, from, to, page, limit)
}

// ListSessions returns a tenant's sessions by last activity, newest
// first, and the next page's cursor ("" after the last).
func (s *Service) ListSessions(ctx context.Context, tenantID, cursor string, limit int) ([]Session, string, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	return s.store.ListTraceSessions(ctx, cursor, limit)
}

// GetSession returns a tenant's session; another tenant's, or a session
// id no trace carries, is ENOTFOUND.
func (s *Service) GetSession(ctx context.Context, tenantID, id string) (Session, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return Session{}, err
	}
	if err := findableID("session", id); err != nil {
		return Session{}, err
	}
	return s.store.FindTraceSession(ctx, id)
}

// SessionTraces returns the first MaxSessionTraces traces of a tenant's
// session in time order, and how many it has in all.
func (s *Service) SessionTraces(ctx context.Context, tenantID, id string) ([]Trace, int, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, 0, err
	}
	if err := findableID("session", id); err != nil {
		return nil, 0, err
	}
	return s.store.PageTraces(ctx, TraceQuery{TraceFilter: TraceFilter{SessionID: id}, OrderBy: "timestamp", Asc: true,
		Page: 1, Limit: MaxSessionTraces})
}

// ListTraceUsers returns the user ids of a tenant's traces by last
// activity, newest first, and the next page's cursor.
func (s *Service) ListTraceUsers(ctx context.Context, tenantID, cursor string, limit int) ([]TraceUser, string, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	return s.store.ListTraceUsers(ctx, cursor, limit)
}

// Latency is an observation's duration in seconds; nil until it ends.
func (o *Observation) Latency() *float64 {
	if o.EndTime == nil {
		return nil
	}
	d := o.EndTime.Sub(o.StartTime).Seconds()
	return &d
}

// TimeToFirstToken is the seconds from an observation's start to its
// first token; nil when the completion start was never sent.
func (o *Observation) TimeToFirstToken() *float64 {
	if o.CompletionStartTime == nil {
		return nil
	}
	d := o.CompletionStartTime.Sub(o.StartTime).Seconds()
	return &d
}

// Usage is Langfuse's legacy usage of an observation, read from its
// usage details: total is the one sent, else input plus output.
type Usage struct {
	Input, Output, Total int64
	Unit                 string
}

// LegacyUsage returns an observation's legacy usage; ok is false when it
// has no usage details.
func (o *Observation) LegacyUsage() (u Usage, ok bool) {
	if len(o.UsageDetails) == 0 {
		return Usage{}, false
	}
	u = Usage{Input: o.UsageDetails["input"], Output: o.UsageDetails["output"], Unit: "TOKENS"}
	if t, sent := o.UsageDetails["total"]; sent {
		u.Total = t
	} else {
		u.Total = u.Input + u.Output
	}
	return u, true
}

// Costs are an observation's calculated costs in USD, as Langfuse adds
// them up from the cost details: input and output are the sums of the
// keys starting with each ("input_cached_tokens" is input), total is the
// one sent, else the sum of every key.
type Costs struct {
	Input, Output, Total float64
}

// CalculatedCosts returns an observation's costs; ok is false when it
// has no cost details.
func (o *Observation) CalculatedCosts() (c Costs, ok bool) {
	if len(o.CostDetails) == 0 {
		return Costs{}, false
	}
	var sum float64
	for k, v := range o.CostDetails {
		switch {
		case k == "total":
			continue
		case strings.HasPrefix(k, "input"):
			c.Input += v
		case strings.HasPrefix(k, "output"):
			c.Output += v
		}
		sum += v
	}
	if t, sent := o.CostDetails["total"]; sent {
		c.Total = t
	} else {
		c.Total = sum
	}
	return c, true
}
