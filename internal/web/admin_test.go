package web

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/vault"
)

// adminPages are the administration pages with stored XSS in everything
// a user controls there: tenant, user and menu names, secret keys and
// values, audit details, egress comments and settings, for
// TestPagesRenderStoredXSSInert.
func adminPages(base pageBase) map[string]pageData {
	now := time.Now()
	ferr := &formError{Message: xssName, Fields: map[string]string{xssName: xssName}}
	user := identity.User{ID: "u2", TenantID: "t1", Username: xssName, FullName: xssName, Email: xssName, Role: identity.RoleUser, IsActive: true}
	item := identity.MenuItem{ID: "m1", Key: "k", Label: xssName, Path: "javascript:alert(1)", IsActive: true, Roles: []identity.Role{identity.RoleUser}}
	str := func(v string) settings.Value[string] {
		return settings.Value[string]{Value: v, Source: settings.SourceTenant}
	}
	set := &settings.Settings{TenantID: "t1", Branding: settings.Branding{ProductName: str(xssName), LogoURL: str(xssName), PrimaryColor: str(xssName)},
		Email: &settings.Email{SMTPHost: str(xssName), SMTPUser: str(xssName), From: str(xssName), Security: str(xssName)}}
	b, e := formsOf(set)
	sec := vault.Secret{ID: "s1", Location: vault.Location{Environment: "dev", Path: "/" + xssName, Key: xssName}, Comment: xssName, Version: 2, UpdatedAt: now}
	entry := audit.Entry{ID: "a1", Time: now, ActorID: "u2", ActorKind: audit.ActorUser, Action: "user.update", TargetType: xssName,
		TargetID: xssName, Address: xssName, Changes: map[string]audit.Change{xssName: {Before: xssName, After: map[string]any{"x": xssName}}}}
	return map[string]pageData{
		"admin_index": &adminIndexPage{pageBase: base, Sections: []adminSection{{Path: "/admin/users", Title: xssName, About: xssName}}},
		"admin_tenants": &tenantsPage{pageBase: base, Tenants: []identity.Tenant{{ID: "t1", Name: xssName, Description: xssName, Domain: xssName, CreatedAt: now}},
			Form: tenantForm{Name: xssName}, Error: ferr},
		"admin_users": &usersPage{pageBase: base, Users: []identity.User{user}, CanEdit: true, Roles: identity.Roles(), Tenant: xssName,
			Form: userForm{Email: xssName}, FormError: ferr, Error: ferr, Created: &user, Password: xssName},
		"admin_roles": &rolesPage{pageBase: base, Roles: identity.Roles(), Rows: []roleRow{{Action: xssName, Allows: []bool{true, false, false, false}}}},
		"admin_menus": &menusPage{pageBase: base, Owner: xssName, Items: menuRows([]identity.MenuItem{item}), Roles: identity.Roles(),
			Form: menuForm{Label: xssName, Key: xssName}, Error: ferr},
		"admin_settings": &settingsPage{pageBase: base, Owner: xssName, Settings: set, Branding: b, Email: e, BrandingError: ferr, EmailError: ferr,
			TestTo: xssName, TestError: ferr},
		"admin_audit": &auditPage{pageBase: base, Filter: auditFilter{Actor: xssName, Action: xssName},
			Entries: []auditRow{{Entry: entry, Actor: xssName, Changes: []auditChange{{Field: xssName, Before: xssName, After: xssName}}}}, Next: "javascript:alert(1)"},
		"admin_egress": &egressPage{pageBase: base, CanEdit: true, Mode: egress.ModeEnforce, Error: ferr,
			Policy: &egress.View{PlatformRules: []egress.Rule{{Host: xssName, Comment: xssName}}},
			Rules:  []ruleRow{{ruleForm: ruleForm{Host: xssName, Comment: xssName}, N: 1}}},
		"admin_vault": &vaultPage{pageBase: base, Environments: []vault.Environment{{Slug: "dev", Name: xssName}}, Location: sec.Location,
			Crumbs: crumbsOf(sec.Location), Folders: subfolders(vault.Location{Environment: "dev", Path: "/"}, []vault.Secret{sec}),
			Secrets: []vault.Secret{sec}, Can: vaultPerms{Write: true, Reveal: true, Manage: true}, Form: secretForm{Key: xssName}, Error: ferr},
		"admin_vault_secret": &secretPage{pageBase: base, Secret: &sec, Versions: []vault.VersionInfo{{Version: 2, CreatedAt: now}},
			Can: vaultPerms{Write: true, Reveal: true}, Crumbs: crumbsOf(sec.Location), Folder: "/vault", Error: ferr,
			Revealed: &revealed{Version: 2, Value: xssName}},
	}
}

// TestAdminRoutesCheckTheAPIsActions walks the administration routes: each
// names an action, no user or viewer may open the administration pages or
// change egress, only a super_admin reaches the tenants, and every role
// may open the vault, whose grants then decide.
func TestAdminRoutesCheckTheAPIsActions(t *testing.T) {
	s := newTestServer(t)
	for _, rt := range s.adminRoutes() {
		if rt.action == "" || rt.public {
			t.Errorf("%s: action %q public %v", rt.pattern, rt.action, rt.public)
			continue
		}
		_, path, _ := strings.Cut(rt.pattern, " ")
		allowed := func(role identity.Role) bool { return s.perms.Allows(role, rt.action) }
		switch {
		case strings.HasPrefix(path, "/admin/tenant"):
			if allowed(identity.RoleOrgAdmin) || !allowed(identity.RoleSuperAdmin) {
				t.Errorf("%s: not for the super_admin alone", rt.pattern)
			}
		case strings.HasPrefix(path, "/admin"), strings.HasPrefix(path, "/egress"):
			if allowed(identity.RoleUser) || allowed(identity.RoleViewer) || !allowed(identity.RoleOrgAdmin) {
				t.Errorf("%s: not for administrators alone", rt.pattern)
			}
		case path == "/vault" || path == "/vault/secret":
			if !allowed(identity.RoleViewer) {
				t.Errorf("%s: a viewer cannot list the names", rt.pattern)
			}
		case strings.HasPrefix(path, "/vault/"):
			if allowed(identity.RoleViewer) {
				t.Errorf("%s: a viewer may change or reveal secrets", rt.pattern)
			}
		default:
			t.Errorf("%s: an administration route this test does not know", rt.pattern)
		}
	}
}

func TestMenuRowsInTreeOrder(t *testing.T) {
	items := []identity.MenuItem{
		{ID: "c", Key: "child", ParentID: "p", Position: 1},
		{ID: "o", Key: "orphan", ParentID: "platform-item", Position: 5},
		{ID: "p", Key: "parent", Position: 2},
		{ID: "a", Key: "first", Position: 1},
		{ID: "g", Key: "grandchild", ParentID: "c"},
	}
	var got []string
	for _, r := range menuRows(items) {
		got = append(got, strings.Repeat(">", r.Depth)+r.Key)
	}
	want := []string{"first", "parent", ">child", ">>grandchild", "orphan"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("menuRows = %v, want %v", got, want)
	}
}

func TestVaultFoldersAndCrumbs(t *testing.T) {
	loc := vault.Location{Environment: "prod", Path: "/db"}
	secrets := []vault.Secret{
		{Location: vault.Location{Path: "/db", Key: "HERE"}},
		{Location: vault.Location{Path: "/db/replica", Key: "A"}},
		{Location: vault.Location{Path: "/db/replica/eu", Key: "B"}},
		{Location: vault.Location{Path: "/db/main", Key: "C"}},
		{Location: vault.Location{Path: "/dbx", Key: "D"}}, // a sibling with the same prefix
	}
	var names []string
	for _, c := range subfolders(loc, secrets) {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"main", "replica"}) {
		t.Errorf("subfolders = %v", names)
	}
	if root := subfolders(vault.Location{Environment: "prod", Path: "/"}, secrets); len(root) != 2 || root[0].Name != "db" ||
		root[0].URL != "/vault?env=prod&path=%2Fdb" {
		t.Errorf("subfolders of / = %+v", root)
	}
	crumbs := crumbsOf(vault.Location{Environment: "prod", Path: "/db/replica"})
	if len(crumbs) != 3 || crumbs[0].Name != "prod:/" || crumbs[2].URL != "/vault?env=prod&path=%2Fdb%2Freplica" {
		t.Errorf("crumbs = %+v", crumbs)
	}
}

func TestSettingsFormChangesOnlyWhatChanged(t *testing.T) {
	own := map[string]string{"product_name": "Acme", "logo_url": "", "primary_color": "#112233"}
	fields := map[string]any{}
	changed(own, map[string]string{"product_name": "Acme", "logo_url": "https://x.test/l.png", "primary_color": ""}, fields)
	want := map[string]any{"logo_url": "https://x.test/l.png", "primary_color": nil}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("changed = %v, want %v", fields, want)
	}
	// Inherited values are placeholders, not values: saving the form as
	// shown keeps inheriting them.
	set := &settings.Settings{TenantID: "t1", Branding: settings.Branding{
		ProductName:  settings.Value[string]{Value: "Nodus", Source: settings.SourcePlatform},
		PrimaryColor: settings.Value[string]{Value: "#abcdef", Source: settings.SourceTenant}}}
	if b, _ := formsOf(set); b.ProductName != "" || b.PrimaryColor != "#abcdef" {
		t.Errorf("forms = %+v", b)
	}
	if b, _ := formsOf(&settings.Settings{Branding: settings.Branding{ProductName: settings.Value[string]{Value: "P", Source: settings.SourcePlatform}}}); b.ProductName != "P" {
		t.Errorf("the platform's own value is not its form's: %+v", b)
	}
}

func TestAuditFilter(t *testing.T) {
	f, err := auditFilter{Actor: "u1", Action: "user.update", Since: "2026-03-01", Until: "2026-03-02"}.parse()
	if err != nil || f.ActorID != "u1" || f.Action != "user.update" || !f.Since.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) ||
		!f.Until.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parse = %+v, %v", f, err)
	}
	if _, err := (auditFilter{Since: "yesterday"}).parse(); err == nil {
		t.Error("a malformed date is accepted")
	}
	link := auditFilter{Action: "a.b", Since: "2026-03-01"}.actorLink("u&1")
	if link != "/admin/audit?action=a.b&actor=u%261&since=2026-03-01" {
		t.Errorf("actorLink = %s", link)
	}
	if jsonText(nil) != "" || jsonText("x") != "x" || jsonText(3) != "3" || jsonText(map[string]any{"a": true}) != `{"a":true}` {
		t.Error("jsonText")
	}
}

func TestEgressRuleErrorsNameRows(t *testing.T) {
	err := ruleErrors(&nodus.Error{Code: nodus.EINVALID, Message: "x", Fields: map[string]string{"rules[1].path_prefix": "bad", "rules[0]": "dup", "mode": "m"}})
	want := map[string]string{"rule 2: path prefix": "bad", "rule 1": "dup", "mode": "m"}
	if !reflect.DeepEqual(err.Fields, want) {
		t.Errorf("fields = %v", err.Fields)
	}
}
