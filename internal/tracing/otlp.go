package tracing

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file is the OpenTelemetry endpoint's half of ingestion: it decodes
// an OTLP export (protobuf or OTLP JSON), maps each span to the same
// patches the Langfuse batch API makes, following Langfuse's attribute
// mapping (langfuse.* over gen_ai.* over other conventions: see
// otlp_genai.go), and applies them through the store like any batch.
//
// The request is decoded as trace.v1.TracesData, which the OTLP protos
// declare wire-compatible with collector.trace.v1.ExportTraceServiceRequest
// (both are `repeated ResourceSpans resource_spans = 1`): the collector
// package would link gRPC and grpc-gateway into the binary for nothing.

// Bounds of the OTLP endpoint. The compressed body is bounded by
// MaxBatchBytes, like a batch.
const (
	MaxOTLPBytes         = 16 << 20 // a decompressed body
	MaxOTLPSpans         = 10000    // spans in one export
	MaxSpanAttributes    = 1000     // attributes of one span, and of one resource
	MaxOTLPStoredBytes   = 32 << 20 // JSON one export may store: resource attributes repeat in each span's metadata
	maxOTLPErrorMessages = 5        // distinct reasons named in a partial success
)

// OTLPResult is the answer to an export: how many spans were refused and
// why.
type OTLPResult struct {
	RejectedSpans int64
	ErrorMessage  string
}

// DecodeOTLP decodes an export: protobuf, or OTLP JSON when isJSON. OTLP
// JSON writes trace and span ids as hex, not the base64 protojson expects
// of bytes; see otlpID.
func DecodeOTLP(body []byte, isJSON bool) (*tracepb.TracesData, error) {
	td := &tracepb.TracesData{}
	var err error
	if isJSON {
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, td)
	} else {
		err = proto.Unmarshal(body, td)
	}
	if err != nil {
		return nil, nodus.Errorf(nodus.EINVALID, "invalid OTLP export: %v", err)
	}
	return td, nil
}

// EncodeOTLPResponse encodes an ExportTraceServiceResponse: a
// partial_success only when spans were refused.
func EncodeOTLPResponse(res OTLPResult, isJSON bool) []byte {
	if isJSON {
		if res.RejectedSpans == 0 {
			return []byte("{}")
		}
		// protojson writes an int64 as a string.
		b, _ := json.Marshal(map[string]any{"partialSuccess": map[string]string{
			"rejectedSpans": strconv.FormatInt(res.RejectedSpans, 10), "errorMessage": res.ErrorMessage}})
		return b
	}
	if res.RejectedSpans == 0 {
		return []byte{}
	}
	var ps []byte
	ps = protowire.AppendTag(ps, 1, protowire.VarintType)
	ps = protowire.AppendVarint(ps, uint64(res.RejectedSpans))
	ps = protowire.AppendTag(ps, 2, protowire.BytesType)
	ps = protowire.AppendString(ps, res.ErrorMessage)
	out := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(out, ps)
}

// EncodeOTLPStatus encodes a google.rpc.Status, the body OTLP/HTTP gives
// a refused request. code is a gRPC status code.
func EncodeOTLPStatus(code int32, msg string, isJSON bool) []byte {
	if isJSON {
		b, _ := json.Marshal(map[string]any{"code": code, "message": msg})
		return b
	}
	var out []byte
	out = protowire.AppendTag(out, 1, protowire.VarintType)
	out = protowire.AppendVarint(out, uint64(code))
	out = protowire.AppendTag(out, 2, protowire.BytesType)
	return protowire.AppendString(out, msg)
}

// IngestOTLP applies an export for a tenant in one transaction. A span
// that breaks a bound is refused on its own and counted in the result;
// more than MaxOTLPSpans spans refuse the export. An error means nothing
// was applied.
func (s *Service) IngestOTLP(ctx context.Context, tenantID string, td *tracepb.TracesData) (OTLPResult, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return OTLPResult{}, err
	}
	n := 0
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	if n > MaxOTLPSpans {
		return OTLPResult{}, nodus.Errorf(nodus.EINVALID, "an export holds at most %d spans, this one %d", MaxOTLPSpans, n)
	}
	now := s.now()
	var res OTLPResult
	var reasons []string
	budget := MaxOTLPStoredBytes
	events := make([]Event, 0, n)
	for _, rs := range td.GetResourceSpans() {
		resource := rs.GetResource().GetAttributes()
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				tp, op, err := mapSpan(resource, ss.GetScope(), sp)
				if err == nil {
					size := len(op.Metadata) + len(op.Input) + len(op.Output) + len(op.ModelParameters)
					if tp != nil {
						size += len(tp.Metadata) + len(tp.Input) + len(tp.Output)
					}
					if budget -= size; budget < 0 {
						err = badEvent("the export's spans store more than %d MiB of JSON; send smaller exports", MaxOTLPStoredBytes>>20)
					}
				}
				if err != nil {
					res.RejectedSpans++
					if msg := err.Error(); len(reasons) < maxOTLPErrorMessages && !slices.Contains(reasons, msg) {
						reasons = append(reasons, msg)
					}
					continue
				}
				if tp != nil {
					events = append(events, Event{ID: nodus.NewID(), Timestamp: now, Trace: tp})
				}
				events = append(events, Event{ID: nodus.NewID(), Timestamp: now, Observation: op})
			}
		}
	}
	res.ErrorMessage = strings.Join(reasons, "; ")
	if len(events) > 0 {
		s.priceEvents(ctx, tenantID, events)
		if _, err := s.store.IngestEvents(ctx, events, now); err != nil {
			return OTLPResult{}, fmt.Errorf("tracing: ingest OTLP: %w", err)
		}
	}
	return res, nil
}

// otlpID returns an id's text: lowercase hex of size bytes, "" for an
// empty id. protojson has read OTLP JSON's hex as base64, which hex digits
// also are: 32 hex characters decode to 24 bytes (16 to 12) whose base64
// is the hex again, so re-encoding recovers it exactly. An id of the right
// size is taken as is (protobuf, or a client sending base64).
func otlpID(b []byte, size int) (string, error) {
	switch len(b) {
	case 0:
		return "", nil
	case size:
	case size * 3 / 2:
		raw, err := hex.DecodeString(base64.StdEncoding.EncodeToString(b))
		if err != nil {
			return "", badEvent("ids must be hex")
		}
		b = raw
	default:
		return "", badEvent("a trace id is 16 bytes and a span id 8")
	}
	if !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
		return "", badEvent("ids must not be all zero")
	}
	return hex.EncodeToString(b), nil
}

// spanAttrs indexes a span's attributes, then its resource's: a span's
// key hides the resource's.
type spanAttrs struct {
	span, resource map[string]*commonpb.AnyValue
}

func (a spanAttrs) get(keys ...string) *commonpb.AnyValue {
	for _, k := range keys {
		if v, ok := a.span[k]; ok {
			return v
		}
		if v, ok := a.resource[k]; ok {
			return v
		}
	}
	return nil
}

func (a spanAttrs) str(keys ...string) *string {
	v := a.get(keys...)
	if v == nil {
		return nil
	}
	if s, ok := v.Value.(*commonpb.AnyValue_StringValue); ok && s.StringValue != "" {
		return &s.StringValue
	}
	return nil
}

func index(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := make(map[string]*commonpb.AnyValue, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

// gen_ai.request.* attributes that are model parameters.
var modelParameters = []string{"temperature", "max_tokens", "top_p", "top_k", "frequency_penalty", "presence_penalty",
	"seed"}

// mapSpan maps one span to the observation it is and, when it carries
// trace-level attributes or is the trace's root, a trace patch.
func mapSpan(resource []*commonpb.KeyValue, scope *commonpb.InstrumentationScope, sp *tracepb.Span) (*TracePatch, *ObservationPatch, error) {
	if len(sp.GetAttributes()) > MaxSpanAttributes || len(resource) > MaxSpanAttributes {
		return nil, nil, badEvent("a span and its resource have at most %d attributes each", MaxSpanAttributes)
	}
	traceID, err := otlpID(sp.GetTraceId(), 16)
	if err != nil {
		return nil, nil, err
	}
	spanID, err := otlpID(sp.GetSpanId(), 8)
	if err != nil {
		return nil, nil, err
	}
	parentID, err := otlpID(sp.GetParentSpanId(), 8)
	if err != nil {
		return nil, nil, err
	}
	if traceID == "" || spanID == "" {
		return nil, nil, badEvent("a span needs a trace id and a span id")
	}
	if len(sp.GetName()) > MaxStringBytes || len(sp.GetStatus().GetMessage()) > MaxStringBytes {
		return nil, nil, badEvent("a span's name and status message are at most %d bytes", MaxStringBytes)
	}
	for _, kv := range sp.GetAttributes() {
		if len(kv.GetKey()) > MaxAttributeKeyBytes {
			return nil, nil, badEvent("an attribute's name is at most %d bytes", MaxAttributeKeyBytes)
		}
	}
	a := spanAttrs{span: index(sp.GetAttributes()), resource: index(resource)}
	// The span events' bounds first: the payloads may come from them.
	events, err := spanEvents(sp)
	if err != nil {
		return nil, nil, err
	}
	input, inputFrom, err := inputSide.payloadOf(sp, a)
	if err != nil {
		return nil, nil, err
	}
	output, outputFrom, err := outputSide.payloadOf(sp, a)
	if err != nil {
		return nil, nil, err
	}

	// Metadata: the attributes, less those the input and output were
	// made of (a convention that lost to another stays here) and the
	// trace's, and the langfuse.*.metadata.* keys that become metadata
	// keys.
	spanMeta, obsMeta, traceMeta := map[string]any{}, map[string]any{}, map[string]any{}
	for _, kv := range sp.GetAttributes() {
		k := kv.GetKey()
		v, err := anyJSON(kv.GetValue(), 0)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case strings.HasPrefix(k, "langfuse.observation.metadata."):
			obsMeta[strings.TrimPrefix(k, "langfuse.observation.metadata.")] = v
		case strings.HasPrefix(k, "langfuse.trace.metadata."):
			traceMeta[strings.TrimPrefix(k, "langfuse.trace.metadata.")] = v
		case !inputFrom.consumed(k) && !outputFrom.consumed(k) && !slices.Contains(traceKeys, k):
			spanMeta[k] = v
		}
	}
	resourceMeta := map[string]any{}
	for _, kv := range resource {
		v, err := anyJSON(kv.GetValue(), 0)
		if err != nil {
			return nil, nil, err
		}
		resourceMeta[kv.GetKey()] = v
	}
	obsMeta["attributes"] = spanMeta
	obsMeta["resourceAttributes"] = resourceMeta
	if len(events) > 0 {
		obsMeta["events"] = events
	}
	if scope.GetName() != "" {
		obsMeta["scope"] = map[string]string{"name": scope.GetName(), "version": scope.GetVersion()}
	}

	op := &ObservationPatch{ID: spanID, TraceID: traceID, ParentObservationID: &parentID, Name: ptr(sp.GetName()),
		StartTime: unixNano(sp.GetStartTimeUnixNano()), EndTime: unixNano(sp.GetEndTimeUnixNano())}
	if op.Metadata, err = boundedJSON(obsMeta); err != nil {
		return nil, nil, err
	}
	op.Input, op.Output = input, output
	op.Model = a.str("langfuse.observation.model.name", "gen_ai.request.model", "gen_ai.response.model", "llm.model_name")
	if op.UsageDetails, err = usage(a); err != nil {
		return nil, nil, err
	}
	if op.CostDetails, err = costs(a); err != nil {
		return nil, nil, err
	}
	if op.ModelParameters, err = params(a); err != nil {
		return nil, nil, err
	}
	if t := a.str("langfuse.observation.completion_start_time"); t != nil {
		if at, err := time.Parse(time.RFC3339Nano, strings.Trim(*t, `"`)); err == nil {
			op.CompletionStartTime = utc(&at)
		}
	}
	op.Version = a.str("langfuse.version")
	op.Environment = environment(a)

	// Level: Langfuse's own attribute, else the span's status.
	if l := a.str("langfuse.observation.level"); l != nil && slices.Contains([]string{LevelDebug, LevelDefault, LevelWarning, LevelError}, strings.ToUpper(*l)) {
		op.Level = ptr(strings.ToUpper(*l))
	} else if sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		op.Level = ptr(LevelError)
	}
	if m := a.str("langfuse.observation.status_message"); m != nil {
		op.StatusMessage = m
	} else if m := sp.GetStatus().GetMessage(); m != "" {
		op.StatusMessage = &m
	} else if m := exceptionMessage(sp); m != "" && op.Level != nil && *op.Level == LevelError {
		op.StatusMessage = &m
	}

	// Type: Langfuse's attribute when it names a type, else the type
	// OpenInference's span kind or the GenAI operation names, else a
	// GENERATION when the span names a model or usage, else a SPAN.
	op.Type = TypeSpan
	if t := a.str("langfuse.observation.type"); t != nil && slices.Contains(ObservationTypes(), strings.ToUpper(*t)) {
		op.Type = strings.ToUpper(*t)
	} else if t := conventionType(a); t != "" {
		op.Type = t
	} else if op.Model != nil || op.UsageDetails != nil {
		op.Type = TypeGeneration
	}
	op.NewType = op.Type

	tp, err := traceOf(a, traceMeta, traceID, parentID == "", sp, op)
	return tp, op, err
}

// traceOf returns the trace patch a span's trace-level attributes make,
// nil when it has none. The root span also names the trace, dates it and
// gives it its input and output unless the attributes do.
func traceOf(a spanAttrs, meta map[string]any, traceID string, root bool, sp *tracepb.Span, op *ObservationPatch) (*TracePatch, error) {
	tp := &TracePatch{ID: traceID, Name: a.str("langfuse.trace.name"), UserID: a.str("langfuse.user.id", "user.id"),
		SessionID: a.str("langfuse.session.id", "session.id"), Release: a.str("langfuse.release"),
		Version: a.str("langfuse.version"), Environment: environment(a)}
	if v, ok := a.get("langfuse.trace.public").GetValue().(*commonpb.AnyValue_BoolValue); ok {
		tp.Public = &v.BoolValue
	}
	if v := a.get("langfuse.trace.tags"); v != nil {
		tags, err := tagsOf(v)
		if err != nil {
			return nil, err
		}
		tp.Tags = tags
	}
	var err error
	if tp.Input, err = payload(a.get("langfuse.trace.input")); err != nil {
		return nil, err
	}
	if tp.Output, err = payload(a.get("langfuse.trace.output")); err != nil {
		return nil, err
	}
	if len(meta) > 0 {
		if tp.Metadata, err = boundedJSON(meta); err != nil {
			return nil, err
		}
	}
	if root {
		if tp.Name == nil {
			tp.Name = op.Name
		}
		tp.Timestamp = op.StartTime
		if tp.Input == nil {
			tp.Input = op.Input
		}
		if tp.Output == nil {
			tp.Output = op.Output
		}
	}
	if emptyTrace(tp) {
		return nil, nil
	}
	return tp, nil
}

// emptyTrace reports whether a trace patch sends nothing.
func emptyTrace(p *TracePatch) bool {
	return p.Name == nil && p.UserID == nil && p.SessionID == nil && p.Release == nil && p.Version == nil &&
		p.Environment == nil && p.Tags == nil && p.Public == nil && p.Input == nil && p.Output == nil &&
		p.Metadata == nil && p.Timestamp == nil
}

func ptr[T any](v T) *T { return &v }

func unixNano(ns uint64) *time.Time {
	if ns == 0 || ns > math.MaxInt64 {
		return nil
	}
	t := time.Unix(0, int64(ns)).UTC()
	return &t
}

// environment is langfuse.environment or deployment.environment(.name)
// when it is one Langfuse accepts; another is left out, not refused.
func environment(a spanAttrs) *string {
	e := a.str("langfuse.environment", "deployment.environment.name", "deployment.environment")
	if e == nil || checkEnvironment(e) != nil {
		return nil
	}
	return e
}

// tagsOf reads langfuse.trace.tags: a string array, or a string holding a
// JSON array or one tag.
func tagsOf(v *commonpb.AnyValue) ([]string, error) {
	var tags []string
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_ArrayValue:
		for _, e := range x.ArrayValue.GetValues() {
			if s, ok := e.GetValue().(*commonpb.AnyValue_StringValue); ok && s.StringValue != "" {
				tags = append(tags, s.StringValue)
			}
		}
	case *commonpb.AnyValue_StringValue:
		if json.Unmarshal([]byte(x.StringValue), &tags) != nil {
			tags = []string{x.StringValue}
		}
	}
	if len(tags) > MaxTags {
		return nil, badEvent("a trace has at most %d tags", MaxTags)
	}
	for _, t := range tags {
		if len(t) > MaxStringBytes {
			return nil, badEvent("a tag is at most %d bytes", MaxStringBytes)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(tags))), nil
}

// anyJSON converts an attribute value to a JSON value, bounding strings
// and nesting.
func anyJSON(v *commonpb.AnyValue, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, badEvent("an attribute is nested deeper than %d levels", MaxDepth)
	}
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		if len(x.StringValue) > MaxStringBytes {
			return nil, badEvent("an attribute string is longer than %d bytes", MaxStringBytes)
		}
		return x.StringValue, nil
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue, nil
	case *commonpb.AnyValue_IntValue:
		return x.IntValue, nil
	case *commonpb.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64), nil
		}
		return x.DoubleValue, nil
	case *commonpb.AnyValue_BytesValue:
		if len(x.BytesValue) > MaxStringBytes*3/4 {
			return nil, badEvent("an attribute string is longer than %d bytes", MaxStringBytes)
		}
		return x.BytesValue, nil // encoding/json writes base64
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			j, err := anyJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, j)
		}
		return out, nil
	case *commonpb.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			j, err := anyJSON(kv.GetValue(), depth+1)
			if err != nil {
				return nil, err
			}
			out[kv.GetKey()] = j
		}
		return out, nil
	}
	return nil, nil
}

// boundedJSON encodes v and holds it to CheckJSON's bounds.
func boundedJSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, badEvent("an attribute cannot be stored as JSON")
	}
	if err := CheckJSON(b); err != nil {
		return nil, badEvent("span refused: %v", err)
	}
	return b, nil
}

// payload is an input or output: a string holding JSON is that JSON (the
// SDKs serialise it so), another string is a JSON string, and another
// value its JSON. nil when not sent.
func payload(v *commonpb.AnyValue) (json.RawMessage, error) {
	if v == nil || v.Value == nil {
		return nil, nil
	}
	if s, ok := v.Value.(*commonpb.AnyValue_StringValue); ok {
		b := []byte(s.StringValue)
		if len(b) > MaxStringBytes {
			return nil, badEvent("an attribute string is longer than %d bytes", MaxStringBytes)
		}
		if json.Valid(b) && utf8.Valid(b) {
			if err := CheckJSON(b); err != nil {
				return nil, badEvent("span refused: %v", err)
			}
			return bytes.TrimSpace(b), nil
		}
		return boundedJSON(s.StringValue)
	}
	j, err := anyJSON(v, 0)
	if err != nil {
		return nil, err
	}
	return boundedJSON(j)
}

// count reads a token count: an int, an integral double or a decimal
// string; ok is false for anything else.
func count(v *commonpb.AnyValue) (int64, bool) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_IntValue:
		return x.IntValue, x.IntValue >= 0
	case *commonpb.AnyValue_DoubleValue:
		return int64(x.DoubleValue), x.DoubleValue >= 0 && x.DoubleValue == math.Trunc(x.DoubleValue) && x.DoubleValue < 1<<53
	case *commonpb.AnyValue_StringValue:
		n, err := strconv.ParseInt(x.StringValue, 10, 64)
		return n, err == nil && n >= 0
	}
	return 0, false
}

// usage is langfuse.observation.usage_details (a JSON object) when sent,
// else gen_ai.usage.* or OpenInference's llm.token_count.*; a total is
// added when none was sent.
func usage(a spanAttrs) (map[string]int64, error) {
	var u map[string]int64
	if s := a.str("langfuse.observation.usage_details"); s != nil {
		if err := json.Unmarshal([]byte(*s), &u); err != nil {
			return nil, badEvent("langfuse.observation.usage_details must be a JSON object of integers")
		}
	} else {
		u = map[string]int64{}
		for key, attrs := range map[string][]string{
			"input":  {"gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"},
			"output": {"gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"},
			"total":  {"gen_ai.usage.total_tokens", "llm.token_count.total"},
		} {
			if n, ok := count(a.get(attrs...)); ok {
				u[key] = n
			}
		}
	}
	if len(u) == 0 {
		return nil, nil
	}
	if len(u) > MaxObjectKeys {
		return nil, badEvent("usage details have at most %d keys", MaxObjectKeys)
	}
	if _, ok := u["total"]; !ok {
		var total int64
		for _, n := range u {
			total += n
		}
		u["total"] = total
	}
	return u, nil
}

// costs is langfuse.observation.cost_details, a JSON object of USD.
func costs(a spanAttrs) (map[string]float64, error) {
	s := a.str("langfuse.observation.cost_details")
	if s == nil {
		return nil, nil
	}
	var c map[string]float64
	if err := json.Unmarshal([]byte(*s), &c); err != nil || len(c) > MaxObjectKeys {
		return nil, badEvent("langfuse.observation.cost_details must be a JSON object of numbers")
	}
	if len(c) == 0 {
		return nil, nil
	}
	return c, nil
}

// params is langfuse.observation.model.parameters (JSON) when sent, else
// the gen_ai.request.* parameters, else OpenInference's
// llm.invocation_parameters (JSON).
func params(a spanAttrs) (json.RawMessage, error) {
	if v := a.get("langfuse.observation.model.parameters"); v != nil {
		return payload(v)
	}
	p := map[string]any{}
	for _, name := range modelParameters {
		if v := a.get("gen_ai.request." + name); v != nil {
			j, err := anyJSON(v, 0)
			if err != nil {
				return nil, err
			}
			p[name] = j
		}
	}
	if len(p) == 0 {
		if v := a.get("llm.invocation_parameters"); v != nil {
			return payload(v)
		}
		return nil, nil
	}
	return boundedJSON(p)
}
