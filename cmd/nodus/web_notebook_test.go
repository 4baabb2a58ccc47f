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
		w.do(t, w.orgAdmin, "POST", "/api/v1/users", map[string]any{"email": "other@example.test", "username": "other",
			"role": "user", "password": canaryOrgPassword}, 201, nil)
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
		if !strings.Contains(page, "at dusk every evening") || strings.Contains(page, "hidden-canary match") {
			t.Fatalf("the answer is not from the included source only:\n%s", page)
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
	})
}
