package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file holds Langfuse's public read API (/api/public/traces,
// observations, sessions, scores, health, projects) in Langfuse's shapes
// (camelCase, pages by number with meta {page, limit, totalItems,
// totalPages}, errors as {"message": …}), authenticated by a tenant's key
// pair like the ingestion, so that Langfuse's SDKs and API clients read
// what they wrote; and the sessions and users views of Nodus's own API
// (/api/v1/tracing/sessions, /api/v1/tracing/users).

// langfuseAPI is a handler of Langfuse's public API: it authenticates the
// key pair, runs fn with the key's tenant (whatever the request names),
// and answers fn's value with status or its error in Langfuse's shape.
func (s *Server) langfuseAPI(status int, fn func(r *http.Request, tenantID string) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.deps.Tracing == nil {
			s.langfuseError(w, r, http.StatusServiceUnavailable, "tracing is not available")
			return
		}
		pk, sk, ok := r.BasicAuth()
		if !ok {
			s.langfuseError(w, r, http.StatusUnauthorized, "authenticate with HTTP Basic: public key and secret key")
			return
		}
		key, err := s.deps.Tracing.Authenticate(r.Context(), pk, sk)
		if err == nil {
			var v any
			if v, err = fn(r, key.TenantID); err == nil {
				if status == http.StatusNoContent {
					w.WriteHeader(status)
					return
				}
				s.writeJSON(w, r, status, v)
				return
			}
		}
		s.langfuseFail(w, r, err)
	})
}

// langfuseFail answers an error in Langfuse's shape: a 400's message
// names the fields at fault; a 5xx says nothing of its cause, which is
// logged instead.
func (s *Server) langfuseFail(w http.ResponseWriter, r *http.Request, err error) {
	code := nodus.ErrorCode(err)
	status := StatusOf(code)
	msg := nodus.ErrorMessage(err)
	if fields := nodus.ErrorFields(err); len(fields) > 0 {
		parts := make([]string, 0, len(fields))
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			parts = append(parts, k+" "+fields[k])
		}
		msg += ": " + strings.Join(parts, "; ")
	}
	if status >= 500 {
		s.deps.Logger.ErrorContext(r.Context(), "tracing: public api", "request_id", RequestID(r.Context()),
			"code", code, "err", err)
		msg = "internal error"
		if code == nodus.EUNAVAILABLE {
			msg = nodus.ErrorMessage(err)
		}
	}
	s.langfuseError(w, r, status, msg)
}

func badQuery(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid query", Fields: map[string]string{field: msg}}
}

// queryInt reads an optional positive integer; 0 when absent.
func queryInt(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badQuery(name, "must be a positive integer")
	}
	return n, nil
}

// queryPage reads Langfuse's page and limit; the service applies the
// defaults and the bounds.
func queryPage(q url.Values) (page, limit int, err error) {
	if page, err = queryInt(q, "page"); err != nil {
		return 0, 0, err
	}
	limit, err = queryInt(q, "limit")
	return page, limit, err
}

// isoLayouts are the times the public API accepts: RFC 3339, and the
// zoneless forms Python's datetime.isoformat() writes for a naive time,
// taken as UTC.
var isoLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"}

// queryTime reads an optional ISO 8601 time.
func queryTime(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range isoLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badQuery(name, "must be an ISO 8601 time")
}

// queryTimes reads several optional times into their destinations.
func queryTimes(q url.Values, dst map[string]*time.Time) error {
	for _, name := range slices.Sorted(maps.Keys(dst)) {
		t, err := queryTime(q, name)
		if err != nil {
			return err
		}
		*dst[name] = t
	}
	return nil
}

// queryList reads a parameter Langfuse repeats (tags, environment); a
// value is taken whole, so a tag may hold a comma.
func queryList(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// lfMeta is Langfuse's pagination meta.
type lfMeta struct {
	Page       int `json:"page"`
	Limit      int `json:"limit"`
	TotalItems int `json:"totalItems"`
	TotalPages int `json:"totalPages"`
}

func pageMeta(page, limit, total int) lfMeta {
	if page == 0 {
		page = 1
	}
	if limit == 0 {
		limit = tracing.DefaultPageLimit
	}
	return lfMeta{Page: page, Limit: limit, TotalItems: total, TotalPages: (total + limit - 1) / limit}
}

// orNull is a string Langfuse shows as null when it was never set.
func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// lfTrace is Langfuse's Trace.
type lfTrace struct {
	ID          string          `json:"id"`
	Timestamp   time.Time       `json:"timestamp"`
	Name        *string         `json:"name"`
	Input       json.RawMessage `json:"input"`
	Output      json.RawMessage `json:"output"`
	SessionID   *string         `json:"sessionId"`
	Release     *string         `json:"release"`
	Version     *string         `json:"version"`
	UserID      *string         `json:"userId"`
	Metadata    json.RawMessage `json:"metadata"`
	Tags        []string        `json:"tags"`
	Public      bool            `json:"public"`
	Environment string          `json:"environment"`
	ProjectID   string          `json:"projectId"`
	Bookmarked  bool            `json:"bookmarked"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
}

func viewLFTrace(t *tracing.Trace) lfTrace {
	v := lfTrace{ID: t.ID, Timestamp: t.Timestamp, Name: orNull(t.Name), Input: t.Input, Output: t.Output,
		SessionID: orNull(t.SessionID), Release: orNull(t.Release), Version: orNull(t.Version), UserID: orNull(t.UserID),
		Metadata: t.Metadata, Tags: t.Tags, Public: t.Public, Environment: t.Environment, ProjectID: t.TenantID,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	return v
}

// lfTraceDetails is Langfuse's TraceWithDetails (observations and scores
// as ids) and TraceWithFullDetails (as records).
type lfTraceDetails struct {
	lfTrace
	HTMLPath     string  `json:"htmlPath"`
	Latency      float64 `json:"latency"`   // seconds, from the first start to the last end
	TotalCost    float64 `json:"totalCost"` // USD
	Observations any     `json:"observations"`
	Scores       any     `json:"scores"`
}

func viewLFTraceDetails(t *tracing.Trace, refs tracing.TraceRefs) lfTraceDetails {
	v := lfTraceDetails{lfTrace: viewLFTrace(t), Latency: float64(t.LatencyMS) / 1000, TotalCost: t.TotalCost,
		HTMLPath: "/project/" + url.PathEscape(t.TenantID) + "/traces/" + url.PathEscape(t.ID)}
	v.Observations, v.Scores = refs.ObservationIDs, refs.ScoreIDs
	if refs.ObservationIDs == nil {
		v.Observations = []string{}
	}
	if refs.ScoreIDs == nil {
		v.Scores = []string{}
	}
	return v
}

// lfUsage is Langfuse's legacy Usage.
type lfUsage struct {
	Input      int64    `json:"input"`
	Output     int64    `json:"output"`
	Total      int64    `json:"total"`
	Unit       string   `json:"unit"`
	InputCost  *float64 `json:"inputCost"`
	OutputCost *float64 `json:"outputCost"`
	TotalCost  *float64 `json:"totalCost"`
}

// lfObservation is Langfuse's ObservationsView.
type lfObservation struct {
	ID                   string             `json:"id"`
	TraceID              string             `json:"traceId"`
	Type                 string             `json:"type"`
	Name                 *string            `json:"name"`
	StartTime            time.Time          `json:"startTime"`
	EndTime              *time.Time         `json:"endTime"`
	CompletionStartTime  *time.Time         `json:"completionStartTime"`
	Model                *string            `json:"model"`
	ModelParameters      json.RawMessage    `json:"modelParameters"`
	Input                json.RawMessage    `json:"input"`
	Output               json.RawMessage    `json:"output"`
	Metadata             json.RawMessage    `json:"metadata"`
	Version              *string            `json:"version"`
	Level                string             `json:"level"`
	StatusMessage        *string            `json:"statusMessage"`
	ParentObservationID  *string            `json:"parentObservationId"`
	PromptID             *string            `json:"promptId"`
	PromptName           *string            `json:"promptName"`
	PromptVersion        *int               `json:"promptVersion"`
	Usage                *lfUsage           `json:"usage"`
	UsageDetails         map[string]int64   `json:"usageDetails"`
	CostDetails          map[string]float64 `json:"costDetails"`
	Environment          string             `json:"environment"`
	ModelID              *string            `json:"modelId"`
	InputPrice           *float64           `json:"inputPrice"`
	OutputPrice          *float64           `json:"outputPrice"`
	TotalPrice           *float64           `json:"totalPrice"`
	CalculatedInputCost  *float64           `json:"calculatedInputCost"`
	CalculatedOutputCost *float64           `json:"calculatedOutputCost"`
	CalculatedTotalCost  *float64           `json:"calculatedTotalCost"`
	Latency              *float64           `json:"latency"`          // seconds
	TimeToFirstToken     *float64           `json:"timeToFirstToken"` // seconds
	ProjectID            string             `json:"projectId"`
	CreatedAt            time.Time          `json:"createdAt"`
	UpdatedAt            time.Time          `json:"updatedAt"`
}

func viewLFObservation(o *tracing.Observation) lfObservation {
	v := lfObservation{ID: o.ID, TraceID: o.TraceID, Type: o.Type, Name: orNull(o.Name), StartTime: o.StartTime,
		EndTime: o.EndTime, CompletionStartTime: o.CompletionStartTime, Model: orNull(o.Model),
		ModelParameters: o.ModelParameters, Input: o.Input, Output: o.Output, Metadata: o.Metadata,
		Version: orNull(o.Version), Level: o.Level, StatusMessage: orNull(o.StatusMessage),
		ParentObservationID: orNull(o.ParentObservationID), PromptName: orNull(o.PromptName),
		UsageDetails: o.UsageDetails, CostDetails: o.CostDetails, Environment: o.Environment,
		Latency: o.Latency(), TimeToFirstToken: o.TimeToFirstToken(), ProjectID: o.TenantID,
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
	if o.PromptVersion != 0 {
		v.PromptVersion = &o.PromptVersion
	}
	if v.UsageDetails == nil {
		v.UsageDetails = map[string]int64{}
	}
	if v.CostDetails == nil {
		v.CostDetails = map[string]float64{}
	}
	c, hasCost := o.CalculatedCosts()
	if hasCost {
		v.CalculatedInputCost, v.CalculatedOutputCost, v.CalculatedTotalCost = &c.Input, &c.Output, &c.Total
	}
	if u, ok := o.LegacyUsage(); ok {
		v.Usage = &lfUsage{Input: u.Input, Output: u.Output, Total: u.Total, Unit: u.Unit}
		if hasCost {
			v.Usage.InputCost, v.Usage.OutputCost, v.Usage.TotalCost = &c.Input, &c.Output, &c.Total
		}
	}
	return v
}

// lfScore is Langfuse's Score, with the trace's fields its score list
// (v2) adds.
type lfScore struct {
	ID            string        `json:"id"`
	TraceID       string        `json:"traceId"`
	ObservationID *string       `json:"observationId"`
	Name          string        `json:"name"`
	Source        string        `json:"source"`
	DataType      string        `json:"dataType"`
	Value         *float64      `json:"value"`
	StringValue   *string       `json:"stringValue,omitempty"`
	Comment       *string       `json:"comment"`
	AuthorUserID  *string       `json:"authorUserId"`
	ConfigID      *string       `json:"configId"`
	QueueID       *string       `json:"queueId"`
	Environment   string        `json:"environment"`
	ProjectID     string        `json:"projectId"`
	Timestamp     time.Time     `json:"timestamp"`
	CreatedAt     time.Time     `json:"createdAt"`
	UpdatedAt     time.Time     `json:"updatedAt"`
	Trace         *lfScoreTrace `json:"trace,omitempty"`
}

type lfScoreTrace struct {
	UserID      *string  `json:"userId"`
	Tags        []string `json:"tags"`
	Environment string   `json:"environment"`
}

func viewLFScore(v *tracing.ScoreView, withTrace bool) lfScore {
	sc := &v.Score
	out := lfScore{ID: sc.ID, TraceID: sc.TraceID, ObservationID: orNull(sc.ObservationID), Name: sc.Name,
		Source: sc.Source, DataType: sc.DataType, Value: sc.Value, Comment: orNull(sc.Comment),
		Environment: v.TraceEnvironment, ProjectID: sc.TenantID, Timestamp: sc.Timestamp, CreatedAt: sc.CreatedAt,
		UpdatedAt: sc.UpdatedAt}
	switch sc.DataType {
	case tracing.DataCategorical:
		out.StringValue = &sc.StringValue
	case tracing.DataBoolean:
		// Langfuse infers a boolean's string from its value.
		s := "False"
		if sc.Value != nil && *sc.Value == 1 {
			s = "True"
		}
		out.StringValue = &s
	}
	if out.Environment == "" {
		out.Environment = tracing.DefaultEnvironment
	}
	if withTrace {
		out.Trace = &lfScoreTrace{UserID: orNull(v.TraceUserID), Tags: v.TraceTags, Environment: out.Environment}
		if out.Trace.Tags == nil {
			out.Trace.Tags = []string{}
		}
	}
	return out
}

// lfSession is Langfuse's Session.
type lfSession struct {
	ID          string    `json:"id"`
	CreatedAt   time.Time `json:"createdAt"`
	ProjectID   string    `json:"projectId"`
	Environment string    `json:"environment"`
}

func viewLFSession(tenantID string, s *tracing.Session) lfSession {
	env := s.Environment
	if env == "" {
		env = tracing.DefaultEnvironment
	}
	return lfSession{ID: s.ID, CreatedAt: s.FirstSeen, ProjectID: tenantID, Environment: env}
}

// traceQuery reads the filters of GET /api/public/traces.
func traceQuery(r *http.Request) (tracing.TraceQuery, error) {
	q := r.URL.Query()
	var tq tracing.TraceQuery
	var err error
	if tq.Page, tq.Limit, err = queryPage(q); err != nil {
		return tq, err
	}
	if err := queryTimes(q, map[string]*time.Time{"fromTimestamp": &tq.From, "toTimestamp": &tq.To}); err != nil {
		return tq, err
	}
	if tq.OrderBy, tq.Asc, err = tracing.ParseTraceOrder(q.Get("orderBy")); err != nil {
		return tq, err
	}
	tq.UserID, tq.SessionID, tq.Name = q.Get("userId"), q.Get("sessionId"), q.Get("name")
	tq.Release, tq.Version = q.Get("release"), q.Get("version")
	tq.Tags, tq.Environments = queryList(q, "tags"), queryList(q, "environment")
	return tq, nil
}

func (s *Server) handlePublicListTraces() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		tq, err := traceQuery(r)
		if err != nil {
			return nil, err
		}
		traces, total, err := s.deps.Tracing.PublicTraces(r.Context(), tenantID, tq)
		if err != nil {
			return nil, err
		}
		data := make([]lfTraceDetails, len(traces))
		for i := range traces {
			data[i] = viewLFTraceDetails(&traces[i].Trace, traces[i].TraceRefs)
		}
		return map[string]any{"data": data, "meta": pageMeta(tq.Page, tq.Limit, total)}, nil
	})
}

func (s *Server) handlePublicGetTrace() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		d, err := s.deps.Tracing.GetPublicTrace(r.Context(), tenantID, r.PathValue("traceId"))
		if err != nil {
			return nil, err
		}
		v := viewLFTraceDetails(&d.Trace, tracing.TraceRefs{})
		obs := make([]lfObservation, len(d.Observations))
		for i := range d.Observations {
			obs[i] = viewLFObservation(&d.Observations[i])
		}
		scores := make([]lfScore, len(d.Scores))
		for i := range d.Scores {
			scores[i] = viewLFScore(&d.Scores[i], false)
		}
		v.Observations, v.Scores = obs, scores
		// A trace past the bounds says so beside Langfuse's fields rather
		// than pretend the lists are whole.
		return struct {
			lfTraceDetails
			ObservationsTruncated bool `json:"observationsTruncated"`
			ScoresTruncated       bool `json:"scoresTruncated"`
			MaxObservations       int  `json:"maxObservations"`
		}{v, d.ObservationsTruncated, d.ScoresTruncated, tracing.MaxTraceObservations}, nil
	})
}

func (s *Server) handlePublicDeleteTrace() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		if err := s.deps.Tracing.DeleteTrace(r.Context(), tenantID, r.PathValue("traceId")); err != nil {
			return nil, err
		}
		return map[string]string{"message": "Trace deleted successfully"}, nil
	})
}

func (s *Server) handlePublicListObservations() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		q := r.URL.Query()
		var oq tracing.ObservationQuery
		var err error
		if oq.Page, oq.Limit, err = queryPage(q); err != nil {
			return nil, err
		}
		if err := queryTimes(q, map[string]*time.Time{"fromStartTime": &oq.From, "toStartTime": &oq.To}); err != nil {
			return nil, err
		}
		oq.Name, oq.UserID, oq.Type, oq.TraceID = q.Get("name"), q.Get("userId"), q.Get("type"), q.Get("traceId")
		oq.ParentObservationID, oq.Environments = q.Get("parentObservationId"), queryList(q, "environment")
		obs, total, err := s.deps.Tracing.PublicObservations(r.Context(), tenantID, oq)
		if err != nil {
			return nil, err
		}
		data := make([]lfObservation, len(obs))
		for i := range obs {
			data[i] = viewLFObservation(&obs[i])
		}
		return map[string]any{"data": data, "meta": pageMeta(oq.Page, oq.Limit, total)}, nil
	})
}

func (s *Server) handlePublicGetObservation() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		o, err := s.deps.Tracing.GetObservation(r.Context(), tenantID, r.PathValue("observationId"))
		if err != nil {
			return nil, err
		}
		return viewLFObservation(&o), nil
	})
}

func (s *Server) handlePublicListSessions() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		q := r.URL.Query()
		page, limit, err := queryPage(q)
		if err != nil {
			return nil, err
		}
		var from, to time.Time
		if err := queryTimes(q, map[string]*time.Time{"fromTimestamp": &from, "toTimestamp": &to}); err != nil {
			return nil, err
		}
		sessions, total, err := s.deps.Tracing.PublicSessions(r.Context(), tenantID, from, to, page, limit)
		if err != nil {
			return nil, err
		}
		data := make([]lfSession, len(sessions))
		for i := range sessions {
			data[i] = viewLFSession(tenantID, &sessions[i])
		}
		return map[string]any{"data": data, "meta": pageMeta(page, limit, total)}, nil
	})
}

func (s *Server) handlePublicGetSession() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		id := r.PathValue("sessionId")
		sess, err := s.deps.Tracing.GetSession(r.Context(), tenantID, id)
		if err != nil {
			return nil, err
		}
		traces, total, err := s.deps.Tracing.SessionTraces(r.Context(), tenantID, id)
		if err != nil {
			return nil, err
		}
		out := make([]lfTrace, len(traces))
		for i := range traces {
			out[i] = viewLFTrace(&traces[i])
		}
		return struct {
			lfSession
			Traces          []lfTrace `json:"traces"`
			TracesTruncated bool      `json:"tracesTruncated"`
		}{viewLFSession(tenantID, &sess), out, total > len(traces)}, nil
	})
}

// scoreQuery reads the filters of GET /api/public/scores and v2/scores.
func scoreQuery(r *http.Request) (tracing.ScoreQuery, error) {
	q := r.URL.Query()
	var sq tracing.ScoreQuery
	var err error
	if sq.Page, sq.Limit, err = queryPage(q); err != nil {
		return sq, err
	}
	if err := queryTimes(q, map[string]*time.Time{"fromTimestamp": &sq.From, "toTimestamp": &sq.To}); err != nil {
		return sq, err
	}
	sq.UserID, sq.Name, sq.TraceID = q.Get("userId"), q.Get("name"), q.Get("traceId")
	sq.Source, sq.DataType = q.Get("source"), q.Get("dataType")
	return sq, nil
}

func (s *Server) handlePublicListScores() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		sq, err := scoreQuery(r)
		if err != nil {
			return nil, err
		}
		scores, total, err := s.deps.Tracing.PublicScores(r.Context(), tenantID, sq)
		if err != nil {
			return nil, err
		}
		data := make([]lfScore, len(scores))
		for i := range scores {
			data[i] = viewLFScore(&scores[i], true)
		}
		return map[string]any{"data": data, "meta": pageMeta(sq.Page, sq.Limit, total)}, nil
	})
}

func (s *Server) handlePublicGetScore() http.Handler {
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		sc, err := s.deps.Tracing.GetScore(r.Context(), tenantID, r.PathValue("scoreId"))
		if err != nil {
			return nil, err
		}
		return viewLFScore(&sc, false), nil
	})
}

func (s *Server) handlePublicCreateScore() http.Handler {
	// Langfuse's CreateScoreRequest; configId, environment and the dataset
	// and session links Nodus does not keep are accepted and ignored, so a
	// client sending them still works.
	type request struct {
		ID            string          `json:"id"`
		TraceID       string          `json:"traceId"`
		ObservationID string          `json:"observationId"`
		Name          string          `json:"name"`
		Value         json.RawMessage `json:"value"`
		DataType      string          `json:"dataType"`
		Comment       string          `json:"comment"`
		ConfigID      string          `json:"configId"`
		Environment   string          `json:"environment"`
		SessionID     string          `json:"sessionId"`
		DatasetRunID  string          `json:"datasetRunId"`
		Metadata      json.RawMessage `json:"metadata"`
	}
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		sc, err := s.deps.Tracing.CreateAPIScore(r.Context(), tenantID, tracing.APIScoreInput{ID: req.ID,
			ScoreInput: tracing.ScoreInput{TraceID: req.TraceID, ObservationID: req.ObservationID, Name: req.Name,
				Value: req.Value, DataType: req.DataType, Comment: req.Comment}})
		if err != nil {
			return nil, err
		}
		return map[string]string{"id": sc.ID}, nil
	})
}

func (s *Server) handlePublicDeleteScore() http.Handler {
	return s.langfuseAPI(http.StatusNoContent, func(r *http.Request, tenantID string) (any, error) {
		return nil, s.deps.Tracing.DeleteScore(r.Context(), tenantID, r.PathValue("scoreId"))
	})
}

// handlePublicHealth is Langfuse's health check, which its SDKs call
// without credentials to see that the host answers.
func (s *Server) handlePublicHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "OK", "version": s.deps.Version})
	})
}

// handlePublicProjects is Langfuse's project of a key pair: the key's
// tenant, named as the tenant is.
func (s *Server) handlePublicProjects() http.Handler {
	type project struct {
		ID            string         `json:"id"`
		Name          string         `json:"name"`
		Metadata      map[string]any `json:"metadata"`
		RetentionDays *int           `json:"retentionDays"`
	}
	return s.langfuseAPI(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		p := project{ID: tenantID, Name: tenantID, Metadata: map[string]any{}}
		if s.deps.Identity != nil {
			t, err := s.deps.Identity.Tenant(nodus.WithTenant(r.Context(), tenantID), tenantID)
			if err != nil {
				return nil, fmt.Errorf("tracing: the project of a key pair: %w", err)
			}
			p.Name = t.Name
		}
		days, err := s.deps.Tracing.Retention(r.Context(), tenantID)
		switch {
		case err != nil && nodus.ErrorCode(err) != nodus.EUNAVAILABLE:
			return nil, err
		case days > 0:
			p.RetentionDays = &days
		}
		return map[string]any{"data": []project{p}}, nil
	})
}

// sessionView and traceUserView are the sessions and users of Nodus's
// own API.
type sessionView struct {
	ID          string    `json:"id"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	TraceCount  int       `json:"trace_count"`
	UserIDs     []string  `json:"user_ids"`
	Environment string    `json:"environment"`
	TotalCost   float64   `json:"total_cost"`
}

func viewSession(s *tracing.Session) sessionView {
	v := sessionView{ID: s.ID, FirstSeen: s.FirstSeen, LastSeen: s.LastSeen, TraceCount: s.TraceCount, UserIDs: s.UserIDs,
		Environment: s.Environment, TotalCost: s.TotalCost}
	if v.UserIDs == nil {
		v.UserIDs = []string{}
	}
	return v
}

type traceUserView struct {
	ID         string    `json:"id"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	TraceCount int       `json:"trace_count"`
	TotalCost  float64   `json:"total_cost"`
}

// listPage reads a keyset page's limit and cursor, at most 100.
func listPage(r *http.Request) (int, string, error) {
	limit, cursor, err := pageQuery(r)
	if err == nil && limit > tracing.MaxListLimit {
		err = badQuery("limit", fmt.Sprintf("must be at most %d", tracing.MaxListLimit))
	}
	return limit, cursor, err
}

func (s *Server) handleListTraceSessions() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		limit, cursor, err := listPage(r)
		if err != nil {
			return nil, err
		}
		sessions, next, err := s.deps.Tracing.ListSessions(r.Context(), tenantID, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]sessionView, len(sessions))
		for i := range sessions {
			out[i] = viewSession(&sessions[i])
		}
		return map[string]any{"sessions": out, "next_cursor": next}, nil
	})
}

// handleGetTraceSession is a session with a page of its traces, newest
// first, by the same cursor as /api/v1/traces.
func (s *Server) handleGetTraceSession() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		limit, cursor, err := listPage(r)
		if err != nil {
			return nil, err
		}
		id := r.PathValue("id")
		sess, err := s.deps.Tracing.GetSession(r.Context(), tenantID, id)
		if err != nil {
			return nil, err
		}
		traces, next, err := s.deps.Tracing.ListTraces(r.Context(), tenantID, tracing.TraceFilter{SessionID: id}, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]traceView, len(traces))
		for i := range traces {
			out[i] = viewTrace(&traces[i])
		}
		return map[string]any{"session": viewSession(&sess), "traces": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleListTraceUsers() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		limit, cursor, err := listPage(r)
		if err != nil {
			return nil, err
		}
		users, next, err := s.deps.Tracing.ListTraceUsers(r.Context(), tenantID, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]traceUserView, len(users))
		for i, u := range users {
			out[i] = traceUserView{ID: u.ID, FirstSeen: u.FirstSeen, LastSeen: u.LastSeen, TraceCount: u.TraceCount,
				TotalCost: u.TotalCost}
		}
		return map[string]any{"users": out, "next_cursor": next}, nil
	})
}
