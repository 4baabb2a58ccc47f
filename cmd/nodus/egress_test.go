package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// egressDecision is the answer of POST /api/v1/egress/check.
type egressDecision struct {
	Allowed          bool
	Reported         bool
	Reason           string
	Message          string
	Mode             string
	Target           string
	AddressesChecked bool `json:"addresses_checked"`
	Rule             *struct {
		Host     string
		TenantID string `json:"tenant_id"`
	}
}

// TestEgressEndToEnd is issue 4's egress scenario over HTTP, on SQLite and
// PostgreSQL: the super_admin sets the platform's rules and an address
// exception for a local Ollama, each org_admin sets their tenant's policy,
// and the dry-run check answers per tenant: B's rules never apply to A,
// the platform's apply to both, denied addresses stay denied, report mode
// lets through what enforce refuses, and every change is audited.
func TestEgressEndToEnd(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newTenancy(t, databaseURL)
		adminA, adminB, viewerA := w.members["a-admin"], w.members["b-admin"], w.members["a-viewer"]

		// The platform: an LLM provider for everyone, and a local Ollama,
		// which needs both a rule and an address exception.
		var plat struct {
			Platform struct {
				Rules      []struct{ ID, Host string }
				Exceptions []struct {
					IP   string
					Port int
				} `json:"address_exceptions"`
			}
		}
		platformBody := map[string]any{
			"rules": []map[string]any{{"host": "api.openai.example", "comment": "LLM provider"},
				{"host": "127.0.0.1", "port": 11434, "comment": "local Ollama"}},
			"address_exceptions": []map[string]any{{"ip": "127.0.0.1", "port": 11434, "comment": "local Ollama"}},
		}
		w.admin.must("PUT", "/api/v1/egress/platform", platformBody, 200, &plat)
		if len(plat.Platform.Rules) != 2 || len(plat.Platform.Exceptions) != 1 || plat.Platform.Exceptions[0].Port != 11434 {
			t.Fatalf("platform: %+v", plat)
		}
		// Only the super_admin sees or changes the platform's list.
		adminA.must("GET", "/api/v1/egress/platform", nil, 403, nil)
		adminA.must("PUT", "/api/v1/egress/platform", map[string]any{"rules": []any{map[string]any{"host": "evil.example"}},
			"address_exceptions": []any{map[string]any{"ip": "169.254.169.254", "port": 80}}}, 403, nil)
		viewerA.must("GET", "/api/v1/egress/policy", nil, 403, nil)
		viewerA.must("POST", "/api/v1/egress/check", map[string]any{"url": "https://a.example.test/"}, 403, nil)
		var again struct{ Platform json.RawMessage }
		w.admin.must("GET", "/api/v1/egress/platform", nil, 200, &again)
		if strings.Contains(string(again.Platform), "evil") || strings.Contains(string(again.Platform), "169.254") {
			t.Errorf("an org_admin changed the platform: %s", again.Platform)
		}

		// Tenants: A enforces its own list; B reports.
		var pol struct {
			Policy struct {
				TenantID      string `json:"tenant_id"`
				Mode          string
				Rules         []struct{ Host string }
				PlatformRules []struct{ Host string } `json:"platform_rules"`
			}
		}
		adminA.must("PUT", "/api/v1/egress/policy", map[string]any{"mode": "enforce", "rules": []map[string]any{
			{"host": "a.example.test"}, {"host": "*.a-corp.example", "path_prefix": "/v1"}, {"host": "8.8.8.8", "port": 53}}}, 200, &pol)
		if pol.Policy.TenantID != w.a.ID || pol.Policy.Mode != "enforce" || len(pol.Policy.Rules) != 3 || len(pol.Policy.PlatformRules) != 2 {
			t.Fatalf("A's policy: %+v", pol)
		}
		adminB.must("PUT", "/api/v1/egress/policy", map[string]any{"mode": "report",
			"rules": []map[string]any{{"host": "b.example.test"}}}, 200, nil)
		status, body := adminA.do("GET", "/api/v1/egress/policy", nil)
		if status != 200 || strings.Contains(string(body), "address_exceptions") || strings.Contains(string(body), "b.example.test") {
			t.Errorf("A's view: %d %s", status, body)
		}
		// Invalid policies name their fields and change nothing.
		adminA.must("PUT", "/api/v1/egress/policy", map[string]any{"mode": "enforce",
			"rules": []map[string]any{{"host": "169.254.169.254"}}}, 400, nil)
		adminA.must("PUT", "/api/v1/egress/policy", map[string]any{"mode": "report"}, 400, nil)
		adminA.must("PUT", "/api/v1/egress/policy", map[string]any{"mode": "off", "rules": []any{}}, 400, nil)
		adminA.must("GET", "/api/v1/egress/policy", nil, 200, &pol)
		if pol.Policy.Mode != "enforce" || len(pol.Policy.Rules) != 3 {
			t.Errorf("A's policy after refused updates: %+v", pol)
		}

		check := func(c *client, query, url string) egressDecision {
			t.Helper()
			path := "/api/v1/egress/check"
			if query != "" {
				path += "?" + query
			}
			var d egressDecision
			c.must("POST", path, map[string]any{"url": url}, 200, &d)
			return d
		}
		tests := []struct {
			c        *client
			query    string
			url      string
			allowed  bool
			reported bool
			reason   string
		}{
			{adminA, "", "https://a.example.test/v1/chat", true, false, ""},
			{adminA, "", "https://b.example.test/", false, false, "not_allowed"}, // B's rule is B's
			{adminA, "", "https://a.example.test.evil.test/", false, false, "not_allowed"},
			{adminA, "", "https://evila.example.test/", false, false, "not_allowed"},
			{adminA, "", "https://api.openai.example/v1/chat/completions", true, false, ""}, // the platform's
			{adminA, "", "http://127.0.0.1:11434/api/tags", true, false, ""},                // rule + exception
			{adminA, "", "http://127.0.0.1:11435/", false, false, "loopback"},
			{adminA, "", "http://2130706433:11434/", false, false, "loopback"},
			{adminA, "", "http://[::1]:11434/", false, false, "loopback"},
			{adminA, "", "http://169.254.169.254/latest/meta-data/", false, false, "link_local"},
			{adminA, "", "https://x.a-corp.example/v1/chat", true, false, ""},
			{adminA, "", "https://x.a-corp.example/v2", false, false, "not_allowed"},
			{adminA, "", "https://a-corp.example/v1", false, false, "not_allowed"},
			{adminA, "", "https://8.8.8.8:53/", true, false, ""},
			{adminA, "", "ftp://a.example.test/", false, false, "scheme"},
			{adminB, "", "https://b.example.test/", true, false, ""},
			{adminB, "", "https://a.example.test/", true, true, "not_allowed"}, // report mode
			{adminB, "", "http://10.0.0.1/", false, false, "private"},          // even in report mode
			{w.admin, "tenant_id=" + w.a.ID, "https://b.example.test/", false, false, "not_allowed"},
			{w.admin, "tenant_id=" + w.b.ID, "https://b.example.test/", true, false, ""},
		}
		for _, tt := range tests {
			d := check(tt.c, tt.query, tt.url)
			if d.Allowed != tt.allowed || d.Reported != tt.reported || d.Reason != tt.reason || d.Message == "" {
				t.Errorf("check %s as %s: %+v", tt.url, tt.c.user.Username, d)
			}
		}
		if d := check(adminA, "", "http://127.0.0.1:11434/"); !d.AddressesChecked || d.Rule == nil || d.Rule.TenantID != "" {
			t.Errorf("the Ollama check: %+v", d)
		}
		w.admin.must("POST", "/api/v1/egress/check", map[string]any{"url": "https://a.example.test/"}, 400, nil) // no tenant
		w.admin.must("POST", "/api/v1/egress/check?tenant_id="+nodus.NewID(), map[string]any{"url": "https://a.example.test/"}, 404, nil)
		w.admin.must("GET", "/api/v1/egress/policy?tenant_id="+nodus.NewID(), nil, 404, nil)
		adminA.must("POST", "/api/v1/egress/check?tenant_id="+w.b.ID, map[string]any{"url": "https://b.example.test/"}, 404, nil)
		adminA.must("PUT", "/api/v1/egress/policy?tenant_id="+w.b.ID, map[string]any{"mode": "enforce", "rules": []any{}}, 404, nil)

		// B's policy is as B's org_admin left it.
		w.admin.must("GET", "/api/v1/egress/policy?tenant_id="+w.b.ID, nil, 200, &pol)
		if pol.Policy.Mode != "report" || len(pol.Policy.Rules) != 1 || pol.Policy.Rules[0].Host != "b.example.test" {
			t.Errorf("B's policy: %+v", pol)
		}

		// Every change is audited; an org_admin sees their tenant's only.
		var audit struct {
			Entries []struct {
				Action     string
				TargetType string `json:"target_type"`
				TenantID   string `json:"tenant_id"`
				Changes    map[string]struct{ Before, After any }
			}
		}
		w.admin.must("GET", "/api/v1/audit?action=egress.update&limit=500", nil, 200, &audit)
		seen := map[string]int{}
		for _, e := range audit.Entries {
			seen[e.TargetType+"/"+e.TenantID]++
			if e.TargetType == "egress_platform" && e.Changes["address_exceptions"].After == nil {
				t.Errorf("platform entry without the exceptions: %+v", e)
			}
		}
		// A and B: one entry from newTenancy and one here; the platform: one.
		if seen["egress_platform/"] != 1 || seen["egress_policy/"+w.a.ID] != 2 || seen["egress_policy/"+w.b.ID] != 2 {
			t.Errorf("egress.update entries: %v", seen)
		}
		adminA.must("GET", "/api/v1/audit?action=egress.update", nil, 200, &audit)
		for _, e := range audit.Entries {
			if e.TenantID != w.a.ID {
				t.Errorf("A's org_admin sees %+v", e)
			}
		}
		status, metrics := w.admin.do("GET", "/metrics", nil)
		if status != 200 || !strings.Contains(string(metrics), "# TYPE nodus_egress_denied_total counter") {
			t.Errorf("/metrics has no egress counter: %d", status)
		}
	})
}
