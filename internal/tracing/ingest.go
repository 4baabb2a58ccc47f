package tracing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file turns Langfuse's ingestion envelopes into Events: it bounds
// each one (CheckJSON) before decoding it, then decodes its body by type.

// Bounds of ingestion.
const (
	MaxBatchBytes  = 7 << 19 // 3.5 MiB: a request body, Langfuse's limit
	MaxBatchEvents = 1000    // envelopes in one batch
	MaxStringBytes = 1 << 20 // one JSON string, escaped
	MaxDepth       = 64      // nesting of objects and arrays in an envelope
	MaxObjectKeys  = 10000   // keys of one JSON object
	MaxIDBytes     = 256     // a trace, observation, score or envelope id
	MaxTags        = 100     // tags of a trace
)

// Event types of the ingestion API.
const (
	EventTraceCreate       = "trace-create"
	EventSpanCreate        = "span-create"
	EventSpanUpdate        = "span-update"
	EventGenerationCreate  = "generation-create"
	EventGenerationUpdate  = "generation-update"
	EventEventCreate       = "event-create"
	EventObservationCreate = "observation-create"
	EventObservationUpdate = "observation-update"
	EventScoreCreate       = "score-create"
	EventSDKLog            = "sdk-log"
)

// errSkip marks an event that is accepted and stored nowhere (sdk-log).
var errSkip = errors.New("tracing: nothing to store")

// CheckJSON bounds a JSON value already known to be well formed: valid
// UTF-8, no string longer than MaxStringBytes, no object with more than
// MaxObjectKeys keys, nesting no deeper than MaxDepth. It reads the bytes
// once and allocates only its stack, so an adversarial value costs no
// more memory than its own bytes.
func CheckJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("must be valid UTF-8")
	}
	type frame struct {
		object bool
		keys   int
	}
	var stack []frame
	expectKey := false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			start := i
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i-start-1 > MaxStringBytes {
				return fmt.Errorf("a string is longer than %d bytes", MaxStringBytes)
			}
			if expectKey {
				top := &stack[len(stack)-1]
				if top.keys++; top.keys > MaxObjectKeys {
					return fmt.Errorf("an object has more than %d keys", MaxObjectKeys)
				}
				expectKey = false
			}
		case '{', '[':
			if len(stack) == MaxDepth {
				return fmt.Errorf("JSON is nested deeper than %d levels", MaxDepth)
			}
			stack = append(stack, frame{object: b[i] == '{'})
			expectKey = b[i] == '{'
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		}
	}
	return nil
}

type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp *time.Time      `json:"timestamp"`
	Body      json.RawMessage `json:"body"`
}

// eventError is a problem with one event, reported in its place.
type eventError struct{ msg string }

func (e *eventError) Error() string { return e.msg }

func badEvent(format string, args ...any) error {
	return &eventError{msg: fmt.Sprintf(format, args...)}
}

// decodeEvent returns the envelope id of raw and its Event, errSkip for
// an event stored nowhere, or an *eventError. now stands in for a missing
// envelope timestamp.
func decodeEvent(raw json.RawMessage, now time.Time) (string, Event, error) {
	if err := CheckJSON(raw); err != nil {
		// Only the envelope id is read, to report it: encoding/json skips
		// the rest without keeping it.
		var head struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &head) != nil || checkID("id", head.ID) != nil {
			head.ID = ""
		}
		return head.ID, Event{}, badEvent("event refused: %v", err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return "", Event{}, badEvent("invalid event: %s", jsonMessage(err))
	}
	if err := checkID("id", env.ID); err != nil {
		return "", Event{}, err
	}
	ev := Event{ID: env.ID, Timestamp: now}
	if env.Timestamp != nil {
		ev.Timestamp = env.Timestamp.UTC()
	}
	if env.Type == EventSDKLog {
		return env.ID, ev, errSkip
	}
	if len(env.Body) == 0 || env.Body[0] != '{' {
		return env.ID, ev, badEvent("body must be an object")
	}
	var err error
	switch env.Type {
	case EventTraceCreate:
		ev.Trace, err = decodeTrace(env.Body)
	case EventSpanCreate:
		ev.Observation, err = decodeObservation(env.Body, TypeSpan, TypeSpan)
	case EventSpanUpdate:
		ev.Observation, err = decodeObservation(env.Body, "", TypeSpan)
	case EventGenerationCreate:
		ev.Observation, err = decodeObservation(env.Body, TypeGeneration, TypeGeneration)
	case EventGenerationUpdate:
		ev.Observation, err = decodeObservation(env.Body, "", TypeGeneration)
	case EventEventCreate:
		ev.Observation, err = decodeObservation(env.Body, TypeEvent, TypeEvent)
	case EventObservationCreate, EventObservationUpdate:
		ev.Observation, err = decodeObservation(env.Body, "body", "")
	case EventScoreCreate:
		ev.Score, err = decodeScore(env.Body, env.ID)
	case "":
		err = badEvent("type is required")
	default:
		err = badEvent("unknown event type %q", env.Type)
	}
	return env.ID, ev, err
}

// jsonMessage says what is wrong with a body without echoing its bytes.
func jsonMessage(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("field %s must be %s", typeErr.Field, typeErr.Type)
	}
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) {
		return "a time must be ISO 8601 (RFC 3339)"
	}
	return "malformed JSON"
}

func checkID(field, id string) error {
	switch {
	case id == "":
		return badEvent("%s is required", field)
	case len(id) > MaxIDBytes:
		return badEvent("%s must be at most %d bytes", field, MaxIDBytes)
	case strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return badEvent("%s must be printable", field)
	}
	return nil
}

// checkEnvironment applies Langfuse's rule: lowercase letters, digits,
// '-' and '_', not starting with "langfuse".
func checkEnvironment(env *string) error {
	if env == nil {
		return nil
	}
	e := *env
	ok := e != "" && len(e) <= 40 && !strings.HasPrefix(e, "langfuse") &&
		strings.IndexFunc(e, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') }) < 0
	if !ok {
		return badEvent("environment must be up to 40 lowercase letters, digits, '-' or '_', not starting with \"langfuse\"")
	}
	return nil
}

// sent returns a JSON value that was sent, nil for an absent or null one.
func sent(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return nil
	}
	return v
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func decodeTrace(body json.RawMessage) (*TracePatch, error) {
	var b struct {
		ID          string          `json:"id"`
		Timestamp   *time.Time      `json:"timestamp"`
		Name        *string         `json:"name"`
		UserID      *string         `json:"userId"`
		SessionID   *string         `json:"sessionId"`
		Release     *string         `json:"release"`
		Version     *string         `json:"version"`
		Environment *string         `json:"environment"`
		Tags        []string        `json:"tags"`
		Public      *bool           `json:"public"`
		Input       json.RawMessage `json:"input"`
		Output      json.RawMessage `json:"output"`
		Metadata    json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, badEvent("invalid trace: %s", jsonMessage(err))
	}
	if err := checkID("body.id", b.ID); err != nil {
		return nil, err
	}
	if err := checkEnvironment(b.Environment); err != nil {
		return nil, err
	}
	if len(b.Tags) > MaxTags {
		return nil, badEvent("a trace has at most %d tags", MaxTags)
	}
	tags := b.Tags
	if tags != nil {
		tags = slices.Compact(slices.Sorted(slices.Values(tags)))
	}
	return &TracePatch{ID: b.ID, Timestamp: utc(b.Timestamp), Name: b.Name, UserID: b.UserID, SessionID: b.SessionID,
		Release: b.Release, Version: b.Version, Environment: b.Environment, Tags: tags, Public: b.Public,
		Input: sent(b.Input), Output: sent(b.Output), Metadata: sent(b.Metadata)}, nil
}

// legacyUsage is the "usage" object of older SDKs.
type legacyUsage struct {
	Input            *int64   `json:"input"`
	Output           *int64   `json:"output"`
	Total            *int64   `json:"total"`
	PromptTokens     *int64   `json:"promptTokens"`
	CompletionTokens *int64   `json:"completionTokens"`
	TotalTokens      *int64   `json:"totalTokens"`
	InputCost        *float64 `json:"inputCost"`
	OutputCost       *float64 `json:"outputCost"`
	TotalCost        *float64 `json:"totalCost"`
}

func (u *legacyUsage) details() (map[string]int64, map[string]float64) {
	usage, cost := map[string]int64{}, map[string]float64{}
	for k, v := range map[string]*int64{"input": u.Input, "output": u.Output, "total": u.Total} {
		if v != nil {
			usage[k] = *v
		}
	}
	for k, v := range map[string]*int64{"input": u.PromptTokens, "output": u.CompletionTokens, "total": u.TotalTokens} {
		if _, ok := usage[k]; !ok && v != nil {
			usage[k] = *v
		}
	}
	for k, v := range map[string]*float64{"input": u.InputCost, "output": u.OutputCost, "total": u.TotalCost} {
		if v != nil {
			cost[k] = *v
		}
	}
	if len(usage) == 0 {
		usage = nil
	}
	if len(cost) == 0 {
		cost = nil
	}
	return usage, cost
}

// decodeObservation decodes an observation event's body. typ is the type
// the event sets ("body" to take it from the body, "" for none); newType
// is the type of a row an update creates.
func decodeObservation(body json.RawMessage, typ, newType string) (*ObservationPatch, error) {
	var b struct {
		ID                  string             `json:"id"`
		TraceID             string             `json:"traceId"`
		Type                *string            `json:"type"`
		ParentObservationID *string            `json:"parentObservationId"`
		Name                *string            `json:"name"`
		StartTime           *time.Time         `json:"startTime"`
		EndTime             *time.Time         `json:"endTime"`
		CompletionStartTime *time.Time         `json:"completionStartTime"`
		Input               json.RawMessage    `json:"input"`
		Output              json.RawMessage    `json:"output"`
		Metadata            json.RawMessage    `json:"metadata"`
		Level               *string            `json:"level"`
		StatusMessage       *string            `json:"statusMessage"`
		Version             *string            `json:"version"`
		Environment         *string            `json:"environment"`
		Model               *string            `json:"model"`
		ModelParameters     json.RawMessage    `json:"modelParameters"`
		UsageDetails        map[string]int64   `json:"usageDetails"`
		CostDetails         map[string]float64 `json:"costDetails"`
		Usage               *legacyUsage       `json:"usage"`
		PromptName          *string            `json:"promptName"`
		PromptVersion       *int               `json:"promptVersion"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, badEvent("invalid observation: %s", jsonMessage(err))
	}
	if err := checkID("body.id", b.ID); err != nil {
		return nil, err
	}
	if err := checkID("body.traceId", b.TraceID); err != nil {
		return nil, err
	}
	if b.ParentObservationID != nil && *b.ParentObservationID != "" {
		if err := checkID("body.parentObservationId", *b.ParentObservationID); err != nil {
			return nil, err
		}
	}
	if err := checkEnvironment(b.Environment); err != nil {
		return nil, err
	}
	if b.Level != nil && !slices.Contains([]string{LevelDebug, LevelDefault, LevelWarning, LevelError}, *b.Level) {
		return nil, badEvent("level must be DEBUG, DEFAULT, WARNING or ERROR")
	}
	if typ == "body" {
		typ = ""
		if b.Type != nil {
			typ = *b.Type
			newType = typ
		}
		if typ == "" || !slices.Contains(ObservationTypes(), typ) {
			return nil, badEvent("body.type must be one of %s", strings.Join(ObservationTypes(), ", "))
		}
	}
	p := &ObservationPatch{ID: b.ID, TraceID: b.TraceID, Type: typ, NewType: newType,
		ParentObservationID: b.ParentObservationID, Name: b.Name, StartTime: utc(b.StartTime), EndTime: utc(b.EndTime),
		CompletionStartTime: utc(b.CompletionStartTime), Input: sent(b.Input), Output: sent(b.Output),
		Metadata: sent(b.Metadata), Level: b.Level, StatusMessage: b.StatusMessage, Version: b.Version,
		Environment: b.Environment, Model: b.Model, ModelParameters: sent(b.ModelParameters),
		UsageDetails: b.UsageDetails, CostDetails: b.CostDetails, PromptName: b.PromptName, PromptVersion: b.PromptVersion}
	if b.Usage != nil {
		// usageDetails and costDetails win over the legacy object.
		usage, cost := b.Usage.details()
		if p.UsageDetails == nil {
			p.UsageDetails = usage
		}
		if p.CostDetails == nil {
			p.CostDetails = cost
		}
	}
	return p, nil
}

// decodeScore decodes a score-create body; a score without an id takes
// the envelope's, so a retry updates the same score.
func decodeScore(body json.RawMessage, envelopeID string) (*ScorePatch, error) {
	var b struct {
		ID            string          `json:"id"`
		TraceID       string          `json:"traceId"`
		ObservationID *string         `json:"observationId"`
		Name          *string         `json:"name"`
		Value         json.RawMessage `json:"value"`
		DataType      *string         `json:"dataType"`
		Comment       *string         `json:"comment"`
		Timestamp     *time.Time      `json:"timestamp"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, badEvent("invalid score: %s", jsonMessage(err))
	}
	if b.ID == "" {
		b.ID = envelopeID
	}
	if err := checkID("body.id", b.ID); err != nil {
		return nil, err
	}
	if err := checkID("body.traceId", b.TraceID); err != nil {
		return nil, err
	}
	if b.ObservationID != nil && *b.ObservationID != "" {
		if err := checkID("body.observationId", *b.ObservationID); err != nil {
			return nil, err
		}
	}
	if b.Name == nil || *b.Name == "" {
		return nil, badEvent("body.name is required")
	}
	p := &ScorePatch{ID: b.ID, TraceID: b.TraceID, ObservationID: b.ObservationID, Name: b.Name, DataType: b.DataType,
		Comment: b.Comment, Source: SourceAPI, Timestamp: utc(b.Timestamp)}
	if err := scoreValue(p, sent(b.Value)); err != nil {
		return nil, err
	}
	return p, nil
}

// scoreValue sets a score's value from its JSON (a number or a string)
// and checks it against the data type, which it infers when not given.
func scoreValue(p *ScorePatch, raw json.RawMessage) error {
	if raw == nil {
		return badEvent("body.value is required")
	}
	var num float64
	var str string
	switch {
	case json.Unmarshal(raw, &num) == nil:
		p.Value = &num
	case json.Unmarshal(raw, &str) == nil:
		p.StringValue = &str
	default:
		return badEvent("body.value must be a number or a string")
	}
	if p.DataType == nil {
		dt := DataNumeric
		if p.StringValue != nil {
			dt = DataCategorical
		}
		p.DataType = &dt
	}
	switch *p.DataType {
	case DataNumeric:
		if p.Value == nil {
			return badEvent("a NUMERIC score's value must be a number")
		}
	case DataBoolean:
		if p.Value == nil || (*p.Value != 0 && *p.Value != 1) {
			return badEvent("a BOOLEAN score's value must be 0 or 1")
		}
	case DataCategorical:
		if p.StringValue == nil {
			return badEvent("a CATEGORICAL score's value must be a string")
		}
	default:
		return badEvent("dataType must be NUMERIC, CATEGORICAL or BOOLEAN")
	}
	return nil
}
