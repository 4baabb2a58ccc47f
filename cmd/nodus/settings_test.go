package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
	settingsvc "github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// effective is GET /api/v1/settings as a client sees it.
type effective struct {
	TenantID string `json:"tenant_id"`
	Branding map[string]struct {
		Value  any
		Source string
	}
	Email map[string]struct {
		Value  any
		Source string
	}
}

func (e effective) branding(field string) string {
	f := e.Branding[field]
	return f.Source + ":" + toString(f.Value)
}

func (e effective) email(field string) string {
	f := e.Email[field]
	return f.Source + ":" + toString(f.Value)
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// TestSettingsEndToEnd is the settings scenario over HTTP on both engines:
// defaults, a platform value inherited by tenants, a tenant override that
// wins, null removing it, tenants unable to see or change each other's
// settings, viewers reading branding only, and an SMTP password that
// never leaves the server: not in answers, logs, audit rows or the
// database files, yet readable in process with the key file.
func TestSettingsEndToEnd(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		const platformSecret, tenantSecret = "platform-SMTP-s3cret-7731", "tenant-a-SMTP-s3cret-4419"
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])

		tenant := map[string]string{}
		members := map[string]*client{}
		for _, name := range []string{"a", "b"} {
			var got struct{ Tenant struct{ ID string } }
			admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Settings " + name}, 201, &got)
			tenant[name] = got.Tenant.ID
			admin.must("POST", "/api/v1/users", map[string]any{"email": name + "-admin@example.test", "username": name + "-admin",
				"role": "org_admin", "tenant_id": got.Tenant.ID, "password": memberPassword}, 201, nil)
			members[name+"-admin"] = signIn(t, in.base, name+"-admin", memberPassword)
		}
		members["a-admin"].must("POST", "/api/v1/users", map[string]any{"email": "a-viewer@example.test", "username": "a-viewer",
			"role": "viewer", "password": memberPassword}, 201, nil)
		viewer := signIn(t, in.base, "a-viewer", memberPassword)
		aAdmin, bAdmin := members["a-admin"], members["b-admin"]

		// Every answer is kept, to look for the passwords at the end.
		var answers []string
		get := func(c *client, query string, want int) effective {
			t.Helper()
			status, body := c.do("GET", "/api/v1/settings"+query, nil)
			answers = append(answers, string(body))
			if status != want {
				t.Fatalf("GET /api/v1/settings%s as %s: %d %s, want %d", query, c.user.Username, status, body, want)
			}
			var e effective
			if status == 200 {
				if err := json.Unmarshal(body, &e); err != nil {
					t.Fatal(err)
				}
			}
			return e
		}
		patch := func(c *client, query string, body any, want int) (effective, string) {
			t.Helper()
			status, b := c.do("PATCH", "/api/v1/settings"+query, body)
			answers = append(answers, string(b))
			if status != want {
				t.Fatalf("PATCH /api/v1/settings%s %v as %s: %d %s, want %d", query, body, c.user.Username, status, b, want)
			}
			var e effective
			if status == 200 {
				if err := json.Unmarshal(b, &e); err != nil {
					t.Fatal(err)
				}
			}
			return e, string(b)
		}

		// Defaults, from the platform's view and a tenant's.
		p := get(admin, "", 200)
		if p.TenantID != "" || p.branding("product_name") != "default:Nodus" || p.branding("primary_color") != "default:#2563eb" ||
			p.email("smtp_port") != "default:587" || p.email("security") != "default:starttls" || p.email("smtp_password_set") != "default:false" {
			t.Fatalf("platform defaults: %+v", p)
		}
		if a := get(aAdmin, "", 200); a.TenantID != tenant["a"] || a.branding("product_name") != "default:Nodus" || a.Email == nil {
			t.Fatalf("tenant A defaults: %+v", a)
		}

		// The platform's values are inherited.
		patch(admin, "", map[string]any{
			"branding": map[string]any{"product_name": "Acme Cloud"},
			"email":    map[string]any{"smtp_host": "smtp.platform.example", "smtp_user": "mailer", "smtp_password": platformSecret},
		}, 200)
		// Moving the password to another server needs the password again.
		patch(admin, "", map[string]any{"email": map[string]any{"smtp_host": "smtp.attacker.example"}}, 400)
		a := get(aAdmin, "", 200)
		if a.branding("product_name") != "platform:Acme Cloud" || a.email("smtp_host") != "platform:smtp.platform.example" ||
			a.email("smtp_password_set") != "platform:true" {
			t.Fatalf("tenant A inheriting: %+v", a)
		}

		// A tenant's override wins; null removes it.
		a, _ = patch(aAdmin, "", map[string]any{"branding": map[string]any{"product_name": "Tenant A", "primary_color": "#112233"},
			"email": map[string]any{"smtp_password": tenantSecret}}, 200)
		if a.branding("product_name") != "tenant:Tenant A" || a.branding("primary_color") != "tenant:#112233" ||
			a.email("smtp_password_set") != "tenant:true" {
			t.Fatalf("tenant A overriding: %+v", a)
		}
		if b := get(bAdmin, "", 200); b.branding("product_name") != "platform:Acme Cloud" {
			t.Errorf("tenant B sees A's override: %+v", b)
		}
		a, _ = patch(aAdmin, "", map[string]any{"branding": map[string]any{"product_name": nil}}, 200)
		if a.branding("product_name") != "platform:Acme Cloud" || a.branding("primary_color") != "tenant:#112233" {
			t.Fatalf("after null: %+v", a)
		}
		// The super_admin reads and writes a tenant with ?tenant_id=.
		if got := get(admin, "?tenant_id="+tenant["a"], 200); got.TenantID != tenant["a"] || got.branding("primary_color") != "tenant:#112233" {
			t.Errorf("super_admin reading A: %+v", got)
		}
		patch(admin, "?tenant_id="+tenant["b"], map[string]any{"branding": map[string]any{"logo_url": "/b.png"}}, 200)
		if b := get(bAdmin, "", 200); b.branding("logo_url") != "tenant:/b.png" {
			t.Errorf("B after the super_admin's write: %+v", b)
		}

		// B's org_admin can neither read nor change A; A is unchanged.
		before := get(admin, "?tenant_id="+tenant["a"], 200)
		get(bAdmin, "?tenant_id="+tenant["a"], 404)
		patch(bAdmin, "?tenant_id="+tenant["a"], map[string]any{"branding": map[string]any{"product_name": "pwned"}}, 404)
		patch(bAdmin, "?tenant_id="+tenant["a"], map[string]any{"email": map[string]any{"smtp_password": nil}}, 404)
		if after := get(admin, "?tenant_id="+tenant["a"], 200); toString(after) != toString(before) {
			t.Errorf("A changed by B:\n%+v\n%+v", before, after)
		}
		// Unknown and malformed tenants.
		get(admin, "?tenant_id="+nodus.NewID(), 404)
		get(admin, "?tenant_id=not-an-id", 404)
		patch(admin, "?tenant_id="+nodus.NewID(), map[string]any{"branding": map[string]any{"product_name": "x"}}, 404)
		// An org_admin cannot write the platform: its own tenant is the target.
		if got, _ := patch(aAdmin, "", map[string]any{"branding": map[string]any{"logo_url": "/a.png"}}, 200); got.TenantID != tenant["a"] {
			t.Errorf("org_admin write went to %q", got.TenantID)
		}
		if p := get(admin, "", 200); p.branding("logo_url") != "default:" {
			t.Errorf("the platform's logo changed: %+v", p)
		}

		// Viewers: branding only, and no writes.
		v := get(viewer, "", 200)
		if v.branding("primary_color") != "tenant:#112233" || v.Email != nil || strings.Contains(answers[len(answers)-1], "smtp") {
			t.Errorf("viewer sees %s", answers[len(answers)-1])
		}
		patch(viewer, "", map[string]any{"branding": map[string]any{"product_name": "viewer"}}, 403)

		// Validation: unknown and invalid fields, all reported, nothing written.
		_, body := patch(aAdmin, "", map[string]any{"branding": map[string]any{"product_name": "", "primary_color": "red", "shadow": 1},
			"email": map[string]any{"smtp_port": 0, "from": "nobody"}, "extra": true}, 400)
		var bad struct {
			Error struct {
				Code   string
				Fields map[string]string
			}
		}
		_ = json.Unmarshal([]byte(body), &bad)
		for _, k := range []string{"branding.product_name", "branding.primary_color", "branding.shadow", "email.smtp_port", "email.from", "extra"} {
			if bad.Error.Code != "invalid" || bad.Error.Fields[k] == "" {
				t.Errorf("invalid update: %s lacks field %s", body, k)
			}
		}
		status, raw := aAdmin.do("PATCH", "/api/v1/settings", nil)
		if status != 400 {
			t.Errorf("PATCH without a body: %d %s", status, raw)
		}
		if a := get(aAdmin, "", 200); a.branding("primary_color") != "tenant:#112233" {
			t.Errorf("an invalid update changed settings: %+v", a)
		}

		// The audit log has every update, passwords as markers only.
		var page struct {
			Entries []audit.Entry
		}
		admin.must("GET", "/api/v1/audit?action=setting.update&limit=100", nil, 200, &page)
		targets := map[string]int{}
		for _, e := range page.Entries {
			targets[e.TargetID]++
			if e.TargetType != "settings" {
				t.Errorf("audit entry %+v: target type %q", e, e.TargetType)
			}
		}
		if targets["platform"] != 1 || targets[tenant["a"]] != 3 || targets[tenant["b"]] != 1 || len(page.Entries) != 5 {
			t.Errorf("setting.update entries by target: %v", targets)
		}
		auditJSON, _ := json.Marshal(page)
		if !strings.Contains(string(auditJSON), `"(set)"`) {
			t.Errorf("the audit log lacks the (set) marker: %s", auditJSON)
		}
		answers = append(answers, string(auditJSON))

		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}
		leaks := func(where, text string) {
			t.Helper()
			for _, secret := range []string{platformSecret, tenantSecret} {
				if strings.Contains(text, secret) {
					t.Errorf("%s holds the password %q", where, secret)
				}
			}
		}
		for _, a := range answers {
			leaks("an API answer", a)
		}
		leaks("the log", in.logs.String())
		leaks("stdout", in.out.String())
		// Every file Nodus wrote (SQLite databases, their WAL, the key).
		err := filepath.WalkDir(vars["NODUS_DATA_DIR"], func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			leaks(path, string(b))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		// The database rows themselves, on either engine; and the key file
		// opens what the server sealed.
		ctx := context.Background()
		dbs, _ := instanceDatabases(t, vars)
		err = dbs.DB(store.SetAuth).Read(nodus.WithAllTenants(ctx), func(tx *store.Tx) error {
			rows, err := tx.Query(ctx, "SELECT key, value FROM settings")
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var key, value string
				if err := rows.Scan(&key, &value); err != nil {
					return err
				}
				leaks("settings row "+key, value)
				n++
			}
			if n == 0 {
				t.Error("no settings rows stored")
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		err = dbs.DB(store.SetMain).WalkAudit(ctx, func(e audit.Entry) error {
			b, _ := json.Marshal(e)
			leaks("audit row "+e.Action, string(b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ring, err := keyring.Load("", vars["NODUS_DATA_DIR"])
		if err != nil || ring.Created() {
			t.Fatalf("the key file after a run: %v (created again: %v)", err, ring != nil && ring.Created())
		}
		box, err := ring.Sealer("settings")
		if err != nil {
			t.Fatal(err)
		}
		svc := settingsvc.NewService(dbs.DB(store.SetAuth), box, audit.NewService(dbs.DB(store.SetMain), nil), nil)
		for id, want := range map[string]string{tenant["a"]: tenantSecret, tenant["b"]: platformSecret, "": platformSecret} {
			scope := nodus.WithAllTenants(ctx)
			if cfg, err := svc.EmailConfig(scope, id); err != nil || cfg.Password != want || cfg.Host != "smtp.platform.example" {
				t.Errorf("EmailConfig(%q) = %v, %v; want the password %q", id, cfg, err, want)
			}
		}
	})
}
