package egress_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

func TestUpdatePolicy(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testUpdatePolicy(t, db) })
}

func testUpdatePolicy(t *testing.T, db *store.DB) {
	w := newWorld(t, db, hosts(nil))
	inA := nodus.WithTenant(bg, w.a)
	actor := audit.Entry{ActorKind: audit.ActorUser, ActorID: "alice"}

	v, err := w.svc.Policy(inA, w.a)
	if err != nil || v.Mode != egress.ModeEnforce || len(v.Rules) != 0 || !v.UpdatedAt.IsZero() {
		t.Fatalf("a tenant without a policy: %+v, %v", v, err)
	}
	v, err = w.svc.UpdatePolicy(inA, w.a, egress.ModeReport, []egress.RuleInput{{Host: "API.example.com", Comment: "OpenAI-compatible"},
		{Host: "*.example.org", Port: 8443, PathPrefix: "/v1/"}}, actor)
	if err != nil {
		t.Fatal(err)
	}
	// Rules come back in canonical order, by host, port and path.
	if v.Mode != egress.ModeReport || len(v.Rules) != 2 || v.Rules[1].Host != "api.example.com" || v.Rules[0].PathPrefix != "/v1" ||
		v.Rules[1].TenantID != w.a || v.Rules[1].CreatedBy != "alice" || v.UpdatedBy != "alice" || !nodus.ValidID(v.Rules[1].ID) {
		t.Fatalf("after the update: %+v", v)
	}
	first := v.Rules[1]
	entries := w.actions("egress.update")
	if len(entries) != 1 || entries[0].TenantID != w.a || entries[0].TargetID != w.a || entries[0].ActorID != "alice" ||
		entries[0].Changes["mode"].Before != "enforce" || entries[0].Changes["mode"].After != "report" ||
		!slices.Equal(changeList(entries[0].Changes["rules"].After), []string{"*.example.org:8443/v1", "api.example.com (OpenAI-compatible)"}) {
		t.Fatalf("audit: %+v", entries)
	}

	// A rule kept across an update keeps its id and creation.
	v, err = w.svc.UpdatePolicy(inA, w.a, egress.ModeReport, []egress.RuleInput{{Host: "api.example.com", Comment: "renamed"}},
		audit.Entry{ActorKind: audit.ActorUser, ActorID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Rules) != 1 || v.Rules[0].ID != first.ID || v.Rules[0].CreatedBy != "alice" || v.Rules[0].Comment != "renamed" {
		t.Errorf("kept rule: %+v, was %+v", v.Rules, first)
	}
	if e := w.actions("egress.update"); len(e) != 2 || e[1].Changes["mode"] != (audit.Change{}) {
		t.Errorf("second update audit: %+v", e)
	}
	// The same policy again changes and records nothing.
	if _, err := w.svc.UpdatePolicy(inA, w.a, egress.ModeReport, []egress.RuleInput{{Host: "api.example.com", Comment: "renamed"}}, actor); err != nil {
		t.Fatal(err)
	}
	if len(w.actions("egress.update")) != 2 {
		t.Error("an update that changes nothing was audited")
	}

	// Invalid input names every bad field and writes nothing.
	_, err = w.svc.UpdatePolicy(inA, w.a, "block", []egress.RuleInput{{Host: "127.0.0.1"}, {Host: "ok.example", Port: 99999}}, actor)
	f := nodus.ErrorFields(err)
	if nodus.ErrorCode(err) != nodus.EINVALID || f["mode"] == "" || f["rules[0].host"] == "" || f["rules[1].port"] == "" {
		t.Errorf("invalid update: %v %v", err, f)
	}

	// Scope: A's scope cannot read or write B's policy; the platform's can.
	inB := nodus.WithTenant(bg, w.b)
	if _, err := w.svc.Policy(inA, w.b); nodus.ErrorCode(err) != nodus.ENOTFOUND {
		t.Errorf("A reads B: %v", err)
	}
	if _, err := w.svc.UpdatePolicy(inA, w.b, egress.ModeReport, nil, actor); nodus.ErrorCode(err) != nodus.ENOTFOUND {
		t.Errorf("A writes B: %v", err)
	}
	if v, _ := w.svc.Policy(inB, w.b); v.Mode != egress.ModeEnforce || len(v.Rules) != 0 {
		t.Errorf("B changed: %+v", v)
	}
	if _, err := w.svc.UpdatePolicy(w.platform, w.b, egress.ModeEnforce, []egress.RuleInput{{Host: "b.example"}}, actor); err != nil {
		t.Errorf("the platform writes B: %v", err)
	}
	if _, err := w.svc.Policy(bg, w.a); err != nodus.ErrNoScope {
		t.Errorf("no scope: %v", err)
	}
	if _, err := w.svc.Policy(w.platform, ""); nodus.ErrorCode(err) != nodus.EINVALID {
		t.Errorf("no tenant: %v", err)
	}
}

func TestUpdatePlatform(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testUpdatePlatform(t, db) })
}

func testUpdatePlatform(t *testing.T, db *store.DB) {
	w := newWorld(t, db, hosts(nil))
	inA := nodus.WithTenant(bg, w.a)
	actor := audit.Entry{ActorKind: audit.ActorUser, ActorID: "root"}

	if _, err := w.svc.UpdatePlatform(inA, []egress.RuleInput{{Host: "evil.example"}}, nil, actor); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
		t.Errorf("a tenant writes platform rules: %v", err)
	}
	if _, err := w.svc.Platform(inA); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
		t.Errorf("a tenant reads the platform's exceptions: %v", err)
	}
	p, err := w.svc.UpdatePlatform(w.platform, []egress.RuleInput{{Host: "127.0.0.1", Port: 11434, Comment: "Ollama"}},
		[]egress.ExceptionInput{{IP: "127.0.0.1", Port: 11434, Comment: "Ollama"}}, actor)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 1 || p.Rules[0].TenantID != "" || len(p.Exceptions) != 1 || !nodus.ValidID(p.Exceptions[0].ID) {
		t.Fatalf("platform: %+v", p)
	}
	e := w.actions("egress.update")
	if len(e) != 1 || e[0].TenantID != "" || e[0].TargetType != "egress_platform" ||
		!slices.Equal(changeList(e[0].Changes["address_exceptions"].After), []string{"127.0.0.1:11434 (Ollama)"}) {
		t.Fatalf("audit: %+v", e)
	}
	// A tenant sees the platform's rules with its policy, not the exceptions.
	v, err := w.svc.Policy(inA, w.a)
	if err != nil || len(v.PlatformRules) != 1 || v.PlatformRules[0].Host != "127.0.0.1" {
		t.Errorf("tenant view: %+v, %v", v, err)
	}
	_, err = w.svc.UpdatePlatform(w.platform, nil, []egress.ExceptionInput{{IP: "8.8.8.8", Port: 53}, {IP: "::1", Port: 0}}, actor)
	if f := nodus.ErrorFields(err); f["address_exceptions[0].ip"] == "" || f["address_exceptions[1].port"] == "" {
		t.Errorf("invalid exceptions: %v", err)
	}
}

// TestCheck is the dry run: the same decisions as a request, nothing sent
// and nothing recorded.
func TestCheck(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testCheck(t, db) })
}

func testCheck(t *testing.T, db *store.DB) {
	w := newWorld(t, db, hosts(map[string]string{"api.example.com": "93.184.215.14", "internal.example.com": "10.0.0.7",
		"b.example.com": "93.184.215.15"}))
	w.setPlatform([]egress.RuleInput{{Host: "internal.example.com"}, {Host: "ollama.internal", Port: 11434}})
	w.setPolicy(w.a, egress.ModeEnforce, egress.RuleInput{Host: "api.example.com", PathPrefix: "/v1"})
	w.setPolicy(w.b, egress.ModeReport, egress.RuleInput{Host: "b.example.com"})
	inA, inB := nodus.WithTenant(bg, w.a), nodus.WithTenant(bg, w.b)

	tests := []struct {
		ctx      context.Context
		tenant   string
		url      string
		allowed  bool
		reported bool
		reason   egress.Reason
		checked  bool
	}{
		{inA, w.a, "https://api.example.com/v1/chat?key=x", true, false, "", true},
		{inA, w.a, "https://api.example.com/v2", false, false, egress.ReasonNotAllowed, false},
		{inA, w.a, "https://api.example.com.evil.test/v1", false, false, egress.ReasonNotAllowed, false},
		{inA, w.a, "https://b.example.com/", false, false, egress.ReasonNotAllowed, false},
		{inA, w.a, "https://internal.example.com/", false, false, egress.ReasonPrivate, true},
		{inA, w.a, "http://ollama.internal:11434/", true, false, "", false}, // does not resolve here
		{inA, w.a, "http://169.254.169.254/latest/meta-data/", false, false, egress.ReasonLinkLocal, true},
		{inA, w.a, "http://2130706433/", false, false, egress.ReasonLoopback, true},
		{inA, w.a, "http://[::ffff:8.8.8.8]/", false, false, egress.ReasonIPSpelling, true},
		{inA, w.a, "ftp://api.example.com/", false, false, egress.ReasonScheme, false},
		{inA, w.a, "not a url at all", false, false, egress.ReasonScheme, false},
		{inB, w.b, "https://b.example.com/", true, false, "", true},
		{inB, w.b, "https://api.example.com/v1", true, true, egress.ReasonNotAllowed, true},
		{inB, w.b, "https://internal.example.com/", false, false, egress.ReasonPrivate, true},
		{w.platform, w.a, "https://api.example.com/v1", true, false, "", true},
	}
	for _, tt := range tests {
		d, err := w.svc.Check(tt.ctx, tt.tenant, tt.url)
		if err != nil {
			t.Errorf("Check(%s): %v", tt.url, err)
			continue
		}
		if d.Allowed != tt.allowed || d.Reported != tt.reported || d.Reason != tt.reason || d.AddressesChecked != tt.checked || d.Message == "" {
			t.Errorf("Check(%s) for %s = %+v", tt.url, tt.tenant, d)
		}
		if strings.Contains(d.Message, "93.184") || strings.Contains(d.Message, "10.0.0.7") {
			t.Errorf("Check(%s) tells an address: %s", tt.url, d.Message)
		}
	}
	if _, err := w.svc.Check(inA, w.b, "https://b.example.com/"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
		t.Errorf("A checks for B: %v", err)
	}
	if _, err := w.svc.Check(inA, w.a, ""); nodus.ErrorCode(err) != nodus.EINVALID {
		t.Errorf("empty URL: %v", err)
	}
	if n := len(w.actions("egress.denied")) + len(w.actions("egress.reported")); n != 0 {
		t.Errorf("the dry run recorded %d entries", n)
	}
}
