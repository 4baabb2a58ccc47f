package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

var (
	notebookLink = regexp.MustCompile(`^/notebooks/([0-9a-f-]{36})$`)
	saveCardForm = regexp.MustCompile(`action="(/notebooks/[^"]+/chats/[^"]+/m/[^"]+/card)"`)
)

// TestWebNotebook drives the notebook pages over a real `nodus serve`, on
// both databases: a notebook made through its form, a pasted source with a
// stored-XSS title included and one excluded, a question answered from the
// included one only and saved as a card, a card pinned and moved; every
// form refused without its CSRF token or from another origin; and the
// notebook not found for another user of the tenant.
func TestWebNotebook(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayFreeWorld(t, databaseURL)
		var otherUser, foreignUser struct{ User struct{ ID string } }
		w.do(t, w.orgAdmin, "POST", "/api/v1/users", map[string]any{"email": "other@example.test", "username": "other",
			"role": "user", "password": canaryOrgPassword}, 201, &otherUser)
		var foreign struct{ Tenant struct{ ID string } }
		w.do(t, w.admin, "POST", "/api/v1/tenants", map[string]any{"name": "Tenant H", "max_users": 10}, 201, &foreign)
		w.do(t, w.admin, "POST", "/api/v1/users", map[string]any{"email": "h-user@example.test", "username": "h-user",
			"role": "user", "tenant_id": foreign.Tenant.ID, "password": canaryOrgPassword}, 201, &foreignUser)
		b := newBrowser(t, w.in.base)
		csrf := b.signIn("g-admin", canaryOrgPassword)
		post := func(path string, form url.Values) string {
			t.Helper()
			form.Set("csrf", csrf)
			resp, body := b.post(path, form, w.in.base)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
			}
			return resp.Header.Get("Location")
		}
		b.pageOK("/notebooks")
		loc := post("/notebooks", url.Values{"name": {xssPayload + " notebook"}})
		m := notebookLink.FindStringSubmatch(loc)
		if m == nil {
			t.Fatalf("created notebook at %q", loc)
		}
		base := loc
		post(base+"/sources", url.Values{"kind": {"text"}, "title": {xssPayload}, "context_level": {"full"},
			"text": {"The lighthouse keeper lights the lamp at dusk every evening."}})
		post(base+"/sources", url.Values{"kind": {"text"}, "title": {"Excluded"}, "context_level": {"excluded"},
			"text": {"The lighthouse keeper lights the lamp with a hidden-canary match."}})
		post(base+"/cards", url.Values{"title": {"First"}, "content": {"**bold** " + xssPayload}})
		page := b.pageOK(base)
		for _, want := range []string{"<strong>bold</strong>", `<option value="excluded" selected>`} {
			if !strings.Contains(page, want) {
				t.Errorf("the notebook page lacks %s", want)
			}
		}
		loc = post(base+"/ask", url.Values{"message": {"When does the lighthouse keeper light the lamp?"}})
		page = b.pageOK(loc[:strings.Index(loc, "#")])
		// The answer, not the page: the excluded source's own summary is
		// listed with the sources once its job has run.
		from, to := strings.Index(page, `<ol class="messages">`), strings.Index(page, `class="ask"`)
		if from < 0 || to < from {
			t.Fatalf("no answer on the page:\n%s", page)
		}
		answer := page[from:to]
		if !strings.Contains(answer, "at dusk every evening") || strings.Contains(answer, "hidden-canary match") {
			t.Fatalf("the answer is not from the included source only:\n%s", answer)
		}
		save := saveCardForm.FindStringSubmatch(page)
		if save == nil {
			t.Fatalf("no save-as-card form:\n%s", page)
		}
		post(save[1], url.Values{})
		page = b.pageOK(base)
		if strings.Count(page, `class="card ai`) != 1 || !strings.Contains(page, `aria-label="Sources cited"`) {
			t.Fatalf("the saved card is missing or has no citation:\n%s", page)
		}
		cardID := regexp.MustCompile(`id="card-([0-9a-f-]{36})" class="card ai`).FindStringSubmatch(page)
		if cardID == nil {
			t.Fatal("no ai card id")
		}
		post(base+"/cards/"+cardID[1], url.Values{"pinned": {"true"}})
		post(base+"/cards/"+cardID[1]+"/move", url.Values{"dir": {"up"}})
		page = b.pageOK(base)
		if !strings.Contains(page, "<h3>Pinned</h3>") || strings.Index(page, `class="card ai`) > strings.Index(page, `class="card human`) {
			t.Fatalf("the card is not pinned and first:\n%s", page)
		}
		// CSRF: no token, or another origin, changes nothing.
		for _, tc := range []struct {
			form   url.Values
			origin string
		}{{url.Values{"title": {"x"}}, w.in.base}, {url.Values{"title": {"x"}, "csrf": {csrf}}, "https://evil.example.test"}} {
			resp, _ := b.post(base+"/cards", tc.form, tc.origin)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("a card form without CSRF or from %s: %d", tc.origin, resp.StatusCode)
			}
		}
		// Another user of the tenant does not see it.
		other := newBrowser(t, w.in.base)
		otherCSRF := other.signIn("other", canaryOrgPassword)
		if resp, _, _ := other.get(base); resp.StatusCode != http.StatusNotFound {
			t.Errorf("another user's GET %s: %d", base, resp.StatusCode)
		}
		if resp, _ := other.post(base+"/cards", url.Values{"csrf": {otherCSRF}, "title": {"x"}}, w.in.base); resp.StatusCode != http.StatusNotFound {
			t.Errorf("another user's card: %d", resp.StatusCode)
		}
		if _, list, _ := other.get("/notebooks"); strings.Contains(list, m[1]) {
			t.Error("another user lists the notebook")
		}

		// Sharing: the owner shares it with that user for reading through
		// the page's form; they read it but are offered no write form.
		otherID := otherUser.User.ID
		page = b.pageOK(base)
		if !strings.Contains(page, `<option value="`+otherID+`">other</option>`) || strings.Contains(page, foreignUser.User.ID) {
			t.Fatalf("the share form does not offer the tenant's users only:\n%s", page)
		}
		if loc := post(base+"/shares", url.Values{"user_id": {otherID}, "permission": {"read"}}); loc != base+"#sharing" {
			t.Errorf("sharing redirects to %q", loc)
		}
		page = b.pageOK(base)
		if !strings.Contains(page, `action="`+base+`/shares/`+otherID+`"`) || !strings.Contains(page, `<option value="read" selected>`) {
			t.Fatalf("the owner's page does not list the member:\n%s", page)
		}
		// otherPost posts a form as the other user, with their token.
		otherPost := func(path string, form url.Values) (int, string) {
			t.Helper()
			form.Set("csrf", otherCSRF)
			resp, body := other.post(path, form, w.in.base)
			if resp.StatusCode == http.StatusSeeOther {
				return resp.StatusCode, resp.Header.Get("Location")
			}
			return resp.StatusCode, body
		}
		page = other.pageOK(base)
		if !strings.Contains(page, "for reading.") || !strings.Contains(page, `action="`+base+`/leave"`) {
			t.Errorf("the reader's page lacks their access or the leave form:\n%s", page)
		}
		for _, unwanted := range []string{`action="` + base + `/cards"`, `action="` + base + `/sources"`, `/shares`,
			`name="pinned"`, `action="` + base + `/update"`} {
			if strings.Contains(page, unwanted) {
				t.Errorf("the reader's page offers %s", unwanted)
			}
		}
		if _, list, _ := other.get("/notebooks"); !strings.Contains(list, m[1]) {
			t.Error("the reader does not list the notebook")
		}
		if code, _ := otherPost(base+"/cards", url.Values{"title": {"x"}}); code != http.StatusForbidden {
			t.Errorf("a reader's card: %d", code)
		}
		if code, _ := otherPost(base+"/shares", url.Values{"user_id": {otherID}, "permission": {"write"}}); code != http.StatusForbidden {
			t.Errorf("a reader sharing: %d", code)
		}
		// Switched to write, they add a card.
		post(base+"/shares/"+otherID, url.Values{"permission": {"write"}})
		page = other.pageOK(base)
		if !strings.Contains(page, `action="`+base+`/cards"`) || strings.Contains(page, `/shares`) {
			t.Errorf("the writer's page lacks the card form or offers sharing:\n%s", page)
		}
		if code, body := otherPost(base+"/cards", url.Values{"title": {"From other"}, "content": {"written by a member"}}); code != http.StatusSeeOther {
			t.Fatalf("a writer's card: %d %s", code, body)
		}
		if page = b.pageOK(base); !strings.Contains(page, "written by a member") || !strings.Contains(page, `<option value="write" selected>`) {
			t.Errorf("the owner does not see the member's card or write access:\n%s", page)
		}
		// Wrong choices are readable errors, not failures.
		for _, tc := range []struct {
			name string
			form url.Values
			want string
		}{
			{"another tenant's user", url.Values{"user_id": {foreignUser.User.ID}, "permission": {"read"}}, "not an active member of your organisation"},
			{"an unknown user", url.Values{"user_id": {"00000000-0000-4000-8000-000000000000"}, "permission": {"read"}}, "not an active member of your organisation"},
			{"no user", url.Values{"user_id": {""}, "permission": {"read"}}, "Choose a user"},
			{"another tenant's username", url.Values{"username": {"h-user"}, "permission": {"read"}}, "No user of your organisation is called h-user"},
			{"an unknown username", url.Values{"username": {"nobody"}, "permission": {"read"}}, "No user of your organisation is called nobody"},
			{"a malformed username", url.Values{"username": {"<b>x</b>"}, "permission": {"read"}}, "No user of your organisation is called"},
			{"owner access", url.Values{"user_id": {otherID}, "permission": {"owner"}}, "Choose read or write"},
		} {
			resp, body := b.post(base+"/shares", url.Values{"csrf": {csrf}, "user_id": tc.form["user_id"],
				"username": tc.form["username"], "permission": tc.form["permission"]}, w.in.base)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("sharing with %s: %d, want 400 with %q", tc.name, resp.StatusCode, tc.want)
			}
		}
		// CSRF: no token, or another origin, removes no one.
		for _, tc := range []struct {
			form   url.Values
			origin string
		}{{url.Values{}, w.in.base}, {url.Values{"csrf": {csrf}}, "https://evil.example.test"}} {
			for _, path := range []string{base + "/shares/" + otherID + "/delete", base + "/shares"} {
				if resp, _ := b.post(path, tc.form, tc.origin); resp.StatusCode != http.StatusForbidden {
					t.Errorf("POST %s without CSRF or from %s: %d", path, tc.origin, resp.StatusCode)
				}
			}
		}
		if resp, _ := other.post(base+"/leave", url.Values{}, w.in.base); resp.StatusCode != http.StatusForbidden {
			t.Errorf("leaving without CSRF: %d", resp.StatusCode)
		}
		other.pageOK(base)
		// Removed, the notebook is not found for them.
		post(base+"/shares/"+otherID+"/delete", url.Values{})
		if resp, _, _ := other.get(base); resp.StatusCode != http.StatusNotFound {
			t.Errorf("a removed member's GET: %d", resp.StatusCode)
		}
		if code, _ := otherPost(base+"/cards", url.Values{"title": {"x"}}); code != http.StatusNotFound {
			t.Errorf("a removed member's card: %d", code)
		}
		// Shared again, by username as a tenant with more users than the
		// form lists is (letter case aside), they leave it themselves.
		post(base+"/shares", url.Values{"username": {" Other "}, "permission": {"read"}})
		if page = b.pageOK(base); !strings.Contains(page, `action="`+base+`/shares/`+otherID+`"`) {
			t.Fatalf("sharing by username did not add the member:\n%s", page)
		}
		if code, loc := otherPost(base+"/leave", url.Values{}); code != http.StatusSeeOther || loc != "/notebooks" {
			t.Errorf("leaving: %d %s", code, loc)
		}
		if resp, _, _ := other.get(base); resp.StatusCode != http.StatusNotFound {
			t.Errorf("after leaving, GET: %d", resp.StatusCode)
		}
		if page = b.pageOK(base); strings.Contains(page, `/shares/`+otherID) {
			t.Error("the owner still lists the member who left")
		}
	})
}
