package httpapi

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/agent"
	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// agentFixture is the API over a real store with agent sessions served:
// tenants A and B; A's org_admin, user, second user and viewer, B's
// org_admin and the super_admin, each with an API token, and their ids.
type agentFixture struct {
	gatewayFixture
	viewer, user2, bAdmin string            // tokens
	ids                   map[string]string // user ids by login
}

func newAgentFixture(t *testing.T, db *store.DB) *agentFixture {
	t.Helper()
	ctx := context.Background()
	for _, set := range []string{store.SetAuth, store.SetMain} {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock := nodus.SystemClock{}
	aud := audit.NewService(db, clock)
	ids := identity.NewService(db, identity.NewHasher(identity.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0),
		identity.NewThrottle(20, 100, 15*time.Minute), aud, clock)
	root, _, err := ids.Bootstrap(ctx, "root@example.test", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	all := nodus.WithAllTenants(ctx)
	f := &agentFixture{gatewayFixture: gatewayFixture{audit: aud}, ids: map[string]string{"root": root.ID}}
	for name, dst := range map[string]*string{"Tenant A": &f.a, "Tenant B": &f.b} {
		tn := &identity.Tenant{Name: name, IsActive: true}
		if err := ids.CreateTenant(all, identity.Actor{User: root}, tn); err != nil {
			t.Fatal(err)
		}
		*dst = tn.ID
	}
	token := func(u *identity.User) string {
		_, secret, err := ids.CreateToken(all, u, "test", "", 0, identity.Client{})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	f.root = token(root)
	for _, m := range []struct {
		name   string
		role   identity.Role
		tenant string
		dst    *string
	}{{"a-admin", identity.RoleOrgAdmin, f.a, &f.admin}, {"a-user", identity.RoleUser, f.a, &f.user},
		{"a-user2", identity.RoleUser, f.a, &f.user2}, {"a-viewer", identity.RoleViewer, f.a, &f.viewer},
		{"b-admin", identity.RoleOrgAdmin, f.b, &f.bAdmin}} {
		u := &identity.User{Email: m.name + "@example.test", Username: m.name, Role: m.role, TenantID: m.tenant, IsActive: true}
		if err := ids.CreateUser(all, u, "a long enough password", audit.Entry{ActorKind: "system"}); err != nil {
			t.Fatal(err)
		}
		*m.dst = token(u)
		f.ids[m.name] = u.ID
	}
	svc, err := agent.NewService(agent.Config{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Deps{
		Logger:   slog.New(slog.DiscardHandler),
		Metrics:  metrics.NewRegistry(),
		Ready:    func(context.Context) Readiness { return Readiness{Ready: true} },
		Identity: ids,
		Audit:    aud,
		Agent:    svc,
	}, Config{})
	f.ts = serve(t, s)
	return f
}

type agentSessionAnswer struct {
	Session struct {
		ID            string           `json:"id"`
		AppName       string           `json:"app_name"`
		UserID        string           `json:"user_id"`
		DisplayName   string           `json:"display_name"`
		State         map[string]any   `json:"state"`
		Events        []map[string]any `json:"events"`
		EventSequence int64            `json:"event_sequence"`
	} `json:"session"`
}

type agentAppendAnswer struct {
	Event struct {
		ID      string `json:"id"`
		Author  string `json:"author"`
		Actions struct {
			StateDelta map[string]any `json:"state_delta"`
		} `json:"actions"`
	} `json:"event"`
	Stored        bool           `json:"stored"`
	SessionState  map[string]any `json:"session_state"`
	EventSequence int64          `json:"event_sequence"`
}

func TestAgentSessionRoutes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newAgentFixture(t, db)
		mine := "/api/v1/agent/apps/helpdesk/users/me/sessions"

		var created agentSessionAnswer
		f.must(t, f.user, "POST", mine, "", map[string]any{"session_id": "s1", "display_name": "Refunds",
			"state": map[string]any{"topic": "refunds", "user:lang": "ca", "temp:x": 1}}, 201, &created)
		s := created.Session
		if s.ID != "s1" || s.UserID != f.ids["a-user"] || s.AppName != "helpdesk" || s.State["topic"] != "refunds" ||
			s.State["user:lang"] != "ca" || s.State["temp:x"] != nil || s.Events == nil || s.EventSequence != 0 {
			t.Fatalf("created: %+v", s)
		}
		f.must(t, f.user, "POST", mine, "", map[string]any{"session_id": "s1"}, 409, nil)
		f.must(t, f.user, "POST", mine, "", map[string]any{"session_id": "bad\nid"}, 400, nil)
		f.must(t, f.user, "POST", mine, "", map[string]any{"unknown": 1}, 400, nil)

		// Events: temp: keys dropped, the sequence moves on, a stale one is 409.
		var ap agentAppendAnswer
		f.must(t, f.user, "POST", mine+"/s1/events", "", map[string]any{"author": "user", "invocation_id": "inv1",
			"content":        map[string]any{"role": "user", "parts": []any{map[string]any{"text": "hola"}}},
			"actions":        map[string]any{"state_delta": map[string]any{"step": 1, "app:tone": "warm", "temp:t": true}},
			"event_sequence": 0}, 201, &ap)
		if !ap.Stored || ap.Event.ID == "" || ap.Event.Actions.StateDelta["temp:t"] != nil || ap.EventSequence != 1 ||
			ap.SessionState["step"] != 1.0 || ap.SessionState["app:tone"] != "warm" {
			t.Fatalf("append: %+v", ap)
		}
		status, body := f.call(t, f.user, "POST", mine+"/s1/events", "", map[string]any{"author": "agent", "event_sequence": 0})
		if status != 409 || !strings.Contains(string(body), "the session was modified since it was read") {
			t.Errorf("stale append: %d %s", status, body)
		}
		f.must(t, f.user, "POST", mine+"/s1/events", "", map[string]any{"author": "agent", "partial": true}, 200, &ap)
		if ap.Stored {
			t.Errorf("partial event stored: %+v", ap)
		}
		f.must(t, f.user, "POST", mine+"/s1/events", "", map[string]any{"author": "agent", "turn_complete": true}, 201, nil)

		var got agentSessionAnswer
		f.must(t, f.user, "GET", mine+"/s1", "", nil, 200, &got)
		if len(got.Session.Events) != 2 || got.Session.EventSequence != 2 || got.Session.Events[0]["invocation_id"] != "inv1" {
			t.Fatalf("get: %+v", got.Session)
		}
		f.must(t, f.user, "GET", mine+"/s1?num_recent_events=1", "", nil, 200, &got)
		if len(got.Session.Events) != 1 || got.Session.Events[0]["turn_complete"] != true {
			t.Errorf("num_recent_events=1: %+v", got.Session.Events)
		}
		future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
		f.must(t, f.user, "GET", mine+"/s1?after="+future, "", nil, 200, &got)
		if len(got.Session.Events) != 0 {
			t.Errorf("after the future: %+v", got.Session.Events)
		}
		f.must(t, f.user, "GET", mine+"/s1?after=yesterday", "", nil, 400, nil)
		f.must(t, f.user, "GET", mine+"/s1?num_recent_events=-1", "", nil, 400, nil)

		var list struct {
			Sessions []map[string]any `json:"sessions"`
		}
		f.must(t, f.user, "GET", mine, "", nil, 200, &list)
		if len(list.Sessions) != 1 || list.Sessions[0]["events"] != nil {
			t.Errorf("list: %+v", list)
		}

		// Whose sessions: a user only their own, by id or "me"; admins any
		// user of their tenant; a viewer reads its own only.
		byID := "/api/v1/agent/apps/helpdesk/users/" + f.ids["a-user"] + "/sessions"
		f.must(t, f.user, "GET", byID+"/s1", "", nil, 200, nil)
		f.must(t, f.user2, "GET", byID, "", nil, 403, nil)
		f.must(t, f.user2, "GET", byID+"/s1", "", nil, 403, nil)
		f.must(t, f.user2, "POST", byID+"/s1/events", "", map[string]any{"author": "x"}, 403, nil)
		f.must(t, f.user2, "GET", mine+"/s1", "", nil, 404, nil) // their own has no s1
		f.must(t, f.admin, "GET", byID+"/s1", "", nil, 200, nil)
		f.must(t, f.admin, "POST", byID+"/s1/events", "", map[string]any{"author": "admin"}, 201, nil)
		f.must(t, f.viewer, "GET", byID+"/s1", "", nil, 403, nil)
		f.must(t, f.viewer, "GET", "/api/v1/agent/apps/helpdesk/users/me/sessions", "", nil, 200, nil)
		f.must(t, f.viewer, "POST", "/api/v1/agent/apps/helpdesk/users/me/sessions", "", map[string]any{}, 403, nil)
		f.must(t, f.viewer, "POST", byID+"/s1/events", "", map[string]any{"author": "v"}, 403, nil)
		f.must(t, f.viewer, "DELETE", byID+"/s1", "", nil, 403, nil)
		// An admin naming someone who is no user of the tenant: not found.
		f.must(t, f.admin, "GET", "/api/v1/agent/apps/helpdesk/users/"+nodus.NewID()+"/sessions", "", nil, 404, nil)
		f.must(t, f.admin, "GET", "/api/v1/agent/apps/helpdesk/users/not-a-user/sessions", "", nil, 404, nil)

		// Another tenant: B's admin cannot name A's user, nor A's tenant.
		f.must(t, f.bAdmin, "GET", byID, "", nil, 404, nil)
		f.must(t, f.bAdmin, "GET", byID+"/s1", "", nil, 404, nil)
		f.must(t, f.bAdmin, "GET", byID+"?tenant_id="+f.a, "", nil, 404, nil)
		f.must(t, f.bAdmin, "DELETE", byID+"/s1", "", nil, 404, nil)
		f.must(t, f.bAdmin, "GET", mine+"/s1", "", nil, 404, nil) // B's admin's own has no s1

		// The super_admin names the tenant.
		f.must(t, f.root, "GET", byID+"/s1", "", nil, 400, nil)
		f.must(t, f.root, "GET", byID+"/s1?tenant_id="+f.a, "", nil, 200, &got)
		if got.Session.EventSequence != 3 {
			t.Errorf("super_admin's read: %+v", got.Session)
		}
		f.must(t, f.root, "GET", byID+"/s1?tenant_id="+f.b, "", nil, 404, nil)

		f.must(t, f.user, "DELETE", mine+"/s1", "", nil, 204, nil)
		f.must(t, f.user, "GET", mine+"/s1", "", nil, 404, nil)
		f.must(t, f.user, "DELETE", mine+"/s1", "", nil, 404, nil)
	})
}
