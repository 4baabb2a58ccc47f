package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
	settingsvc "github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestVaultRotationCommands runs the whole master-key rotation of
// docs/operations.md on both engines, with Nodus serving through it: add a
// key, restart, rewrap every data key while serving, rotate a tenant's
// data key, then remove the old key and restart: every version still
// reads. Old and new values are read over the API at each step.
func TestVaultRotationCommands(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		nodusCmd := func(args ...string) (string, error) {
			var out bytes.Buffer
			err := run(ctx, append([]string{"nodus", "vault"}, args...), env(vars), nil, &out, io.Discard)
			return out.String(), err
		}

		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		var created struct{ Tenant struct{ ID string } }
		admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Acme"}, 201, &created)
		on := "?tenant_id=" + created.Tenant.ID
		admin.must("PUT", "/api/v1/vault/secret"+on, map[string]any{"environment": "prod", "key": "API_KEY", "value": "before rotation"}, 200, nil)
		// The other secrets sealed at rest: an SMTP password (the tenant's
		// and the platform's) and a webhook's signing secret.
		admin.must("PATCH", "/api/v1/settings"+on, map[string]any{"email": map[string]any{"smtp_password": "tenant smtp"}}, 200, nil)
		admin.must("PATCH", "/api/v1/settings", map[string]any{"email": map[string]any{"smtp_password": "platform smtp"}}, 200, nil)
		admin.must("POST", "/api/v1/webhooks"+on, map[string]any{"url": "https://hooks.example.test/nodus",
			"kinds": []string{"document.failed"}}, 201, nil)
		reveal := func(admin *client, version int, want string) {
			t.Helper()
			var got struct{ Value string }
			admin.must("POST", "/api/v1/vault/secret/reveal"+on, map[string]any{"environment": "prod", "key": "API_KEY", "version": version}, 200, &got)
			if got.Value != want {
				t.Fatalf("version %d reads %q, want %q", version, got.Value, want)
			}
		}
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}

		if out, err := nodusCmd("status"); err != nil || !strings.Contains(out, `"current_key_id": 1`) ||
			!strings.Contains(out, "\"smtp_passwords\": {\n    \"1\": 2\n  }") || !strings.Contains(out, "\"webhook_secrets\": {\n    \"1\": 1\n  }") {
			t.Fatalf("status: %q, %v", out, err)
		}
		if out, err := nodusCmd("add-master-key"); err != nil || !strings.Contains(out, "added master key 2") {
			t.Fatalf("add-master-key: %q, %v", out, err)
		}

		in = startNodus(t, vars)
		admin = signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		reveal(admin, 1, "before rotation")
		admin.must("PUT", "/api/v1/vault/secret"+on, map[string]any{"environment": "prod", "key": "API_KEY", "value": "after key 2"}, 200, nil)

		// Both commands run while Nodus serves.
		if out, err := nodusCmd("rotate-master-key"); err != nil || !strings.Contains(out, "master key 2 now wraps every data key") ||
			!strings.Contains(out, "master key 2 now seals every SMTP password and webhook secret: 2 and 1 resealed") {
			t.Fatalf("rotate-master-key: %q, %v", out, err)
		}
		if out, err := nodusCmd("rotate-master-key"); err != nil || !strings.Contains(out, ": 0 and 0 resealed") {
			t.Fatalf("rotate-master-key again: %q, %v", out, err)
		}
		out, err := nodusCmd("rotate-data-key", created.Tenant.ID)
		if err != nil || !strings.Contains(out, "data key version 2") || !strings.Contains(out, "re-encrypted 2 stored versions") {
			t.Fatalf("rotate-data-key: %q, %v", out, err)
		}
		reveal(admin, 1, "before rotation")
		reveal(admin, 2, "after key 2")
		if out, err := nodusCmd("status"); err != nil || !strings.Contains(out, `"2": 2`) || strings.Contains(out, `"1": `) ||
			!strings.Contains(out, "\"webhook_secrets\": {\n    \"2\": 1\n  }") {
			t.Fatalf("status after rotation: every data key, password and secret should be sealed by key 2: %q, %v", out, err)
		}
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}

		// Drop key 1: everything still opens with key 2 alone.
		path := filepath.Join(vars["NODUS_DATA_DIR"], "master.key")
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for line := range strings.Lines(string(text)) {
			if !strings.HasPrefix(line, "1:") && !strings.HasPrefix(line, "*1:") {
				kept = append(kept, line)
			}
		}
		if len(kept) == len(strings.Split(strings.TrimSpace(string(text)), "\n")) {
			t.Fatalf("key 1 not found in %s", path)
		}
		if err := os.WriteFile(path, []byte(strings.Join(kept, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		in = startNodus(t, vars)
		if got := vaultLog(t, in.logs.String()); !strings.HasPrefix(got, "vault unsealed") {
			t.Fatalf("start with key 2 only: %s", got)
		}
		admin = signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		reveal(admin, 1, "before rotation")
		reveal(admin, 2, "after key 2")
		checkResealed(t, vars, created.Tenant.ID)

		// Mistakes are clear errors.
		if _, err := nodusCmd("rotate-data-key", "01940000-0000-7000-8000-000000000000"); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("rotate-data-key of an unknown tenant: %v", err)
		}
		if _, err := nodusCmd("rotate-data-key"); exitCode(err) != 2 {
			t.Errorf("rotate-data-key without a tenant: exit %d, want 2", exitCode(err))
		}
		vars["NODUS_MASTER_KEY"] = strings.TrimPrefix(strings.TrimSpace(kept[len(kept)-1]), "*")
		if _, err := nodusCmd("add-master-key"); err == nil || !strings.Contains(err.Error(), "NODUS_MASTER_KEY is set") {
			t.Errorf("add-master-key with NODUS_MASTER_KEY: %v", err)
		}
	})
}

// checkResealed opens, with the master keys vars loads, the SMTP
// passwords set before the rotation, and checks that the webhook's secret
// is sealed with the current key.
func checkResealed(t *testing.T, vars map[string]string, tenantID string) {
	t.Helper()
	ctx := nodus.WithAllTenants(context.Background())
	dbs, cfg := instanceDatabases(t, vars)
	ring, err := keyring.Load(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	box, err := ring.Sealer("settings")
	if err != nil {
		t.Fatal(err)
	}
	svc := settingsvc.NewService(dbs.DB(store.SetAuth), box, nil, nil)
	for tenant, want := range map[string]string{tenantID: "tenant smtp", "": "platform smtp"} {
		if c, err := svc.EmailConfig(ctx, tenant); err != nil || c.Password != want {
			t.Errorf("SMTP password of %q after the old key is gone: %q, %v; want %q", tenant, c.Password, err, want)
		}
	}
	hooks, err := dbs.DB(store.SetMain).ListAllWebhooks(ctx)
	if err != nil || len(hooks) != 1 {
		t.Fatalf("webhooks %+v, %v", hooks, err)
	}
	if id, ok := keyring.KeyID(hooks[0].SealedSecret); !ok || id != ring.CurrentID() {
		t.Errorf("the webhook secret is sealed with key %d, want the current %d", id, ring.CurrentID())
	}
}
