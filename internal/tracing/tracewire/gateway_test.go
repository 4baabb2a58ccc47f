package tracewire_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
	"github.com/nodus-os/nodus/internal/tracing/tracewire"
)

func TestEvents(t *testing.T) {
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	log := gateway.SpendLog{RequestID: "req-1", TenantID: "t1", KeyID: "k1", UserID: "u1", CallType: "chat",
		Model: "gpt-4o", Provider: "openai", PromptTokens: 100, CachedTokens: 40, CompletionTokens: 7,
		CostMicros: 1234, StartedAt: at, EndedAt: at.Add(time.Second), TTFT: 200 * time.Millisecond,
		Status: gateway.StatusSuccess, StatusCode: 200}
	text := "hello"
	req := &gateway.ChatRequest{Model: "gpt-4o", Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent("hi")}}}

	t.Run("own trace", func(t *testing.T) {
		evs := tracewire.Events(gateway.CallRecord{Log: log, Chat: req, Streamed: text})
		if len(evs) != 2 || evs[0].Trace == nil || evs[1].Observation == nil {
			t.Fatalf("events %+v", evs)
		}
		tr, g := evs[0].Trace, evs[1].Observation
		if !tracewire.ValidTraceID(tr.ID) || g.TraceID != tr.ID || *tr.UserID != "u1" || *tr.Name != "gateway chat" {
			t.Fatalf("trace %+v generation %+v", tr, g)
		}
		// Cached prompt tokens are their own bucket, not counted twice.
		want := map[string]int64{"input": 60, "input_cached_tokens": 40, "output": 7, "total": 107}
		for k, v := range want {
			if g.UsageDetails[k] != v {
				t.Fatalf("usage %v, want %v", g.UsageDetails, want)
			}
		}
		if g.Type != tracing.TypeGeneration || g.CostDetails["total"] != 0.001234 || g.ParentObservationID != nil ||
			!g.CompletionStartTime.Equal(at.Add(200*time.Millisecond)) || string(g.Output) != `"hello"` {
			t.Fatalf("generation %+v", g)
		}
		// The stored JSON, exactly: keys in order, empty ones left out.
		for _, c := range []struct{ what, got, want string }{
			{"trace metadata", string(tr.Metadata), `{"key_id":"k1","spend_request_id":"req-1"}`},
			{"generation metadata", string(g.Metadata), `{"call_type":"chat","key_id":"k1","provider":"openai",` +
				`"spend_request_id":"req-1","status":"success","status_code":200}`},
			{"input", string(g.Input), `{"messages":[{"role":"user","content":"hi"}]}`},
			{"model parameters", string(g.ModelParameters), ``},
		} {
			if c.got != c.want {
				t.Errorf("%s %s, want %s", c.what, c.got, c.want)
			}
		}
		temp, max := 0.2, int64(50)
		withParams := *req
		withParams.Temperature, withParams.MaxTokens, withParams.Stream = &temp, &max, true
		withParams.Tools = []gateway.Tool{{Type: "function", Function: gateway.FunctionTool{Name: "now"}}}
		l := log
		l.UsageEstimated, l.DeploymentID = true, "d1"
		g = tracewire.Events(gateway.CallRecord{Log: l, Chat: &withParams})[1].Observation
		for _, c := range []struct{ what, got, want string }{
			{"model parameters", string(g.ModelParameters), `{"max_tokens":50,"stream":true,"temperature":0.2}`},
			{"input with tools", string(g.Input), `{"messages":[{"role":"user","content":"hi"}],` +
				`"tools":[{"type":"function","function":{"name":"now"}}]}`},
			{"metadata", string(g.Metadata), `{"call_type":"chat","deployment_id":"d1","key_id":"k1","provider":"openai",` +
				`"spend_request_id":"req-1","status":"success","status_code":200,"usage_estimated":true}`},
		} {
			if c.got != c.want {
				t.Errorf("%s %s, want %s", c.what, c.got, c.want)
			}
		}
	})

	t.Run("caller's trace", func(t *testing.T) {
		l := log
		l.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		evs := tracewire.Events(gateway.CallRecord{Log: l, ParentSpanID: "00f067aa0ba902b7", Chat: req})
		if len(evs) != 1 || evs[0].Observation.TraceID != l.TraceID || *evs[0].Observation.ParentObservationID != "00f067aa0ba902b7" {
			t.Fatalf("events %+v", evs)
		}
	})

	t.Run("failed call", func(t *testing.T) {
		l := log
		l.Status, l.StatusCode, l.ErrorClass, l.PromptTokens, l.CachedTokens, l.CompletionTokens, l.CostMicros =
			gateway.StatusError, 429, "rate_limit", 0, 0, 0, 0
		g := tracewire.Events(gateway.CallRecord{Log: l})[1].Observation
		if *g.Level != tracing.LevelError || !strings.Contains(*g.StatusMessage, "rate_limit") || g.UsageDetails != nil ||
			g.CostDetails != nil {
			t.Fatalf("generation %+v", g)
		}
	})

	t.Run("embedding and a huge prompt", func(t *testing.T) {
		l := log
		l.CallType = "embedding"
		if g := tracewire.Events(gateway.CallRecord{Log: l})[1].Observation; g.Type != tracing.TypeEmbedding {
			t.Fatalf("embedding recorded as %s", g.Type)
		}
		big := &gateway.ChatRequest{Model: "gpt-4o", Messages: []gateway.Message{{Role: "user",
			Content: gateway.TextContent(strings.Repeat("x", tracewire.MaxPayloadBytes))}}}
		g := tracewire.Events(gateway.CallRecord{Log: log, Chat: big})[1].Observation
		var note struct {
			Truncated bool
			Bytes     int
		}
		if err := json.Unmarshal(g.Input, &note); err != nil || !note.Truncated || note.Bytes <= tracewire.MaxPayloadBytes {
			t.Fatalf("a huge prompt kept as %.80s", g.Input)
		}
	})
}

// TestOnlyTraced: with OnlyTraced a call outside a caller's trace is not
// recorded, and one inside is.
func TestOnlyTraced(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		svc, err := tracing.NewService(tracing.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		rec := svc.NewRecorder()
		ctx, stop := context.WithCancel(context.Background())
		go rec.Run(ctx)
		tenant := nodus.NewID()
		at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
		calls := tracewire.GatewayCalls{Recorder: rec, OnlyTraced: true}
		log := gateway.SpendLog{RequestID: "req-1", TenantID: tenant, CallType: "chat", Model: "m", StartedAt: at,
			EndedAt: at, Status: gateway.StatusSuccess, StatusCode: 200}
		calls.ObserveCall(gateway.CallRecord{Log: log})
		log.RequestID, log.TraceID = "req-2", "4bf92f3577b34da6a3ce929d0e0e4736"
		calls.ObserveCall(gateway.CallRecord{Log: log})
		stop()
		rec.Wait()
		traces, _, err := svc.ListTraces(context.Background(), tenant, tracing.TraceFilter{}, "", 10)
		if err != nil || len(traces) != 1 || traces[0].ID != log.TraceID {
			t.Fatalf("traces %+v %v: want only the caller's", traces, err)
		}
	})
}

// TestNewIDOrdered: ids are W3C trace ids that sort in the order they were
// made, so the tracing database's id indexes grow at their right edge.
func TestNewIDOrdered(t *testing.T) {
	prev := ""
	for range 10000 {
		id := tracewire.NewID()
		if !tracewire.ValidTraceID(id) {
			t.Fatalf("%q is not a trace id", id)
		}
		if id <= prev {
			t.Fatalf("%q made after %q sorts before it", id, prev)
		}
		prev = id
	}
}
