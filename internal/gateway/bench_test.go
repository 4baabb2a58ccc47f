package gateway_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// BenchmarkGatewayOverhead measures what the gateway adds to a request:
// the same chat request sent straight to the fake upstream, through a bare
// reverse proxy (read the body, post it upstream, copy the answer back:
// the floor of any proxy, an extra loopback hop) and through the gateway
// (virtual key, limits, budget reservation, routing, the provider through
// egress, settlement, spend log on SQLite), alternated request by request
// so all see the same machine. Reported: p50 of each, and the added p50
// and p99 (through − direct) of the bare proxy and of the gateway.
//
//	go test -run '^$' -bench GatewayOverhead -benchtime 5000x ./internal/gateway/
func BenchmarkGatewayOverhead(b *testing.B) {
	db := storetest.OpenSQLite(b)
	w := newWorld(b, db)
	w.fake.SetScript(gatewaytest.Script{APIKey: upstreamKey, DisableRecording: true})
	bare := httptest.NewServer(bareProxy(w.fake.URL + "/v1/chat/completions"))
	b.Cleanup(bare.Close)
	for _, mode := range []struct {
		name string
		body string
	}{
		{"chat", `{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}],"max_tokens":50}`},
		{"stream", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hello"}],"max_tokens":50}`},
	} {
		b.Run(mode.name, func(b *testing.B) {
			directBody := bytes.Replace([]byte(mode.body), []byte(`"gpt-4o"`), []byte(`"gpt-4o-2024-08-06"`), 1)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			send := func(url, key string, body []byte) time.Duration {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d", url, resp.StatusCode)
				}
				return time.Since(start)
			}
			direct := make([]time.Duration, 0, b.N)
			viaBare := make([]time.Duration, 0, b.N)
			through := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				direct = append(direct, send(w.fake.URL+"/v1/chat/completions", upstreamKey, directBody))
				viaBare = append(viaBare, send(bare.URL, upstreamKey, directBody))
				through = append(through, send(w.srv.URL+"/v1/chat/completions", w.key, []byte(mode.body)))
			}
			b.StopTimer()
			slices.Sort(direct)
			slices.Sort(viaBare)
			slices.Sort(through)
			q := func(d []time.Duration, p float64) float64 { return float64(d[int(float64(len(d)-1)*p)].Microseconds()) }
			b.ReportMetric(q(direct, 0.5), "direct-p50-µs")
			b.ReportMetric(q(viaBare, 0.5)-q(direct, 0.5), "bare-added-p50-µs")
			b.ReportMetric(q(through, 0.5), "gateway-p50-µs")
			b.ReportMetric(q(through, 0.5)-q(direct, 0.5), "added-p50-µs")
			b.ReportMetric(q(through, 0.99)-q(direct, 0.99), "added-p99-µs")
		})
	}
}

// bareProxy forwards every request to upstream and copies the answer
// back, flushing as it reads for streams: what any proxy must do.
func bareProxy(upstream string) http.Handler {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, upstream, bytes.NewReader(body))
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		rc := http.NewResponseController(w)
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write(buf[:n])
				_ = rc.Flush()
			}
			if err != nil {
				return
			}
		}
	})
}
