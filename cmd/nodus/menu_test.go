package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// menuBearer signs in as login, mints an API token with the session and
// its CSRF token, and returns the option that sends the token.
func menuBearer(t *testing.T, base, login, password string) reqOpt {
	t.Helper()
	resp, body := call(t, "POST", base+"/api/v1/auth/login", jsonBody(map[string]string{"login": login, "password": password}))
	if resp.StatusCode != 200 {
		t.Fatalf("sign in as %s: %d %s", login, resp.StatusCode, body)
	}
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := json.Unmarshal(body, &me); err != nil {
		t.Fatal(err)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "nodus_session" {
			session = &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	resp, body = call(t, "POST", base+"/api/v1/tokens", jsonBody(map[string]any{"name": "menus"}),
		withCookie(session), withHeader("X-CSRF-Token", me.CSRFToken))
	var minted struct{ Secret string }
	if resp.StatusCode != 201 || json.Unmarshal(body, &minted) != nil {
		t.Fatalf("mint a token as %s: %d %s", login, resp.StatusCode, body)
	}
	return withBearer(minted.Secret)
}

// menuNode is a node of GET /api/v1/menus.
type menuNode struct {
	ID       string
	Key      string
	Children []menuNode
}

// menuTreeText writes a tree as "a b(c d) e".
func menuTreeText(nodes []menuNode) string {
	var parts []string
	for _, n := range nodes {
		s := n.Key
		if len(n.Children) > 0 {
			s += "(" + menuTreeText(n.Children) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// TestMenuAPI runs the menus over HTTP on both engines: the default menu
// of each role, an org_admin's own items, tenant isolation (another
// tenant's ids are 404 in the path, as parent_id and as tenant_id, and
// change nothing), platform items closed to org_admins (403), management
// closed to users and viewers (403), and the audit trail.
func TestMenuAPI(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "correct horse battery"
		in := startNodus(t, vars)

		// do sends body (nil for none) as who, checks the status and
		// decodes the answer into into (when not nil).
		do := func(who reqOpt, method, path string, body any, want int, into any) []byte {
			t.Helper()
			var resp *http.Response
			var b []byte
			if body == nil {
				resp, b = call(t, method, in.base+path, nil, who)
			} else {
				resp, b = call(t, method, in.base+path, jsonBody(body), who)
			}
			if resp.StatusCode != want {
				t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
			}
			if into != nil {
				if err := json.Unmarshal(b, into); err != nil {
					t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
				}
			}
			return b
		}
		menuOf := func(who reqOpt, query string) string {
			t.Helper()
			var got struct{ Menu []menuNode }
			do(who, "GET", "/api/v1/menus"+query, nil, 200, &got)
			return menuTreeText(got.Menu)
		}

		// Two tenants, an org_admin in each, a user and a viewer in A.
		root := menuBearer(t, in.base, "admin", "correct horse battery")
		const password = "a long enough password"
		tenants := map[string]string{}
		for _, name := range []string{"a", "b"} {
			var got struct{ Tenant struct{ ID string } }
			do(root, "POST", "/api/v1/tenants", map[string]any{"name": "Menu tenant " + name}, 201, &got)
			tenants[name] = got.Tenant.ID
		}
		people := map[string]reqOpt{}
		for _, p := range []struct{ login, tenant, role string }{
			{"a-admin", "a", "org_admin"}, {"b-admin", "b", "org_admin"}, {"a-user", "a", "user"}, {"a-viewer", "a", "viewer"},
		} {
			do(root, "POST", "/api/v1/users", map[string]any{"email": p.login + "@example.test", "username": p.login,
				"role": p.role, "tenant_id": tenants[p.tenant], "password": password}, 201, nil)
			people[p.login] = menuBearer(t, in.base, p.login, password)
		}
		aAdmin, bAdmin, aUser, aViewer := people["a-admin"], people["b-admin"], people["a-user"], people["a-viewer"]

		// The default menu, by role.
		const content = "dashboard chat chatbots knowledge agents recordings notebooks"
		const gateway = "gateway(gateway.models gateway.keys gateway.spend)"
		for _, tt := range []struct {
			name string
			who  reqOpt
			want string
		}{
			{"super_admin", root, content + " " + gateway + " traces vault egress admin(admin.tenants admin.users admin.menus admin.settings admin.audit)"},
			{"org_admin", aAdmin, content + " " + gateway + " traces vault egress admin(admin.users admin.menus admin.settings admin.audit)"},
			{"user", aUser, content + " " + gateway + " traces vault"},
			{"viewer", aViewer, "dashboard chatbots knowledge agents recordings notebooks gateway(gateway.models)"},
		} {
			if got := menuOf(tt.who, ""); got != tt.want {
				t.Errorf("%s's menu:\n  %s\nwant\n  %s", tt.name, got, tt.want)
			}
		}
		var platform struct{ Menu []menuNode }
		do(root, "GET", "/api/v1/menus", nil, 200, &platform)
		ids := map[string]string{}
		var walk func([]menuNode)
		walk = func(nodes []menuNode) {
			for _, n := range nodes {
				ids[n.Key] = n.ID
				walk(n.Children)
			}
		}
		walk(platform.Menu)

		// A's org_admin adds items to A's menu, one under a platform group.
		type item struct {
			ID        string
			TenantID  string `json:"tenant_id"`
			Key       string
			Label     string
			ParentID  string `json:"parent_id"`
			IsActive  bool   `json:"is_active"`
			UpdatedAt string `json:"updated_at"`
		}
		var wiki, reports struct{ Item item }
		do(aAdmin, "POST", "/api/v1/menu-items", map[string]any{"key": "wiki", "label": "Wiki", "path": "https://wiki.example.com",
			"icon": "book", "position": 55, "roles": []string{"org_admin", "user"}}, 201, &wiki)
		if wiki.Item.TenantID != tenants["a"] || !wiki.Item.IsActive || !nodus.ValidID(wiki.Item.ID) {
			t.Fatalf("created %+v", wiki.Item)
		}
		do(aAdmin, "POST", "/api/v1/menu-items", map[string]any{"key": "admin.reports", "label": "Reports", "path": "/reports",
			"parent_id": ids["admin"], "roles": []string{"org_admin"}}, 201, &reports)
		// The super_admin adds one to A's menu by naming A.
		do(root, "POST", "/api/v1/menu-items", map[string]any{"tenant_id": tenants["a"], "key": "support", "label": "Support",
			"path": "/support", "position": 200, "roles": []string{"super_admin", "org_admin"}}, 201, nil)

		if got := menuOf(aUser, ""); !strings.Contains(got, "agents wiki recordings") || strings.Contains(got, "reports") {
			t.Errorf("A's user sees %s; want wiki after agents and no reports", got)
		}
		if got := menuOf(aAdmin, ""); !strings.Contains(got, "admin(admin.reports admin.users") || !strings.HasSuffix(got, " support") {
			t.Errorf("A's org_admin sees %s", got)
		}
		if got := menuOf(aViewer, ""); strings.Contains(got, "wiki") {
			t.Errorf("A's viewer sees %s; wiki is not for viewers", got)
		}
		for name, got := range map[string]string{"B's org_admin": menuOf(bAdmin, ""), "the super_admin": menuOf(root, "")} {
			if strings.Contains(got, "wiki") || strings.Contains(got, "support") || strings.Contains(got, "reports") {
				t.Errorf("%s sees A's items: %s", name, got)
			}
		}
		if got := menuOf(root, "?tenant_id="+tenants["a"]); !strings.HasSuffix(got, " support") || strings.Contains(got, "wiki") {
			t.Errorf("the super_admin's view of A: %s; want support, not wiki (not for super_admins)", got)
		}

		// B's org_admin cannot reach A's items by any door, and A's items
		// stay as they were.
		wikiPath := "/api/v1/menu-items/" + wiki.Item.ID
		before := do(aAdmin, "GET", wikiPath, nil, 200, nil)
		do(bAdmin, "GET", wikiPath, nil, 404, nil)
		do(bAdmin, "PATCH", wikiPath, map[string]any{"label": "pwned", "roles": []string{"viewer"}}, 404, nil)
		do(bAdmin, "DELETE", wikiPath, nil, 404, nil)
		do(bAdmin, "POST", "/api/v1/menu-items", map[string]any{"key": "under", "label": "Under", "path": "/u",
			"parent_id": wiki.Item.ID, "roles": []string{"viewer"}}, 404, nil)
		do(bAdmin, "POST", "/api/v1/menu-items", map[string]any{"tenant_id": tenants["a"], "key": "planted", "label": "Planted",
			"path": "/p", "roles": []string{"user"}}, 404, nil)
		do(bAdmin, "GET", "/api/v1/menu-items?tenant_id="+tenants["a"], nil, 404, nil)
		do(bAdmin, "GET", "/api/v1/menus?tenant_id="+tenants["a"], nil, 404, nil)
		if after := do(aAdmin, "GET", wikiPath, nil, 200, nil); !bytes.Equal(before, after) {
			t.Errorf("A's item changed:\nbefore %s\nafter  %s", before, after)
		}
		var bList struct{ Items []item }
		do(bAdmin, "GET", "/api/v1/menu-items", nil, 200, &bList)
		if len(bList.Items) != 0 {
			t.Errorf("B's org_admin lists %v", bList.Items)
		}
		if got := menuOf(aUser, ""); !strings.Contains(got, "wiki") {
			t.Errorf("after B's attempts A's user sees %s", got)
		}

		// Platform items are the super_admin's.
		var refused struct {
			Error struct{ Code, Message string }
		}
		do(aAdmin, "PATCH", "/api/v1/menu-items/"+ids["dashboard"], map[string]any{"label": "Home"}, 403, &refused)
		if refused.Error.Code != "forbidden" || !strings.Contains(refused.Error.Message, "super_admins") {
			t.Errorf("org_admin patching a platform item: %+v", refused.Error)
		}
		do(aAdmin, "DELETE", "/api/v1/menu-items/"+ids["egress"], nil, 403, nil)
		do(root, "PATCH", "/api/v1/menu-items/"+ids["egress"], map[string]any{"position": 1}, 200, nil)
		if got := menuOf(root, ""); !strings.HasPrefix(got, "egress dashboard") {
			t.Errorf("after moving egress first, the super_admin sees %s", got)
		}
		do(root, "POST", "/api/v1/menu-items", map[string]any{"tenant_id": nodus.NewID(), "key": "ghost", "label": "Ghost",
			"path": "/g", "roles": []string{"user"}}, 404, nil)

		// Users and viewers manage nothing.
		for name, who := range map[string]reqOpt{"user": aUser, "viewer": aViewer} {
			for _, r := range []struct {
				method, path string
				body         any
			}{
				{"GET", "/api/v1/menu-items", nil},
				{"POST", "/api/v1/menu-items", map[string]any{"key": "x", "label": "X", "path": "/x", "roles": []string{"viewer"}}},
				{"GET", wikiPath, nil},
				{"PATCH", wikiPath, map[string]any{"label": "x"}},
				{"DELETE", wikiPath, nil},
			} {
				resp, body := call(t, r.method, in.base+r.path, jsonBody(r.body), who)
				if resp.StatusCode != 403 {
					t.Errorf("%s %s as a %s: %d %s, want 403", r.method, r.path, name, resp.StatusCode, body)
				}
			}
		}

		// Updates, validation, and deletion with children.
		var patched struct{ Item item }
		do(aAdmin, "PATCH", wikiPath, map[string]any{"label": "Team wiki"}, 200, &patched)
		if patched.Item.Label != "Team wiki" || patched.Item.Key != "wiki" {
			t.Errorf("patched %+v", patched.Item)
		}
		do(aAdmin, "PATCH", wikiPath, map[string]any{"parent_id": wiki.Item.ID}, 400, nil)
		do(aAdmin, "PATCH", wikiPath, map[string]any{"tenant_id": tenants["b"]}, 400, nil)
		do(aAdmin, "POST", "/api/v1/menu-items", map[string]any{"key": "wiki", "label": "Again", "path": "/w", "roles": []string{"user"}}, 409, nil)
		do(aAdmin, "POST", "/api/v1/menu-items", map[string]any{"key": "evil", "label": "Evil", "path": "//evil.example", "roles": []string{"user"}}, 400, nil)
		do(aAdmin, "POST", "/api/v1/menu-items", map[string]any{"key": "wiki.child", "label": "Child", "path": "/wiki/child",
			"parent_id": wiki.Item.ID, "roles": []string{"user"}}, 201, nil)
		do(aAdmin, "DELETE", wikiPath, nil, 409, nil)
		do(aAdmin, "GET", "/api/v1/menu-items/not-an-id", nil, 404, nil)
		do(aAdmin, "DELETE", "/api/v1/menu-items/"+reports.Item.ID, nil, 204, nil)
		var page struct {
			Items      []item
			NextCursor string `json:"next_cursor"`
		}
		do(aAdmin, "GET", "/api/v1/menu-items?limit=2", nil, 200, &page)
		if len(page.Items) != 2 || page.NextCursor == "" {
			t.Fatalf("first page: %+v", page)
		}
		for _, it := range page.Items {
			if it.TenantID != tenants["a"] {
				t.Errorf("A's org_admin lists %+v", it)
			}
		}
		cursor := page.NextCursor
		page.Items, page.NextCursor = nil, ""
		do(aAdmin, "GET", "/api/v1/menu-items?limit=2&cursor="+cursor, nil, 200, &page)
		if len(page.Items) != 1 || page.NextCursor != "" {
			t.Errorf("second page: %+v", page)
		}

		// The audit trail: every change, in the item's tenant; A's
		// org_admin sees A's changes only.
		type entry struct {
			Action   string
			TenantID string `json:"tenant_id"`
			TargetID string `json:"target_id"`
			Changes  map[string]struct{ Before, After any }
		}
		var all, mine struct{ Entries []entry }
		do(root, "GET", "/api/v1/audit?target_type=menu_item", nil, 200, &all)
		do(aAdmin, "GET", "/api/v1/audit?target_type=menu_item", nil, 200, &mine)
		counts := map[string]int{}
		for _, e := range all.Entries {
			counts[e.Action]++
		}
		if counts["menu.create"] != 4 || counts["menu.update"] != 2 || counts["menu.delete"] != 1 {
			t.Errorf("audit counts %v; want 4 creations, 2 updates, 1 deletion", counts)
		}
		if len(mine.Entries) != 6 { // wiki, reports, support, wiki.child created; wiki updated; reports deleted
			t.Errorf("A's org_admin sees %d menu entries, want 6", len(mine.Entries))
		}
		for _, e := range mine.Entries {
			if e.TenantID != tenants["a"] {
				t.Errorf("A's org_admin sees %+v", e)
			}
			if e.Action == "menu.update" && (len(e.Changes) != 1 || e.Changes["label"].Before != "Wiki" || e.Changes["label"].After != "Team wiki") {
				t.Errorf("update entry %+v", e)
			}
		}
	})
}
