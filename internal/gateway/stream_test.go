package gateway_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

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
	for _, path := range []string{"/v1/chat/completions", "/v1/messages"} {
		t.Run(path, func(t *testing.T) {
			body := `{"model":"gpt-4o","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"count"}]}`
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
