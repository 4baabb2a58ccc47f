package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/mail/mailtest"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

const canarySMTPPassword = "canary-smtp-password-5f1e"

// TestSettingsTestEmail runs `nodus serve` on SQLite and PostgreSQL with a
// test SMTP server on loopback and sends test emails through the API and
// the settings page: egress refuses the server until the platform makes
// an exception for its address and port (and nothing connects before),
// then the message arrives; a header injection, a wrong password, a
// certificate Nodus does not trust and a sixth email in a minute each fail
// with their own status and a readable reason; and the SMTP password is
// in no answer and no log line.
func TestSettingsTestEmail(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		srv, err := mailtest.Start(mailtest.Options{User: "mailer", Password: canarySMTPPassword, AuthWithoutTLS: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		w := newGatewayFreeWorld(t, databaseURL)
		w.canaries["SMTP password"] = canarySMTPPassword
		const test = "/api/v1/settings/email/test"

		// A relay on this machine, without TLS, as security "none" allows.
		w.do(t, w.orgAdmin, "PATCH", "/api/v1/settings", map[string]any{"email": map[string]any{"smtp_host": "127.0.0.1",
			"smtp_port": srv.Port, "smtp_user": "mailer", "smtp_password": canarySMTPPassword,
			"from": "G Ops <noreply@g.example.test>", "security": "none"}}, 200, nil)

		// Loopback is always denied until the platform says otherwise:
		// refused before any connection.
		var fail struct {
			Error struct{ Code, Message string }
		}
		w.do(t, w.orgAdmin, "POST", test, map[string]any{"to": "zoe@example.test"}, 403, &fail)
		if fail.Error.Code != "forbidden" || !strings.Contains(fail.Error.Message, "egress") {
			t.Errorf("egress refusal = %+v", fail.Error)
		}
		if n := srv.Connections(); n != 0 {
			t.Fatalf("the SMTP server got %d connections while egress denies it", n)
		}

		w.do(t, w.admin, "PUT", "/api/v1/egress/platform", map[string]any{
			"rules":              []map[string]any{{"host": "127.0.0.1", "port": srv.Port, "comment": "the test SMTP server"}},
			"address_exceptions": []map[string]any{{"ip": "127.0.0.1", "port": srv.Port, "comment": "the test SMTP server"}}}, 200, nil)
		var sent struct{ Sent bool }
		w.do(t, w.orgAdmin, "POST", test, map[string]any{"to": "Zoë <zoe@example.test>"}, 200, &sent)
		msgs := srv.Messages()
		if !sent.Sent || len(msgs) != 1 || msgs[0].To[0] != "zoe@example.test" || msgs[0].AuthUser != "mailer" ||
			!strings.Contains(msgs[0].Data, "From: \"G Ops\" <noreply@g.example.test>\r\n") {
			t.Fatalf("sent %v, received %+v", sent.Sent, msgs)
		}

		// Header injection through the recipient: refused, nothing sent.
		w.do(t, w.orgAdmin, "POST", test, map[string]any{"to": "zoe@example.test\r\nBcc: victim@example.test"}, 400, &fail)
		if len(srv.Messages()) != 1 {
			t.Errorf("an injected recipient was sent to")
		}

		// A wrong password: the server's refusal, as a bad gateway.
		w.do(t, w.orgAdmin, "PATCH", "/api/v1/settings", map[string]any{"email": map[string]any{"smtp_password": "canary-wrong-smtp-password"}}, 200, nil)
		w.canaries["wrong SMTP password"] = "canary-wrong-smtp-password"
		w.do(t, w.orgAdmin, "POST", test, map[string]any{"to": "zoe@example.test"}, 502, &fail)
		if fail.Error.Code != "upstream_error" || !strings.Contains(fail.Error.Message, "authentication failed") {
			t.Errorf("wrong password = %+v", fail.Error)
		}

		// STARTTLS with a certificate from no authority Nodus trusts.
		w.do(t, w.orgAdmin, "PATCH", "/api/v1/settings", map[string]any{"email": map[string]any{"security": "starttls",
			"smtp_password": canarySMTPPassword}}, 200, nil)
		before := len(srv.Transcript())
		w.do(t, w.orgAdmin, "POST", test, map[string]any{"to": "zoe@example.test"}, 502, &fail)
		if !strings.Contains(fail.Error.Message, "certificate") {
			t.Errorf("untrusted certificate = %+v", fail.Error)
		}
		if got := srv.Transcript()[before:]; got != "EHLO localhost\nSTARTTLS\n" {
			t.Errorf("sent with an untrusted certificate: %q", got)
		}

		// Back to the relay, through the settings page's form: four
		// attempts so far reached the limiter, so one more is allowed.
		w.do(t, w.orgAdmin, "PATCH", "/api/v1/settings", map[string]any{"email": map[string]any{"security": "none",
			"smtp_password": canarySMTPPassword}}, 200, nil)
		b := newBrowser(t, w.in.base)
		csrf := b.signIn("g-admin", canaryOrgPassword)
		resp, body := b.post("/admin/settings/email/test", url.Values{"csrf": {csrf}, "to": {"ui@example.test"}}, b.base)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/settings?tested=1#email-test" {
			t.Fatalf("send from the page: %d %s", resp.StatusCode, body)
		}
		_, page, _ := b.get("/admin/settings?tested=1")
		if !strings.Contains(page, "accepted the test email") {
			t.Errorf("the page does not say the email was sent")
		}
		if got := srv.Messages(); len(got) != 2 || got[1].To[0] != "ui@example.test" {
			t.Errorf("received %+v", got)
		}
		// The sixth in a minute: limited, on the page and in the API.
		resp, body = b.post("/admin/settings/email/test", url.Values{"csrf": {csrf}, "to": {"ui@example.test"}}, b.base)
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "test emails a minute") ||
			!strings.Contains(body, `value="ui@example.test"`) {
			t.Errorf("sixth from the page: %d", resp.StatusCode)
		}
		w.scan(t, "the settings page", body)
		status, raw := w.orgAdmin.do("POST", test, map[string]any{"to": "zoe@example.test"})
		if status != http.StatusTooManyRequests {
			t.Errorf("seventh by the API: %d %s", status, raw)
		}

		var entries struct {
			Entries []struct {
				Action  string
				Changes map[string]struct{ After any }
			}
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/audit?action=settings.email_test", nil, 200, &entries)
		results := map[string]int{}
		for _, e := range entries.Entries {
			results[fmt.Sprint(e.Changes["result"].After)]++
		}
		if want := map[string]int{"failed: denied": 1, "sent": 2, "failed: auth": 1, "failed: tls": 1}; fmt.Sprint(results) != fmt.Sprint(want) {
			t.Errorf("audited results = %v, want %v", results, want)
		}

		w.mu.Lock()
		seen := strings.Join(w.seen, "\n")
		w.mu.Unlock()
		w.scan(t, "the API's answers", seen)
		w.scan(t, "the logs", w.in.logs.String())
	})
}

// newGatewayFreeWorld is a running Nodus with its super_admin and one
// tenant's org_admin signed in, as newGatewayWorld has, without a gateway
// upstream.
func newGatewayFreeWorld(t *testing.T, databaseURL string) *gwWorld {
	t.Helper()
	w := &gwWorld{vars: nodusEnv(t, databaseURL), canaries: map[string]string{
		"admin password": canaryAdminPassword, "org_admin password": canaryOrgPassword}}
	w.vars["NODUS_ADMIN_PASSWORD"] = canaryAdminPassword
	w.vars["NODUS_LOG_LEVEL"] = "debug"
	w.in = startNodus(t, w.vars)
	var cookie string
	w.admin, cookie = gwSignIn(t, w.in.base, "admin", canaryAdminPassword)
	w.canaries["admin session cookie"], w.canaries["admin API token"] = cookie, w.admin.token
	var tenant struct{ Tenant struct{ ID string } }
	w.do(t, w.admin, "POST", "/api/v1/tenants", map[string]any{"name": "Tenant G", "max_users": 10}, 201, &tenant)
	w.do(t, w.admin, "POST", "/api/v1/users", map[string]any{"email": "g-admin@example.test", "username": "g-admin",
		"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": canaryOrgPassword}, 201, nil)
	w.orgAdmin, cookie = gwSignIn(t, w.in.base, "g-admin", canaryOrgPassword)
	w.canaries["org_admin session cookie"], w.canaries["org_admin API token"] = cookie, w.orgAdmin.token
	return w
}
