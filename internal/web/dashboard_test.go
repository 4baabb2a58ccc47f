package web

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// TestDashboardTracedFigures: on both databases, generations ingested for
// two chatbots and rolled up give the dashboard a latency chart and the
// busiest chatbots first, and a tenant without calls an empty table.
func TestDashboardTracedFigures(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		svc, err := tracing.NewService(tracing.Config{Store: db, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		tenant := nodus.NewID()
		var batch []json.RawMessage
		add := func(v map[string]any) {
			b, _ := json.Marshal(v)
			batch = append(batch, b)
		}
		for i, bot := range []string{"bot-a", "bot-b", "bot-b", "bot-b"} {
			tr := "tr" + string(rune('0'+i))
			start := now.Add(-time.Minute)
			add(map[string]any{"id": "e" + tr, "type": "trace-create", "body": map[string]any{"id": tr,
				"metadata": map[string]string{"chatbot_id": bot}}})
			add(map[string]any{"id": "g" + tr, "type": "generation-create", "body": map[string]any{"id": "g" + tr,
				"traceId": tr, "model": "m", "startTime": start, "endTime": start.Add(time.Duration(i+1) * 100 * time.Millisecond),
				"usageDetails": map[string]int{"input": 10, "output": 5}, "costDetails": map[string]float64{"total": 0.01}}})
		}
		if res, err := svc.Ingest(ctx, tenant, batch); err != nil || len(res.Errors) > 0 {
			t.Fatalf("ingest: %v %+v", err, res.Errors)
		}
		if _, err := svc.Rollup(ctx); err != nil {
			t.Fatal(err)
		}
		s := newTestServer(t)
		s.deps.Tracing = svc
		r := httptest.NewRequest("GET", "/", nil)
		days, _ := summarize(nil, now, dashboardDays)
		p := dashboardPage{}
		v := &viewer{user: identity.User{ID: "u1", TenantID: tenant, Role: identity.RoleOrgAdmin}}
		if err := s.tracedFigures(r, v, now, days, &p); err != nil {
			t.Fatal(err)
		}
		// p95 of 100, 200, 300 and 400 ms, within the histogram's ±4.4%.
		if len(p.Charts) != 1 || p.Charts[0].ID != "latency" {
			t.Fatalf("charts %+v", p.Charts)
		}
		if top, err := strconv.Atoi(p.Charts[0].Max); err != nil || top < 380 || top > 420 {
			t.Fatalf("latency p95 %q, want about 400", p.Charts[0].Max)
		}
		if len(p.Chatbots) != 2 || p.Chatbots[0].ID != "bot-b" || p.Chatbots[0].Requests != 3 || p.Chatbots[0].Tokens != 45 ||
			p.Chatbots[1].ID != "bot-a" || p.Chatbots[1].Cost != "$0.01" || p.Chatbots[1].P95 == "" {
			t.Fatalf("top chatbots %+v", p.Chatbots)
		}

		other := &viewer{user: identity.User{ID: "u2", TenantID: nodus.NewID(), Role: identity.RoleUser}}
		p = dashboardPage{}
		if err := s.tracedFigures(r, other, now, days, &p); err != nil || len(p.Chatbots) != 0 {
			t.Fatalf("another tenant sees %+v, %v", p.Chatbots, err)
		}
	})
}
