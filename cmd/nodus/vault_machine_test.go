package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// machineLogin is the answer of POST /api/v1/vault/auth/machine.
type machineLogin struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	UsesLeft    *int   `json:"uses_left"`
}

// createdMachine is the answer that creates a machine identity or rotates
// its secret.
type createdMachine struct {
	Machine struct {
		ID       string `json:"id"`
		ClientID string `json:"client_id"`
	} `json:"machine"`
	ClientSecret string `json:"client_secret"`
}

// loginMachine posts a machine login and returns the status, the decoded
// answer and the raw body.
func loginMachine(t *testing.T, base, clientID, secret string) (int, machineLogin, []byte) {
	t.Helper()
	resp, body := call(t, "POST", base+"/api/v1/vault/auth/machine", jsonBody(map[string]string{"client_id": clientID, "client_secret": secret}))
	var l machineLogin
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("decode login: %v", err)
		}
	}
	return resp.StatusCode, l, body
}

// machineClient logs a machine identity in and returns a client that
// sends its access token.
func machineClient(t *testing.T, base, clientID, secret string) (*client, machineLogin) {
	t.Helper()
	status, l, body := loginMachine(t, base, clientID, secret)
	if status != http.StatusOK {
		t.Fatalf("machine login: %d %s", status, body)
	}
	return &client{t: t, base: base, token: l.AccessToken, user: identity.User{Username: "machine " + clientID}}, l
}

// errorOf returns the code and message of an error answer.
func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an error envelope: %s", body)
	}
	return e.Error.Code + ": " + e.Error.Message
}

// TestVaultMachineIdentities is issue 4's machine access over HTTP, on
// both engines: an org_admin makes a machine identity with a read grant
// on prod:/db; its client secret buys a token that reveals
// prod:/db/PASSWORD and nothing outside the grant, writes nothing without
// a write grant, and is no credential anywhere but the vault's secret
// routes; use limits, TTLs and address ranges hold; failures look alike
// and are throttled; rotating the secret and deleting the identity revoke
// its tokens; the audit log names the machine.
func TestVaultMachineIdentities(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newTenancy(t, databaseURL)
		base := w.in.base
		admin := w.members["a-admin"]
		db := map[string]any{"environment": "prod", "path": "/db", "key": "PASSWORD"}
		ops := map[string]any{"environment": "prod", "path": "/ops", "key": "TOKEN"}
		admin.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/ops", "key": "TOKEN",
			"value": "ops-canary"}, 200, nil)

		var created createdMachine
		admin.must("POST", "/api/v1/vault/machines", map[string]any{"name": "deployer"}, 201, &created)
		id, clientID, secret := created.Machine.ID, created.Machine.ClientID, created.ClientSecret
		if !strings.HasPrefix(clientID, "ndc_") || !strings.HasPrefix(secret, "ndcs_") {
			t.Fatalf("created: %+v", created)
		}
		// The secret is shown once: never in a read of the identity.
		status, body := admin.do("GET", "/api/v1/vault/machines/"+id, nil)
		if status != 200 || strings.Contains(string(body), secret[5:]) || strings.Contains(string(body), "secret_hash") {
			t.Fatalf("GET machine: %d %s", status, body)
		}
		admin.must("POST", "/api/v1/vault/grants", map[string]any{"subject_type": "machine", "subject": id,
			"environment": "prod", "path_prefix": "/db", "permission": "read"}, 201, nil)

		m, l := machineClient(t, base, clientID, secret)
		if !strings.HasPrefix(l.AccessToken, "ndm_") || l.TokenType != "Bearer" || l.ExpiresIn != 3600 || l.UsesLeft != nil {
			t.Fatalf("login answer: %+v", l)
		}
		var revealed struct{ Value string }
		m.must("POST", "/api/v1/vault/secret/reveal", db, 200, &revealed)
		if revealed.Value != "a-canary-secret" {
			t.Fatalf("machine reveal: %+v", revealed)
		}
		// Outside its grant, writes, and anything but the vault's secret
		// routes: 403 where its grants decide, 401 where it is no credential.
		m.must("POST", "/api/v1/vault/secret/reveal", ops, 403, nil)
		m.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/db", "key": "PASSWORD", "value": "x"}, 403, nil)
		m.must("GET", "/api/v1/vault/secrets?environment=prod&path=/db", nil, 200, nil)
		m.must("GET", "/api/v1/vault/secrets?environment=prod&recursive=true", nil, 403, nil)
		m.must("GET", "/api/v1/vault/secret?environment=prod&path=/ops&key=TOKEN", nil, 403, nil)
		m.must("POST", "/api/v1/vault/secret/reveal?tenant_id="+w.b.ID, db, 404, nil)
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/v1/me"}, {"GET", "/api/v1/vault/machines"}, {"GET", "/api/v1/vault/machines/" + id},
			{"POST", "/api/v1/vault/machines/" + id + "/secret"}, {"GET", "/api/v1/vault/grants"}, {"POST", "/api/v1/vault/grants"},
			{"GET", "/api/v1/vault/handles"}, {"POST", "/api/v1/vault/environments"}, {"GET", "/api/v1/users"},
			{"POST", "/api/v1/tokens"}, {"GET", "/api/v1/audit"}, {"POST", "/api/v1/vault/secret/destroy"},
		} {
			var body any
			if r.method == "POST" {
				body = map[string]any{}
			}
			status, got := m.do(r.method, r.path, body)
			if status != 401 || !strings.Contains(string(got), `"code":"unauthorized"`) {
				t.Errorf("%s %s with a machine token: %d %s, want 401", r.method, r.path, status, got)
			}
		}
		// A write grant lets it write there (and still not read).
		admin.must("POST", "/api/v1/vault/grants", map[string]any{"subject_type": "machine", "subject": id,
			"environment": "prod", "path_prefix": "/ci", "permission": "write"}, 201, nil)
		m.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/ci", "key": "BUILD", "value": "42"}, 200, nil)
		m.must("POST", "/api/v1/vault/secret/reveal", map[string]any{"environment": "prod", "path": "/ci", "key": "BUILD"}, 403, nil)

		// A use limit of 2: exactly two requests.
		admin.must("PATCH", "/api/v1/vault/machines/"+id, map[string]any{"token_use_limit": 2}, 200, nil)
		limited, l := machineClient(t, base, clientID, secret)
		if l.UsesLeft == nil || *l.UsesLeft != 2 {
			t.Fatalf("uses_left %v, want 2", l.UsesLeft)
		}
		limited.must("POST", "/api/v1/vault/secret/reveal", db, 200, nil)
		limited.must("POST", "/api/v1/vault/secret/reveal", db, 200, nil)
		limited.must("POST", "/api/v1/vault/secret/reveal", db, 401, nil)

		// A TTL of one second: refused once it has passed.
		admin.must("PATCH", "/api/v1/vault/machines/"+id, map[string]any{"token_use_limit": 0, "token_ttl_seconds": 1}, 200, nil)
		short, l := machineClient(t, base, clientID, secret)
		if l.ExpiresIn != 1 {
			t.Fatalf("expires_in %d, want 1", l.ExpiresIn)
		}
		time.Sleep(1100 * time.Millisecond)
		short.must("POST", "/api/v1/vault/secret/reveal", db, 401, nil)
		admin.must("PATCH", "/api/v1/vault/machines/"+id, map[string]any{"token_ttl_seconds": 3600}, 200, nil)

		// Address ranges: a token used from outside them is refused, and
		// so is a login.
		admin.must("PATCH", "/api/v1/vault/machines/"+id, map[string]any{"allowed_cidrs": []string{"127.0.0.0/8", "::1/128"}}, 200, nil)
		ranged, _ := machineClient(t, base, clientID, secret)
		ranged.must("POST", "/api/v1/vault/secret/reveal", db, 200, nil)
		admin.must("PATCH", "/api/v1/vault/machines/"+id, map[string]any{"allowed_cidrs": []string{"10.0.0.0/8"}}, 200, nil)
		ranged.must("POST", "/api/v1/vault/secret/reveal", db, 401, nil)
		status, _, outside := loginMachine(t, base, clientID, secret)
		if status != 401 {
			t.Fatalf("login from outside the ranges: %d %s", status, outside)
		}
		admin.must("PATCH", "/api/v1/vault/machines/"+id, map[string]any{"allowed_cidrs": []string{}}, 200, nil)

		// A wrong secret and an unknown client id answer identically.
		status, _, wrong := loginMachine(t, base, clientID, secret+"x")
		status2, _, unknown := loginMachine(t, base, "ndc_0123456789abcdef0123456789abcdef", secret)
		if status != 401 || status2 != 401 || errorOf(t, wrong) != errorOf(t, unknown) || errorOf(t, wrong) != errorOf(t, outside) {
			t.Fatalf("failures differ: %d %s / %d %s / %s", status, wrong, status2, unknown, outside)
		}

		// Twenty failures from one address for one client id; the
		// twenty-first attempt is 429, right secret or not.
		var other createdMachine
		admin.must("POST", "/api/v1/vault/machines", map[string]any{"name": "throttled"}, 201, &other)
		for i := range 20 {
			if status, _, body := loginMachine(t, base, other.Machine.ClientID, fmt.Sprintf("wrong %d", i)); status != 401 {
				t.Fatalf("failure %d: %d %s", i+1, status, body)
			}
		}
		resp, body := call(t, "POST", base+"/api/v1/vault/auth/machine",
			jsonBody(map[string]string{"client_id": other.Machine.ClientID, "client_secret": other.ClientSecret}))
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("21st attempt: %d %s (Retry-After %q), want 429", resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
		// Another identity from the same address is not affected.
		machineClient(t, base, clientID, secret)

		// A deactivated tenant's machines stop, and come back with it.
		m, _ = machineClient(t, base, clientID, secret)
		w.admin.must("PATCH", "/api/v1/tenants/"+w.a.ID, map[string]any{"is_active": false}, 200, nil)
		m.must("POST", "/api/v1/vault/secret/reveal", db, 401, nil)
		if status, _, body := loginMachine(t, base, clientID, secret); status != 401 {
			t.Fatalf("login to a deactivated tenant: %d %s", status, body)
		}
		w.admin.must("PATCH", "/api/v1/tenants/"+w.a.ID, map[string]any{"is_active": true}, 200, nil)
		m.must("POST", "/api/v1/vault/secret/reveal", db, 200, nil)

		// Rotating the secret: the old one fails, its tokens are revoked.
		var rotated createdMachine
		admin.must("POST", "/api/v1/vault/machines/"+id+"/secret", nil, 200, &rotated)
		if rotated.ClientSecret == secret || !strings.HasPrefix(rotated.ClientSecret, "ndcs_") || rotated.Machine.ClientID != clientID {
			t.Fatalf("rotated: %+v", rotated)
		}
		if status, _, body := loginMachine(t, base, clientID, secret); status != 401 {
			t.Fatalf("login with the old secret: %d %s", status, body)
		}
		m.must("POST", "/api/v1/vault/secret/reveal", db, 401, nil)
		m, _ = machineClient(t, base, clientID, rotated.ClientSecret)
		m.must("POST", "/api/v1/vault/secret/reveal", db, 200, nil)

		// B's org_admin cannot see or touch A's identity.
		w.members["b-admin"].must("GET", "/api/v1/vault/machines/"+id, nil, 404, nil)
		w.members["b-admin"].must("DELETE", "/api/v1/vault/machines/"+id, nil, 404, nil)

		// Deleting the identity revokes its tokens.
		admin.must("DELETE", "/api/v1/vault/machines/"+id, nil, 204, nil)
		m.must("POST", "/api/v1/vault/secret/reveal", db, 401, nil)
		admin.must("GET", "/api/v1/vault/machines/"+id, nil, 404, nil)
		if status, _, body := loginMachine(t, base, clientID, rotated.ClientSecret); status != 401 {
			t.Fatalf("login to a deleted identity: %d %s", status, body)
		}

		// The audit log names the machine for its reads and logins, records
		// the management, and holds no secret, token or value.
		var page struct {
			Entries []struct {
				Action    string
				ActorID   string `json:"actor_id"`
				ActorKind string `json:"actor_kind"`
			}
		}
		admin.must("GET", "/api/v1/audit?limit=500", nil, 200, &page)
		byMachine := map[string]int{}
		seen := map[string]bool{}
		for _, e := range page.Entries {
			seen[e.Action] = true
			if e.ActorKind == "machine" && e.ActorID == id {
				byMachine[e.Action]++
			}
		}
		if byMachine["secret.read"] < 6 || byMachine["machine.login"] < 6 || byMachine["secret.write"] != 1 {
			t.Errorf("entries by the machine: %v", byMachine)
		}
		for _, action := range []string{"machine.create", "machine.update", "machine.rotate_secret", "machine.delete",
			"machine.login_failed", "vault.grant_create"} {
			if !seen[action] {
				t.Errorf("no %s entry", action)
			}
		}
		status, body = w.admin.do("GET", "/api/v1/audit?limit=500", nil)
		for _, leak := range []string{secret[5:], rotated.ClientSecret[5:], l.AccessToken[4:], "canary"} {
			if status != 200 || strings.Contains(string(body), leak) {
				t.Fatalf("the audit log holds a credential or value (or failed: %d)", status)
			}
		}
	})
}
