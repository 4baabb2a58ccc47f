package tracing

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func num(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func dbl(k string, v float64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}}
}

func strs(k string, vs ...string) *commonpb.KeyValue {
	arr := &commonpb.ArrayValue{}
	for _, v := range vs {
		arr.Values = append(arr.Values, &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}})
	}
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: arr}}}
}

var (
	testTraceID = []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	testSpanID  = []byte{1, 1, 1, 1, 1, 1, 1, 1}
	testParent  = []byte{2, 2, 2, 2, 2, 2, 2, 2}
)

func TestMapSpan(t *testing.T) {
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	span := func(parent []byte, attrs ...*commonpb.KeyValue) *tracepb.Span {
		return &tracepb.Span{TraceId: testTraceID, SpanId: testSpanID, ParentSpanId: parent, Name: "step",
			StartTimeUnixNano: uint64(start.UnixNano()), EndTimeUnixNano: uint64(start.Add(time.Second).UnixNano()),
			Attributes: attrs}
	}
	type want struct {
		typ, model, level, status, input, output, params string
		usage                                            map[string]int64
		trace                                            *TracePatch // nil: no trace patch; only the fields set are compared
	}
	tests := []struct {
		name     string
		span     *tracepb.Span
		resource []*commonpb.KeyValue
		want     want
	}{
		{name: "plain child span", span: span(testParent, str("http.method", "GET")), want: want{typ: TypeSpan}},
		{name: "gen_ai makes a generation",
			span: span(testParent, str("gen_ai.request.model", "gpt-4o"), str("gen_ai.response.model", "gpt-4o-2024-08-06"),
				num("gen_ai.usage.input_tokens", 12), num("gen_ai.usage.output_tokens", 3), dbl("gen_ai.request.temperature", 0.2),
				num("gen_ai.request.max_tokens", 100), str("gen_ai.prompt", `[{"role":"user","content":"hi"}]`),
				str("gen_ai.completion", "hello")),
			want: want{typ: TypeGeneration, model: "gpt-4o", input: `[{"role":"user","content":"hi"}]`, output: `"hello"`,
				params: `{"max_tokens":100,"temperature":0.2}`, usage: map[string]int64{"input": 12, "output": 3, "total": 15}}},
		{name: "legacy token names, a total sent",
			span: span(testParent, num("gen_ai.usage.prompt_tokens", 7), str("gen_ai.usage.completion_tokens", "2"),
				num("gen_ai.usage.total_tokens", 10)),
			want: want{typ: TypeGeneration, usage: map[string]int64{"input": 7, "output": 2, "total": 10}}},
		{name: "langfuse.* wins over gen_ai.*",
			span: span(testParent, str("langfuse.observation.model.name", "claude"), str("gen_ai.request.model", "gpt-4o"),
				str("langfuse.observation.usage_details", `{"input":5,"output":1}`), num("gen_ai.usage.input_tokens", 99),
				str("langfuse.observation.input", `{"q":1}`), str("gen_ai.prompt", "ignored"),
				str("langfuse.observation.type", "agent")),
			want: want{typ: TypeAgent, model: "claude", input: `{"q":1}`, usage: map[string]int64{"input": 5, "output": 1, "total": 6}}},
		{name: "unknown type falls back",
			span: span(testParent, str("langfuse.observation.type", "banana")), want: want{typ: TypeSpan}},
		{name: "error status", span: func() *tracepb.Span {
			sp := span(testParent)
			sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"}
			return sp
		}(), want: want{typ: TypeSpan, level: LevelError, status: "boom"}},
		{name: "langfuse level wins over the status", span: func() *tracepb.Span {
			sp := span(testParent, str("langfuse.observation.level", "warning"))
			sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
			return sp
		}(), want: want{typ: TypeSpan, level: LevelWarning}},
		// A langfuse.* key wins wherever it is, even on the resource.
		{name: "root names and dates the trace",
			span:     span(nil, str("gen_ai.prompt", "hi"), str("user.id", "u-1"), str("session.id", "s-1")),
			resource: []*commonpb.KeyValue{str("langfuse.user.id", "u-2"), str("deployment.environment", "staging")},
			want: want{typ: TypeSpan, input: `"hi"`, trace: &TracePatch{Name: ptr("step"), UserID: ptr("u-2"),
				SessionID: ptr("s-1"), Environment: ptr("staging"), Timestamp: &start, Input: json.RawMessage(`"hi"`)}}},
		{name: "trace attributes",
			span: span(nil, str("langfuse.trace.name", "chat"), str("langfuse.user.id", "u-1"), str("user.id", "u-0"),
				str("langfuse.session.id", "s-1"), strs("langfuse.trace.tags", "b", "a", "b"),
				str("langfuse.trace.metadata.k", "v"), str("deployment.environment", "Production")),
			want: want{typ: TypeSpan, trace: &TracePatch{Name: ptr("chat"), UserID: ptr("u-1"), SessionID: ptr("s-1"),
				Tags: []string{"a", "b"}, Metadata: json.RawMessage(`{"k":"v"}`), Timestamp: &start}}},
		{name: "a child's trace attributes patch the trace",
			span: span(testParent, str("langfuse.session.id", "s-9")),
			want: want{typ: TypeSpan, trace: &TracePatch{SessionID: ptr("s-9")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, op, err := mapSpan(tt.resource, nil, tt.span)
			if err != nil {
				t.Fatal(err)
			}
			if op.ID != "0101010101010101" || op.TraceID != "0102030405060708090a0b0c0d0e0f10" {
				t.Errorf("ids %s %s", op.ID, op.TraceID)
			}
			if op.Type != tt.want.typ || deref(op.Model) != tt.want.model || deref(op.Level) != tt.want.level ||
				deref(op.StatusMessage) != tt.want.status || string(op.Input) != tt.want.input ||
				string(op.Output) != tt.want.output || string(op.ModelParameters) != tt.want.params ||
				!reflect.DeepEqual(op.UsageDetails, tt.want.usage) {
				t.Errorf("observation = type %s model %q level %q status %q input %s output %s params %s usage %v",
					op.Type, deref(op.Model), deref(op.Level), deref(op.StatusMessage), op.Input, op.Output,
					op.ModelParameters, op.UsageDetails)
			}
			if !op.StartTime.Equal(start) || op.EndTime == nil || op.EndTime.Sub(start) != time.Second {
				t.Errorf("times %v %v", op.StartTime, op.EndTime)
			}
			var meta struct{ Attributes map[string]any }
			if err := json.Unmarshal(op.Metadata, &meta); err != nil || meta.Attributes == nil {
				t.Errorf("metadata %s", op.Metadata)
			}
			if _, ok := meta.Attributes["gen_ai.prompt"]; ok != (tt.name == "langfuse.* wins over gen_ai.*") {
				// The input is gen_ai.prompt unless langfuse's own won:
				// then gen_ai.prompt stays in the metadata.
				t.Errorf("gen_ai.prompt in the metadata: %v", ok)
			}
			if (tp == nil) != (tt.want.trace == nil) {
				t.Fatalf("trace patch = %+v, want %+v", tp, tt.want.trace)
			}
			if tp != nil {
				w := tt.want.trace
				w.ID = op.TraceID
				if w.Input == nil {
					w.Input = tp.Input
				}
				if !reflect.DeepEqual(tp, w) {
					t.Errorf("trace patch = %+v\nwant %+v", *tp, *w)
				}
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestMapSpanRefuses(t *testing.T) {
	many := make([]*commonpb.KeyValue, MaxSpanAttributes+1)
	for i := range many {
		many[i] = num("k", int64(i))
	}
	deep := &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "x"}}
	for range MaxDepth + 2 {
		deep = &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{deep}}}}
	}
	tests := []struct {
		name string
		span *tracepb.Span
		err  string
	}{
		{"too many attributes", &tracepb.Span{TraceId: testTraceID, SpanId: testSpanID, Attributes: many}, "at most 1000 attributes"},
		{"long string", &tracepb.Span{TraceId: testTraceID, SpanId: testSpanID,
			Attributes: []*commonpb.KeyValue{str("a", strings.Repeat("x", MaxStringBytes+1))}}, "longer than"},
		{"deep value", &tracepb.Span{TraceId: testTraceID, SpanId: testSpanID,
			Attributes: []*commonpb.KeyValue{{Key: "d", Value: deep}}}, "deeper than"},
		{"no span id", &tracepb.Span{TraceId: testTraceID}, "needs a trace id"},
		{"zero trace id", &tracepb.Span{TraceId: make([]byte, 16), SpanId: testSpanID}, "all zero"},
		{"short id", &tracepb.Span{TraceId: testTraceID[:5], SpanId: testSpanID}, "16 bytes"},
		{"bad usage details", &tracepb.Span{TraceId: testTraceID, SpanId: testSpanID,
			Attributes: []*commonpb.KeyValue{str("langfuse.observation.usage_details", "lots")}}, "usage_details"},
	}
	for _, tt := range tests {
		_, _, err := mapSpan(nil, nil, tt.span)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
		}
	}
}

// OTLP JSON's hex ids, read by protojson as base64, come back as the hex.
func TestDecodeOTLPJSONHexIDs(t *testing.T) {
	body := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C",
		"spanId":"eee19b7ec3c1b174","parentSpanId":"","name":"x","unknownField":1}]}]}]}`
	td, err := DecodeOTLP([]byte(body), true)
	if err != nil {
		t.Fatal(err)
	}
	sp := td.ResourceSpans[0].ScopeSpans[0].Spans[0]
	_, op, err := mapSpan(nil, nil, sp)
	if err != nil {
		t.Fatal(err)
	}
	if op.TraceID != "5b8efff798038103d269b633813fc60c" || op.ID != "eee19b7ec3c1b174" || *op.ParentObservationID != "" {
		t.Errorf("ids %s %s %q", op.TraceID, op.ID, *op.ParentObservationID)
	}
}

func TestEncodeOTLPResponse(t *testing.T) {
	if b := EncodeOTLPResponse(OTLPResult{}, false); len(b) != 0 {
		t.Errorf("empty response = %x", b)
	}
	if b := string(EncodeOTLPResponse(OTLPResult{RejectedSpans: 2, ErrorMessage: "no"}, true)); b != `{"partialSuccess":{"errorMessage":"no","rejectedSpans":"2"}}` {
		t.Errorf("JSON response = %s", b)
	}
}
