package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// ingestResult is the 207 of Langfuse's ingestion API.
type ingestResult struct {
	Successes []struct {
		ID     string
		Status int
	}
	Errors []struct {
		ID      string
		Status  int
		Message string
	}
	Message string // a 4xx's
}

func (r ingestResult) ids() (ok, failed []string) {
	for _, s := range r.Successes {
		ok = append(ok, s.ID)
	}
	for _, e := range r.Errors {
		failed = append(failed, e.ID)
	}
	slices.Sort(ok)
	slices.Sort(failed)
	return ok, failed
}

// ingestRaw posts a body to the ingestion API with a key pair (nil: no
// credentials) and checks the status.
func ingestRaw(t *testing.T, base string, key *[2]string, body []byte, want int) ingestResult {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/api/public/ingestion", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != nil {
		req.SetBasicAuth(key[0], key[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out ingestResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("ingestion answer: %v", err)
	}
	if resp.StatusCode != want {
		t.Fatalf("ingestion: %d %+v, want %d", resp.StatusCode, out, want)
	}
	return out
}

func ingestBatch(t *testing.T, base string, key [2]string, batch []map[string]any, want int) ingestResult {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"batch": batch})
	return ingestRaw(t, base, &key, b, want)
}

// tracingScenario sends a batch shaped like the Langfuse SDKs' with A's
// key pair, twice, reads the trace back as a member, and tries the
// refusals: bad keys, B's key, oversized bodies and hostile events.
func (w *tenancy) tracingScenario(t *testing.T) {
	base, keyA, keyB := w.in.base, w.tracingKeys["a"], w.tracingKeys["b"]
	batch := []map[string]any{
		{"id": "ev-trace", "type": "trace-create", "timestamp": "2026-11-01T10:00:00.000Z",
			"body": map[string]any{"id": "tr-e2e", "name": "chat", "userId": "u-1", "sessionId": "s-1", "input": "hi",
				"tags": []string{"e2e"}, "metadata": map[string]any{"k": "v"}, "projectId": w.b.ID}},
		{"id": "ev-span", "type": "span-create", "timestamp": "2026-11-01T10:00:00.010Z",
			"body": map[string]any{"id": "span-1", "traceId": "tr-e2e", "name": "retrieve", "startTime": "2026-11-01T10:00:00.010Z"}},
		{"id": "ev-gen", "type": "generation-create", "timestamp": "2026-11-01T10:00:00.100Z",
			"body": map[string]any{"id": "gen-1", "traceId": "tr-e2e", "parentObservationId": "span-1", "name": "llm",
				"model": "gpt-4o", "modelParameters": map[string]any{"temperature": 0.2},
				"startTime": "2026-11-01T10:00:00.100Z", "completionStartTime": "2026-11-01T10:00:00.400Z",
				"input":        []map[string]any{{"role": "user", "content": "hi"}},
				"usageDetails": map[string]any{"input": 12, "output": 3, "total": 15},
				"costDetails":  map[string]any{"input": 0.00003, "output": 0.00006}}},
		{"id": "ev-gen-end", "type": "generation-update", "timestamp": "2026-11-01T10:00:01.200Z",
			"body": map[string]any{"id": "gen-1", "traceId": "tr-e2e", "endTime": "2026-11-01T10:00:01.200Z", "output": "hello"}},
		{"id": "ev-event", "type": "event-create", "timestamp": "2026-11-01T10:00:01.300Z",
			"body": map[string]any{"id": "evt-1", "traceId": "tr-e2e", "name": "done", "startTime": "2026-11-01T10:00:01.300Z"}},
		{"id": "ev-score", "type": "score-create", "timestamp": "2026-11-01T10:00:02.000Z",
			"body": map[string]any{"id": "score-1", "traceId": "tr-e2e", "observationId": "gen-1", "name": "helpful", "value": 1}},
		{"id": "ev-log", "type": "sdk-log", "timestamp": "2026-11-01T10:00:02.000Z", "body": map[string]any{"log": "flushed"}},
		{"id": "ev-bad", "type": "generation-create", "body": map[string]any{"traceId": "tr-e2e", "name": "no id"}},
		{"id": "ev-unknown", "type": "dataset-create", "body": map[string]any{"id": "x"}},
	}
	wantOK := []string{"ev-event", "ev-gen", "ev-gen-end", "ev-log", "ev-score", "ev-span", "ev-trace"}
	wantFailed := []string{"ev-bad", "ev-unknown"}
	for round := range 2 {
		res := ingestBatch(t, base, keyA, batch, 207)
		ok, failed := res.ids()
		if !reflect.DeepEqual(ok, wantOK) || !reflect.DeepEqual(failed, wantFailed) {
			t.Fatalf("round %d: successes %v, errors %v", round, ok, failed)
		}
		for _, e := range res.Errors {
			if e.Status != 400 || e.Message == "" {
				t.Errorf("round %d: error %+v", round, e)
			}
		}
	}

	// The trace as a member reads it: the generation under the span,
	// usage and cost intact, nothing twice.
	type obs struct {
		ID, Type, Model     string
		Output              json.RawMessage
		CompletionStartTime *string            `json:"completion_start_time"`
		EndTime             *string            `json:"end_time"`
		UsageDetails        map[string]int64   `json:"usage_details"`
		CostDetails         map[string]float64 `json:"cost_details"`
		Children            []obs
	}
	var got struct {
		Trace struct {
			ID, Name string
			UserID   string `json:"user_id"`
			Tags     []string
		}
		Observations []obs
		Scores       []struct {
			Name          string
			Value         *float64
			ObservationID string `json:"observation_id"`
		}
	}
	w.members["a-viewer"].must("GET", "/api/v1/traces/tr-e2e", nil, 200, &got)
	if got.Trace.Name != "chat" || got.Trace.UserID != "u-1" || !reflect.DeepEqual(got.Trace.Tags, []string{"e2e"}) {
		t.Errorf("trace = %+v", got.Trace)
	}
	if len(got.Observations) != 2 || got.Observations[0].ID != "span-1" || got.Observations[1].ID != "evt-1" ||
		len(got.Observations[0].Children) != 1 {
		t.Fatalf("observation tree = %+v", got.Observations)
	}
	gen := got.Observations[0].Children[0]
	if gen.ID != "gen-1" || gen.Type != "GENERATION" || gen.Model != "gpt-4o" || string(gen.Output) != `"hello"` ||
		gen.EndTime == nil || gen.CompletionStartTime == nil || !strings.HasPrefix(*gen.CompletionStartTime, "2026-11-01T10:00:00.4") ||
		!reflect.DeepEqual(gen.UsageDetails, map[string]int64{"input": 12, "output": 3, "total": 15}) ||
		!reflect.DeepEqual(gen.CostDetails, map[string]float64{"input": 0.00003, "output": 0.00006}) {
		t.Errorf("generation = %+v", gen)
	}
	if len(got.Scores) != 1 || got.Scores[0].Value == nil || *got.Scores[0].Value != 1 || got.Scores[0].ObservationID != "gen-1" {
		t.Errorf("scores = %+v", got.Scores)
	}
	var list struct{ Traces []struct{ ID string } }
	w.members["a-user"].must("GET", "/api/v1/traces?user_id=u-1&tags=e2e&limit=10", nil, 200, &list)
	if len(list.Traces) != 1 || list.Traces[0].ID != "tr-e2e" {
		t.Errorf("filtered list = %+v", list)
	}
	w.members["a-user"].must("GET", "/api/v1/traces?limit=101", nil, 400, nil)
	// A member scores the trace; a viewer may not.
	w.members["a-user"].must("POST", "/api/v1/scores", map[string]any{"trace_id": "tr-e2e", "observation_id": "gen-1",
		"name": "correct", "value": "yes", "comment": "checked"}, 201, nil)
	w.members["a-viewer"].must("POST", "/api/v1/scores", map[string]any{"trace_id": "tr-e2e", "name": "x", "value": 1}, 403, nil)
	w.members["a-user"].must("POST", "/api/v1/scores", map[string]any{"trace_id": "tr-e2e", "observation_id": "b-gen",
		"name": "x", "value": 1}, 404, nil)

	// Wrong or missing credentials: 401 in Langfuse's shape.
	one := []map[string]any{{"id": "ev-x", "type": "trace-create", "body": map[string]any{"id": "tr-x"}}}
	if res := ingestBatch(t, base, [2]string{keyA[0], "sk-lf-wrong"}, one, 401); res.Message == "" {
		t.Error("401 without a message")
	}
	ingestBatch(t, base, [2]string{keyB[0], keyA[1]}, one, 401)
	ingestRaw(t, base, nil, []byte(`{"batch":[]}`), 401)

	// B's key pair cannot read A's trace or write it: the same id with B's
	// key is B's own trace, and A's is unchanged.
	w.members["b-admin"].must("GET", "/api/v1/traces/tr-e2e", nil, 404, nil)
	ingestBatch(t, base, keyB, []map[string]any{{"id": "ev-hijack", "type": "trace-create",
		"body": map[string]any{"id": "tr-e2e", "name": "hijacked", "projectId": w.a.ID, "tenantId": w.a.ID}}}, 207)
	w.members["a-user"].must("GET", "/api/v1/traces/tr-e2e", nil, 200, &got)
	if got.Trace.Name != "chat" {
		t.Errorf("B's key changed A's trace: %q", got.Trace.Name)
	}

	// Bounds: a body over 3.5 MB is 413 before it is decoded; hostile
	// events are refused one by one beside a good one.
	big := append([]byte(`{"batch":[{"id":"big","type":"sdk-log","body":{"log":"`), bytes.Repeat([]byte("x"), 4<<20)...)
	big = append(big, `"}}]}`...)
	ingestRaw(t, base, &keyA, big, 413)
	var wide strings.Builder
	wide.WriteString("{")
	for i := range 100000 {
		if i > 0 {
			wide.WriteString(",")
		}
		fmt.Fprintf(&wide, `"k%d":1`, i)
	}
	wide.WriteString("}")
	deep := strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200)
	hostile := fmt.Sprintf(`{"batch":[
		{"id":"ev-wide","type":"trace-create","body":{"id":"tr-wide","metadata":%s}},
		{"id":"ev-deep","type":"trace-create","body":{"id":"tr-deep","metadata":%s}},
		{"id":"ev-fine","type":"trace-create","body":{"id":"tr-fine"}}]}`, wide.String(), deep)
	res := ingestRaw(t, base, &keyA, []byte(hostile), 207)
	ok, failed := res.ids()
	if !reflect.DeepEqual(ok, []string{"ev-fine"}) || !reflect.DeepEqual(failed, []string{"ev-deep", "ev-wide"}) {
		t.Fatalf("hostile batch: successes %v, errors %+v", ok, res.Errors)
	}
	for _, e := range res.Errors {
		if !strings.Contains(e.Message, "10000 keys") && !strings.Contains(e.Message, "deeper than 64") {
			t.Errorf("hostile event %s: %q", e.ID, e.Message)
		}
	}
	w.members["a-user"].must("GET", "/api/v1/traces/tr-wide", nil, 404, nil)
	tooMany := make([]map[string]any, 1001)
	for i := range tooMany {
		tooMany[i] = map[string]any{"id": fmt.Sprint("n", i), "type": "sdk-log", "body": map[string]any{}}
	}
	ingestBatch(t, base, keyA, tooMany, 400)

	// A deleted key pair stops at once.
	var keys struct {
		Keys []struct{ ID, PublicKey string }
	}
	w.members["a-admin"].must("GET", "/api/v1/tracing/keys", nil, 200, &keys)
	if len(keys.Keys) != 1 {
		t.Fatalf("A's keys = %+v", keys)
	}
	w.members["a-user"].must("DELETE", "/api/v1/tracing/keys/"+keys.Keys[0].ID, nil, 403, nil)
	w.members["a-admin"].must("DELETE", "/api/v1/tracing/keys/"+keys.Keys[0].ID, nil, 204, nil)
	ingestBatch(t, base, keyA, one, 401)
}
