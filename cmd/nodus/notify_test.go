package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/mail/mailtest"
	"github.com/nodus-os/nodus/internal/notify"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// hookReceiver is a webhook endpoint that verifies each delivery's
// signature as a receiver would, and fails the first failFirst requests
// with a 500.
type hookReceiver struct {
	*httptest.Server
	failFirst int

	mu       sync.Mutex
	secret   []byte
	requests int
	verified []map[string]any // bodies whose signature verified
	bad      int              // requests whose signature did not
}

func newHookReceiver(t *testing.T, failFirst int) *hookReceiver {
	h := &hookReceiver{failFirst: failFirst}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.requests++
		if err := notify.Verify(h.secret, r.Header.Get(notify.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			h.bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if h.requests <= h.failFirst {
			http.Error(w, "down for a moment", http.StatusInternalServerError)
			return
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		if r.Header.Get("X-Nodus-Event") != v["type"] {
			http.Error(w, "event header and body disagree", http.StatusBadRequest)
			return
		}
		h.verified = append(h.verified, v)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) setSecret(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secret = []byte(s)
}

func (h *hookReceiver) state() (requests, bad int, verified []map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests, h.bad, append([]map[string]any(nil), h.verified...)
}

func (h *hookReceiver) port() int {
	u, _ := url.Parse(h.URL)
	var p int
	fmt.Sscan(u.Port(), &p)
	return p
}

// eventually retries check until it returns "" or the deadline passes,
// then fails with its last complaint.
func eventually(t *testing.T, within time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNotificationsEndToEnd runs `nodus serve` on SQLite and PostgreSQL:
// a call that takes the tenant's budget past its maximum makes one in-app
// notification for the org_admin (none for a user), an email to the
// org_admin who opted in, received by a test SMTP server, and a signed
// post to each subscribed webhook, verified by the receiver; a receiver
// that fails first is retried and both attempts are in the delivery log.
// Another tenant's org_admin sees none of it and reaches none of it by id.
func TestNotificationsEndToEnd(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		smtp, err := mailtest.Start(mailtest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(smtp.Close)
		good, flaky := newHookReceiver(t, 0), newHookReceiver(t, 1)
		// Each call reports 100k tokens each way: far past a budget of a
		// tenth of a cent, and a worst case small enough to be admitted.
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{APIKey: canaryProviderKey, PromptTokens: 100000, CompletionTokens: 100000})
		fakePort := 0
		if u, err := url.Parse(w.fake.URL); err == nil {
			fmt.Sscan(u.Port(), &fakePort)
		}
		var rules, exceptions []map[string]any
		for _, p := range []int{fakePort, smtp.Port, good.port(), flaky.port()} {
			rules = append(rules, map[string]any{"host": "127.0.0.1", "port": p, "comment": "test server"})
			exceptions = append(exceptions, map[string]any{"ip": "127.0.0.1", "port": p, "comment": "test server"})
		}
		w.do(t, w.admin, "PUT", "/api/v1/egress/platform", map[string]any{"rules": rules, "address_exceptions": exceptions}, 200, nil)
		w.do(t, w.orgAdmin, "PATCH", "/api/v1/settings", map[string]any{"email": map[string]any{"smtp_host": "127.0.0.1",
			"smtp_port": smtp.Port, "from": "Nodus <noreply@g.example.test>", "security": "none"}}, 200, nil)

		// A user of the tenant, who is no org_admin: budgets are not theirs.
		w.do(t, w.orgAdmin, "POST", "/api/v1/users", map[string]any{"email": "g-user@example.test", "username": "g-user",
			"role": "user", "password": canaryOrgPassword}, 201, nil)
		user, _ := gwSignIn(t, w.in.base, "g-user", canaryOrgPassword)

		var prefs struct{ Email map[string]bool }
		w.do(t, w.orgAdmin, "PUT", "/api/v1/notifications/preferences", map[string]any{"email": map[string]bool{"budget.exhausted": true}}, 200, &prefs)
		if !prefs.Email["budget.exhausted"] || prefs.Email["budget.warning"] || len(prefs.Email) != len(notify.Kinds()) {
			t.Fatalf("preferences = %v", prefs.Email)
		}
		w.do(t, w.orgAdmin, "PUT", "/api/v1/notifications/preferences", map[string]any{"email": map[string]bool{"budget.nonsense": true}}, 400, nil)

		type created struct {
			Webhook struct{ ID string }
			Secret  string
		}
		var goodHook, flakyHook, otherHook created
		w.do(t, w.orgAdmin, "POST", "/api/v1/webhooks", map[string]any{"url": good.URL + "/hooks", "kinds": []string{"budget.exhausted"}}, 201, &goodHook)
		w.do(t, w.orgAdmin, "POST", "/api/v1/webhooks", map[string]any{"url": flaky.URL, "kinds": []string{"budget.warning", "budget.exhausted"}}, 201, &flakyHook)
		// Subscribed to another kind only: gets nothing.
		w.do(t, w.orgAdmin, "POST", "/api/v1/webhooks", map[string]any{"url": good.URL + "/docs", "kinds": []string{"document.processed"}}, 201, &otherHook)
		if !strings.HasPrefix(goodHook.Secret, "whsec_") || goodHook.Secret == flakyHook.Secret {
			t.Fatalf("webhook secrets %q %q", goodHook.Secret, flakyHook.Secret)
		}
		good.setSecret(goodHook.Secret)
		flaky.setSecret(flakyHook.Secret)
		listed := w.do(t, w.orgAdmin, "GET", "/api/v1/webhooks", nil, 200, nil)
		if strings.Contains(string(listed), goodHook.Secret) || strings.Contains(string(listed), "secret") {
			t.Errorf("the webhook list shows a secret: %s", listed)
		}
		w.do(t, w.orgAdmin, "POST", "/api/v1/webhooks", map[string]any{"url": "ftp://127.0.0.1/x", "kinds": []string{"budget.exhausted"}}, 400, nil)

		w.do(t, w.orgAdmin, "PUT", "/api/v1/gateway/budgets", map[string]any{"scope": "tenant", "max_micros": 1000, "period": "30d"}, 200, nil)
		if status, _, b := w.chat(t, w.key, "fake", false, "notify-1"); status != 200 {
			t.Fatalf("the call within budget: %d %s", status, b)
		}
		if status, _, b := w.chat(t, w.key, "fake", false, "notify-2"); status != 429 {
			t.Fatalf("the call past the budget: %d %s", status, b)
		}

		type notificationList struct {
			Notifications []struct {
				ID, Kind, Title, Link string
				ReadAt                *time.Time `json:"read_at"`
			}
		}
		var list notificationList
		eventually(t, 20*time.Second, func() string {
			w.do(t, w.orgAdmin, "GET", "/api/v1/notifications?unread=true", nil, 200, &list)
			if len(list.Notifications) == 0 {
				return "no notification for the org_admin"
			}
			return ""
		})
		if len(list.Notifications) != 1 || list.Notifications[0].Kind != "budget.exhausted" ||
			!strings.Contains(list.Notifications[0].Title, "exhausted") || list.Notifications[0].Link != "/gateway/budgets" {
			t.Fatalf("notifications = %+v", list.Notifications)
		}
		var count struct{ Unread int }
		w.do(t, w.orgAdmin, "GET", "/api/v1/notifications/count", nil, 200, &count)
		if count.Unread != 1 {
			t.Errorf("unread = %d, want 1", count.Unread)
		}
		var userList notificationList
		w.do(t, user, "GET", "/api/v1/notifications", nil, 200, &userList)
		if len(userList.Notifications) != 0 {
			t.Errorf("a user got the tenant's budget notification: %+v", userList.Notifications)
		}
		// The user cannot mark the org_admin's, nor manage webhooks.
		w.do(t, user, "POST", "/api/v1/notifications/"+list.Notifications[0].ID+"/read", nil, 404, nil)
		w.do(t, user, "GET", "/api/v1/webhooks", nil, 403, nil)

		eventually(t, 30*time.Second, func() string {
			if len(smtp.Messages()) == 0 {
				return "no email arrived"
			}
			return ""
		})
		msg := smtp.Messages()[0]
		if len(msg.To) != 1 || msg.To[0] != "g-admin@example.test" || !strings.Contains(msg.Data, "Subject: The tenant budget is exhausted") {
			t.Errorf("email = %+v", msg)
		}

		eventually(t, 30*time.Second, func() string {
			if _, _, v := good.state(); len(v) == 0 {
				return "the webhook received nothing it could verify"
			}
			return ""
		})
		// River's first retry comes about a second after the failure.
		eventually(t, 60*time.Second, func() string {
			if _, _, v := flaky.state(); len(v) == 0 {
				return "the failing webhook was not retried to success"
			}
			return ""
		})
		for name, h := range map[string]*hookReceiver{"good": good, "flaky": flaky} {
			requests, bad, verified := h.state()
			if bad != 0 || len(verified) != 1 || verified[0]["type"] != "budget.exhausted" || verified[0]["tenant_id"] != w.orgAdmin.user.TenantID {
				t.Errorf("%s receiver: %d requests, %d bad signatures, verified %v", name, requests, bad, verified)
			}
			data, _ := verified[0]["data"].(map[string]any)
			if data["percent"] != float64(100) || data["max_micros"] != float64(1000) {
				t.Errorf("%s receiver's data = %v", name, data)
			}
		}
		var deliveries struct {
			Deliveries []struct {
				Attempt      int
				Status       string
				ResponseCode int `json:"response_code"`
				Error        string
			}
		}
		// The receiver saw the retry before nodus, having read its answer,
		// logged the delivery: wait for the log.
		eventually(t, 10*time.Second, func() string {
			w.do(t, w.orgAdmin, "GET", "/api/v1/webhooks/"+flakyHook.Webhook.ID+"/deliveries", nil, 200, &deliveries)
			if d := deliveries.Deliveries; len(d) != 2 || d[0].Status != "succeeded" || d[0].ResponseCode != 200 || d[0].Attempt != 2 ||
				d[1].Status != "failed" || d[1].ResponseCode != 500 || d[1].Attempt != 1 || !strings.Contains(d[1].Error, "500") {
				return fmt.Sprintf("flaky deliveries = %+v", d)
			}
			return ""
		})
		w.do(t, w.orgAdmin, "GET", "/api/v1/webhooks/"+otherHook.Webhook.ID+"/deliveries", nil, 200, &deliveries)
		if len(deliveries.Deliveries) != 0 {
			t.Errorf("a webhook not subscribed to budgets got %+v", deliveries.Deliveries)
		}

		// Another tenant's org_admin: nothing of G's, by list or by id.
		var other struct{ Tenant struct{ ID string } }
		w.do(t, w.admin, "POST", "/api/v1/tenants", map[string]any{"name": "Tenant H", "max_users": 10}, 201, &other)
		w.do(t, w.admin, "POST", "/api/v1/users", map[string]any{"email": "h-admin@example.test", "username": "h-admin",
			"role": "org_admin", "tenant_id": other.Tenant.ID, "password": canaryOrgPassword}, 201, nil)
		h, _ := gwSignIn(t, w.in.base, "h-admin", canaryOrgPassword)
		var hList notificationList
		w.do(t, h, "GET", "/api/v1/notifications", nil, 200, &hList)
		var hHooks struct{ Webhooks []any }
		w.do(t, h, "GET", "/api/v1/webhooks", nil, 200, &hHooks)
		if len(hList.Notifications) != 0 || len(hHooks.Webhooks) != 0 {
			t.Errorf("H sees G's notifications %v or webhooks %v", hList.Notifications, hHooks.Webhooks)
		}
		g := "?tenant_id=" + w.orgAdmin.user.TenantID
		w.do(t, h, "POST", "/api/v1/notifications/"+list.Notifications[0].ID+"/read", nil, 404, nil)
		w.do(t, h, "GET", "/api/v1/notifications"+g, nil, 404, nil)
		w.do(t, h, "GET", "/api/v1/webhooks"+g, nil, 404, nil)
		w.do(t, h, "GET", "/api/v1/webhooks/"+goodHook.Webhook.ID+"/deliveries", nil, 404, nil)
		w.do(t, h, "DELETE", "/api/v1/webhooks/"+goodHook.Webhook.ID, nil, 404, nil)
		w.do(t, w.orgAdmin, "GET", "/api/v1/notifications/count", nil, 200, &count)
		if count.Unread != 1 {
			t.Errorf("G's unread after H's attempts = %d", count.Unread)
		}

		// In the browser: the header counts it on every page, the
		// notifications page lists it unread, and opening it marks it
		// read and goes to what it is about.
		b := newBrowser(t, w.in.base)
		csrf := b.signIn("g-admin", canaryOrgPassword)
		for _, page := range []string{"/", "/knowledge", "/gateway/keys"} {
			if _, body, _ := b.get(page); !strings.Contains(body, `<span class="count" aria-label="1 unread">1</span>`) {
				t.Errorf("%s: no unread count in the header", page)
			}
		}
		_, page, _ := b.get("/notifications")
		assertInert(t, "notifications", page)
		if !strings.Contains(page, `id="n-`+list.Notifications[0].ID+`" class="unread"`) || !strings.Contains(page, "is exhausted") {
			t.Errorf("the notifications page does not list it unread:\n%s", page)
		}
		if resp, body := b.post("/notifications/"+list.Notifications[0].ID+"/read", url.Values{"open": {"1"}}, w.in.base); resp.StatusCode != 403 {
			t.Errorf("a form without the CSRF token: %d %s", resp.StatusCode, body)
		}
		resp, _ := b.post("/notifications/"+list.Notifications[0].ID+"/read", url.Values{"csrf": {csrf}, "open": {"1"}}, w.in.base)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/gateway/budgets" {
			t.Errorf("open: %d %v", resp.StatusCode, resp.Header)
		}
		if _, body, _ := b.get("/"); strings.Contains(body, `class="count"`) || !strings.Contains(body, `href="/notifications"`) {
			t.Error("the header still counts a read notification")
		}
		// The preferences form sets every kind: only those checked.
		if resp, _ := b.post("/notifications/preferences", url.Values{"csrf": {csrf}, "email": {"key.expiring", "egress.denied"}}, w.in.base); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("save preferences: %d", resp.StatusCode)
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/notifications/preferences", nil, 200, &prefs)
		if !prefs.Email["key.expiring"] || !prefs.Email["egress.denied"] || prefs.Email["budget.exhausted"] {
			t.Errorf("preferences after the form = %v", prefs.Email)
		}
		// Webhooks: created in the page with its secret shown once; the
		// delivery log of one; a user has no such page.
		resp, page = b.post("/admin/webhooks", url.Values{"csrf": {csrf}, "url": {good.URL + "/ui"}, "kinds": {"egress.denied"}}, w.in.base)
		if resp.StatusCode != http.StatusCreated || !strings.Contains(page, `readonly value="whsec_`) {
			t.Errorf("create a webhook in the page: %d", resp.StatusCode)
		}
		_, page, _ = b.get("/admin/webhooks")
		if strings.Contains(page, "whsec_") || !strings.Contains(page, good.URL+"/ui") {
			t.Error("the webhooks page shows a secret or misses the new webhook")
		}
		if resp, page, _ := b.get("/admin/webhooks/" + goodHook.Webhook.ID); resp.StatusCode != 200 || !strings.Contains(page, "Delivered") {
			t.Errorf("the delivery log: %d", resp.StatusCode)
		}
		ub := newBrowser(t, w.in.base)
		ub.signIn("g-user", canaryOrgPassword)
		if resp, _, _ := ub.get("/admin/webhooks"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a user opens the webhooks page: %d", resp.StatusCode)
		}

		// G's org_admin reads it again through the API (no change);
		// deleting a webhook drops its log.
		w.do(t, w.orgAdmin, "POST", "/api/v1/notifications/"+list.Notifications[0].ID+"/read", nil, 204, nil)
		w.do(t, w.orgAdmin, "GET", "/api/v1/notifications/count", nil, 200, &count)
		if count.Unread != 0 {
			t.Errorf("unread after reading = %d", count.Unread)
		}
		w.do(t, w.orgAdmin, "DELETE", "/api/v1/webhooks/"+flakyHook.Webhook.ID, nil, 204, nil)
		w.do(t, w.orgAdmin, "GET", "/api/v1/webhooks/"+flakyHook.Webhook.ID+"/deliveries", nil, 404, nil)
	})
}
