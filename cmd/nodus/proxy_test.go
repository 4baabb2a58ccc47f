package main

import (
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestThrottleBehindTrustedProxy runs Nodus behind a (simulated) reverse
// proxy on loopback: sign-in throttling and the audit log key on the
// client address from X-Forwarded-For, so one client's failures do not
// lock out another behind the same proxy.
func TestThrottleBehindTrustedProxy(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		vars["NODUS_TRUSTED_PROXIES"] = "127.0.0.1, ::1"
		in := startNodus(t, vars)
		login := in.base + "/api/v1/auth/login"
		from := func(addr string) reqOpt { return withHeader("X-Forwarded-For", "203.0.113.200, "+addr) }
		for i := range 20 {
			resp, body := call(t, "POST", login, jsonBody(map[string]string{"login": "admin", "password": "wrong"}), from("198.51.100.1"))
			if resp.StatusCode != 401 {
				t.Fatalf("failure %d: %d %s", i+1, resp.StatusCode, body)
			}
		}
		if resp, _ := call(t, "POST", login, jsonBody(map[string]string{"login": "admin", "password": vars["NODUS_ADMIN_PASSWORD"]}), from("198.51.100.1")); resp.StatusCode != 429 {
			t.Fatalf("the throttled client: %d, want 429", resp.StatusCode)
		}
		if resp, body := call(t, "POST", login, jsonBody(map[string]string{"login": "admin", "password": vars["NODUS_ADMIN_PASSWORD"]}), from("198.51.100.2")); resp.StatusCode != 200 {
			t.Fatalf("another client behind the same proxy: %d %s", resp.StatusCode, body)
		}
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		status, body := admin.do("GET", "/api/v1/audit?action=auth.login_failed&limit=1", nil)
		if status != 200 || !strings.Contains(string(body), `"address":"198.51.100.1"`) {
			t.Fatalf("audit of a failed sign-in through the proxy: %d %s", status, body)
		}
	})
}
