package gateway_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestGatewayMetrics: calls through the HTTP API show in the Prometheus
// series: requests, tokens, spend, duration, the gateway's own overhead
// per endpoint (below the whole call's duration) and each budget's
// remainder.
func TestGatewayMetrics(t *testing.T) {
	w := newWorld(t, storetest.OpenSQLite(t))
	ctx := context.Background()
	if _, err := w.svc.PutBudget(ctx, gateway.Manager{TenantID: w.tenant, Admin: true},
		gateway.BudgetInput{Scope: gateway.BudgetKey, SubjectID: w.keyID, MaxMicros: 1_000_000, Period: "30d"}); err != nil {
		t.Fatal(err)
	}
	c := w.client(w.key)
	params := openai.ChatCompletionNewParams{Model: "gpt-4o", MaxTokens: openai.Int(50),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	start := time.Now()
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	whole := time.Since(start)
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := w.reg.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	value := func(series string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no series %s in:\n%s", series, out)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := value(`nodus_gateway_requests_total{model="gpt-4o",status="success"}`); got != 2 {
		t.Errorf("requests %v, want 2", got)
	}
	if got := value(`nodus_gateway_tokens_total{model="gpt-4o",kind="completion"}`); got < float64(resp.Usage.CompletionTokens) {
		t.Errorf("completion tokens %v, want at least %d", got, resp.Usage.CompletionTokens)
	}
	if value(`nodus_gateway_spend_micro_dollars_total{model="gpt-4o"}`) <= 0 {
		t.Error("no spend counted")
	}
	for _, endpoint := range []string{"chat", "chat_stream"} {
		if got := value(`nodus_gateway_overhead_seconds_count{endpoint="` + endpoint + `"}`); got != 1 {
			t.Errorf("%s overhead observed %v times, want 1", endpoint, got)
		}
	}
	if own := value(`nodus_gateway_overhead_seconds_sum{endpoint="chat"}`); own <= 0 || own >= whole.Seconds() {
		t.Errorf("chat overhead %vs, want within (0, %v)", own, whole)
	}
	left := value(`nodus_gateway_budget_remaining_micro_dollars{tenant="` + w.tenant + `",scope="key",subject="` + w.keyID + `"}`)
	if left >= 1_000_000 || left <= 0 {
		t.Errorf("budget remaining %v after two calls", left)
	}
}
