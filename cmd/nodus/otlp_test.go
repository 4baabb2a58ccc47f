package main

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// otlpPost posts an export to the OTLP endpoint with a key pair (nil: no
// credentials), checks the status and returns the answer's body.
func otlpPost(t *testing.T, base string, key *[2]string, body []byte, contentType, encoding string, want int) []byte {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/api/public/otel/v1/traces", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	if key != nil {
		req.SetBasicAuth(key[0], key[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("OTLP export: %d %q, want %d", resp.StatusCode, out, want)
	}
	return out
}

func otlpAttr(k string, v any) *commonpb.KeyValue {
	av := &commonpb.AnyValue{}
	switch x := v.(type) {
	case string:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: x}
	case int:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
	case float64:
		av.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: x}
	case []string:
		arr := &commonpb.ArrayValue{}
		for _, s := range x {
			arr.Values = append(arr.Values, &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}})
		}
		av.Value = &commonpb.AnyValue_ArrayValue{ArrayValue: arr}
	}
	return &commonpb.KeyValue{Key: k, Value: av}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// otlpChat is an export of a chat: a root span naming the trace, its user
// and session, and under it a generation described by gen_ai attributes.
func otlpChat(traceID []byte, name string) *collectorpb.ExportTraceServiceRequest {
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	root, gen := randomBytes(8), randomBytes(8)
	ns := func(d time.Duration) uint64 { return uint64(start.Add(d).UnixNano()) }
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{otlpAttr("service.name", "chat-app")}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "test"},
			Spans: []*tracepb.Span{
				{TraceId: traceID, SpanId: root, Name: "handle", StartTimeUnixNano: ns(0), EndTimeUnixNano: ns(2 * time.Second),
					Attributes: []*commonpb.KeyValue{otlpAttr("langfuse.trace.name", name), otlpAttr("user.id", "u-otel"),
						otlpAttr("langfuse.session.id", "s-otel"), otlpAttr("langfuse.trace.tags", []string{"otel"})}},
				{TraceId: traceID, SpanId: gen, ParentSpanId: root, Name: "llm", StartTimeUnixNano: ns(100 * time.Millisecond),
					EndTimeUnixNano: ns(time.Second), Attributes: []*commonpb.KeyValue{
						otlpAttr("gen_ai.request.model", "gpt-4o"), otlpAttr("gen_ai.usage.input_tokens", 12),
						otlpAttr("gen_ai.usage.output_tokens", 3), otlpAttr("gen_ai.request.temperature", 0.2),
						otlpAttr("gen_ai.prompt", `[{"role":"user","content":"hi"}]`), otlpAttr("gen_ai.completion", "hello")}},
			},
		}},
	}}}
}

// otlpJSON encodes an export as OTLP JSON: protojson, with the ids in hex
// as the OTLP spec has them rather than protojson's base64.
func otlpJSON(t *testing.T, req proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
					raw, err := base64.StdEncoding.DecodeString(s)
					if err != nil {
						t.Fatal(err)
					}
					x[k] = hex.EncodeToString(raw)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	b, _ = json.Marshal(v)
	return b
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// otlpScenario exports spans to the OTLP endpoint with A's key pair as
// protobuf, OTLP JSON and gzip, reads the traces back as a member, and
// tries the refusals: wrong keys, B's key on A's trace id, a gzip bomb
// and a span with too many attributes.
func (w *tenancy) otlpScenario(t *testing.T) {
	base, keyA, keyB := w.in.base, w.tracingKeys["a"], w.tracingKeys["b"]
	type obs struct {
		ID, Type, Name, Model string
		ParentObservationID   string `json:"parent_observation_id"`
		Input, Output         json.RawMessage
		ModelParameters       json.RawMessage  `json:"model_parameters"`
		UsageDetails          map[string]int64 `json:"usage_details"`
		Children              []obs
	}
	type detail struct {
		Trace struct {
			ID, Name  string
			UserID    string `json:"user_id"`
			SessionID string `json:"session_id"`
			Tags      []string
		}
		Observations []obs
	}
	check := func(t *testing.T, traceID []byte, name string) {
		t.Helper()
		var got detail
		w.members["a-viewer"].must("GET", "/api/v1/traces/"+hex.EncodeToString(traceID), nil, 200, &got)
		if got.Trace.Name != name || got.Trace.UserID != "u-otel" || got.Trace.SessionID != "s-otel" ||
			!reflect.DeepEqual(got.Trace.Tags, []string{"otel"}) {
			t.Errorf("trace = %+v", got.Trace)
		}
		if len(got.Observations) != 1 || got.Observations[0].Type != "SPAN" || len(got.Observations[0].Children) != 1 {
			t.Fatalf("observation tree = %+v", got.Observations)
		}
		gen := got.Observations[0].Children[0]
		if gen.Type != "GENERATION" || gen.Model != "gpt-4o" || gen.Name != "llm" ||
			gen.ParentObservationID != got.Observations[0].ID || string(gen.Output) != `"hello"` ||
			string(gen.Input) != `[{"role":"user","content":"hi"}]` || string(gen.ModelParameters) != `{"temperature":0.2}` ||
			!reflect.DeepEqual(gen.UsageDetails, map[string]int64{"input": 12, "output": 3, "total": 15}) {
			t.Errorf("generation = %+v", gen)
		}
	}
	encode := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("protobuf", func(t *testing.T) {
		id := randomBytes(16)
		out := otlpPost(t, base, &keyA, encode(otlpChat(id, "otel-proto")), "application/x-protobuf", "", 200)
		var resp collectorpb.ExportTraceServiceResponse
		if err := proto.Unmarshal(out, &resp); err != nil || resp.GetPartialSuccess().GetRejectedSpans() != 0 {
			t.Errorf("answer %v %v", &resp, err)
		}
		check(t, id, "otel-proto")
	})
	t.Run("json", func(t *testing.T) {
		id := randomBytes(16)
		out := otlpPost(t, base, &keyA, otlpJSON(t, otlpChat(id, "otel-json")), "application/json", "", 200)
		var resp collectorpb.ExportTraceServiceResponse
		if err := protojson.Unmarshal(out, &resp); err != nil || resp.GetPartialSuccess().GetRejectedSpans() != 0 {
			t.Errorf("answer %s %v", out, err)
		}
		check(t, id, "otel-json")
	})
	t.Run("gzip", func(t *testing.T) {
		id := randomBytes(16)
		otlpPost(t, base, &keyA, gzipped(t, encode(otlpChat(id, "otel-gzip"))), "application/x-protobuf", "gzip", 200)
		check(t, id, "otel-gzip")
	})

	t.Run("credentials", func(t *testing.T) {
		body := encode(otlpChat(randomBytes(16), "x"))
		otlpPost(t, base, &[2]string{keyA[0], "sk-lf-wrong"}, body, "application/x-protobuf", "", 401)
		otlpPost(t, base, &[2]string{keyB[0], keyA[1]}, body, "application/x-protobuf", "", 401)
		otlpPost(t, base, nil, body, "application/x-protobuf", "", 401)
		otlpPost(t, base, &keyA, body, "text/plain", "", 415)
		otlpPost(t, base, &keyA, []byte("not protobuf"), "application/x-protobuf", "", 400)
	})

	// B's key pair with A's trace id writes B's own trace; A's is
	// unchanged and B cannot read it.
	t.Run("tenants", func(t *testing.T) {
		id := randomBytes(16)
		otlpPost(t, base, &keyA, encode(otlpChat(id, "a-otel")), "application/x-protobuf", "", 200)
		otlpPost(t, base, &keyB, encode(otlpChat(id, "b-otel")), "application/x-protobuf", "", 200)
		check(t, id, "a-otel")
		var got detail
		w.members["b-admin"].must("GET", "/api/v1/traces/"+hex.EncodeToString(id), nil, 200, &got)
		if got.Trace.Name != "b-otel" || len(got.Observations) != 1 {
			t.Errorf("B's trace = %+v", got)
		}
	})

	// A gzip bomb: 200 MB of zeros in about 200 KB. The server stops at
	// 16 MB of it, so what it allocates stays far below the bomb.
	t.Run("gzip bomb", func(t *testing.T) {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for range 200 {
			_, _ = zw.Write(zeros)
		}
		_ = zw.Close()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		otlpPost(t, base, &keyA, buf.Bytes(), "application/x-protobuf", "gzip", 413)
		runtime.ReadMemStats(&after)
		grew := after.TotalAlloc - before.TotalAlloc
		t.Logf("a %d KB gzip bomb: the process allocated %d MB meanwhile", buf.Len()>>10, grew>>20)
		if grew > 100<<20 {
			t.Errorf("a %d KB gzip bomb made the process allocate %d MB", buf.Len()>>10, grew>>20)
		}
		// Over 3.5 MB compressed is refused too.
		otlpPost(t, base, &keyA, randomBytes(4<<20), "application/x-protobuf", "", 413)
	})

	// A span with 100,000 attributes is refused on its own; its siblings
	// are stored.
	t.Run("wide span", func(t *testing.T) {
		id := randomBytes(16)
		req := otlpChat(id, "otel-wide")
		attrs := make([]*commonpb.KeyValue, 100000)
		for i := range attrs {
			attrs[i] = otlpAttr(fmt.Sprint("k", i), i)
		}
		spans := req.ResourceSpans[0].ScopeSpans[0].Spans
		spans = append(spans, &tracepb.Span{TraceId: id, SpanId: randomBytes(8), ParentSpanId: spans[0].SpanId,
			Name: "wide", Attributes: attrs})
		req.ResourceSpans[0].ScopeSpans[0].Spans = spans
		out := otlpPost(t, base, &keyA, encode(req), "application/x-protobuf", "", 200)
		var resp collectorpb.ExportTraceServiceResponse
		if err := proto.Unmarshal(out, &resp); err != nil || resp.GetPartialSuccess().GetRejectedSpans() != 1 ||
			resp.GetPartialSuccess().GetErrorMessage() == "" {
			t.Errorf("answer %v %v", &resp, err)
		}
		check(t, id, "otel-wide")
	})
}
