package web

import (
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/notify"
)

// notifyPages are the notifications and webhooks pages with the payload in
// everything a producer or an administrator controls, for
// TestPagesRenderStoredXSSInert.
func notifyPages(base pageBase) map[string]pageData {
	now := time.Now()
	base.Notify, base.Unread = true, 3
	ferr := &formError{Message: xssName, Fields: map[string]string{xssName: xssName}}
	hook := notify.Webhook{ID: "w1", URL: "https://example.com/" + xssName, Kinds: []notify.Kind{notify.Kind(xssName)}, Active: true, CreatedAt: now}
	return map[string]pageData{
		"notifications": &notificationsPage{pageBase: base, Error: ferr, Next: "/notifications?cursor=x",
			Notifications: []notify.Notification{
				{ID: "n1", Kind: notify.KindDocumentFailed, Title: xssName, Body: xssName, Link: "javascript:alert(1)", CreatedAt: now},
				{ID: "n2", Kind: notify.Kind(xssName), Title: "</li>" + xssName, Body: xssName, CreatedAt: now, ReadAt: &now}},
			Prefs: []kindPref{{Kind: notify.Kind(xssName), Label: xssName, Email: true}}},
		"admin_webhooks": &webhooksPage{pageBase: base, Webhooks: []notify.Webhook{hook}, Form: webhookForm{URL: xssName},
			Kinds: []kindPref{{Kind: notify.Kind(xssName), Label: xssName}}, Error: ferr, Created: &hook, Secret: xssName},
	}
}

func TestWebhookDeliveriesRenderInert(t *testing.T) {
	s := newTestServer(t)
	base := pageBase{Title: xssName, CSRF: "tok", User: &identity.User{ID: "u1", Role: identity.RoleOrgAdmin}}
	hook := notify.Webhook{ID: "w1", URL: xssName, Kinds: []notify.Kind{notify.KindBudgetExhausted}}
	out := render(t, s, "admin_webhooks", &webhooksPage{pageBase: base, Selected: &hook,
		Deliveries: []notify.Delivery{{ID: "d1", EventID: xssName, Kind: notify.Kind(xssName), Status: notify.DeliveryFailed, Error: xssName, ResponseCode: 500}}})
	assertInertPage(t, "webhook deliveries", out)
	if !strings.Contains(out, "<strong>Failed</strong>") || strings.Contains(out, "New webhook") {
		t.Errorf("the delivery log is not what is shown:\n%s", out)
	}
}

func TestWebhookSecretShownOnce(t *testing.T) {
	s := newTestServer(t)
	base := pageBase{Title: "Webhooks", CSRF: "tok", User: &identity.User{ID: "u1", Role: identity.RoleOrgAdmin}}
	hook := notify.Webhook{ID: "w1", URL: "https://example.com/h", Kinds: []notify.Kind{notify.KindBudgetExhausted}}
	with := render(t, s, "admin_webhooks", &webhooksPage{pageBase: base, Webhooks: []notify.Webhook{hook}, Created: &hook, Secret: "whsec_the-whole-secret"})
	if !strings.Contains(with, `<input id="secret" class="mono" readonly value="whsec_the-whole-secret">`) {
		t.Errorf("the new webhook's secret is not shown:\n%s", with)
	}
	without := render(t, s, "admin_webhooks", &webhooksPage{pageBase: base, Webhooks: []notify.Webhook{hook}})
	if strings.Contains(without, "whsec_") || strings.Contains(without, `id="secret"`) {
		t.Error("the webhook list shows a secret")
	}
}

// TestHeaderUnreadCount: the header links to the notifications with the
// count when there are unread ones, without a number when none, and not
// at all without a tenant.
func TestHeaderUnreadCount(t *testing.T) {
	s := newTestServer(t)
	u := &identity.User{ID: "u1", Role: identity.RoleUser}
	for _, tc := range []struct {
		notify bool
		unread int
		want   string
		not    string
	}{
		{true, 3, `<span class="count" aria-label="3 unread">3</span>`, ""},
		{true, 150, `aria-label="150 unread">99&#43;</span>`, ""},
		{true, 0, `href="/notifications"`, `class="count"`},
		{false, 5, "", `href="/notifications"`},
	} {
		out := render(t, s, "error", &errorPage{pageBase: pageBase{Title: "x", User: u, Notify: tc.notify, Unread: tc.unread}, Status: 404})
		if tc.want != "" && !strings.Contains(out, tc.want) {
			t.Errorf("%+v: no %s", tc, tc.want)
		}
		if tc.not != "" && strings.Contains(out, tc.not) {
			t.Errorf("%+v: has %s", tc, tc.not)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/knowledge-bases/x": true, "/gateway/budgets": true, "": false, "//evil.example/x": false, `/\evil.example`: false,
		"https://evil.example": false, "javascript:alert(1)": false, "knowledge": false,
	} {
		if got := localPath(p); got != want {
			t.Errorf("localPath(%q) = %v", p, got)
		}
	}
}
