package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// TestTracingMetricsRoute: GET /api/v1/tracing/metrics answers the
// rolled-up figures of the caller's tenant by the groupings asked for,
// refuses bad parameters with 400 and the field, and another tenant's
// with 404.
func TestTracingMetricsRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newTwoTenants(t, db, store.SetTracing)
		ctx, ids, aud, tenants := context.Background(), w.ids, w.aud, w.tenants
		viewerToken, rootToken := w.token(t, w.user(t, "viewer", identity.RoleViewer)), w.token(t, w.root)
		now := time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)
		svc, err := tracing.NewService(tracing.Config{Store: db, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		ts := serve(t, NewServer(Deps{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewRegistry(),
			Ready: func(context.Context) Readiness { return Readiness{Ready: true} }, Identity: ids, Audit: aud,
			Tracing: svc}, Config{}))

		// Tenant 0: two generations of gpt-4o on Nov 1 (one failed), one of
		// claude on Nov 2, through the Langfuse API; tenant 1: one on Nov 1.
		batch := func(prefix string, gens ...[4]string) []json.RawMessage {
			var out []json.RawMessage
			for i, g := range gens { // day, model, latency ms, level
				start, _ := time.Parse(time.RFC3339, g[0]+"T10:00:00Z")
				var ms int
				fmt.Sscan(g[2], &ms)
				end := start.Add(time.Duration(ms) * time.Millisecond)
				id := fmt.Sprintf("%s-%d", prefix, i)
				for _, ev := range []map[string]any{
					{"id": id + "-t", "type": "trace-create", "body": map[string]any{"id": id, "userId": "u-1",
						"timestamp": start, "metadata": map[string]any{"chatbot_id": "cb-1"}}},
					{"id": id + "-g", "type": "generation-create", "body": map[string]any{"id": id + "-gen", "traceId": id,
						"model": g[1], "startTime": start, "endTime": end, "completionStartTime": start.Add(100 * time.Millisecond),
						"level": g[3], "usageDetails": map[string]any{"input": 100, "output": 10},
						"costDetails": map[string]any{"input": 0.5, "output": 0.25}}},
				} {
					b, _ := json.Marshal(ev)
					out = append(out, b)
				}
			}
			return out
		}
		for tenant, gens := range map[string][][4]string{
			tenants[0]: {{"2026-11-01", "gpt-4o", "1000", "DEFAULT"}, {"2026-11-01", "gpt-4o", "3000", "ERROR"},
				{"2026-11-02", "claude", "500", "DEFAULT"}},
			tenants[1]: {{"2026-11-01", "gpt-4o", "9000", "DEFAULT"}},
		} {
			res, err := svc.Ingest(ctx, tenant, batch(tenant, gens...))
			if err != nil || len(res.Errors) != 0 {
				t.Fatalf("ingest: %+v, %v", res.Errors, err)
			}
		}
		if n, err := svc.Rollup(ctx); err != nil || n != 3 {
			t.Fatalf("rollup: %d days, %v", n, err)
		}

		get := func(token, query string) (int, []byte) {
			t.Helper()
			req, _ := http.NewRequest("GET", ts.URL+"/api/v1/tracing/metrics"+query, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			return res.StatusCode, b
		}
		type row map[string]any
		var answer struct {
			From, To string
			GroupBy  []string `json:"group_by"`
			OrderBy  string   `json:"order_by"`
			Groups   int
			Rows     []row
			Totals   row
		}
		decode := func(status int, body []byte) {
			t.Helper()
			if status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			answer.Rows, answer.Totals = nil, nil
			if err := json.Unmarshal(body, &answer); err != nil {
				t.Fatal(err)
			}
		}
		decode(get(viewerToken, "?from=2026-11-01&to=2026-11-24&group_by=day,model"))
		want := []row{
			{"day": "2026-11-01", "model": "gpt-4o", "requests": 2.0, "errors": 1.0, "input_tokens": 200.0,
				"output_tokens": 20.0, "total_tokens": 220.0, "cost": 1.5, "latency_avg_ms": 2000.0, "ttft_avg_ms": 100.0},
			{"day": "2026-11-02", "model": "claude", "requests": 1.0, "errors": 0.0, "input_tokens": 100.0,
				"output_tokens": 10.0, "total_tokens": 110.0, "cost": 0.75, "latency_avg_ms": 500.0, "ttft_avg_ms": 100.0},
		}
		if answer.From != "2026-11-01" || answer.To != "2026-11-24" || answer.OrderBy != "key" || answer.Groups != 2 ||
			len(answer.Rows) != 2 {
			t.Fatalf("answer %+v", answer)
		}
		for i, w := range want {
			for k, v := range w {
				if answer.Rows[i][k] != v {
					t.Errorf("row %d %s = %v, want %v", i, k, answer.Rows[i][k], v)
				}
			}
			if _, ok := answer.Rows[i]["user_id"]; ok {
				t.Errorf("row %d has a user_id without grouping by user", i)
			}
		}
		// Percentiles from the histogram: 1000 ms and 3000 ms, nearest rank.
		p50, p99 := answer.Rows[0]["latency_p50_ms"].(float64), answer.Rows[0]["latency_p99_ms"].(float64)
		if tracing.LatencyBucket(p50) != tracing.LatencyBucket(1000) || tracing.LatencyBucket(p99) != tracing.LatencyBucket(3000) {
			t.Errorf("p50 %v, p99 %v; want about 1000 and 3000", p50, p99)
		}
		if answer.Totals["requests"] != 3.0 || answer.Totals["cost"] != 2.25 {
			t.Errorf("totals %v", answer.Totals)
		}

		// By user and chatbot, ordered by requests, one row; the defaults
		// (the 30 days to today) hold all three generations.
		decode(get(viewerToken, "?group_by=user&group_by=chatbot&order_by=requests&limit=1"))
		if answer.Groups != 1 || len(answer.Rows) != 1 || answer.Rows[0]["user_id"] != "u-1" ||
			answer.Rows[0]["chatbot_id"] != "cb-1" || answer.Rows[0]["requests"] != 3.0 || answer.To != "2026-11-05" ||
			answer.From != "2026-10-07" {
			t.Errorf("by user and chatbot: %+v", answer)
		}
		// The super_admin names the tenant; its figures are its own.
		decode(get(rootToken, "?tenant_id="+tenants[1]+"&group_by=model"))
		if len(answer.Rows) != 1 || answer.Rows[0]["requests"] != 1.0 || answer.Rows[0]["latency_avg_ms"] != 9000.0 {
			t.Errorf("tenant 1 as the super_admin: %+v", answer)
		}

		for query, field := range map[string]string{
			"?from=2026-11-31":                    "from",
			"?from=yesterday":                     "from",
			"?to=2026-11-05T00:00:00Z":            "to",
			"?from=2026-11-05&to=2026-11-01":      "from",
			"?from=2025-01-01&to=2026-11-01":      "to",
			"?group_by=day,tenant":                "group_by",
			"?group_by=model,model":               "group_by",
			"?order_by=latency":                   "order_by",
			"?limit=0":                            "limit",
			"?limit=ten":                          "limit",
			"?limit=1001":                         "limit",
			"?from=2026-11-01&to=2026-11-01&x=ok": "",
		} {
			status, body := get(viewerToken, query)
			if field == "" {
				if status != 200 {
					t.Errorf("%s: %d %s", query, status, body)
				}
				continue
			}
			var e struct {
				Error struct {
					Fields map[string]string
				}
			}
			_ = json.Unmarshal(body, &e)
			if status != 400 || e.Error.Fields[field] == "" {
				t.Errorf("%s: %d %s, want 400 on %s", query, status, body, field)
			}
		}
		if status, body := get(viewerToken, "?tenant_id="+tenants[1]); status != 404 {
			t.Errorf("another tenant's metrics: %d %s", status, body)
		}
	})
}
