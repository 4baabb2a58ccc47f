package web

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/usage"
)

// TestDashboardUsage: on both databases, the dashboard's usage section
// reads the tenant's usage metrics by chatbot and by user, largest cost
// first, names the calls outside chats, and shows another tenant nothing.
func TestDashboardUsage(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		now := time.Now().UTC()
		day := now.Format(usage.DayFormat)
		tenant := nodus.NewID()
		rows := []usage.Row{
			{ChatbotID: "bot-a", UserID: "alice", Model: "m", Requests: 2, CostMicros: 20, ChatTurns: 2},
			{ChatbotID: "bot-b", UserID: "bob", Model: "m", Requests: 5, CostMicros: 500, ChatTurns: 5},
			{UserID: "alice", Model: "m", Requests: 1, Errors: 1, CostMicros: 1},
			{UserID: "alice", Documents: 3},
		}
		for i := range rows {
			rows[i].TenantID, rows[i].Day = tenant, day
		}
		if err := db.ReplaceUsageDay(nodus.WithAllTenants(context.Background()), day, rows); err != nil {
			t.Fatal(err)
		}
		svc, err := usage.NewService(usage.Config{Store: db, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		s := newTestServer(t)
		s.deps.Usage = svc
		v := &viewer{user: identity.User{ID: "u1", TenantID: tenant, Role: identity.RoleOrgAdmin}}
		r := httptest.NewRequest("GET", "/", nil).WithContext(nodus.WithTenant(context.Background(), tenant))
		sec, err := s.usageFigures(r, v, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(sec.ByChatbot) != 3 || sec.ByChatbot[0].ID != "bot-b" || sec.ByChatbot[1].ID != "bot-a" ||
			sec.ByChatbot[2].ID != "" || !strings.HasPrefix(sec.ByChatbot[2].Name, "Outside chats") {
			t.Errorf("by chatbot: %+v", sec.ByChatbot)
		}
		if len(sec.ByUser) != 2 || sec.ByUser[0].ID != "bob" || sec.ByUser[1].Documents != 3 || sec.ByUser[1].Errors != 1 {
			t.Errorf("by user: %+v", sec.ByUser)
		}
		if sec.Totals.ChatTurns != 7 || sec.Totals.Requests != 8 || !strings.Contains(sec.CSV, "format=csv") {
			t.Errorf("totals %+v, csv %q", sec.Totals, sec.CSV)
		}
		out := render(t, s, "dashboard", &dashboardPage{pageBase: pageBase{Title: "Dashboard"}, Days: dashboardDays, Usage: sec,
			Empty: true})
		if !strings.Contains(out, "Outside chats") || !strings.Contains(out, `download`) {
			t.Errorf("the usage section is not shown:\n%s", out)
		}

		other := nodus.NewID()
		ov := &viewer{user: identity.User{ID: "u2", TenantID: other, Role: identity.RoleOrgAdmin}}
		or := httptest.NewRequest("GET", "/", nil).WithContext(nodus.WithTenant(context.Background(), other))
		if sec, err := s.usageFigures(or, ov, now); err != nil || len(sec.ByChatbot)+len(sec.ByUser) != 0 {
			t.Errorf("another tenant sees %+v, %v", sec, err)
		}
	})
}

func TestDashboardUsageRendersInert(t *testing.T) {
	s := newTestServer(t)
	base := pageBase{Title: "Dashboard", User: &identity.User{ID: "u1", Role: identity.RoleOrgAdmin}}
	line := usageLine{ID: xssName, Name: xssName, Cost: xssName}
	out := render(t, s, "dashboard", &dashboardPage{pageBase: base, Days: 14, Empty: true,
		Usage: &usageSection{ByChatbot: []usageLine{line}, ByUser: []usageLine{line}, CSV: "javascript:alert(1)"}})
	assertInertPage(t, "dashboard usage", out)
	if !strings.Contains(out, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the payload is not shown as text")
	}
}
