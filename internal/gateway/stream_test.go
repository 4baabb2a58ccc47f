package gateway_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestStreamEventsAreNotHeldBack: the gateway batches events that arrive
// together into one write, but never keeps one while it waits on the
// upstream. With a pause between the upstream's chunks, each chunk reaches
// the client before the next is sent.
func TestStreamEventsAreNotHeldBack(t *testing.T) {
	const interval = 150 * time.Millisecond
	w := newWorld(t, storetest.OpenSQLite(t))
	w.fake.SetScript(gatewaytest.Script{APIKey: upstreamKey, ChunkInterval: interval, Chunks: 4, Text: "one two three four"})
	// The same model served by Anthropic's API, whose stream the gateway
	// translates event by event.
	if _, err := w.svc.CreateDeployment(context.Background(), gateway.Manager{TenantID: w.tenant, Admin: true}, gateway.DeploymentInput{
		ModelName: "claude", Provider: gateway.ProviderAnthropic, UpstreamModel: "claude-up", BaseURL: w.fake.URL,
		APIKeyHandle: "handle-1", TimeoutSeconds: 5}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, model string }{
		{"/v1/chat/completions", "gpt-4o"}, {"/v1/messages", "gpt-4o"},
		{"/v1/chat/completions", "claude"}, {"/v1/messages", "claude"},
	} {
		t.Run(tc.path+"/"+tc.model, func(t *testing.T) {
			path := tc.path
			body := `{"model":"` + tc.model + `","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"count"}]}`
			req, _ := http.NewRequest("POST", w.srv.URL+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+w.key)
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var arrivals []time.Duration // of the events carrying text
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, "data: ") && (strings.Contains(line, `"content":"`) || strings.Contains(line, `"text_delta"`)) {
					arrivals = append(arrivals, time.Since(start))
				}
			}
			if len(arrivals) < 4 {
				t.Fatalf("%d text events, want 4", len(arrivals))
			}
			// The upstream sends a text chunk every interval: the client
			// must see them spread out the same way, not all at the end.
			for i := 1; i < len(arrivals); i++ {
				if gap := arrivals[i] - arrivals[i-1]; gap < interval/2 {
					t.Errorf("text events %d and %d arrived %v apart; the upstream sent them %v apart", i-1, i, gap, interval)
				}
			}
		})
	}
}

// TestLongStreamOutlivesTheEgressTimeout: the egress client's whole-request
// timeout does not cut a stream that is still flowing; the gateway bounds
// its calls by the deployment's timeout on every gap instead.
func TestLongStreamOutlivesTheEgressTimeout(t *testing.T) {
	w := newWorld(t, storetest.OpenSQLite(t))
	w.fake.SetScript(gatewaytest.Script{APIKey: upstreamKey, ChunkInterval: 100 * time.Millisecond, Chunks: 6})
	w2 := w.restartWith(t, egress.Options{Timeout: 250 * time.Millisecond})
	status, body := w2.post(t, "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if status != http.StatusOK || !strings.HasSuffix(strings.TrimSpace(body), "data: [DONE]") || strings.Contains(body, `"error"`) {
		t.Fatalf("a 600 ms stream under a 250 ms egress timeout: %d\n%s", status, body)
	}
}
