package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// tracedObservation is an observation of GET /api/v1/traces/{id}.
type tracedObservation struct {
	ID                  string
	Type                string
	Name                string
	Model               string
	ParentObservationID string             `json:"parent_observation_id"`
	CompletionStartTime *time.Time         `json:"completion_start_time"`
	UsageDetails        map[string]int64   `json:"usage_details"`
	CostDetails         map[string]float64 `json:"cost_details"`
	Input, Output       json.RawMessage
	ModelParameters     map[string]any `json:"model_parameters"`
	Metadata            map[string]any
	Level               string
	Children            []tracedObservation
}

// TestGatewayCallsAreGenerations runs `nodus serve` on both databases:
// each call through the gateway is one GENERATION in tracing whose
// metadata names its spend-log row and whose usage and cost are the row's.
// A call that carries a W3C traceparent nests under the caller's span in
// the caller's trace (where an SDK's own spans land); a call without one
// is a trace of its own, for the key's calls. A refused call (unknown
// model) reaches no provider and records nothing.
func TestGatewayCallsAreGenerations(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{Text: "Hello there, traveller.", Chunks: 3})
		const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		body := map[string]any{"model": "fake", "max_tokens": 50, "temperature": 0.3,
			"messages": []map[string]any{{"role": "user", "content": "Say hello"}}}
		resp, b := call(t, "POST", w.in.base+"/v1/chat/completions", jsonBody(body), withBearer(w.key),
			withHeader("X-Request-Id", "req-traced-1"), withHeader("Traceparent", "00-"+traceID+"-"+spanID+"-01"))
		if resp.StatusCode != 200 {
			t.Fatalf("traced call: %d %s", resp.StatusCode, b)
		}
		if status, _, b := w.chat(t, w.key, "fake", true, "req-own-1"); status != 200 {
			t.Fatalf("streamed call: %d %s", status, b)
		}
		if status, _, _ := w.chat(t, w.key, "no-such-model", false, "req-refused-1"); status != 404 {
			t.Fatalf("unknown model answered %d", status)
		}

		// The spend rows, written off the request path, by the
		// X-Request-Id each call was sent with.
		type spendRow struct {
			RequestID        string `json:"request_id"`
			ClientRequestID  string `json:"client_request_id"`
			PromptTokens     int64  `json:"prompt_tokens"`
			CompletionTokens int64  `json:"completion_tokens"`
			CostMicros       int64  `json:"cost_micros"`
		}
		rows := map[string]spendRow{}
		for deadline := time.Now().Add(20 * time.Second); len(rows) < 2; time.Sleep(100 * time.Millisecond) {
			var spend struct{ Spend []spendRow }
			w.do(t, w.orgAdmin, "GET", "/api/v1/spend?limit=500", nil, 200, &spend)
			for _, s := range spend.Spend {
				rows[s.ClientRequestID] = s
			}
			if time.Now().After(deadline) {
				t.Fatalf("spend rows %+v", rows)
			}
		}
		var one struct{ Spend []spendRow }
		w.do(t, w.orgAdmin, "GET", "/api/v1/spend?client_request_id=req-traced-1", nil, 200, &one)
		if len(one.Spend) != 1 || one.Spend[0] != rows["req-traced-1"] {
			t.Fatalf("spend filtered by the client's request id: %+v", one.Spend)
		}
		matches := func(g tracedObservation, clientRequestID string) {
			t.Helper()
			row := rows[clientRequestID]
			if g.Type != "GENERATION" || g.Model != "fake" || row.RequestID == "" || g.Metadata["spend_request_id"] != row.RequestID ||
				g.UsageDetails["input"] != row.PromptTokens || g.UsageDetails["output"] != row.CompletionTokens ||
				g.UsageDetails["total"] != row.PromptTokens+row.CompletionTokens ||
				g.CostDetails["total"] != float64(row.CostMicros)/1e6 || row.PromptTokens == 0 {
				t.Fatalf("generation %+v, spend row %+v", g, row)
			}
		}

		// The traced call: one generation in the caller's trace, under the
		// caller's span, with the prompt, the answer and the parameters.
		var detail struct {
			Trace        struct{ ID string }
			Observations []tracedObservation
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			status, b := w.orgAdmin.do("GET", "/api/v1/traces/"+traceID, nil)
			if status == 200 {
				if err := json.Unmarshal(b, &detail); err != nil {
					t.Fatal(err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no trace %s: %d %s", traceID, status, b)
			}
		}
		if len(detail.Observations) != 1 {
			t.Fatalf("observations of the caller's trace: %+v", detail.Observations)
		}
		g := detail.Observations[0]
		matches(g, "req-traced-1")
		if g.ParentObservationID != spanID || g.Metadata["client_request_id"] != "req-traced-1" || g.Metadata["call_type"] != "chat" || g.ModelParameters["temperature"] != 0.3 ||
			string(g.Output) == "" {
			t.Fatalf("traced generation %+v", g)
		}
		var in struct {
			Messages []struct{ Role, Content string }
		}
		if err := json.Unmarshal(g.Input, &in); err != nil || len(in.Messages) != 1 || in.Messages[0].Content != "Say hello" {
			t.Fatalf("generation input %s", g.Input)
		}

		// The call without a traceparent is a trace of its own.
		var list struct {
			Traces []struct {
				ID, Name string
				Tags     []string
			}
		}
		var own string
		for deadline := time.Now().Add(10 * time.Second); own == ""; time.Sleep(50 * time.Millisecond) {
			w.do(t, w.orgAdmin, "GET", "/api/v1/traces?name=gateway+chat", nil, 200, &list)
			for _, tr := range list.Traces {
				if slices.Contains(tr.Tags, "gateway") {
					own = tr.ID
				}
			}
			if own == "" && time.Now().After(deadline) {
				t.Fatalf("no trace of the streamed call: %+v", list)
			}
		}
		if len(list.Traces) != 1 {
			t.Fatalf("gateway traces %+v: the refused call must record nothing", list.Traces)
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/traces/"+own, nil, 200, &detail)
		if len(detail.Observations) != 1 {
			t.Fatalf("observations of the streamed call's trace: %+v", detail.Observations)
		}
		g = detail.Observations[0]
		matches(g, "req-own-1")
		if g.ParentObservationID != "" || g.CompletionStartTime == nil || string(g.Output) != `"Hello there, traveller."` {
			t.Fatalf("streamed generation %+v output %s", g, g.Output)
		}

		// The trace list filters on what the observations add up to.
		count := func(query string) int {
			t.Helper()
			var l struct {
				Traces []struct {
					TotalCost float64 `json:"total_cost"`
				}
			}
			w.do(t, w.orgAdmin, "GET", "/api/v1/traces?"+query, nil, 200, &l)
			return len(l.Traces)
		}
		cost := float64(rows["req-own-1"].CostMicros) / 1e6
		for query, want := range map[string]int{"model=fake": 2, "model=other": 0, "level=ERROR": 0, "level=default": 2,
			fmt.Sprintf("min_cost=%g", cost): 2, fmt.Sprintf("max_cost=%g", cost/2): 0} {
			if got := count(query); got != want {
				t.Fatalf("traces?%s: %d, want %d", query, got, want)
			}
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/traces?min_cost=lots", nil, 400, nil)
		w.do(t, w.orgAdmin, "GET", "/api/v1/traces?level=LOUD", nil, 400, nil)
	})
}
