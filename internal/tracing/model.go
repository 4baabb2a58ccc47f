package tracing

import (
	"context"
	"encoding/json"
	"time"
)

// This file holds the module's records and the Store interface the
// tracing database implements (internal/store/tracing.go). The store
// filters by the tenant scope in the context, as every Nodus store does.

// Observation types, as Langfuse names them.
const (
	TypeSpan       = "SPAN"
	TypeGeneration = "GENERATION"
	TypeEvent      = "EVENT"
	TypeAgent      = "AGENT"
	TypeTool       = "TOOL"
	TypeChain      = "CHAIN"
	TypeRetriever  = "RETRIEVER"
	TypeEvaluator  = "EVALUATOR"
	TypeEmbedding  = "EMBEDDING"
	TypeGuardrail  = "GUARDRAIL"
)

// ObservationTypes lists every observation type.
func ObservationTypes() []string {
	return []string{TypeSpan, TypeGeneration, TypeEvent, TypeAgent, TypeTool, TypeChain, TypeRetriever,
		TypeEvaluator, TypeEmbedding, TypeGuardrail}
}

// Observation levels.
const (
	LevelDebug   = "DEBUG"
	LevelDefault = "DEFAULT"
	LevelWarning = "WARNING"
	LevelError   = "ERROR"
)

// Score data types.
const (
	DataNumeric     = "NUMERIC"
	DataCategorical = "CATEGORICAL"
	DataBoolean     = "BOOLEAN"
)

// Score sources: from the ingestion API, or annotated by a member through
// Nodus's API.
const (
	SourceAPI        = "API"
	SourceAnnotation = "ANNOTATION"
)

// DefaultEnvironment is the environment of a trace or observation that
// names none.
const DefaultEnvironment = "default"

// Trace is one request through an LLM application.
type Trace struct {
	TenantID    string
	ID          string
	Name        string
	UserID      string
	SessionID   string
	Release     string
	Version     string
	Environment string
	Tags        []string // nil when none
	Public      bool
	Input       json.RawMessage // nil when never sent
	Output      json.RawMessage
	Metadata    json.RawMessage
	Timestamp   time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// What its observations add up to, kept by the store as they arrive.
	TotalCost        float64 // USD: per observation its cost "total", else the sum of its costs
	Level            string  // the most severe of its observations' levels, "" when it has none
	ObservationCount int
	LatencyMS        int64 // from the first start to the last end, 0 when none has ended
}

// Observation is one step of a trace: a span, a generation (an LLM
// call), an event, or one of the semantic span types.
type Observation struct {
	TenantID            string
	ID                  string
	TraceID             string
	ParentObservationID string // "" at the trace's top level
	Type                string
	Name                string
	StartTime           time.Time
	EndTime             *time.Time
	CompletionStartTime *time.Time // the first token's time, for TTFT
	Input               json.RawMessage
	Output              json.RawMessage
	Metadata            json.RawMessage
	Level               string
	StatusMessage       string
	Version             string
	Environment         string
	Model               string
	ModelParameters     json.RawMessage
	UsageDetails        map[string]int64   // usage type → count; nil when none
	CostDetails         map[string]float64 // usage type → USD; nil when none
	PromptName          string
	PromptVersion       int // 0 when none
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Score evaluates a trace or one of its observations.
type Score struct {
	TenantID      string
	ID            string
	TraceID       string
	ObservationID string // "" for a score of the whole trace
	Name          string
	Value         *float64 // nil for a categorical score
	StringValue   string
	DataType      string
	Comment       string
	Source        string
	Timestamp     time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Key is a Langfuse key pair of a tenant. The secret itself is never
// stored; SecretHash is its SHA-256.
type Key struct {
	ID         string
	TenantID   string
	PublicKey  string
	SecretHash []byte
	Name       string
	CreatedBy  string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// Event is one ingestion event ready for the store: its envelope id and
// exactly one of its patches.
type Event struct {
	ID          string // the envelope id, for deduplication; "" for Nodus's own events, which nothing retries
	Timestamp   time.Time
	Trace       *TracePatch
	Observation *ObservationPatch
	Score       *ScorePatch
	// Fresh marks an event of Nodus's own whose ids it has just made
	// (tracewire.NewID): its entity and, for an observation or a score,
	// the trace it names are new. Ingestion then writes them without
	// looking them up first; an id that exists after all is merged into
	// its row as any other, one round later.
	Fresh bool
}

// TraceFilter selects traces for a list, newest first.
type TraceFilter struct {
	From, To  time.Time // zero: unbounded; From inclusive, To exclusive
	UserID    string
	SessionID string
	Name      string
	Tags      []string // traces holding all of them
	Model     string   // traces with an observation of this model
	Level     string   // traces whose level is at least this severe (ERROR > WARNING > DEFAULT > DEBUG)
	MinCost   *float64 // on TotalCost, inclusive; nil: unbounded
	MaxCost   *float64
}

// Store keeps traces, observations, scores and key pairs. A row of
// another tenant is ENOTFOUND.
type Store interface {
	PublicStore
	RollupStore
	// IngestEvents applies a batch in one transaction: for each event in
	// order, the envelope id is recorded (an id the tenant has already
	// recorded skips the event), the entity is created when new (a
	// missing trace with only its id and the event's time), read under a
	// lock, patched and written back. It returns the envelope ids it
	// skipped as duplicates.
	IngestEvents(ctx context.Context, events []Event, receivedAt time.Time) (skipped []string, err error)
	FindTrace(ctx context.Context, id string) (Trace, error)
	// ListTraces returns a page of traces newest first by (timestamp, id)
	// and the next page's cursor, "" after the last.
	ListTraces(ctx context.Context, f TraceFilter, cursor string, limit int) ([]Trace, string, error)
	// ListObservations returns a trace's observations by start time.
	ListObservations(ctx context.Context, traceID string) ([]Observation, error)
	// ListScores returns a trace's scores by time.
	ListScores(ctx context.Context, traceID string) ([]Score, error)
	FindObservation(ctx context.Context, id string) (Observation, error)

	CreateTracingKey(ctx context.Context, k Key) error
	// FindTracingKey returns the key pair with a public key, in any
	// tenant the scope allows; ENOTFOUND when there is none.
	FindTracingKey(ctx context.Context, publicKey string) (Key, error)
	ListTracingKeys(ctx context.Context) ([]Key, error)
	DeleteTracingKey(ctx context.Context, id string) error
	TouchTracingKey(ctx context.Context, id string, at time.Time) error

	// DeleteTracingTenant removes every row of the scoped tenant.
	DeleteTracingTenant(ctx context.Context) error
}

// TraceQuery selects a page of traces by number, as Langfuse's public API
// pages: the TraceFilter's time, user, session, name and tags (not its
// model, level or cost) and more, in an order of the caller's.
type TraceQuery struct {
	TraceFilter
	Environments     []string // any of them; none: every environment
	Release, Version string
	OrderBy          string // a TraceOrder key; "": timestamp
	Asc              bool
	Page, Limit      int // Page counts from 1
}

// TraceRefs names a trace's observations and scores, as a row of
// Langfuse's trace list does: some of them, up to the bound asked for.
type TraceRefs struct {
	ObservationIDs []string
	ScoreIDs       []string
}

// ObservationQuery selects a page of observations, newest first.
type ObservationQuery struct {
	Name, UserID, Type, TraceID, ParentObservationID string
	From, To                                         time.Time // on the start time; From inclusive, To exclusive
	Environments                                     []string
	Page, Limit                                      int
}

// ScoreQuery selects a page of scores, newest first.
type ScoreQuery struct {
	UserID, Name, TraceID, Source, DataType string
	From, To                                time.Time
	Page, Limit                             int
}

// ScoreView is a score with the fields of its trace Langfuse's score
// list shows beside it.
type ScoreView struct {
	Score
	TraceUserID      string
	TraceTags        []string
	TraceEnvironment string
}

// Session is the set of a tenant's traces sharing a session id, as a
// view: when it was first and last seen, and what its traces add up to.
type Session struct {
	ID          string
	FirstSeen   time.Time
	LastSeen    time.Time
	TraceCount  int
	UserIDs     []string // among its newest traces, a few
	Environment string   // its newest trace's
	TotalCost   float64
}

// TraceUser is the set of a tenant's traces sharing a user id.
type TraceUser struct {
	ID         string
	FirstSeen  time.Time
	LastSeen   time.Time
	TraceCount int
	TotalCost  float64
}

// PublicStore serves Langfuse's public read API and the sessions and
// users views. Pages by number return the page and the total count.
type PublicStore interface {
	PageTraces(ctx context.Context, q TraceQuery) ([]Trace, int, error)
	// TraceRefs lists at most maxIDs of the observation and score ids of
	// each trace; a trace with neither has no entry.
	TraceRefs(ctx context.Context, traceIDs []string, maxIDs int) (map[string]TraceRefs, error)
	// ListTraceObservations returns up to max of a trace's observations by
	// start time, and whether there were more.
	ListTraceObservations(ctx context.Context, traceID string, max int) ([]Observation, bool, error)
	// DeleteTrace removes a trace with its observations and scores.
	DeleteTrace(ctx context.Context, id string) error
	PageObservations(ctx context.Context, q ObservationQuery) ([]Observation, int, error)
	PageScores(ctx context.Context, q ScoreQuery) ([]ScoreView, int, error)
	FindScore(ctx context.Context, id string) (ScoreView, error)
	DeleteScore(ctx context.Context, id string) error
	// PageTraceSessions returns sessions first seen in [from, to), newest
	// first; ListTraceSessions the sessions by last activity, newest first,
	// with a keyset cursor.
	PageTraceSessions(ctx context.Context, from, to time.Time, page, limit int) ([]Session, int, error)
	ListTraceSessions(ctx context.Context, cursor string, limit int) ([]Session, string, error)
	FindTraceSession(ctx context.Context, id string) (Session, error)
	ListTraceUsers(ctx context.Context, cursor string, limit int) ([]TraceUser, string, error)
}
