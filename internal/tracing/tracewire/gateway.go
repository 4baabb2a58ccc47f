// Package tracewire connects other modules to LLM tracing: the gateway's
// finished calls become generations recorded by the tracing recorder.
// Modules never import each other; this package imports both.
package tracewire

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/google/uuid"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/tracing"
)

// MaxPayloadBytes bounds the input and the output a generation keeps of a
// call: a larger one is kept as a note of its size. Tracing is for reading
// what happened, not an archive of every prompt.
const MaxPayloadBytes = 256 << 10

// GatewayCalls records each gateway call as a GENERATION observation
// (EMBEDDING for embeddings) whose metadata names the spend-log row
// (spend_request_id). A call inside a caller's trace (a traceparent, a
// chat turn) nests under the caller's span; any other call is a trace of
// its own, named after the kind of call, for the key's user. Payloads are
// encoded in the recorder's goroutine, off the request path.
//
// With OnlyTraced set, a call is recorded only inside a caller's trace:
// recording costs about as much CPU as the gateway's own work on a call,
// which an operator serving thousands of calls a second may not want to
// pay for calls nobody traces.
type GatewayCalls struct {
	Recorder   *tracing.Recorder
	OnlyTraced bool
}

var _ gateway.CallObserver = GatewayCalls{}

// ObserveCall hands the call to the recorder; it does not wait.
func (g GatewayCalls) ObserveCall(c gateway.CallRecord) {
	if g.OnlyTraced && !ValidTraceID(c.Log.TraceID) {
		return
	}
	g.Recorder.RecordLater(c.Log.TenantID, func() []tracing.Event { return Events(c) })
}

// Events is a call as tracing events: its trace when it has none of its
// own, then its generation.
func Events(c gateway.CallRecord) []tracing.Event {
	l := c.Log
	traceID, own := l.TraceID, false
	if !ValidTraceID(traceID) {
		traceID, own = NewID(), true
	}
	input, output := callInput(c), callOutput(c)
	// Pointers go to copies of the fields, not into l or c, which would
	// put both on the heap.
	start, end, model := l.StartedAt, l.EndedAt, l.Model
	events := make([]tracing.Event, 0, 2)
	add := func(ev tracing.Event) {
		ev.Timestamp = start // no envelope id: nothing retries it
		// A call of its own trace names only ids just made for it, and the
		// tracing store writes those without looking for them first.
		ev.Fresh = own
		events = append(events, ev)
	}
	if own {
		name := "gateway " + l.CallType
		user := l.UserID
		if user == "" {
			user = l.EndUser
		}
		// The payloads are the generation's; the trace does not store them
		// a second time.
		add(tracing.Event{Trace: &tracing.TracePatch{ID: traceID, Timestamp: &start, Name: &name, UserID: &user,
			Tags: []string{"nodus", "gateway"}, Metadata: jsonOf(traceMeta{ClientRequestID: l.ClientRequestID, KeyID: l.KeyID,
				SpendRequestID: l.RequestID})}})
	}
	typ, name := tracing.TypeGeneration, l.CallType
	if l.CallType == "embedding" {
		typ = tracing.TypeEmbedding
	}
	g := &tracing.ObservationPatch{ID: NewID(), TraceID: traceID, Type: typ, Name: &name, StartTime: &start,
		EndTime: &end, Model: &model, Input: input, Output: output}
	if parent := c.ParentSpanID; parent != "" {
		g.ParentObservationID = &parent
	}
	if l.TTFT > 0 {
		first := start.Add(l.TTFT)
		g.CompletionStartTime = &first
	}
	if c.Chat != nil {
		g.ModelParameters = parametersOf(c.Chat)
	}
	if l.PromptTokens > 0 || l.CompletionTokens > 0 {
		usage := map[string]int64{"input": l.PromptTokens - l.CachedTokens, "output": l.CompletionTokens,
			"total": l.PromptTokens + l.CompletionTokens}
		if l.CachedTokens > 0 {
			usage["input_cached_tokens"] = l.CachedTokens
		}
		g.UsageDetails = usage
	}
	if l.Status != gateway.StatusError || l.CostMicros > 0 {
		g.CostDetails = map[string]float64{"total": float64(l.CostMicros) / 1e6}
	}
	switch l.Status {
	case gateway.StatusError:
		level, msg := tracing.LevelError, l.ErrorClass+": "+http.StatusText(l.StatusCode)
		g.Level, g.StatusMessage = &level, &msg
	case gateway.StatusCancelled:
		level, msg := tracing.LevelWarning, "the client went away; what streamed was billed"
		g.Level, g.StatusMessage = &level, &msg
	}
	g.Metadata = jsonOf(callMeta{CallType: l.CallType, ClientRequestID: l.ClientRequestID, DeploymentID: l.DeploymentID, ErrorClass: l.ErrorClass,
		KeyID: l.KeyID, Provider: l.Provider, SpendRequestID: l.RequestID, Status: l.Status, StatusCode: l.StatusCode,
		UpstreamModel: l.UpstreamModel, UsageEstimated: l.UsageEstimated})
	add(tracing.Event{Observation: g})
	return events
}

// The metadata of a call's trace and generation. Structs rather than maps
// (about a tenth of the recorder's allocations were encoding/json walking
// maps); fields in key order, as a map's would be.
type traceMeta struct {
	ClientRequestID string `json:"client_request_id,omitempty"` // the X-Request-Id the call was answered with
	KeyID           string `json:"key_id,omitempty"`
	SpendRequestID  string `json:"spend_request_id"`
}

type callMeta struct {
	CallType        string `json:"call_type"`
	ClientRequestID string `json:"client_request_id,omitempty"`
	DeploymentID    string `json:"deployment_id,omitempty"`
	ErrorClass      string `json:"error_class,omitempty"`
	KeyID           string `json:"key_id,omitempty"`
	Provider        string `json:"provider,omitempty"`
	SpendRequestID  string `json:"spend_request_id"`
	Status          string `json:"status"`
	StatusCode      int    `json:"status_code"`
	UpstreamModel   string `json:"upstream_model,omitempty"`
	UsageEstimated  bool   `json:"usage_estimated,omitempty"`
}

// callInput is a chat call's messages (and tools), bounded.
func callInput(c gateway.CallRecord) json.RawMessage {
	if c.Chat == nil {
		return nil
	}
	return bounded(struct {
		Messages []gateway.Message `json:"messages"`
		Tools    []gateway.Tool    `json:"tools,omitempty"`
	}{c.Chat.Messages, c.Chat.Tools})
}

// callOutput is the answer: the assistant message(s) of a call, or what a
// stream delivered.
func callOutput(c gateway.CallRecord) json.RawMessage {
	switch {
	case c.Response != nil && len(c.Response.Choices) == 1:
		return bounded(c.Response.Choices[0].Message)
	case c.Response != nil:
		msgs := make([]gateway.ResponseMessage, len(c.Response.Choices))
		for i, ch := range c.Response.Choices {
			msgs[i] = ch.Message
		}
		return bounded(msgs)
	case c.Streamed != "":
		return bounded(c.Streamed)
	}
	return nil
}

// modelParameters are the sampling settings a chat request set, in key
// order.
type modelParameters struct {
	MaxCompletionTokens *int64                  `json:"max_completion_tokens,omitempty"`
	MaxTokens           *int64                  `json:"max_tokens,omitempty"`
	N                   *int                    `json:"n,omitempty"`
	ResponseFormat      *gateway.ResponseFormat `json:"response_format,omitempty"`
	Seed                *int64                  `json:"seed,omitempty"`
	Stream              bool                    `json:"stream,omitempty"`
	Temperature         *float64                `json:"temperature,omitempty"`
	TopP                *float64                `json:"top_p,omitempty"`
}

// parametersOf is r's sampling settings, nil when it set none.
func parametersOf(r *gateway.ChatRequest) json.RawMessage {
	p := modelParameters{MaxCompletionTokens: r.MaxCompletionTokens, MaxTokens: r.MaxTokens, N: r.N,
		ResponseFormat: r.ResponseFormat, Seed: r.Seed, Stream: r.Stream, Temperature: r.Temperature, TopP: r.TopP}
	if p == (modelParameters{}) {
		return nil
	}
	return jsonOf(p)
}

// bounded encodes v, or a note of its size past MaxPayloadBytes.
func bounded(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	if len(b) > MaxPayloadBytes {
		return jsonOf(map[string]any{"truncated": true, "bytes": len(b)})
	}
	return b
}

func jsonOf(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// NewID is a W3C-shaped trace or observation id: 32 lowercase hex digits,
// those of a UUIDv7. The time in its first twelve means the tracing
// database's id indexes grow at their right edge as calls are recorded,
// rather than dirtying a random page of each per call; its last 62 bits
// stay random, so an id is still not guessable.
func NewID() string {
	u := uuid.Must(uuid.NewV7())
	return hex.EncodeToString(u[:])
}

// NewSpanID is a W3C-shaped span id: 16 lowercase hex digits.
func NewSpanID() string {
	u := uuid.New()
	return hex.EncodeToString(u[:8])
}

// ValidTraceID tells whether id is a W3C trace id (32 hex digits, not all
// zero).
func ValidTraceID(id string) bool {
	if len(id) != 32 || id == "00000000000000000000000000000000" {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Prices prices SDK-reported generations at the gateway's prices for the
// tenant (tracing.Config.Prices).
func Prices(g *gateway.Service) tracing.PriceFunc {
	return func(ctx context.Context, tenantID, model string) (tracing.ModelPrice, bool) {
		p, ok, err := g.ModelPrice(ctx, tenantID, model)
		if err != nil || !ok {
			return tracing.ModelPrice{}, false
		}
		// Micro-dollars per million tokens to dollars per token.
		const perToken = 1e12
		return tracing.ModelPrice{Input: float64(p.Input) / perToken, CachedInput: float64(p.CachedInput) / perToken,
			Output: float64(p.Output) / perToken}, true
	}
}
