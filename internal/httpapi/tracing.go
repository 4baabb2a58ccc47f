package httpapi

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file holds LLM tracing's routes: Langfuse's batch ingestion
// (POST /api/public/ingestion, authenticated by a tenant's key pair, in
// Langfuse's shapes so its SDKs work unchanged), the key pairs' management
// for admins, and the query API for members (/api/v1/traces, scores).

// ingestionTimeout bounds one batch: up to 1,000 events in one transaction.
const ingestionTimeout = 2 * time.Minute

// langfuseError writes an error in Langfuse's shape, {"message": …}.
func (s *Server) langfuseError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="langfuse"`)
	}
	s.writeJSON(w, r, status, map[string]string{"message": msg})
}

// handleIngestion is Langfuse's POST /api/public/ingestion: the tenant is
// the key pair's, whatever the body says; the answer is 207 with each
// event's outcome.
func (s *Server) handleIngestion() http.Handler {
	type outcome struct {
		ID      string `json:"id"`
		Status  int    `json:"status"`
		Message string `json:"message,omitempty"`
	}
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
		if err != nil {
			if nodus.ErrorCode(err) == nodus.EUNAUTHORIZED {
				s.langfuseError(w, r, http.StatusUnauthorized, nodus.ErrorMessage(err))
				return
			}
			s.deps.Logger.ErrorContext(r.Context(), "tracing: authenticate", "request_id", RequestID(r.Context()), "err", err)
			s.langfuseError(w, r, http.StatusInternalServerError, "internal error")
			return
		}
		var req struct {
			Batch    []json.RawMessage `json:"batch"`
			Metadata json.RawMessage   `json:"metadata"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				s.langfuseError(w, r, http.StatusRequestEntityTooLarge, "a batch may be at most 3.5 MB; send smaller batches")
				return
			}
			s.langfuseError(w, r, http.StatusBadRequest, "invalid request body: "+nodus.ErrorMessage(jsonError(err)))
			return
		}
		if req.Batch == nil {
			s.langfuseError(w, r, http.StatusBadRequest, "batch is required")
			return
		}
		res, err := s.deps.Tracing.Ingest(r.Context(), key.TenantID, req.Batch)
		switch {
		case nodus.ErrorCode(err) == nodus.EINVALID:
			s.langfuseError(w, r, http.StatusBadRequest, nodus.ErrorMessage(err))
			return
		case err != nil:
			s.deps.Logger.ErrorContext(r.Context(), "tracing: ingest", "request_id", RequestID(r.Context()),
				"tenant", key.TenantID, "err", err)
			s.langfuseError(w, r, http.StatusInternalServerError, "internal error")
			return
		}
		out := struct {
			Successes []outcome `json:"successes"`
			Errors    []outcome `json:"errors"`
		}{Successes: make([]outcome, len(res.Successes)), Errors: make([]outcome, len(res.Errors))}
		for i, o := range res.Successes {
			out.Successes[i] = outcome{ID: o.ID, Status: o.Status}
		}
		for i, o := range res.Errors {
			out.Errors[i] = outcome(o)
		}
		s.writeJSON(w, r, http.StatusMultiStatus, out)
	})
}

// tracingAnswer is answer for a tracing route: fn gets the tenant the
// request means (a super_admin names it with ?tenant_id=).
func (s *Server) tracingAnswer(status int, fn func(r *http.Request, tenantID string) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		if s.deps.Tracing == nil {
			return nil, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "tracing is not available"}
		}
		ctx, tenantID, err := s.egressTenant(r)
		if err != nil {
			return nil, err
		}
		return fn(r.WithContext(ctx), tenantID)
	})
}

type tracingKeyView struct {
	ID         string     `json:"id"`
	PublicKey  string     `json:"public_key"`
	Name       string     `json:"name"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func viewTracingKey(k *tracing.Key) tracingKeyView {
	return tracingKeyView{ID: k.ID, PublicKey: k.PublicKey, Name: k.Name, CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt}
}

func (s *Server) handleCreateTracingKey() http.Handler {
	type request struct {
		Name string `json:"name"`
	}
	return s.tracingAnswer(http.StatusCreated, func(r *http.Request, tenantID string) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		k, secret, err := s.deps.Tracing.CreateKey(r.Context(), tenantID, req.Name, callerFrom(r.Context()).principal.User.ID)
		if err != nil {
			return nil, err
		}
		// The secret is shown this once.
		return map[string]any{"key": viewTracingKey(&k), "secret_key": secret}, nil
	})
}

func (s *Server) handleListTracingKeys() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		keys, err := s.deps.Tracing.ListKeys(r.Context(), tenantID)
		if err != nil {
			return nil, err
		}
		out := make([]tracingKeyView, len(keys))
		for i := range keys {
			out[i] = viewTracingKey(&keys[i])
		}
		return map[string]any{"keys": out}, nil
	})
}

func (s *Server) handleDeleteTracingKey() http.Handler {
	return s.tracingAnswer(http.StatusNoContent, func(r *http.Request, tenantID string) (any, error) {
		return nil, s.deps.Tracing.DeleteKey(r.Context(), tenantID, r.PathValue("id"))
	})
}

type traceView struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	UserID      string          `json:"user_id"`
	SessionID   string          `json:"session_id"`
	Release     string          `json:"release"`
	Version     string          `json:"version"`
	Environment string          `json:"environment"`
	Tags        []string        `json:"tags"`
	Public      bool            `json:"public"`
	Input       json.RawMessage `json:"input"`
	Output      json.RawMessage `json:"output"`
	Metadata    json.RawMessage `json:"metadata"`
	Timestamp   time.Time       `json:"timestamp"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	// What its observations add up to.
	TotalCost        float64 `json:"total_cost"`
	Level            string  `json:"level"`
	ObservationCount int     `json:"observation_count"`
	LatencyMS        int64   `json:"latency_ms"`
}

func viewTrace(t *tracing.Trace) traceView {
	v := traceView{ID: t.ID, Name: t.Name, UserID: t.UserID, SessionID: t.SessionID, Release: t.Release, Version: t.Version,
		Environment: t.Environment, Tags: t.Tags, Public: t.Public, Input: t.Input, Output: t.Output, Metadata: t.Metadata,
		Timestamp: t.Timestamp, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, TotalCost: t.TotalCost, Level: t.Level,
		ObservationCount: t.ObservationCount, LatencyMS: t.LatencyMS}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	return v
}

type observationView struct {
	ID                  string             `json:"id"`
	TraceID             string             `json:"trace_id"`
	ParentObservationID string             `json:"parent_observation_id"`
	Type                string             `json:"type"`
	Name                string             `json:"name"`
	StartTime           time.Time          `json:"start_time"`
	EndTime             *time.Time         `json:"end_time"`
	CompletionStartTime *time.Time         `json:"completion_start_time"`
	Input               json.RawMessage    `json:"input"`
	Output              json.RawMessage    `json:"output"`
	Metadata            json.RawMessage    `json:"metadata"`
	Level               string             `json:"level"`
	StatusMessage       string             `json:"status_message"`
	Version             string             `json:"version"`
	Environment         string             `json:"environment"`
	Model               string             `json:"model"`
	ModelParameters     json.RawMessage    `json:"model_parameters"`
	UsageDetails        map[string]int64   `json:"usage_details"`
	CostDetails         map[string]float64 `json:"cost_details"`
	PromptName          string             `json:"prompt_name"`
	PromptVersion       int                `json:"prompt_version"`
	Children            []observationView  `json:"children"`
}

func viewObservations(ns []*tracing.ObservationNode) []observationView {
	out := make([]observationView, len(ns))
	for i, n := range ns {
		o := &n.Observation
		out[i] = observationView{ID: o.ID, TraceID: o.TraceID, ParentObservationID: o.ParentObservationID, Type: o.Type,
			Name: o.Name, StartTime: o.StartTime, EndTime: o.EndTime, CompletionStartTime: o.CompletionStartTime,
			Input: o.Input, Output: o.Output, Metadata: o.Metadata, Level: o.Level, StatusMessage: o.StatusMessage,
			Version: o.Version, Environment: o.Environment, Model: o.Model, ModelParameters: o.ModelParameters,
			UsageDetails: o.UsageDetails, CostDetails: o.CostDetails, PromptName: o.PromptName,
			PromptVersion: o.PromptVersion, Children: viewObservations(n.Children)}
		if out[i].UsageDetails == nil {
			out[i].UsageDetails = map[string]int64{}
		}
		if out[i].CostDetails == nil {
			out[i].CostDetails = map[string]float64{}
		}
	}
	return out
}

type scoreView struct {
	ID            string    `json:"id"`
	TraceID       string    `json:"trace_id"`
	ObservationID string    `json:"observation_id"`
	Name          string    `json:"name"`
	Value         *float64  `json:"value"`
	StringValue   string    `json:"string_value"`
	DataType      string    `json:"data_type"`
	Comment       string    `json:"comment"`
	Source        string    `json:"source"`
	Timestamp     time.Time `json:"timestamp"`
}

func viewScore(s *tracing.Score) scoreView {
	return scoreView{ID: s.ID, TraceID: s.TraceID, ObservationID: s.ObservationID, Name: s.Name, Value: s.Value,
		StringValue: s.StringValue, DataType: s.DataType, Comment: s.Comment, Source: s.Source, Timestamp: s.Timestamp}
}

// traceFilter reads a trace list's filters from the query.
func traceFilter(r *http.Request) (tracing.TraceFilter, int, string, error) {
	q := r.URL.Query()
	f := tracing.TraceFilter{UserID: q.Get("user_id"), SessionID: q.Get("session_id"), Name: q.Get("name"),
		Model: q.Get("model"), Level: strings.ToUpper(q.Get("level"))}
	for name, dst := range map[string]**float64{"min_cost": &f.MinCost, "max_cost": &f.MaxCost} {
		if v := q.Get(name); v != "" {
			c, err := strconv.ParseFloat(v, 64)
			if err != nil || c < 0 || math.IsInf(c, 0) || math.IsNaN(c) {
				return f, 0, "", &nodus.Error{Code: nodus.EINVALID, Message: "invalid query",
					Fields: map[string]string{name: "must be a non-negative number of USD"}}
			}
			*dst = &c
		}
	}
	for _, v := range q["tags"] {
		for tag := range strings.SplitSeq(v, ",") {
			if tag = strings.TrimSpace(tag); tag != "" {
				f.Tags = append(f.Tags, tag)
			}
		}
	}
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, 0, "", &nodus.Error{Code: nodus.EINVALID, Message: "invalid query",
					Fields: map[string]string{name: "must be an RFC 3339 time"}}
			}
			*dst = t.UTC()
		}
	}
	limit, cursor, err := pageQuery(r)
	if err == nil && limit > tracing.MaxListLimit {
		err = &nodus.Error{Code: nodus.EINVALID, Message: "invalid query",
			Fields: map[string]string{"limit": "must be at most 100"}}
	}
	return f, limit, cursor, err
}

func (s *Server) handleListTraces() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		f, limit, cursor, err := traceFilter(r)
		if err != nil {
			return nil, err
		}
		traces, next, err := s.deps.Tracing.ListTraces(r.Context(), tenantID, f, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]traceView, len(traces))
		for i := range traces {
			out[i] = viewTrace(&traces[i])
		}
		return map[string]any{"traces": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleGetTrace() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		d, err := s.deps.Tracing.GetTrace(r.Context(), tenantID, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		scores := make([]scoreView, len(d.Scores))
		for i := range d.Scores {
			scores[i] = viewScore(&d.Scores[i])
		}
		return map[string]any{"trace": viewTrace(&d.Trace), "observations": viewObservations(d.Observations),
			"scores": scores}, nil
	})
}

func (s *Server) handleCreateScore() http.Handler {
	type request struct {
		TraceID       string          `json:"trace_id"`
		ObservationID string          `json:"observation_id"`
		Name          string          `json:"name"`
		Value         json.RawMessage `json:"value"`
		DataType      string          `json:"data_type"`
		Comment       string          `json:"comment"`
	}
	return s.tracingAnswer(http.StatusCreated, func(r *http.Request, tenantID string) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		sc, err := s.deps.Tracing.CreateScore(r.Context(), tenantID, tracing.ScoreInput{TraceID: req.TraceID,
			ObservationID: req.ObservationID, Name: req.Name, Value: req.Value, DataType: req.DataType, Comment: req.Comment})
		if err != nil {
			return nil, err
		}
		return map[string]any{"score": viewScore(&sc)}, nil
	})
}
