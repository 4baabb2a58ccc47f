package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/usage"
)

// TestUsageMetricsRoute: GET /api/v1/metrics/usage answers the caller's
// tenant's usage by the groups asked for, as JSON or CSV; refuses a member
// (403), bad parameters (400 with the field) and another tenant (404); a
// super_admin names the tenant.
func TestUsageMetricsRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newTwoTenants(t, db)
		ids, aud, all, tenants := w.ids, w.aud, w.all, w.tenants
		adminToken := w.token(t, w.user(t, "orgadmin", identity.RoleOrgAdmin))
		memberToken := w.token(t, w.user(t, "member", identity.RoleUser))
		rootToken := w.token(t, w.root)
		for _, d := range []string{"2026-11-01", "2026-11-02"} {
			rows := []usage.Row{
				{TenantID: tenants[0], Day: d, ChatbotID: "bot", UserID: "alice", Model: "=cmd()", Requests: 2, CostMicros: 1500, ChatTurns: 2},
				{TenantID: tenants[0], Day: d, UserID: "alice", Documents: 1},
				{TenantID: tenants[1], Day: d, UserID: "eve", Model: "m", Requests: 100, CostMicros: 9},
			}
			if err := db.ReplaceUsageDay(all, d, rows); err != nil {
				t.Fatal(err)
			}
		}
		svc, err := usage.NewService(usage.Config{Store: db, Now: func() time.Time { return time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC) }})
		if err != nil {
			t.Fatal(err)
		}
		ts := serve(t, NewServer(Deps{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewRegistry(),
			Ready: func(context.Context) Readiness { return Readiness{Ready: true} }, Identity: ids, Audit: aud,
			Usage: svc}, Config{}))
		get := func(token, query string) (int, string, string) {
			t.Helper()
			req, _ := http.NewRequest("GET", ts.URL+"/api/v1/metrics/usage"+query, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
		}

		status, _, body := get(adminToken, "?from=2026-11-01&to=2026-11-04&group_by=day")
		var res usage.Result
		if status != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("%d %s", status, body)
		}
		if len(res.Rows) != 2 || res.Rows[0].Day != "2026-11-01" || res.Rows[0].Requests != 2 || res.Rows[0].Documents != 1 ||
			res.Totals.CostMicros != 3000 || res.Totals.ChatTurns != 4 {
			t.Errorf("by day: %s", body)
		}
		// A dimension grouped by is always there, "" included; others not.
		if status, _, body := get(adminToken, "?from=2026-11-01&to=2026-11-01&group_by=chatbot"); status != 200 ||
			!strings.Contains(body, `{"chatbot_id":"","requests":0,`) || !strings.Contains(body, `"chatbot_id":"bot"`) ||
			strings.Contains(body, `"day"`) || strings.Contains(body, `"user_id"`) {
			t.Errorf("by chatbot: %d %s", status, body)
		}
		status, ctype, body := get(adminToken, "?from=2026-11-01&to=2026-11-01&group_by=chatbot&group_by=model&format=csv")
		want := "chatbot,model,requests,errors,prompt_tokens,completion_tokens,cost_usd,chat_turns,conversations,documents\n" +
			",,0,0,0,0,0.000000,0,0,1\nbot,'=cmd(),2,0,0,0,0.001500,2,0,0\n"
		if status != 200 || !strings.HasPrefix(ctype, "text/csv") || body != want {
			t.Errorf("csv: %d %s\n%s", status, ctype, body)
		}
		// The platform names a tenant; without one it must.
		if status, _, body := get(rootToken, "?from=2026-11-01&to=2026-11-02&tenant_id="+tenants[1]); status != 200 ||
			!strings.Contains(body, `"requests":200`) {
			t.Errorf("root on tenant 1: %d %s", status, body)
		}
		for _, tc := range []struct {
			token, query string
			status       int
			field        string
		}{
			{memberToken, "", 403, ""},
			{adminToken, "?tenant_id=" + tenants[1], 404, ""},
			{adminToken, "?group_by=tenant", 400, "group_by"},
			{adminToken, "?from=yesterday", 400, "from"},
			{adminToken, "?from=2026-11-05&to=2026-11-01", 400, "from"},
			{adminToken, "?format=xml", 400, "format"},
			{rootToken, "", 400, "tenant_id"},
		} {
			status, _, body := get(tc.token, tc.query)
			if status != tc.status || (tc.field != "" && !strings.Contains(body, `"`+tc.field+`"`)) {
				t.Errorf("%q: %d %s", tc.query, status, body)
			}
		}
	})
}
