package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// This file tests the administration pages (internal/web/admin_*.go) over
// a real `nodus serve`, on both databases: who may open them, CSRF on
// every form, tenant isolation (forged tenant cookies and parameters, and
// another tenant's ids), the super_admin's tenant picker, each page's
// changes as the API then sees them, and stored XSS rendering inert.

// pageBudget is the most HTML one page may weigh (issue 9).
const pageBudget = 150 << 10

// adminWorld is a webWorld with a second tenant, B, whose data tenant A's
// pages must never show, and members of A of every role.
type adminWorld struct {
	*webWorld
	tenantA, tenantB string
	otherAdmin       *client // B's org_admin
	bUserID          string  // a user of B
	aUserID          string  // a user of A
	aViewerID        string  // a viewer of A, named with xssPayload
}

// bMarks are strings only tenant B's data holds.
var bMarks = []string{"b-only.example.com", "B Person", "b-user@example.test", "B_SECRET", "b-canary-value", "B menu"}

func newAdminWorld(t *testing.T, databaseURL string) *adminWorld {
	t.Helper()
	w := &adminWorld{webWorld: newWebWorld(t, databaseURL)}
	w.tenantA = w.org.user.TenantID
	var tb struct{ Tenant struct{ ID string } }
	w.admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Other " + xssPayload}, 201, &tb)
	w.tenantB = tb.Tenant.ID
	w.admin.must("POST", "/api/v1/users", map[string]any{"email": "other-admin@example.test", "username": "other-admin",
		"role": "org_admin", "tenant_id": w.tenantB, "password": "other-admin-password-1"}, 201, nil)
	w.otherAdmin = signIn(t, w.in.base, "other-admin", "other-admin-password-1")
	var u struct{ User struct{ ID string } }
	w.otherAdmin.must("POST", "/api/v1/users", map[string]any{"email": "b-user@example.test", "username": "b-user",
		"full_name": "B Person", "role": "user", "password": "b-user-password-123"}, 201, &u)
	w.bUserID = u.User.ID
	w.otherAdmin.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/db", "key": "B_SECRET",
		"value": "b-canary-value"}, 200, nil)
	w.otherAdmin.must("PUT", "/api/v1/egress/policy", map[string]any{"mode": "enforce",
		"rules": []map[string]any{{"host": "b-only.example.com"}}}, 200, nil)
	w.otherAdmin.must("POST", "/api/v1/menu-items", map[string]any{"key": "b-docs", "label": "B menu", "path": "/chat",
		"roles": []string{"org_admin", "user"}}, 201, nil)

	w.org.must("POST", "/api/v1/users", map[string]any{"email": "a-viewer@example.test", "username": "a-viewer",
		"full_name": "Viewer " + xssPayload, "role": "viewer", "password": "a-viewer-password-1"}, 201, &u)
	w.aViewerID = u.User.ID
	w.org.must("POST", "/api/v1/users", map[string]any{"email": "a-user@example.test", "username": "a-user",
		"role": "user", "password": "a-user-password-12"}, 201, &u)
	w.aUserID = u.User.ID
	w.org.must("POST", "/api/v1/menu-items", map[string]any{"key": "docs", "label": "Docs " + xssPayload,
		"path": "https://docs.example.com/", "roles": []string{"org_admin", "user", "viewer"}}, 201, nil)
	w.org.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/db", "key": "PASSWORD",
		"value": "a-canary " + xssPayload, "comment": "Comment " + xssPayload}, 200, nil)
	return w
}

// page fetches a page that must answer want, and checks what every page
// must be: inert, within budget, free of tenant B's data unless allowB.
func (w *adminWorld) page(t *testing.T, b *browser, path string, want int, allowB bool) string {
	t.Helper()
	resp, body, took := b.get(path)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d\n%s", path, resp.StatusCode, want, body)
	}
	assertInert(t, path, body)
	if len(body) > pageBudget {
		t.Errorf("GET %s: %d bytes, over the %d budget", path, len(body), pageBudget)
	}
	if !allowB {
		for _, m := range bMarks {
			if strings.Contains(body, m) {
				t.Errorf("GET %s shows tenant B's %q", path, m)
			}
		}
	}
	t.Logf("GET %s: %d, %d bytes of HTML in %v", path, resp.StatusCode, len(body), took.Round(time.Microsecond))
	return body
}

func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.base)
	b.hc.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

const escapedPayload = "&lt;img src=x onerror=alert(1)&gt;"

func TestWebAdminPages(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newAdminWorld(t, databaseURL)
		b := newBrowser(t, w.in.base)
		csrf := b.signIn(w.orgLogin, w.orgPass)

		// Every administration page, as tenant A's org_admin: the stored
		// payloads are shown as text, tenant B's data nowhere.
		for path, payload := range map[string]bool{
			"/admin": false, "/admin/users": true, "/admin/roles": false, "/admin/menus": true, "/admin/settings": false,
			"/admin/audit": true, "/admin/audit?action=user.create": true, "/vault": false, "/vault?env=prod&path=/db": true,
			"/vault/secret?env=prod&path=/db&key=PASSWORD": true, "/egress": false,
		} {
			body := w.page(t, b, path, 200, false)
			if payload && !strings.Contains(body, escapedPayload) {
				t.Errorf("GET %s: the stored payload is not shown as text", path)
			}
			if strings.Contains(body, "a-canary") {
				t.Errorf("GET %s shows a secret's value without a reveal", path)
			}
		}
		if body := w.page(t, b, "/admin/tenants", 403, false); !strings.Contains(body, "may not open this page") {
			t.Errorf("an org_admin on the tenants page:\n%s", body)
		}

		// A forged tenant cookie or parameter changes nothing for an
		// org_admin: the pages stay on tenant A.
		b.setCookie("nodus_tenant", w.tenantB)
		for _, path := range []string{"/admin/users?tenant_id=" + w.tenantB, "/admin/menus?tenant=" + w.tenantB,
			"/vault?env=prod&path=/db&tenant_id=" + w.tenantB, "/egress?tenant_id=" + w.tenantB, "/admin/audit?tenant_id=" + w.tenantB,
			"/admin/settings?tenant_id=" + w.tenantB} {
			w.page(t, b, path, 200, false)
		}
		if resp, _ := b.post("/admin/tenant", url.Values{"csrf": {csrf}, "tenant": {w.tenantB}}, b.base); resp.StatusCode != 403 {
			t.Errorf("an org_admin picks a tenant: %d", resp.StatusCode)
		}
		// Tenant B's ids in forms are not found, and B is unchanged.
		if resp, _ := b.post("/admin/users/"+w.bUserID+"/role", url.Values{"csrf": {csrf}, "role": {"viewer"}}, b.base); resp.StatusCode != 404 {
			t.Errorf("A's org_admin changes B's user: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/admin/users/"+w.bUserID+"/active", url.Values{"csrf": {csrf}, "active": {"false"}}, b.base); resp.StatusCode != 404 {
			t.Errorf("A's org_admin deactivates B's user: %d", resp.StatusCode)
		}
		var bUser struct{ User identity.User }
		w.otherAdmin.must("GET", "/api/v1/users/"+w.bUserID, nil, 200, &bUser)
		if bUser.User.Role != identity.RoleUser || !bUser.User.IsActive {
			t.Errorf("B's user changed: %+v", bUser.User)
		}
		if resp, body := b.post("/vault/reveal", url.Values{"csrf": {csrf}, "env": {"prod"}, "path": {"/db"}, "key": {"B_SECRET"}}, b.base); resp.StatusCode != 404 ||
			strings.Contains(body, "b-canary-value") {
			t.Errorf("A's org_admin reveals B's secret: %d", resp.StatusCode)
		}

		// CSRF: every form of the administration pages refuses a post
		// without the session's token or from another origin.
		for _, path := range []string{"/admin/tenants", "/admin/tenants/" + w.tenantA + "/active", "/admin/tenant", "/admin/users",
			"/admin/users/" + w.aUserID + "/role", "/admin/users/" + w.aUserID + "/active", "/admin/menus", "/admin/menus/" + nodus.NewID(),
			"/admin/menus/" + nodus.NewID() + "/delete", "/admin/settings/branding", "/admin/settings/email", "/admin/settings/email/test", "/vault/environments",
			"/vault/secrets", "/vault/secret/delete", "/vault/reveal", "/egress"} {
			form := url.Values{"role": {"viewer"}, "active": {"false"}, "name": {"csrf-test"}, "product_name": {"Forged"},
				"env": {"prod"}, "path": {"/db"}, "key": {"PASSWORD"}, "value": {"x"}, "mode": {"report"}, "host": {"evil.test"}}
			if resp, body := b.post(path, form, b.base); resp.StatusCode != 403 || !strings.Contains(body, "another site") {
				t.Errorf("POST %s without a token: %d", path, resp.StatusCode)
			}
			form.Set("csrf", csrf)
			if resp, body := b.post(path, form, "https://evil.test"); resp.StatusCode != 403 || !strings.Contains(body, "another site") {
				t.Errorf("POST %s from another origin: %d", path, resp.StatusCode)
			}
		}
		var aUser struct{ User identity.User }
		w.org.must("GET", "/api/v1/users/"+w.aUserID, nil, 200, &aUser)
		if aUser.User.Role != identity.RoleUser || !aUser.User.IsActive {
			t.Fatalf("a refused form changed a user: %+v", aUser.User)
		}

		// Users: create (a generated password, shown once, that signs in),
		// change a role, deactivate; the rules of identity hold.
		resp, body := b.post("/admin/users", url.Values{"csrf": {csrf}, "email": {"a-new@example.test"}, "username": {"a-new"},
			"role": {"user"}}, b.base)
		m := regexp.MustCompile(`<code class="secret-value">([^<]+)</code>`).FindStringSubmatch(body)
		if resp.StatusCode != 201 || m == nil || !strings.Contains(body, "not shown again") {
			t.Fatalf("create a user: %d\n%s", resp.StatusCode, body)
		}
		signIn(t, w.in.base, "a-new", m[1])
		if resp, body := b.post("/admin/users", url.Values{"csrf": {csrf}, "email": {"a-new@example.test"}, "username": {"a-new"},
			"role": {"user"}}, b.base); resp.StatusCode != 409 || !strings.Contains(body, `value="a-new@example.test"`) {
			t.Errorf("a duplicate user: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/admin/users", url.Values{"csrf": {csrf}, "email": {"boss@example.test"}, "username": {"boss"},
			"role": {"super_admin"}}, b.base); resp.StatusCode != 403 {
			t.Errorf("an org_admin creates a super_admin: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/admin/users/"+w.aUserID+"/role", url.Values{"csrf": {csrf}, "role": {"viewer"}}, b.base); resp.StatusCode != 303 {
			t.Errorf("change a role: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/admin/users/"+w.aUserID+"/active", url.Values{"csrf": {csrf}, "active": {"false"}}, b.base); resp.StatusCode != 303 {
			t.Errorf("deactivate: %d", resp.StatusCode)
		}
		w.org.must("GET", "/api/v1/users/"+w.aUserID, nil, 200, &aUser)
		if aUser.User.Role != identity.RoleViewer || aUser.User.IsActive {
			t.Errorf("after the forms: %+v", aUser.User)
		}
		if resp, _ := b.post("/admin/users/"+w.org.user.ID+"/role", url.Values{"csrf": {csrf}, "role": {"user"}}, b.base); resp.StatusCode != 403 {
			t.Errorf("an org_admin changes their own role: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/admin/users/"+w.aUserID+"/role", url.Values{"csrf": {csrf}, "role": {"super_admin"}}, b.base); resp.StatusCode != 403 {
			t.Errorf("an org_admin grants super_admin: %d", resp.StatusCode)
		}

		// Menus: add, edit, delete; a bad path is shown beside the form.
		if resp, body := b.post("/admin/menus", url.Values{"csrf": {csrf}, "key": {"wiki"}, "label": {"Wiki"}, "path": {"javascript:alert(1)"},
			"roles": {"user"}, "active": {"true"}}, b.base); resp.StatusCode != 400 || !strings.Contains(body, `role="alert"`) {
			t.Errorf("a javascript: menu path: %d", resp.StatusCode)
		}
		if resp, body := b.post("/admin/menus", url.Values{"csrf": {csrf}, "key": {"wiki"}, "label": {"Wiki"}, "path": {"https://wiki.example.com/"},
			"roles": {"user", "viewer"}, "active": {"true"}, "position": {"5"}}, b.base); resp.StatusCode != 303 {
			t.Fatalf("add a menu item: %d %s", resp.StatusCode, body)
		}
		var items struct {
			Items []identity.MenuItem `json:"items"`
		}
		w.org.must("GET", "/api/v1/menu-items", nil, 200, &items)
		var wiki *identity.MenuItem
		for i := range items.Items {
			if items.Items[i].Key == "wiki" {
				wiki = &items.Items[i]
			}
		}
		if wiki == nil || len(wiki.Roles) != 2 || wiki.Position != 5 {
			t.Fatalf("menu items: %+v", items.Items)
		}
		if resp, _ := b.post("/admin/menus/"+wiki.ID, url.Values{"csrf": {csrf}, "label": {"Team wiki"}, "path": {wiki.Path},
			"position": {"7"}, "roles": {"org_admin"}}, b.base); resp.StatusCode != 303 {
			t.Errorf("edit a menu item: %d", resp.StatusCode)
		}
		var item struct{ Item identity.MenuItem }
		w.org.must("GET", "/api/v1/menu-items/"+wiki.ID, nil, 200, &item)
		if item.Item.Label != "Team wiki" || item.Item.IsActive || len(item.Item.Roles) != 1 || item.Item.Roles[0] != identity.RoleOrgAdmin {
			t.Errorf("edited item: %+v", item.Item)
		}
		if resp, _ := b.post("/admin/menus/"+wiki.ID+"/delete", url.Values{"csrf": {csrf}}, b.base); resp.StatusCode != 303 {
			t.Errorf("delete a menu item: %d", resp.StatusCode)
		}
		w.org.must("GET", "/api/v1/menu-items/"+wiki.ID, nil, 404, nil)

		// Settings: the colour is checked; the SMTP password is write-only
		// and must be given again when its server changes.
		if resp, body := b.post("/admin/settings/branding", url.Values{"csrf": {csrf}, "primary_color": {"#12345g"}}, b.base); resp.StatusCode != 400 ||
			!strings.Contains(body, "#rrggbb") || !strings.Contains(body, `value="#12345g"`) {
			t.Errorf("a bad colour: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/admin/settings/branding", url.Values{"csrf": {csrf}, "product_name": {"Acme"}, "primary_color": {"#00AA55"}}, b.base); resp.StatusCode != 303 {
			t.Errorf("save branding: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/admin/settings/email", url.Values{"csrf": {csrf}, "smtp_host": {"smtp.example.com"}, "smtp_port": {"2525"},
			"security": {"tls"}, "smtp_user": {"mailer"}, "smtp_password": {"smtp-canary-pw"}, "from": {"noreply@example.com"}}, b.base); resp.StatusCode != 303 {
			t.Errorf("save email: %d", resp.StatusCode)
		}
		var set struct {
			Branding struct {
				PrimaryColor struct{ Value string } `json:"primary_color"`
				ProductName  struct{ Value string } `json:"product_name"`
			} `json:"branding"`
			Email struct {
				SMTPHost        struct{ Value string } `json:"smtp_host"`
				SMTPPort        struct{ Value int }    `json:"smtp_port"`
				SMTPPasswordSet struct{ Value bool }   `json:"smtp_password_set"`
			} `json:"email"`
		}
		w.org.must("GET", "/api/v1/settings", nil, 200, &set)
		if set.Branding.PrimaryColor.Value != "#00aa55" || set.Branding.ProductName.Value != "Acme" || set.Email.SMTPHost.Value != "smtp.example.com" ||
			set.Email.SMTPPort.Value != 2525 || !set.Email.SMTPPasswordSet.Value {
			t.Errorf("settings after the forms: %+v", set)
		}
		settingsPage := w.page(t, b, "/admin/settings", 200, false)
		if strings.Contains(settingsPage, "smtp-canary-pw") || !strings.Contains(settingsPage, "one is set") || !strings.Contains(settingsPage, `value="smtp.example.com"`) {
			t.Errorf("the settings page:\n%s", settingsPage)
		}
		if resp, body := b.post("/admin/settings/email", url.Values{"csrf": {csrf}, "smtp_host": {"evil.example.net"}, "smtp_port": {"2525"},
			"security": {"tls"}, "smtp_user": {"mailer"}, "from": {"noreply@example.com"}}, b.base); resp.StatusCode != 400 || !strings.Contains(body, "must be sent again") {
			t.Errorf("moving the password to another server: %d", resp.StatusCode)
		}

		// Vault: write, see versions without values, reveal one version:
		// audited, escaped, and on that answer only.
		if resp, body := b.post("/vault/secrets", url.Values{"csrf": {csrf}, "env": {"dev"}, "folder": {"/"}, "path": {"/app"}, "key": {"TOKEN"},
			"value": {"first-value"}}, b.base); resp.StatusCode != 303 {
			t.Fatalf("write a secret: %d %s", resp.StatusCode, body)
		}
		if resp, _ := b.post("/vault/secrets", url.Values{"csrf": {csrf}, "env": {"dev"}, "path": {"/app"}, "key": {"TOKEN"},
			"value": {"second-value"}, "cas": {"1"}}, b.base); resp.StatusCode != 303 {
			t.Errorf("write version 2: %d", resp.StatusCode)
		}
		if resp, body := b.post("/vault/secrets", url.Values{"csrf": {csrf}, "env": {"dev"}, "path": {"/app"}, "key": {"TOKEN"},
			"value": {"lost-update"}, "cas": {"1"}}, b.base); resp.StatusCode != 409 || !strings.Contains(body, `role="alert"`) {
			t.Errorf("a write from a stale page: %d", resp.StatusCode)
		}
		secret := w.page(t, b, "/vault/secret?env=dev&path=/app&key=TOKEN", 200, false)
		if strings.Contains(secret, "first-value") || strings.Contains(secret, "second-value") || !strings.Contains(secret, "Reveal version 1") {
			t.Errorf("the secret page:\n%s", secret)
		}
		if folders := w.page(t, b, "/vault?env=dev", 200, false); !strings.Contains(folders, ">app/<") {
			t.Errorf("the folder app is not listed:\n%s", folders)
		}
		resp, revealed := b.post("/vault/reveal", url.Values{"csrf": {csrf}, "env": {"dev"}, "path": {"/app"}, "key": {"TOKEN"}, "version": {"1"}}, b.base)
		if resp.StatusCode != 200 || !strings.Contains(revealed, "first-value") || strings.Contains(revealed, "second-value") ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "no-store") {
			t.Errorf("reveal version 1: %d %v", resp.StatusCode, resp.Header)
		}
		resp, revealed = b.post("/vault/reveal", url.Values{"csrf": {csrf}, "env": {"prod"}, "path": {"/db"}, "key": {"PASSWORD"}}, b.base)
		assertInert(t, "revealed payload", revealed)
		if resp.StatusCode != 200 || !strings.Contains(revealed, "a-canary "+escapedPayload) {
			t.Errorf("reveal the payload: %d", resp.StatusCode)
		}
		if audit := w.page(t, b, "/admin/audit?action=secret.read", 200, false); strings.Count(audit, "<code>secret.read</code>") != 2 {
			t.Errorf("the reveals are not both in the audit log:\n%s", audit)
		}

		// Egress: replace the rules; a bad one is named by its row.
		if resp, body := b.post("/egress", url.Values{"csrf": {csrf}, "mode": {"enforce"}, "host": {"api.example.com", "", "*.models.example.org"},
			"port": {"", "", "8443"}, "path_prefix": {"/v1", "", ""}, "comment": {"LLM " + xssPayload, "", ""}}, b.base); resp.StatusCode != 303 {
			t.Fatalf("save egress: %d %s", resp.StatusCode, body)
		}
		var pol struct {
			Policy struct {
				Mode  string
				Rules []struct {
					Host       string
					Port       int
					PathPrefix string `json:"path_prefix"`
				}
			}
		}
		w.org.must("GET", "/api/v1/egress/policy", nil, 200, &pol)
		if pol.Policy.Mode != "enforce" || len(pol.Policy.Rules) != 2 {
			t.Errorf("egress after the form: %+v", pol)
		}
		if eg := w.page(t, b, "/egress", 200, false); !strings.Contains(eg, `value="*.models.example.org"`) || !strings.Contains(eg, escapedPayload) {
			t.Errorf("the egress page does not show the rules:\n%s", eg)
		}
		if resp, body := b.post("/egress", url.Values{"csrf": {csrf}, "mode": {"enforce"}, "host": {"api.example.com", "10.0.0.1"},
			"port": {"", ""}, "path_prefix": {"", ""}, "comment": {"", ""}}, b.base); resp.StatusCode != 400 || !strings.Contains(body, "rule 2") {
			t.Errorf("a private address rule: %d", resp.StatusCode)
		}

		// Audit: filtered by actor and days; a bad date is explained.
		if a := w.page(t, b, "/admin/audit?actor="+w.org.user.ID+"&action=user.update&since="+time.Now().UTC().Format(time.DateOnly), 200, false); !strings.Contains(a, "<code>user.update</code>") ||
			strings.Contains(a, "<code>user.create</code>") {
			t.Errorf("the filtered audit log:\n%s", a)
		}
		if a := w.page(t, b, "/admin/audit?until=2000-01-01", 200, false); !strings.Contains(a, "No audit entries match") {
			t.Error("an old range is not empty")
		}
		w.page(t, b, "/admin/audit?since=yesterday", 400, false)
	})
}

// TestWebAdminAccess checks that members who are not administrators get a
// 403 page on the administration pages and cannot change anything there,
// and the super_admin's tenant picker.
func TestWebAdminAccess(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newAdminWorld(t, databaseURL)

		for _, m := range []struct{ login, password string }{{"a-viewer", "a-viewer-password-1"}, {"a-user", "a-user-password-12"}} {
			b := newBrowser(t, w.in.base)
			csrf := b.signIn(m.login, m.password)
			for _, path := range []string{"/admin", "/admin/tenants", "/admin/users", "/admin/roles", "/admin/menus", "/admin/settings",
				"/admin/audit", "/egress"} {
				if body := w.page(t, b, path, 403, false); !strings.Contains(body, "may not open this page") {
					t.Errorf("%s on %s: %s", m.login, path, body)
				}
			}
			for _, path := range []string{"/admin/users", "/admin/users/" + w.aViewerID + "/role", "/admin/menus", "/admin/settings/branding", "/egress", "/admin/tenant"} {
				if resp, _ := b.post(path, url.Values{"csrf": {csrf}, "email": {"x@example.test"}, "username": {"sneaky"}, "role": {"org_admin"},
					"product_name": {"Pwned"}, "mode": {"report"}, "tenant": {w.tenantB}}, b.base); resp.StatusCode != 403 {
					t.Errorf("%s POST %s: %d", m.login, path, resp.StatusCode)
				}
			}
			// Vault names are every member's to read (their grants permitting);
			// a viewer never reveals.
			w.page(t, b, "/vault", 200, false)
			if m.login == "a-viewer" {
				if resp, body := b.post("/vault/reveal", url.Values{"csrf": {csrf}, "env": {"prod"}, "path": {"/db"}, "key": {"PASSWORD"}}, b.base); resp.StatusCode != 403 ||
					strings.Contains(body, "a-canary") {
					t.Errorf("a viewer reveals: %d", resp.StatusCode)
				}
			}
		}
		var viewer struct{ User identity.User }
		w.org.must("GET", "/api/v1/users/"+w.aViewerID, nil, 200, &viewer)
		if viewer.User.Role != identity.RoleViewer {
			t.Errorf("a member changed a role: %+v", viewer.User)
		}
		var set struct {
			Branding struct {
				ProductName struct{ Value string } `json:"product_name"`
			} `json:"branding"`
		}
		w.org.must("GET", "/api/v1/settings", nil, 200, &set)
		if set.Branding.ProductName.Value == "Pwned" {
			t.Error("a member changed the branding")
		}
		var denied struct{ Entries []struct{ Action string } }
		w.org.must("GET", "/api/v1/audit?action=authz.denied", nil, 200, &denied)
		if len(denied.Entries) == 0 {
			t.Error("refused pages are not audited")
		}

		// The super_admin: the tenants, then acting in tenant B.
		sa := newBrowser(t, w.in.base)
		csrf := sa.signIn("admin", webAdminPassword)
		tenants := w.page(t, sa, "/admin/tenants", 200, true)
		if !strings.Contains(tenants, "Web Tenant") || !strings.Contains(tenants, "Other "+escapedPayload) || !strings.Contains(tenants, "Platform (no tenant)") {
			t.Errorf("the tenants page:\n%s", tenants)
		}
		if body := w.page(t, sa, "/vault", 400, false); !strings.Contains(body, "Choose the tenant") {
			t.Errorf("the vault with no tenant chosen:\n%s", body)
		}
		if resp, _ := sa.post("/admin/tenant", url.Values{"csrf": {csrf}, "tenant": {nodus.NewID()}, "next": {"/"}}, sa.base); resp.StatusCode != 404 {
			t.Errorf("picking a tenant that does not exist: %d", resp.StatusCode)
		}
		resp, _ := sa.post("/admin/tenant", url.Values{"csrf": {csrf}, "tenant": {w.tenantB}, "next": {"/admin/users"}}, sa.base)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/admin/users" {
			t.Fatalf("pick tenant B: %d %v", resp.StatusCode, resp.Header)
		}
		users := w.page(t, sa, "/admin/users", 200, true)
		if !strings.Contains(users, "B Person") || strings.Contains(users, "a-viewer") || !strings.Contains(users, "Acting in <strong>Other "+escapedPayload) {
			t.Errorf("the users of B:\n%s", users)
		}
		if v := w.page(t, sa, "/vault?env=prod&path=/db", 200, true); !strings.Contains(v, "B_SECRET") || strings.Contains(v, "PASSWORD") {
			t.Errorf("B's vault:\n%s", v)
		}
		if e := w.page(t, sa, "/egress", 200, true); !strings.Contains(e, "b-only.example.com") {
			t.Errorf("B's egress:\n%s", e)
		}
		if mn := w.page(t, sa, "/admin/menus", 200, true); !strings.Contains(mn, "B menu") || strings.Contains(mn, "Docs ") {
			t.Errorf("B's menus:\n%s", mn)
		}
		w.page(t, sa, "/", 200, true)
		w.page(t, sa, "/knowledge", 200, true)
		// A member the super_admin adds joins B.
		if resp, body := sa.post("/admin/users", url.Values{"csrf": {csrf}, "email": {"b-two@example.test"}, "username": {"b-two"},
			"role": {"viewer"}, "password": {"b-two-password-1234"}}, sa.base); resp.StatusCode != 303 {
			t.Fatalf("add a member to B: %d %s", resp.StatusCode, body)
		}
		if me := signIn(t, w.in.base, "b-two", "b-two-password-1234"); me.user.TenantID != w.tenantB {
			t.Errorf("the new member is in %s", me.user.TenantID)
		}
		// A forged or stale cookie falls back to no tenant.
		sa.setCookie("nodus_tenant", nodus.NewID())
		w.page(t, sa, "/vault", 400, false)
		sa.setCookie("nodus_tenant", w.tenantB)
		if resp, _ := sa.post("/admin/tenant", url.Values{"csrf": {csrf}, "tenant": {""}, "next": {"/vault"}}, sa.base); resp.StatusCode != 303 {
			t.Errorf("back to the platform: %d", resp.StatusCode)
		}
		w.page(t, sa, "/vault", 400, false)
		// As the platform: its own settings and menu items, every user.
		if st := w.page(t, sa, "/admin/settings", 200, false); !strings.Contains(st, "The settings of the platform") {
			t.Errorf("the platform's settings:\n%s", st)
		}
		if mn := w.page(t, sa, "/admin/menus", 200, false); !strings.Contains(mn, "Administration") || strings.Contains(mn, "Docs ") {
			t.Errorf("the platform's menu items:\n%s", mn)
		}
		if us := w.page(t, sa, "/admin/users", 200, true); !strings.Contains(us, "B Person") || !strings.Contains(us, "a-viewer") {
			t.Errorf("every user:\n%s", us)
		}

		// Create and deactivate a tenant from the page.
		if resp, _ := sa.post("/admin/tenants", url.Values{"csrf": {csrf}, "name": {""}}, sa.base); resp.StatusCode != 400 {
			t.Errorf("a tenant without a name: %d", resp.StatusCode)
		}
		if resp, _ := sa.post("/admin/tenants", url.Values{"csrf": {csrf}, "name": {"Third"}, "domain": {"third.example"}}, sa.base); resp.StatusCode != 303 {
			t.Errorf("create a tenant: %d", resp.StatusCode)
		}
		if resp, _ := sa.post("/admin/tenants/"+w.tenantB+"/active", url.Values{"csrf": {csrf}, "active": {"false"}}, sa.base); resp.StatusCode != 303 {
			t.Errorf("deactivate B: %d", resp.StatusCode)
		}
		var tb struct{ Tenant identity.Tenant }
		w.admin.must("GET", "/api/v1/tenants/"+w.tenantB, nil, 200, &tb)
		if tb.Tenant.IsActive {
			t.Error("B is still active")
		}
		var all struct{ Tenants []identity.Tenant }
		w.admin.must("GET", "/api/v1/tenants", nil, 200, &all)
		if len(all.Tenants) != 3 {
			t.Errorf("tenants: %+v", all.Tenants)
		}
	})
}
