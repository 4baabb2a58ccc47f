package main

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestVaultAPI drives the vault over HTTP on both engines, in the world
// newTenancy builds (each tenant has prod:/db/PASSWORD, a handle, and a
// grant letting its users read prod:/db): explicit reveal, check-and-set,
// who sees values (admins, users through grants, never viewers),
// references, delete, undelete and destroy, and an audit trail that names
// every read and never holds a value.
func TestVaultAPI(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newTenancy(t, databaseURL)
		admin, user, viewer := w.members["a-admin"], w.members["a-user"], w.members["a-viewer"]
		db := map[string]any{"environment": "prod", "path": "/db", "key": "PASSWORD"}
		with := func(extra map[string]any) map[string]any {
			out := map[string]any{"environment": "prod", "path": "/db", "key": "PASSWORD"}
			for k, v := range extra {
				out[k] = v
			}
			return out
		}
		type revealed struct {
			Version int
			Value   string
		}

		var got revealed
		admin.must("POST", "/api/v1/vault/secret/reveal", db, 200, &got)
		if got.Value != "a-canary-secret" || got.Version != 1 {
			t.Fatalf("reveal: %+v", got)
		}

		// Check-and-set: create-only fails on an existing secret, the right
		// version wins once, and the stale version then loses.
		admin.must("PUT", "/api/v1/vault/secret", with(map[string]any{"value": "x", "cas": 0}), 409, nil)
		admin.must("PUT", "/api/v1/vault/secret", with(map[string]any{"value": "a-second-canary", "cas": 1}), 200, nil)
		admin.must("PUT", "/api/v1/vault/secret", with(map[string]any{"value": "x", "cas": 1}), 409, nil)
		admin.must("POST", "/api/v1/vault/secret/reveal", with(map[string]any{"version": 1}), 200, &got)
		if got.Value != "a-canary-secret" {
			t.Fatalf("version 1 after a second write: %+v", got)
		}

		// A viewer sees names and versions, never values.
		status, body := viewer.do("GET", "/api/v1/vault/secret?environment=prod&path=/db&key=PASSWORD", nil)
		if status != 200 || !strings.Contains(string(body), `"versions"`) || strings.Contains(string(body), "canary") {
			t.Fatalf("viewer reads the secret's description: %d %s", status, body)
		}
		viewer.must("POST", "/api/v1/vault/secret/reveal", db, 403, nil)

		// A user reads what the grant covers (prod:/db), nothing else, and
		// may not write there with a read grant.
		user.must("POST", "/api/v1/vault/secret/reveal", db, 200, &got)
		if got.Value != "a-second-canary" {
			t.Fatalf("user reveal: %+v", got)
		}
		admin.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/ops", "key": "TOKEN",
			"value": "ops-canary"}, 200, nil)
		user.must("POST", "/api/v1/vault/secret/reveal", map[string]any{"environment": "prod", "path": "/ops", "key": "TOKEN"}, 403, nil)
		user.must("PUT", "/api/v1/vault/secret", with(map[string]any{"value": "mine now"}), 403, nil)

		// References expand on request, each one permission-checked: the
		// user may read /db but not /ops.
		admin.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/db", "key": "DSN",
			"value": "postgres://app:${PASSWORD}@db/app"}, 200, nil)
		admin.must("POST", "/api/v1/vault/secret/reveal", map[string]any{"environment": "prod", "path": "/db", "key": "DSN", "expand": true}, 200, &got)
		if got.Value != "postgres://app:a-second-canary@db/app" {
			t.Fatalf("expanded: %q", got.Value)
		}
		admin.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/db", "key": "MIXED",
			"value": "${prod:/ops/TOKEN}"}, 200, nil)
		if status, _ := user.do("POST", "/api/v1/vault/secret/reveal", map[string]any{"environment": "prod", "path": "/db",
			"key": "MIXED", "expand": true}); status != 403 {
			t.Fatalf("a user expanding a reference to a secret they may not read: %d, want 403", status)
		}

		// Soft delete hides, undelete restores, destroy is final.
		admin.must("DELETE", "/api/v1/vault/secret?environment=prod&path=/ops&key=TOKEN", nil, 204, nil)
		admin.must("GET", "/api/v1/vault/secret?environment=prod&path=/ops&key=TOKEN", nil, 404, nil)
		admin.must("POST", "/api/v1/vault/secret/undelete", map[string]any{"environment": "prod", "path": "/ops", "key": "TOKEN"}, 204, nil)
		admin.must("POST", "/api/v1/vault/secret/reveal", map[string]any{"environment": "prod", "path": "/ops", "key": "TOKEN"}, 200, nil)
		admin.must("POST", "/api/v1/vault/secret/destroy", map[string]any{"environment": "prod", "path": "/ops", "key": "TOKEN", "all": true}, 200, nil)
		admin.must("GET", "/api/v1/vault/secret?environment=prod&path=/ops&key=TOKEN", nil, 404, nil)

		// A super_admin works on one tenant at a time.
		w.admin.must("GET", "/api/v1/vault/environments", nil, 400, nil)
		w.admin.must("GET", "/api/v1/vault/environments?tenant_id="+w.a.ID, nil, 200, nil)

		// A data-key rotation keeps every version readable.
		var rotated struct {
			DataKeyVersion int `json:"data_key_version"`
		}
		admin.must("POST", "/api/v1/vault/keys/rotate", nil, 200, &rotated)
		if rotated.DataKeyVersion != 2 {
			t.Fatalf("rotation made data key version %d, want 2", rotated.DataKeyVersion)
		}
		admin.must("POST", "/api/v1/vault/secret/reveal", with(map[string]any{"version": 1}), 200, &got)
		if got.Value != "a-canary-secret" {
			t.Fatalf("version 1 after rotation: %+v", got)
		}

		// Every reveal is in the audit log, which holds no value.
		status, body = admin.do("GET", "/api/v1/audit?action=secret.read&limit=500", nil)
		if status != 200 || strings.Count(string(body), `"action":"secret.read"`) < 6 {
			t.Fatalf("secret.read entries: %d %s", status, body)
		}
		status, body = w.admin.do("GET", "/api/v1/audit?limit=500", nil)
		if status != 200 || strings.Contains(string(body), "canary") {
			t.Fatalf("the audit log holds a secret value (or failed: %d)", status)
		}
	})
}

// TestVaultSealedAnswers503 starts Nodus with a master key that does not
// open the vault: every vault route answers 503 while the rest of the API
// works (SECURITY.md check 14).
func TestVaultSealedAnswers503(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		var created struct{ Tenant struct{ ID string } }
		admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Acme"}, 201, &created)
		admin.must("PUT", "/api/v1/vault/secret?tenant_id="+created.Tenant.ID, map[string]any{"environment": "dev",
			"key": "API_KEY", "value": "sealed-canary"}, 200, nil)
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}

		wrong := make([]byte, 32)
		_, _ = rand.Read(wrong)
		vars["NODUS_MASTER_KEY"] = base64.StdEncoding.EncodeToString(wrong)
		in = startNodus(t, vars)
		admin = signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		admin.must("GET", "/api/v1/me", nil, http.StatusOK, nil)
		on := "?tenant_id=" + created.Tenant.ID
		admin.must("GET", "/api/v1/vault"+on, nil, http.StatusServiceUnavailable, nil)
		admin.must("GET", "/api/v1/vault/environments"+on, nil, http.StatusServiceUnavailable, nil)
		status, body := admin.do("POST", "/api/v1/vault/secret/reveal"+on, map[string]any{"environment": "dev", "key": "API_KEY"})
		if status != http.StatusServiceUnavailable || strings.Contains(string(body), "canary") {
			t.Fatalf("reveal while sealed: %d %s", status, body)
		}
		admin.must("PUT", "/api/v1/vault/secret"+on, map[string]any{"environment": "dev", "key": "OTHER", "value": "x"},
			http.StatusServiceUnavailable, nil)
	})
}
