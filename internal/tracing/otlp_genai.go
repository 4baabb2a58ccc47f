package tracing

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// This file reads the conventions besides Langfuse's own that carry an
// LLM call's messages in OTLP spans, as Langfuse's OTel endpoint does:
//
//   - OpenTelemetry's GenAI conventions: gen_ai.prompt / gen_ai.completion
//     (a string), gen_ai.input.messages / gen_ai.output.messages (JSON,
//     semconv 1.37), or span events: gen_ai.content.prompt and
//     gen_ai.content.completion (an attribute gen_ai.prompt or
//     gen_ai.completion), gen_ai.client.inference.operation.details (the
//     messages attributes);
//   - OpenLLMetry (Traceloop) indexed attributes: gen_ai.prompt.0.role,
//     gen_ai.prompt.0.content, gen_ai.completion.0.tool_calls.0.name, …,
//     and traceloop.entity.input / traceloop.entity.output;
//   - OpenInference (Arize Phoenix): llm.input_messages.0.message.role, …,
//     input.value / output.value, llm.model_name, llm.token_count.*,
//     llm.invocation_parameters, openinference.span.kind.
//
// Indexed attributes are put back together as the JSON they flattened: an
// array of messages, each an object, numbered segments arrays again.

// MaxSpanEvents bounds the events of one span, and MaxAttributeKeyBytes
// the name of an attribute.
const (
	MaxSpanEvents        = 1000
	MaxAttributeKeyBytes = 4 << 10
)

// messageSide names where one side of a call (its input or its output) may
// be, in order of precedence.
type messageSide struct {
	attrs         []string // whole payloads: Langfuse's, gen_ai.*, semconv 1.37
	indexed       string   // OpenLLMetry's indexed attributes
	openInference string   // OpenInference's indexed messages
	fallback      []string // whole payloads of lower precedence
	event         string   // the semconv ≤ 1.27 span event …
	eventAttr     string   // … and its attribute
	detailsAttr   string   // the attribute of gen_ai.client.inference.operation.details
}

var (
	inputSide = messageSide{attrs: []string{"langfuse.observation.input", "gen_ai.prompt", "gen_ai.input.messages"},
		indexed: "gen_ai.prompt.", openInference: "llm.input_messages.",
		fallback: []string{"input.value", "traceloop.entity.input"},
		event:    "gen_ai.content.prompt", eventAttr: "gen_ai.prompt", detailsAttr: "gen_ai.input.messages"}
	outputSide = messageSide{attrs: []string{"langfuse.observation.output", "gen_ai.completion", "gen_ai.output.messages"},
		indexed: "gen_ai.completion.", openInference: "llm.output_messages.",
		fallback: []string{"output.value", "traceloop.entity.output"},
		event:    "gen_ai.content.completion", eventAttr: "gen_ai.completion", detailsAttr: "gen_ai.output.messages"}
)

// detailsEvent is semconv 1.37's event holding a call's messages.
const detailsEvent = "gen_ai.client.inference.operation.details"

// payloadSource is the attribute a payload came from: a whole one (key)
// or the indexed ones under prefix; both empty when it came from an event
// or there was none.
type payloadSource struct{ key, prefix string }

// consumed reports whether attribute k is part of the payload.
func (p payloadSource) consumed(k string) bool {
	return p.key != "" && k == p.key || p.prefix != "" && indexedKey(k, p.prefix)
}

// payloadOf is one side of a span's call and where it came from; nil when
// the span carries none.
func (s messageSide) payloadOf(sp *tracepb.Span, a spanAttrs) (json.RawMessage, payloadSource, error) {
	for _, k := range s.attrs {
		if v := a.get(k); v != nil {
			p, err := payload(v)
			return p, payloadSource{key: k}, err
		}
	}
	for _, ix := range []struct{ prefix, wrapper string }{{s.indexed, ""}, {s.openInference, "message"}} {
		if p, err := indexedPayload(sp.GetAttributes(), ix.prefix, ix.wrapper); p != nil || err != nil {
			return p, payloadSource{prefix: ix.prefix}, err
		}
	}
	for _, k := range s.fallback {
		if v := a.get(k); v != nil {
			p, err := payload(v)
			return p, payloadSource{key: k}, err
		}
	}
	for _, ev := range sp.GetEvents() {
		var key string
		switch ev.GetName() {
		case s.event:
			key = s.eventAttr
		case detailsEvent:
			key = s.detailsAttr
		default:
			continue
		}
		for _, kv := range ev.GetAttributes() {
			if kv.GetKey() == key {
				p, err := payload(kv.GetValue())
				return p, payloadSource{}, err
			}
		}
	}
	return nil, payloadSource{}, nil
}

// traceKeys are the trace's payloads, never an observation's metadata.
var traceKeys = []string{"langfuse.trace.input", "langfuse.trace.output"}

// indexedKey reports whether k is prefix followed by an index: the
// flattened form of an array.
func indexedKey(k, prefix string) bool {
	return len(k) > len(prefix) && strings.HasPrefix(k, prefix) && k[len(prefix)] >= '0' && k[len(prefix)] <= '9'
}

// isPayloadEvent reports whether a span event carries messages, which
// become the input or output rather than metadata.
func isPayloadEvent(name string) bool {
	return name == inputSide.event || name == outputSide.event || name == detailsEvent
}

// indexedPayload puts the attributes prefix.N.path… of a span back
// together as the JSON array they flattened, nil when there are none.
// wrapper, when set, is a segment after the index that wraps each element
// (OpenInference's "message"), left out. Indexes need not be contiguous:
// the elements come in index order, so a hostile index allocates nothing.
func indexedPayload(kvs []*commonpb.KeyValue, prefix, wrapper string) (json.RawMessage, error) {
	var root attrTree
	for _, kv := range kvs {
		k := kv.GetKey()
		if !indexedKey(k, prefix) {
			continue
		}
		if strings.Count(k[len(prefix):], ".") >= MaxDepth {
			return nil, badEvent("an attribute is nested deeper than %d levels", MaxDepth)
		}
		path := strings.Split(k[len(prefix):], ".")
		if wrapper != "" && len(path) > 1 && path[1] == wrapper {
			path = slices.Delete(path, 1, 2)
		}
		v, err := anyJSON(kv.GetValue(), len(path))
		if err != nil {
			return nil, err
		}
		root.set(path, v)
	}
	if root.kids == nil {
		return nil, nil
	}
	return boundedJSON(root.value())
}

// attrTree is flattened attributes being put back together: a value, or
// children by segment.
type attrTree struct {
	leaf any
	kids map[string]*attrTree
}

func (t *attrTree) set(path []string, v any) {
	for _, seg := range path {
		if t.kids == nil {
			t.kids = map[string]*attrTree{}
		}
		c := t.kids[seg]
		if c == nil {
			c = &attrTree{}
			t.kids[seg] = c
		}
		t = c
	}
	t.leaf = v
}

// value is the JSON the tree stands for: children numbered 0, 1, … (any
// non-negative integers) an array in their order, other children an
// object. A value with children under it too (a.b and a.b.c both sent)
// gives way to the children.
func (t *attrTree) value() any {
	if len(t.kids) == 0 {
		return t.leaf
	}
	type indexed struct {
		i int
		t *attrTree
	}
	elems := make([]indexed, 0, len(t.kids))
	for k, c := range t.kids {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || strconv.Itoa(i) != k {
			elems = nil
			break
		}
		elems = append(elems, indexed{i, c})
	}
	if elems != nil {
		slices.SortFunc(elems, func(a, b indexed) int { return a.i - b.i })
		out := make([]any, len(elems))
		for j, e := range elems {
			out[j] = e.t.value()
		}
		return out
	}
	out := make(map[string]any, len(t.kids))
	for k, c := range t.kids {
		out[k] = c.value()
	}
	return out
}

// spanKinds maps OpenInference's span kinds and the GenAI conventions'
// operation names to observation types.
var (
	openInferenceKinds = map[string]string{"LLM": TypeGeneration, "EMBEDDING": TypeEmbedding, "CHAIN": TypeChain,
		"RETRIEVER": TypeRetriever, "TOOL": TypeTool, "AGENT": TypeAgent, "EVALUATOR": TypeEvaluator,
		"GUARDRAIL": TypeGuardrail}
	genAIOperations = map[string]string{"chat": TypeGeneration, "text_completion": TypeGeneration,
		"generate_content": TypeGeneration, "embeddings": TypeEmbedding, "execute_tool": TypeTool,
		"invoke_agent": TypeAgent, "create_agent": TypeAgent}
)

// conventionType is the observation type another convention names for a
// span, "" when none does.
func conventionType(a spanAttrs) string {
	if k := a.str("openinference.span.kind"); k != nil {
		if t, ok := openInferenceKinds[strings.ToUpper(*k)]; ok {
			return t
		}
	}
	if op := a.str("gen_ai.operation.name"); op != nil {
		return genAIOperations[*op]
	}
	return ""
}

// exceptionMessage is the "type: message" of a span's first exception
// event, "" when it has none.
func exceptionMessage(sp *tracepb.Span) string {
	for _, ev := range sp.GetEvents() {
		if ev.GetName() != "exception" {
			continue
		}
		var typ, msg string
		for _, kv := range ev.GetAttributes() {
			s, _ := kv.GetValue().GetValue().(*commonpb.AnyValue_StringValue)
			switch {
			case s == nil:
			case kv.GetKey() == "exception.type":
				typ = s.StringValue
			case kv.GetKey() == "exception.message":
				msg = s.StringValue
			}
		}
		switch {
		case typ != "" && msg != "":
			return typ + ": " + msg
		case msg != "":
			return msg
		}
		return typ
	}
	return ""
}

// spanEvents is the metadata of a span's events, payload carriers left
// out (their messages are the input or output): name, time and
// attributes of each. It checks the bounds of every event, so it runs
// before the payloads are read from them.
func spanEvents(sp *tracepb.Span) ([]any, error) {
	if len(sp.GetEvents()) > MaxSpanEvents {
		return nil, badEvent("a span has at most %d events", MaxSpanEvents)
	}
	var out []any
	for _, ev := range sp.GetEvents() {
		if len(ev.GetName()) > MaxStringBytes {
			return nil, badEvent("an event's name is at most %d bytes", MaxStringBytes)
		}
		if len(ev.GetAttributes()) > MaxSpanAttributes {
			return nil, badEvent("an event has at most %d attributes", MaxSpanAttributes)
		}
		if isPayloadEvent(ev.GetName()) {
			continue
		}
		attrs := make(map[string]any, len(ev.GetAttributes()))
		for _, kv := range ev.GetAttributes() {
			v, err := anyJSON(kv.GetValue(), 1)
			if err != nil {
				return nil, err
			}
			attrs[kv.GetKey()] = v
		}
		e := map[string]any{"name": ev.GetName(), "attributes": attrs}
		if t := unixNano(ev.GetTimeUnixNano()); t != nil {
			e["time"] = t
		}
		out = append(out, e)
	}
	return out, nil
}
