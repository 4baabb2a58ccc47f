package identity_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// menuFixture is a migrated database with two tenants and a principal of
// each role. Principals need no user rows: the menu service reads only
// their id, role and tenant.
type menuFixture struct {
	db                    *store.DB
	menus                 *identity.MenuService
	aud                   *audit.Service
	a, b                  *identity.Tenant
	root, admA, admB, usr identity.Actor
	viewer                identity.Actor
	ids                   map[string]string // platform item ids by key
}

func newMenuFixture(t *testing.T, db *store.DB) *menuFixture {
	t.Helper()
	ctx := context.Background()
	for _, set := range []string{store.SetAuth, store.SetMain} {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock := nodus.SystemClock{}
	aud := audit.NewService(db, clock)
	f := &menuFixture{db: db, menus: identity.NewMenuService(db, aud, clock), aud: aud, ids: map[string]string{}}
	for _, tn := range []**identity.Tenant{&f.a, &f.b} {
		now := clock.Now()
		*tn = &identity.Tenant{ID: nodus.NewID(), Name: fmt.Sprintf("tenant-%p", tn), IsActive: true, CreatedAt: now, UpdatedAt: now}
		if err := db.CreateTenant(nodus.WithAllTenants(ctx), *tn); err != nil {
			t.Fatal(err)
		}
	}
	p := func(role identity.Role, tenantID string) identity.Actor {
		return identity.Actor{User: &identity.User{ID: nodus.NewID(), Role: role, TenantID: tenantID, IsActive: true},
			Kind: audit.ActorToken, Client: menuClient}
	}
	f.root, f.admA, f.admB = p(identity.RoleSuperAdmin, ""), p(identity.RoleOrgAdmin, f.a.ID), p(identity.RoleOrgAdmin, f.b.ID)
	f.usr, f.viewer = p(identity.RoleUser, f.a.ID), p(identity.RoleViewer, f.a.ID)
	items, err := db.FindMenu(nodus.WithAllTenants(ctx), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range items {
		f.ids[m.Key] = m.ID
	}
	return f
}

// menuScope is the context the API gives p: every tenant for a super_admin,
// p's tenant otherwise.
func menuScope(p identity.Actor) context.Context {
	if p.User.Role == identity.RoleSuperAdmin {
		return nodus.WithAllTenants(context.Background())
	}
	return nodus.WithTenant(context.Background(), p.User.TenantID)
}

// menuText writes a tree as "a b(c d) e".
func menuText(nodes []identity.MenuNode) string {
	var parts []string
	for _, n := range nodes {
		s := n.Key
		if len(n.Children) > 0 {
			s += "(" + menuText(n.Children) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

var menuClient = identity.Client{Address: "192.0.2.7", UserAgent: "menu-test"}

// TestMenuByRole checks the default menu each role sees.
func TestMenuByRole(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newMenuFixture(t, db)
		const content = "dashboard chat chatbots knowledge agents recordings notebooks"
		tests := []struct {
			name string
			p    identity.Actor
			want string
		}{
			{"super_admin", f.root, content + " gateway(gateway.models gateway.keys gateway.spend) traces vault egress " +
				"admin(admin.tenants admin.users admin.menus admin.settings admin.audit)"},
			{"org_admin", f.admA, content + " gateway(gateway.models gateway.keys gateway.spend) traces vault egress " +
				"admin(admin.users admin.menus admin.settings admin.audit)"},
			{"user", f.usr, content + " gateway(gateway.models gateway.keys gateway.spend) traces vault"},
			{"viewer", f.viewer, "dashboard chatbots knowledge agents recordings notebooks gateway(gateway.models)"},
		}
		for _, tt := range tests {
			menu, err := f.menus.FindMenu(menuScope(tt.p), tt.p, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := menuText(menu); got != tt.want {
				t.Errorf("%s sees\n  %s\nwant\n  %s", tt.name, got, tt.want)
			}
		}
	})
}

// TestMenuVisibility checks tenant items, hidden parents and order.
func TestMenuVisibility(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newMenuFixture(t, db)
		create := func(p identity.Actor, m identity.MenuItem) *identity.MenuItem {
			t.Helper()
			if m.Path == "" {
				m.Path = "/" + m.Key
			}
			m.Label, m.IsActive = m.Key, true
			if err := f.menus.CreateMenuItem(menuScope(p), p, &m); err != nil {
				t.Fatalf("create %s: %v", m.Key, err)
			}
			return &m
		}
		users := []identity.Role{identity.RoleOrgAdmin, identity.RoleUser}
		// Same position: ordered by key. A lower position comes first.
		create(f.admA, identity.MenuItem{Key: "zeta", Position: 5, Roles: users})
		create(f.admA, identity.MenuItem{Key: "alpha", Position: 5, Roles: users})
		create(f.admA, identity.MenuItem{Key: "first", Position: -1, Roles: users})
		// Under a platform group, and under a group the user may not see.
		create(f.admA, identity.MenuItem{Key: "models.local", ParentID: f.ids["gateway"], Position: 15, Roles: users})
		create(f.admA, identity.MenuItem{Key: "admin.reports", ParentID: f.ids["admin"], Roles: users})
		// Under an inactive parent.
		off := create(f.admA, identity.MenuItem{Key: "off", Roles: users})
		create(f.admA, identity.MenuItem{Key: "under-off", ParentID: off.ID, Roles: users})
		if _, err := f.menus.UpdateMenuItem(menuScope(f.admA), f.admA, off.ID, identity.MenuItemPatch{IsActive: new(false)}); err != nil {
			t.Fatal(err)
		}
		create(f.admB, identity.MenuItem{Key: "b-only", Roles: []identity.Role{identity.RoleOrgAdmin, identity.RoleSuperAdmin}})

		menu, err := f.menus.FindMenu(menuScope(f.usr), f.usr, "")
		if err != nil {
			t.Fatal(err)
		}
		want := "first alpha zeta dashboard chat chatbots knowledge agents recordings notebooks " +
			"gateway(gateway.models models.local gateway.keys gateway.spend) traces vault"
		if got := menuText(menu); got != want {
			t.Errorf("user of A sees\n  %s\nwant\n  %s", got, want)
		}
		menu, _ = f.menus.FindMenu(menuScope(f.admA), f.admA, f.a.ID)
		if got := menuText(menu); !strings.Contains(got, "admin(admin.reports admin.users") || strings.Contains(got, "b-only") ||
			strings.Contains(got, "off") {
			t.Errorf("org_admin of A sees %s", got)
		}

		// A super_admin sees the platform's menu, or a tenant's on request.
		menu, _ = f.menus.FindMenu(menuScope(f.root), f.root, "")
		if got := menuText(menu); strings.Contains(got, "b-only") || strings.Contains(got, "zeta") {
			t.Errorf("super_admin's own menu holds tenant items: %s", got)
		}
		menu, err = f.menus.FindMenu(menuScope(f.root), f.root, f.b.ID)
		if got := menuText(menu); err != nil || !strings.Contains(got, "b-only") {
			t.Errorf("super_admin's view of B: %s, %v", got, err)
		}
		for name, tc := range map[string]struct {
			p      identity.Actor
			tenant string
		}{
			"org_admin naming another tenant": {f.admA, f.b.ID},
			"super_admin naming no tenant":    {f.root, nodus.NewID()},
			"a malformed tenant id":           {f.root, "../b"},
		} {
			if _, err := f.menus.FindMenu(menuScope(tc.p), tc.p, tc.tenant); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%s: %v, want not_found", name, err)
			}
		}
	})
}

// TestMenuManagement checks who may change what, and the audit trail.
func TestMenuManagement(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newMenuFixture(t, db)
		code := func(name string, err error, want string) {
			t.Helper()
			if got := nodus.ErrorCode(err); got != want {
				t.Errorf("%s: %v, want %q", name, err, want)
			}
		}
		item := func(key string) *identity.MenuItem {
			return &identity.MenuItem{Key: key, Label: "Item " + key, Path: "/x/" + key, IsActive: true,
				Roles: []identity.Role{identity.RoleViewer, identity.RoleUser}}
		}

		// Users and viewers manage nothing.
		for _, p := range []identity.Actor{f.usr, f.viewer} {
			code(string(p.User.Role)+" creates", f.menus.CreateMenuItem(menuScope(p), p, item("nope")), nodus.EFORBIDDEN)
			_, _, err := f.menus.ListMenuItems(menuScope(p), p, identity.MenuFilter{})
			code(string(p.User.Role)+" lists", err, nodus.EFORBIDDEN)
			_, err = f.menus.UpdateMenuItem(menuScope(p), p, f.ids["chat"], identity.MenuItemPatch{Label: new("x")})
			code(string(p.User.Role)+" updates", err, nodus.EFORBIDDEN)
			code(string(p.User.Role)+" deletes", f.menus.DeleteMenuItem(menuScope(p), p, f.ids["chat"]), nodus.EFORBIDDEN)
		}

		// An org_admin's item lands in their tenant.
		wiki := item("wiki")
		if err := f.menus.CreateMenuItem(menuScope(f.admA), f.admA, wiki); err != nil {
			t.Fatal(err)
		}
		if wiki.TenantID != f.a.ID || !nodus.ValidID(wiki.ID) || wiki.CreatedAt.IsZero() || fmt.Sprint(wiki.Roles) != "[user viewer]" {
			t.Fatalf("created %+v", wiki)
		}
		bad := item("planted")
		bad.TenantID = f.b.ID
		code("org_admin creates in another tenant", f.menus.CreateMenuItem(menuScope(f.admA), f.admA, bad), nodus.ENOTFOUND)

		// Tenant B's org_admin cannot reach A's item in any way.
		_, err := f.menus.FindMenuItem(menuScope(f.admB), f.admB, wiki.ID)
		code("B finds A's item", err, nodus.ENOTFOUND)
		_, err = f.menus.UpdateMenuItem(menuScope(f.admB), f.admB, wiki.ID, identity.MenuItemPatch{Label: new("pwned")})
		code("B updates A's item", err, nodus.ENOTFOUND)
		code("B deletes A's item", f.menus.DeleteMenuItem(menuScope(f.admB), f.admB, wiki.ID), nodus.ENOTFOUND)
		child := item("child")
		child.ParentID = wiki.ID
		code("B hangs an item under A's", f.menus.CreateMenuItem(menuScope(f.admB), f.admB, child), nodus.ENOTFOUND)
		// Even with the all-tenants scope by mistake, the service holds.
		_, err = f.menus.UpdateMenuItem(menuScope(f.root), f.admB, wiki.ID, identity.MenuItemPatch{Label: new("pwned")})
		code("B updates A's item on the wrong scope", err, nodus.ENOTFOUND)
		if got, _ := f.menus.FindMenuItem(menuScope(f.admA), f.admA, wiki.ID); got.Label != "Item wiki" || !got.UpdatedAt.Equal(wiki.UpdatedAt) {
			t.Errorf("A's item changed: %+v", got)
		}
		_, _, err = f.menus.ListMenuItems(menuScope(f.admB), f.admB, identity.MenuFilter{TenantID: f.a.ID})
		code("B lists A's items", err, nodus.ENOTFOUND)
		if list, _, err := f.menus.ListMenuItems(menuScope(f.admB), f.admB, identity.MenuFilter{}); err != nil || len(list) != 0 {
			t.Errorf("B's own list: %v, %v; want empty", list, err)
		}

		// Platform items: an org_admin reads them and changes none.
		if m, err := f.menus.FindMenuItem(menuScope(f.admA), f.admA, f.ids["chat"]); err != nil || m.Key != "chat" {
			t.Errorf("org_admin reads a platform item: %v, %v", m, err)
		}
		_, err = f.menus.UpdateMenuItem(menuScope(f.admA), f.admA, f.ids["chat"], identity.MenuItemPatch{Label: new("Talk")})
		code("org_admin updates a platform item", err, nodus.EFORBIDDEN)
		if !strings.Contains(nodus.ErrorMessage(err), "super_admin") {
			t.Errorf("the refusal does not say who may: %q", nodus.ErrorMessage(err))
		}
		code("org_admin deletes a platform item", f.menus.DeleteMenuItem(menuScope(f.admA), f.admA, f.ids["chat"]), nodus.EFORBIDDEN)

		// A super_admin names the tenant, which must exist.
		ghost := item("ghost")
		ghost.TenantID = nodus.NewID()
		code("super_admin creates for no tenant", f.menus.CreateMenuItem(menuScope(f.root), f.root, ghost), nodus.ENOTFOUND)
		forB := item("for-b")
		forB.TenantID = f.b.ID
		code("super_admin creates for B", f.menus.CreateMenuItem(menuScope(f.root), f.root, forB), "")
		code("super_admin creates a platform item", f.menus.CreateMenuItem(menuScope(f.root), f.root, item("help")), "")
		code("malformed id", f.menus.DeleteMenuItem(menuScope(f.root), f.root, "1 OR 1=1"), nodus.ENOTFOUND)

		// Validation answers every field at once.
		invalid := &identity.MenuItem{Key: "Bad Key", Path: "//evil.example", Roles: []identity.Role{"root"}}
		err = f.menus.CreateMenuItem(menuScope(f.admA), f.admA, invalid)
		if fields := nodus.ErrorFields(err); nodus.ErrorCode(err) != nodus.EINVALID ||
			fields["key"] == "" || fields["label"] == "" || fields["path"] == "" || fields["roles"] == "" {
			t.Errorf("invalid item: %v %v", err, fields)
		}

		// An update changes what the patch names; a patch changing nothing
		// writes and audits nothing.
		upd, err := f.menus.UpdateMenuItem(menuScope(f.admA), f.admA, wiki.ID,
			identity.MenuItemPatch{Label: new("Team wiki"), Position: new(7)})
		if err != nil || upd.Label != "Team wiki" || upd.Position != 7 || upd.Path != wiki.Path || !upd.UpdatedAt.After(wiki.UpdatedAt) {
			t.Fatalf("update: %+v, %v", upd, err)
		}
		same, err := f.menus.UpdateMenuItem(menuScope(f.admA), f.admA, wiki.ID, identity.MenuItemPatch{Label: new("Team wiki")})
		if err != nil || !same.UpdatedAt.Equal(upd.UpdatedAt) {
			t.Errorf("no-op update: %+v, %v", same, err)
		}
		_, err = f.menus.UpdateMenuItem(menuScope(f.admA), f.admA, wiki.ID, identity.MenuItemPatch{Roles: &[]identity.Role{}})
		code("update to no roles", err, nodus.EINVALID)

		// Deleting a parent with children is refused.
		sub := item("sub")
		sub.ParentID = wiki.ID
		code("child of wiki", f.menus.CreateMenuItem(menuScope(f.admA), f.admA, sub), "")
		code("delete wiki with a child", f.menus.DeleteMenuItem(menuScope(f.admA), f.admA, wiki.ID), nodus.ECONFLICT)
		code("delete the child", f.menus.DeleteMenuItem(menuScope(f.admA), f.admA, sub.ID), "")
		code("delete wiki", f.menus.DeleteMenuItem(menuScope(f.admA), f.admA, wiki.ID), "")

		// The audit trail: one entry per change, in the item's tenant,
		// with the fields that changed.
		entries, _, err := f.aud.List(nodus.WithAllTenants(context.Background()), audit.Filter{TargetType: "menu_item", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			got = append(got, e.Action)
			if e.Address != menuClient.Address || e.UserAgent != menuClient.UserAgent || e.ActorID == "" || e.ActorKind != audit.ActorToken {
				t.Errorf("entry %s lacks actor or menuClient: %+v", e.Action, e)
			}
		}
		want := "menu.create menu.create menu.create menu.update menu.create menu.delete menu.delete"
		if strings.Join(got, " ") != want {
			t.Fatalf("audit = %s\nwant    %s", strings.Join(got, " "), want)
		}
		var update audit.Entry
		for _, e := range entries {
			if e.Action == "menu.update" {
				update = e
			}
		}
		if update.TenantID != f.a.ID || update.TargetID != wiki.ID || update.ActorID != f.admA.User.ID || len(update.Changes) != 2 ||
			fmt.Sprintf("%v|%v", update.Changes["label"].Before, update.Changes["label"].After) != "Item wiki|Team wiki" {
			t.Errorf("update entry: %+v", update)
		}
		if entries[0].Action != "menu.delete" || entries[0].Changes["key"].Before != "wiki" || entries[0].Changes["key"].After != nil {
			t.Errorf("delete entry: %+v", entries[0])
		}
	})
}

func TestMenuItemValidate(t *testing.T) {
	valid := func() identity.MenuItem {
		return identity.MenuItem{ID: nodus.NewID(), Key: "kb.docs-2_x", Label: " Docs ", Path: "/knowledge/docs", Icon: "book-open",
			Roles: []identity.Role{identity.RoleViewer, identity.RoleSuperAdmin, identity.RoleViewer}}
	}
	m := valid()
	if err := m.Validate(); err != nil {
		t.Fatalf("valid item: %v", err)
	}
	if m.Label != "Docs" || fmt.Sprint(m.Roles) != "[super_admin viewer]" {
		t.Errorf("normalised to %q %v", m.Label, m.Roles)
	}
	tests := []struct {
		field  string
		change func(*identity.MenuItem)
	}{
		{"key", func(m *identity.MenuItem) { m.Key = "" }},
		{"key", func(m *identity.MenuItem) { m.Key = "Docs" }},
		{"key", func(m *identity.MenuItem) { m.Key = "a b" }},
		{"key", func(m *identity.MenuItem) { m.Key = strings.Repeat("k", 65) }},
		{"label", func(m *identity.MenuItem) { m.Label = "   " }},
		{"label", func(m *identity.MenuItem) { m.Label = strings.Repeat("é", 101) }},
		{"label", func(m *identity.MenuItem) { m.Label = "a\nb" }},
		{"path", func(m *identity.MenuItem) { m.Path = "" }},
		{"path", func(m *identity.MenuItem) { m.Path = "chat" }},
		{"path", func(m *identity.MenuItem) { m.Path = "//evil.example/x" }},
		{"path", func(m *identity.MenuItem) { m.Path = "/\\evil.example" }},
		{"path", func(m *identity.MenuItem) { m.Path = "http://example.com" }},
		{"path", func(m *identity.MenuItem) { m.Path = "javascript:alert(1)" }},
		{"path", func(m *identity.MenuItem) { m.Path = "https://" }},
		{"path", func(m *identity.MenuItem) { m.Path = "https://user:pw@example.com/" }},
		{"path", func(m *identity.MenuItem) { m.Path = "/a b" }},
		{"path", func(m *identity.MenuItem) { m.Path = "/" + strings.Repeat("p", 500) }},
		{"icon", func(m *identity.MenuItem) { m.Icon = "Book" }},
		{"icon", func(m *identity.MenuItem) { m.Icon = strings.Repeat("i", 65) }},
		{"tenant_id", func(m *identity.MenuItem) { m.TenantID = "acme" }},
		{"parent_id", func(m *identity.MenuItem) { m.ParentID = "x" }},
		{"parent_id", func(m *identity.MenuItem) { m.ParentID = m.ID }},
		{"position", func(m *identity.MenuItem) { m.Position = 1_000_001 }},
		{"roles", func(m *identity.MenuItem) { m.Roles = nil }},
		{"roles", func(m *identity.MenuItem) { m.Roles = []identity.Role{identity.RoleUser, "admin"} }},
	}
	for _, tt := range tests {
		m := valid()
		tt.change(&m)
		err := m.Validate()
		if fields := nodus.ErrorFields(err); nodus.ErrorCode(err) != nodus.EINVALID || fields[tt.field] == "" || len(fields) != 1 {
			t.Errorf("%s = %+v: %v %v, want only %s invalid", tt.field, m, err, fields, tt.field)
		}
	}
	for _, p := range []string{"/", "/chat?x=1#top", "https://wiki.example.com", "https://example.com:8443/a/b", "/ünïcode"} {
		m := valid()
		m.Path = p
		if err := m.Validate(); err != nil {
			t.Errorf("path %q: %v", p, err)
		}
	}
}
