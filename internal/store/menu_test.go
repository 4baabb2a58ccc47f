package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

var everyRole = []identity.Role{identity.RoleSuperAdmin, identity.RoleOrgAdmin, identity.RoleUser, identity.RoleViewer}

func newMenuItem(tenantID, parentID, key string, roles ...identity.Role) *identity.MenuItem {
	now := nodus.SystemClock{}.Now()
	if len(roles) == 0 {
		roles = everyRole
	}
	return &identity.MenuItem{ID: nodus.NewID(), TenantID: tenantID, ParentID: parentID, Key: key, Label: strings.ToUpper(key),
		Path: "/" + key, Icon: "dot", Position: 10, IsActive: true, Roles: roles, CreatedAt: now, UpdatedAt: now}
}

func mustCreateMenuItem(t *testing.T, db *store.DB, m *identity.MenuItem) *identity.MenuItem {
	t.Helper()
	if err := db.CreateMenuItem(platform, m); err != nil {
		t.Fatalf("create menu item %s: %v", m.Key, err)
	}
	return m
}

// menuIDs maps the keys of the platform's items to their ids.
func menuIDs(t *testing.T, db *store.DB) map[string]string {
	t.Helper()
	items, err := db.FindMenu(platform, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, m := range items {
		ids[m.Key] = m.ID
	}
	return ids
}

func rolesText(roles []identity.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, " ")
}

// TestMenuDefaults checks the platform menu the migration seeds: every
// item, its parent, and the roles that see it.
func TestMenuDefaults(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		items, err := db.FindMenu(platform, "")
		if err != nil {
			t.Fatal(err)
		}
		const (
			all    = "super_admin org_admin user viewer"
			users  = "super_admin org_admin user"
			admins = "super_admin org_admin"
		)
		want := map[string]struct{ parent, path, roles string }{
			"dashboard":      {"", "/", all},
			"chat":           {"", "/chat", users},
			"chatbots":       {"", "/chatbots", all},
			"knowledge":      {"", "/knowledge", all},
			"agents":         {"", "/agents", all},
			"recordings":     {"", "/recordings", all},
			"notebooks":      {"", "/notebooks", all},
			"gateway":        {"", "/gateway", all},
			"gateway.models": {"gateway", "/gateway/models", all},
			"gateway.keys":   {"gateway", "/gateway/keys", users},
			"gateway.spend":  {"gateway", "/gateway/spend", users},
			"traces":         {"", "/traces", users},
			"vault":          {"", "/vault", users},
			"egress":         {"", "/egress", admins},
			"admin":          {"", "/admin", admins},
			"admin.tenants":  {"admin", "/admin/tenants", "super_admin"},
			"admin.users":    {"admin", "/admin/users", admins},
			"admin.menus":    {"admin", "/admin/menus", admins},
			"admin.settings": {"admin", "/admin/settings", admins},
			"admin.audit":    {"admin", "/admin/audit", admins},
		}
		if len(items) != len(want) {
			t.Fatalf("%d default items, want %d", len(items), len(want))
		}
		keyOf := map[string]string{}
		for _, m := range items {
			keyOf[m.ID] = m.Key
		}
		for _, m := range items {
			w, ok := want[m.Key]
			switch {
			case !ok:
				t.Errorf("unexpected default item %q", m.Key)
			case !nodus.ValidID(m.ID) || m.TenantID != "" || !m.IsActive || m.Label == "" || m.Icon == "":
				t.Errorf("item %q: %+v", m.Key, m)
			case keyOf[m.ParentID] != w.parent || m.Path != w.path || rolesText(m.Roles) != w.roles:
				t.Errorf("item %q: parent %q, path %q, roles %q; want %q, %q, %q", m.Key, keyOf[m.ParentID], m.Path,
					rolesText(m.Roles), w.parent, w.path, w.roles)
			}
			if err := m.Validate(); err != nil {
				t.Errorf("default item %q does not validate: %v", m.Key, err)
			}
		}
	})
}

func TestMenuStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a, b := newTenant(t, db, "A", 0), newTenant(t, db, "B", 0)
		inA := nodus.WithTenant(ctx, a.ID)

		wiki := newMenuItem(a.ID, "", "wiki", identity.RoleViewer, identity.RoleOrgAdmin)
		wiki.Path = "https://wiki.example.com/start"
		if err := db.CreateMenuItem(inA, wiki); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindMenuItem(inA, wiki.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.TenantID != a.ID || got.Key != "wiki" || got.Path != wiki.Path || got.ParentID != "" || !got.IsActive ||
			got.Position != 10 || !got.CreatedAt.Equal(wiki.CreatedAt) || rolesText(got.Roles) != "org_admin viewer" {
			t.Fatalf("FindMenuItem = %+v", got)
		}

		// Keys are unique per owner: the platform, or one tenant.
		if err := db.CreateMenuItem(inA, newMenuItem(a.ID, "", "wiki")); nodus.ErrorCode(err) != nodus.ECONFLICT ||
			nodus.ErrorFields(err)["key"] == "" {
			t.Errorf("duplicate key in one tenant: %v, want conflict on key", err)
		}
		if err := db.CreateMenuItem(platform, newMenuItem(b.ID, "", "wiki")); err != nil {
			t.Errorf("the same key in another tenant: %v", err)
		}
		if err := db.CreateMenuItem(inA, newMenuItem(a.ID, "", "dashboard")); err != nil {
			t.Errorf("a tenant key equal to a platform key: %v", err)
		}
		if err := db.CreateMenuItem(platform, newMenuItem("", "", "dashboard")); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate platform key: %v, want conflict", err)
		}
		if err := db.CreateMenuItem(platform, newMenuItem(nodus.NewID(), "", "ghost")); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("item of a tenant that does not exist: %v, want not_found", err)
		}

		later := wiki.UpdatedAt.Add(time.Minute)
		upd, err := db.UpdateMenuItem(inA, wiki.ID, func(m *identity.MenuItem) error {
			m.Label, m.Position, m.IsActive, m.Roles, m.UpdatedAt = "Team wiki", -5, false, []identity.Role{identity.RoleUser}, later
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, _ = db.FindMenuItem(inA, wiki.ID)
		if got.Label != "Team wiki" || got.Position != -5 || got.IsActive || rolesText(got.Roles) != "user" ||
			!got.UpdatedAt.Equal(later) || rolesText(upd.Roles) != "user" {
			t.Errorf("after update: %+v", got)
		}
		if _, err := db.UpdateMenuItem(inA, wiki.ID, func(m *identity.MenuItem) error { m.Key = "chat"; return nil }); err != nil {
			t.Errorf("renaming to a key only the platform uses: %v", err)
		}
		_, err = db.UpdateMenuItem(inA, wiki.ID, func(m *identity.MenuItem) error { m.Key = "dashboard"; return nil })
		if nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("renaming to a key the tenant uses: %v, want conflict", err)
		}
		_, err = db.UpdateMenuItem(platform, wiki.ID, func(m *identity.MenuItem) error { m.TenantID = b.ID; return nil })
		if nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("moving an item to another tenant: %v, want invalid", err)
		}
		if got, _ := db.FindMenuItem(platform, wiki.ID); got.TenantID != a.ID {
			t.Errorf("the item changed owner: %+v", got)
		}

		// The menu of A: the platform's items and A's, not B's.
		menu, err := db.FindMenu(inA, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		var owners []string
		for _, m := range menu {
			if m.TenantID != "" && !slices.Contains(owners, m.TenantID) {
				owners = append(owners, m.TenantID)
			}
		}
		if len(menu) != 22 || !slices.Equal(owners, []string{a.ID}) {
			t.Errorf("menu of A: %d items owned by %v; want 22 (20 platform, 2 of A's)", len(menu), owners)
		}
		if _, err := db.FindMenu(platform, nodus.NewID()); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("menu of a tenant that does not exist: %v, want not_found", err)
		}

		if err := db.DeleteMenuItem(inA, wiki.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindMenuItem(inA, wiki.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("deleted item: %v", err)
		}
		if err := db.DeleteMenuItem(inA, wiki.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("deleting twice: %v, want not_found", err)
		}
		var roles int
		_ = db.Read(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM menu_roles WHERE menu_id = ?`, wiki.ID).Scan(&roles)
		})
		if roles != 0 {
			t.Errorf("%d roles left behind by a deleted item", roles)
		}
	})
}

func TestMenuPagination(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a := newTenant(t, db, "A", 0)
		inA := nodus.WithTenant(ctx, a.ID)
		var want []string
		for i := range 5 {
			want = append(want, mustCreateMenuItem(t, db, newMenuItem(a.ID, "", fmt.Sprintf("item%d", i))).ID)
		}
		var got []string
		cursor := ""
		for range 4 {
			page, next, err := db.ListMenuItems(inA, identity.MenuFilter{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page {
				got = append(got, m.ID)
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages = %v, want %v", got, want)
		}
		// The all-tenants scope lists the platform's items too, or one
		// tenant's with a filter.
		all, _, err := db.ListMenuItems(platform, identity.MenuFilter{Limit: 100})
		if err != nil || len(all) != 25 {
			t.Errorf("all items: %d, %v; want 25", len(all), err)
		}
		onlyA, _, err := db.ListMenuItems(platform, identity.MenuFilter{TenantID: a.ID})
		if err != nil || len(onlyA) != 5 {
			t.Errorf("A's items: %d, %v; want 5", len(onlyA), err)
		}
		if _, _, err := db.ListMenuItems(inA, identity.MenuFilter{Cursor: "garbage"}); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("bad cursor: %v", err)
		}
	})
}

// TestMenuIsolation checks every menu method from tenant A's scope against
// tenant B's items and the platform's: reads of B find nothing, writes
// change nothing, platform items are read-only, and no scope fails closed.
func TestMenuIsolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a, b := newTenant(t, db, "A", 0), newTenant(t, db, "B", 0)
		inA := nodus.WithTenant(ctx, a.ID)
		ids := menuIDs(t, db)
		bItem := mustCreateMenuItem(t, db, newMenuItem(b.ID, "", "secret"))
		aItem := mustCreateMenuItem(t, db, newMenuItem(a.ID, "", "mine"))

		notFound := func(name string, err error) {
			t.Helper()
			if nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%s from tenant A: %v, want not_found", name, err)
			}
		}
		_, err := db.FindMenuItem(inA, bItem.ID)
		notFound("FindMenuItem(B's)", err)
		_, err = db.UpdateMenuItem(inA, bItem.ID, func(m *identity.MenuItem) error { m.Label = "hijacked"; return nil })
		notFound("UpdateMenuItem(B's)", err)
		notFound("DeleteMenuItem(B's)", db.DeleteMenuItem(inA, bItem.ID))
		notFound("CreateMenuItem(in B)", db.CreateMenuItem(inA, newMenuItem(b.ID, "", "planted")))
		notFound("CreateMenuItem(under B's)", db.CreateMenuItem(inA, newMenuItem(a.ID, bItem.ID, "child")))
		_, err = db.UpdateMenuItem(inA, aItem.ID, func(m *identity.MenuItem) error { m.ParentID = bItem.ID; return nil })
		notFound("UpdateMenuItem(move under B's)", err)
		_, err = db.FindMenu(inA, b.ID)
		notFound("FindMenu(B)", err)

		// Platform items: readable, never writable from a tenant scope.
		if m, err := db.FindMenuItem(inA, ids["dashboard"]); err != nil || m.Key != "dashboard" {
			t.Errorf("FindMenuItem(platform) from A: %v, %v", m, err)
		}
		forbidden := func(name string, err error) {
			t.Helper()
			if nodus.ErrorCode(err) != nodus.EFORBIDDEN {
				t.Errorf("%s from tenant A: %v, want forbidden", name, err)
			}
		}
		_, err = db.UpdateMenuItem(inA, ids["dashboard"], func(m *identity.MenuItem) error { m.Label = "Mine"; return nil })
		forbidden("UpdateMenuItem(platform)", err)
		forbidden("DeleteMenuItem(platform)", db.DeleteMenuItem(inA, ids["egress"]))
		forbidden("CreateMenuItem(platform)", db.CreateMenuItem(inA, newMenuItem("", "", "planted")))
		// A's items may hang under platform items.
		if err := db.CreateMenuItem(inA, newMenuItem(a.ID, ids["admin"], "reports")); err != nil {
			t.Errorf("A's item under a platform group: %v", err)
		}

		list, _, err := db.ListMenuItems(inA, identity.MenuFilter{})
		if err != nil || len(list) != 2 || list[0].TenantID != a.ID || list[1].TenantID != a.ID {
			t.Errorf("ListMenuItems from A = %v, %v; want A's two items", list, err)
		}
		if list, _, _ := db.ListMenuItems(inA, identity.MenuFilter{TenantID: b.ID}); len(list) != 0 {
			t.Errorf("ListMenuItems from A filtered on B = %v, want none", list)
		}

		// B's item and the platform's are as they were.
		if got, _ := db.FindMenuItem(platform, bItem.ID); got.Label != bItem.Label || !got.UpdatedAt.Equal(bItem.UpdatedAt) {
			t.Errorf("B's item changed: %+v", got)
		}
		if got, _ := db.FindMenuItem(platform, ids["dashboard"]); got.Label != "Dashboard" {
			t.Errorf("platform item changed: %+v", got)
		}
		if _, err := db.FindMenuItem(platform, ids["egress"]); err != nil {
			t.Errorf("platform item deleted: %v", err)
		}

		// No scope: fail closed.
		for name, err := range map[string]error{
			"FindMenu":       func() error { _, err := db.FindMenu(ctx, ""); return err }(),
			"FindMenuItem":   func() error { _, err := db.FindMenuItem(ctx, aItem.ID); return err }(),
			"ListMenuItems":  func() error { _, _, err := db.ListMenuItems(ctx, identity.MenuFilter{}); return err }(),
			"CreateMenuItem": db.CreateMenuItem(ctx, newMenuItem(a.ID, "", "nobody")),
			"UpdateMenuItem": func() error {
				_, err := db.UpdateMenuItem(ctx, aItem.ID, func(*identity.MenuItem) error { return nil })
				return err
			}(),
			"DeleteMenuItem": db.DeleteMenuItem(ctx, aItem.ID),
		} {
			if err != nodus.ErrNoScope {
				t.Errorf("%s without a scope: %v, want ErrNoScope", name, err)
			}
		}
	})
}

// TestMenuTreeRules checks parents, depth, cycles and deletion with
// children, across owners.
func TestMenuTreeRules(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a := newTenant(t, db, "A", 0)
		inA := nodus.WithTenant(ctx, a.ID)
		ids := menuIDs(t, db)
		code := func(name string, err error, want string) {
			t.Helper()
			if got := nodus.ErrorCode(err); got != want {
				t.Errorf("%s: %v, want %q", name, err, want)
			}
		}
		move := func(scope context.Context, id, parent string) error {
			_, err := db.UpdateMenuItem(scope, id, func(m *identity.MenuItem) error { m.ParentID = parent; return nil })
			return err
		}

		code("unknown parent", db.CreateMenuItem(inA, newMenuItem(a.ID, nodus.NewID(), "orphan")), nodus.ENOTFOUND)
		// gateway (1) > gateway.models (2) > A's item (3): deep enough.
		deep := newMenuItem(a.ID, ids["gateway.models"], "deep")
		code("third level", db.CreateMenuItem(inA, deep), "")
		code("fourth level", db.CreateMenuItem(inA, newMenuItem(a.ID, deep.ID, "deeper")), nodus.EINVALID)

		// A platform item under a tenant's item is refused.
		aRoot := mustCreateMenuItem(t, db, newMenuItem(a.ID, "", "aroot"))
		code("platform item under a tenant's", db.CreateMenuItem(platform, newMenuItem("", aRoot.ID, "odd")), nodus.EINVALID)

		// Cycles, directly and through a descendant.
		code("under itself", move(platform, ids["gateway"], ids["gateway"]), nodus.EINVALID)
		code("under its child", move(platform, ids["gateway"], ids["gateway.models"]), nodus.EINVALID)

		// Moving a subtree counts its height: aRoot > aChild is two levels.
		aChild := mustCreateMenuItem(t, db, newMenuItem(a.ID, aRoot.ID, "achild"))
		code("two levels under a second-level item", move(inA, aRoot.ID, ids["gateway.models"]), nodus.EINVALID)
		code("two levels under a top-level item", move(inA, aRoot.ID, ids["gateway"]), "")
		code("back to the top", move(inA, aRoot.ID, ""), "")
		// The platform's gateway subtree holds A's item at its third level,
		// so it cannot go under anything.
		code("platform subtree with a tenant's leaf", move(platform, ids["gateway"], ids["dashboard"]), nodus.EINVALID)

		// Deleting an item with children is refused, whoever owns them.
		code("delete with children", db.DeleteMenuItem(inA, aRoot.ID), nodus.ECONFLICT)
		code("delete a platform item with a tenant's child", db.DeleteMenuItem(platform, ids["gateway.models"]), nodus.ECONFLICT)
		code("delete the child", db.DeleteMenuItem(inA, aChild.ID), "")
		code("delete the emptied parent", db.DeleteMenuItem(inA, aRoot.ID), "")

		// Deleting a tenant takes its nested items with it and leaves the
		// platform's.
		p := mustCreateMenuItem(t, db, newMenuItem(a.ID, "", "p"))
		mustCreateMenuItem(t, db, newMenuItem(a.ID, p.ID, "c"))
		if err := db.DeleteTenant(platform, a.ID); err != nil {
			t.Fatalf("delete a tenant with nested menu items: %v", err)
		}
		left, _, err := db.ListMenuItems(platform, identity.MenuFilter{Limit: 100})
		if err != nil || len(left) != 20 {
			t.Errorf("after deleting the tenant: %d items, %v; want the 20 platform items", len(left), err)
		}
	})
}
