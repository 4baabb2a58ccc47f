package tracing

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func event(name string, attrs ...*commonpb.KeyValue) *tracepb.Span_Event {
	return &tracepb.Span_Event{Name: name, Attributes: attrs,
		TimeUnixNano: uint64(time.Date(2026, 11, 1, 10, 0, 0, 5e8, time.UTC).UnixNano())}
}

// TestMapSpanConventions: the messages, model, usage, parameters and type
// of an LLM call as OpenLLMetry, OpenInference and the GenAI semantic
// conventions (attributes and span events) send them.
func TestMapSpanConventions(t *testing.T) {
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	span := func(events []*tracepb.Span_Event, attrs ...*commonpb.KeyValue) *tracepb.Span {
		return &tracepb.Span{TraceId: testTraceID, SpanId: testSpanID, ParentSpanId: testParent, Name: "llm",
			StartTimeUnixNano: uint64(start.UnixNano()), EndTimeUnixNano: uint64(start.Add(time.Second).UnixNano()),
			Attributes: attrs, Events: events}
	}
	tests := []struct {
		name                                      string
		span                                      *tracepb.Span
		typ, model, input, output, params, status string
		usage                                     map[string]int64
		metaEvents                                []string // the names of the events kept in the metadata
		consumed                                  []string // attributes (or indexed prefixes) that must not be in the metadata
		kept                                      []string // attributes that must be
	}{
		{name: "OpenLLMetry's indexed messages",
			span: span(nil, str("gen_ai.system", "openai"), str("gen_ai.request.model", "gpt-4o"),
				str("gen_ai.prompt.0.role", "system"), str("gen_ai.prompt.0.content", "Be brief."),
				str("gen_ai.prompt.1.role", "user"), str("gen_ai.prompt.1.content", "hi"),
				// Out of order and with a gap: the order of the indexes.
				str("gen_ai.prompt.10.content", "later"), str("gen_ai.prompt.10.role", "user"),
				str("gen_ai.completion.0.role", "assistant"), str("gen_ai.completion.0.finish_reason", "tool_calls"),
				str("gen_ai.completion.0.tool_calls.0.name", "search"),
				str("gen_ai.completion.0.tool_calls.0.arguments", `{"q":"x"}`),
				num("gen_ai.usage.prompt_tokens", 9), num("gen_ai.usage.completion_tokens", 4)),
			typ: TypeGeneration, model: "gpt-4o",
			input:  `[{"content":"Be brief.","role":"system"},{"content":"hi","role":"user"},{"content":"later","role":"user"}]`,
			output: `[{"finish_reason":"tool_calls","role":"assistant","tool_calls":[{"arguments":"{\"q\":\"x\"}","name":"search"}]}]`,
			usage:  map[string]int64{"input": 9, "output": 4, "total": 13}},
		{name: "a whole gen_ai.prompt wins over indexed ones",
			span: span(nil, str("gen_ai.prompt", "whole"), str("gen_ai.prompt.0.content", "part")),
			typ:  TypeSpan, input: `"whole"`},
		{name: "OpenInference",
			span: span(nil, str("openinference.span.kind", "LLM"), str("llm.model_name", "gpt-4o-mini"),
				str("input.value", `{"messages":"raw request"}`), str("output.value", "raw"),
				str("llm.input_messages.0.message.role", "user"), str("llm.input_messages.0.message.content", "hi"),
				str("llm.output_messages.0.message.role", "assistant"),
				str("llm.output_messages.0.message.content", "hello"),
				str("llm.output_messages.0.message.tool_calls.0.tool_call.function.name", "f"),
				num("llm.token_count.prompt", 5), num("llm.token_count.completion", 2), num("llm.token_count.total", 7),
				str("llm.invocation_parameters", `{"temperature":0.1}`)),
			typ: TypeGeneration, model: "gpt-4o-mini", input: `[{"content":"hi","role":"user"}]`,
			output: `[{"content":"hello","role":"assistant","tool_calls":[{"tool_call":{"function":{"name":"f"}}}]}]`,
			params: `{"temperature":0.1}`, usage: map[string]int64{"input": 5, "output": 2, "total": 7},
			consumed: []string{"llm.input_messages.", "llm.output_messages."}, kept: []string{"input.value", "output.value"}},
		{name: "OpenInference chain",
			span: span(nil, str("openinference.span.kind", "chain"), str("input.value", `{"question":"q"}`),
				str("output.value", "answer")),
			typ: TypeChain, input: `{"question":"q"}`, output: `"answer"`},
		{name: "semconv 1.37 messages and operation",
			span: span(nil, str("gen_ai.operation.name", "embeddings"), str("gen_ai.request.model", "text-embedding-3-small"),
				str("gen_ai.input.messages", `[{"role":"user","parts":[{"type":"text","content":"hi"}]}]`)),
			typ: TypeEmbedding, model: "text-embedding-3-small", input: `[{"role":"user","parts":[{"type":"text","content":"hi"}]}]`},
		{name: "a tool execution", span: span(nil, str("gen_ai.operation.name", "execute_tool"), str("gen_ai.tool.name", "search")),
			typ: TypeTool},
		{name: "Traceloop entities", span: span(nil, str("traceloop.span.kind", "workflow"),
			str("traceloop.entity.input", `{"inputs":{"q":"x"}}`), str("traceloop.entity.output", `{"outputs":"y"}`)),
			typ: TypeSpan, input: `{"inputs":{"q":"x"}}`, output: `{"outputs":"y"}`,
			consumed: []string{"traceloop.entity.input", "traceloop.entity.output"}, kept: []string{"traceloop.span.kind"}},
		{name: "semconv 1.27 span events, an exception",
			span: func() *tracepb.Span {
				sp := span([]*tracepb.Span_Event{
					event("gen_ai.content.prompt", str("gen_ai.prompt", `[{"role":"user","content":"hi"}]`)),
					event("gen_ai.content.completion", str("gen_ai.completion", "hello")),
					event("exception", str("exception.type", "ValueError"), str("exception.message", "bad"),
						str("exception.stacktrace", "at line 1")),
				}, str("gen_ai.request.model", "gpt-4o"))
				sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
				return sp
			}(),
			typ: TypeGeneration, model: "gpt-4o", input: `[{"role":"user","content":"hi"}]`, output: `"hello"`,
			status: "ValueError: bad", metaEvents: []string{"exception"}},
		{name: "semconv 1.37 details event",
			span: span([]*tracepb.Span_Event{event("gen_ai.client.inference.operation.details",
				str("gen_ai.input.messages", `[{"role":"user"}]`), str("gen_ai.output.messages", `[{"role":"assistant"}]`)),
				event("retry", num("attempt", 2))}),
			typ: TypeSpan, input: `[{"role":"user"}]`, output: `[{"role":"assistant"}]`, metaEvents: []string{"retry"}},
		{name: "a hostile index allocates nothing",
			span: span(nil, str("gen_ai.prompt.999999999999.content", "x"), str("gen_ai.prompt.1e9.content", "y")),
			typ:  TypeSpan, input: `{"1e9":{"content":"y"},"999999999999":{"content":"x"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, op, err := mapSpan(nil, nil, tt.span)
			if err != nil {
				t.Fatal(err)
			}
			if op.Type != tt.typ || deref(op.Model) != tt.model || string(op.Input) != tt.input ||
				string(op.Output) != tt.output || string(op.ModelParameters) != tt.params ||
				deref(op.StatusMessage) != tt.status || !reflect.DeepEqual(op.UsageDetails, tt.usage) {
				t.Errorf("observation = type %s model %q input %s output %s params %s status %q usage %v",
					op.Type, deref(op.Model), op.Input, op.Output, op.ModelParameters, deref(op.StatusMessage), op.UsageDetails)
			}
			var meta struct {
				Attributes map[string]any
				Events     []struct {
					Name       string
					Time       time.Time
					Attributes map[string]any
				}
			}
			if err := json.Unmarshal(op.Metadata, &meta); err != nil {
				t.Fatal(err)
			}
			// The attributes the input and output were made of are not
			// metadata too; those of a convention that lost stay there.
			for k := range meta.Attributes {
				if slices.ContainsFunc(tt.consumed, func(prefix string) bool { return k == prefix || indexedKey(k, prefix) }) {
					t.Errorf("payload attribute %s kept in the metadata", k)
				}
			}
			for _, k := range tt.kept {
				if _, ok := meta.Attributes[k]; !ok {
					t.Errorf("attribute %s of a convention that lost is not in the metadata", k)
				}
			}
			var names []string
			for _, e := range meta.Events {
				names = append(names, e.Name)
				if e.Time.IsZero() || e.Attributes == nil {
					t.Errorf("event %+v", e)
				}
			}
			if !reflect.DeepEqual(names, tt.metaEvents) {
				t.Errorf("events in the metadata %v, want %v", names, tt.metaEvents)
			}
		})
	}
}

func TestMapSpanRefusesEvents(t *testing.T) {
	many := make([]*tracepb.Span_Event, MaxSpanEvents+1)
	for i := range many {
		many[i] = event("e")
	}
	manyAttrs := make([]*commonpb.KeyValue, MaxSpanAttributes+1)
	for i := range manyAttrs {
		manyAttrs[i] = num("k", int64(i))
	}
	deepPath := "gen_ai.prompt.0" + strings.Repeat(".x", MaxDepth+1)
	for name, tc := range map[string]struct {
		span *tracepb.Span
		err  string
	}{
		"too many events":       {&tracepb.Span{TraceId: testTraceID, SpanId: testSpanID, Events: many}, "at most 1000 events"},
		"an event's attributes": {&tracepb.Span{TraceId: testTraceID, SpanId: testSpanID, Events: []*tracepb.Span_Event{event("gen_ai.content.prompt", manyAttrs...)}}, "at most 1000 attributes"},
		"a long event string": {&tracepb.Span{TraceId: testTraceID, SpanId: testSpanID, Events: []*tracepb.Span_Event{
			event("x", str("a", strings.Repeat("x", MaxStringBytes+1)))}}, "longer than"},
		"an indexed key too deep": {&tracepb.Span{TraceId: testTraceID, SpanId: testSpanID,
			Attributes: []*commonpb.KeyValue{str(deepPath, "x")}}, "deeper than"},
		// 16 MiB of dots would be 16 million segments to split.
		"a key of dots": {&tracepb.Span{TraceId: testTraceID, SpanId: testSpanID,
			Attributes: []*commonpb.KeyValue{str("gen_ai.prompt.0"+strings.Repeat(".", 1<<20), "x")}}, "name is at most"},
	} {
		if _, _, err := mapSpan(nil, nil, tc.span); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", name, err, tc.err)
		}
	}
}
