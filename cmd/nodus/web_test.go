package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// This file tests the browser UI (internal/web) over a real `nodus serve`
// without a browser: sign-in, CSRF, security headers and stored XSS in
// every page. web_browser_test.go drives Chromium through the same pages.

// xssPayload is a stored-XSS attempt put in every name and text a user
// controls.
const xssPayload = `<img src=x onerror=alert(1)><svg onload=alert(1)>`

// webWorld is a running Nodus with a tenant whose org_admin owns a
// knowledge base, a completed document, a chatbot and a conversation, all
// named with xssPayload.
type webWorld struct {
	in       *instance
	admin    *client
	org      *client
	orgLogin string
	orgPass  string
	kbID     string
	botID    string
	convID   string
	msgID    string // the assistant's answer in the conversation
}

const webAdminPassword = "web-admin-password-6c2f"

func newWebWorld(t *testing.T, databaseURL string) *webWorld {
	t.Helper()
	vars := nodusEnv(t, databaseURL)
	vars["NODUS_ADMIN_PASSWORD"] = webAdminPassword
	w := &webWorld{in: startNodus(t, vars), orgLogin: "web-admin", orgPass: "web-org-password-9a1e"}
	w.admin = signIn(t, w.in.base, "admin", webAdminPassword)
	var tenant struct{ Tenant struct{ ID string } }
	w.admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Web Tenant"}, 201, &tenant)
	w.admin.must("POST", "/api/v1/users", map[string]any{"email": "web-admin@example.test", "username": w.orgLogin,
		"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": w.orgPass}, 201, nil)
	w.org = signIn(t, w.in.base, w.orgLogin, w.orgPass)
	return w
}

// seed stores the XSS-named content through the API.
func (w *webWorld) seed(t *testing.T) {
	t.Helper()
	var kb struct {
		KnowledgeBase struct{ ID string } `json:"knowledge_base"`
	}
	w.org.must("POST", "/api/v1/knowledge-bases", map[string]any{"name": "Policies " + xssPayload, "description": xssPayload}, 201, &kb)
	w.kbID = kb.KnowledgeBase.ID
	docs := "/api/v1/knowledge-bases/" + w.kbID + "/documents"
	status, body := w.org.upload(docs, "refunds "+xssPayload+".md",
		"# Refunds\n\nRefunds are issued within fourteen days of the return reaching our warehouse.\n")
	var doc documentAnswer
	if status != 201 || json.Unmarshal(body, &doc) != nil {
		t.Fatalf("upload: %d %s", status, body)
	}
	waitCompleted(t, w.org, docs+"/"+doc.Document.ID)
	var bot struct{ Chatbot struct{ ID string } }
	w.org.must("POST", "/api/v1/chatbots", map[string]any{"name": "Helpdesk " + xssPayload, "description": xssPayload,
		"model_name": "nodus/extractive", "knowledge_bases": []string{w.kbID}}, 201, &bot)
	w.botID = bot.Chatbot.ID
	var turn struct {
		ConversationID string `json:"conversation_id"`
		MessageID      string `json:"message_id"`
	}
	w.org.must("POST", "/api/v1/chatbots/"+w.botID+"/chat", map[string]any{"stream": false,
		"message": "How long do refunds take? " + xssPayload + " [link](javascript:alert(1))"}, 200, &turn)
	w.convID, w.msgID = turn.ConversationID, turn.MessageID
}

func waitCompleted(t *testing.T, c *client, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var d documentAnswer
		c.must("GET", path, nil, 200, &d)
		if d.Document.Status == "completed" {
			return
		}
		if d.Document.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("document %+v", d.Document)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so each answer can be checked.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get fetches a page and returns its answer, body and the time it took.
func (b *browser) get(path string) (*http.Response, string, time.Duration) {
	b.t.Helper()
	start := time.Now()
	resp, err := b.hc.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), time.Since(start)
}

// post sends a form as a same-origin browser would, with origin as its
// Origin header ("" for none).
func (b *browser) post(path string, form url.Values, origin string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF token of the first form of a page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in the page:\n%s", page)
	}
	return m[1]
}

// signIn signs in through the login form and returns the session's CSRF
// token, as the pages carry it.
func (b *browser) signIn(login, password string) string {
	b.t.Helper()
	_, page, _ := b.get("/login")
	resp, body := b.post("/login", url.Values{"csrf": {csrfOf(b.t, page)}, "login": {login}, "password": {password},
		"next": {"/"}}, b.base)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		b.t.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "nodus_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" {
		b.t.Fatalf("session cookie %+v", session)
	}
	_, home, _ := b.get("/")
	return csrfOf(b.t, home)
}

// assertInert fails on anything in a page that would run script: an
// inline or foreign script, an event handler attribute, a javascript: URL,
// an inline style (the CSP forbids them), or an element a payload brings.
func assertInert(t *testing.T, name, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		attrs := map[string]string{}
		for _, a := range tok.Attr {
			attrs[a.Key] = a.Val
			low := strings.ToLower(strings.TrimSpace(a.Val))
			switch {
			case strings.HasPrefix(a.Key, "on"):
				t.Errorf("%s: event handler %s on <%s>", name, a.Key, tok.Data)
			case (a.Key == "href" || a.Key == "src" || a.Key == "action") && strings.HasPrefix(low, "javascript:"):
				t.Errorf("%s: javascript: URL on <%s>", name, tok.Data)
			case a.Key == "style":
				t.Errorf("%s: inline style on <%s>", name, tok.Data)
			}
		}
		switch tok.Data {
		case "script":
			if !strings.HasPrefix(attrs["src"], "/static/") {
				t.Errorf("%s: script %v", name, tok)
			}
		case "img":
			if attrs["src"] == "x" {
				t.Errorf("%s: an injected <img>", name)
			}
		case "svg":
			if attrs["role"] != "img" {
				t.Errorf("%s: an <svg> that is not a chart", name)
			}
		case "iframe", "object", "embed", "base", "style":
			t.Errorf("%s: <%s>", name, tok.Data)
		}
	}
}

// TestWebUI runs a full `nodus serve` on both databases and checks the
// UI's pages over HTTP: sign-in and sign-out, redirects to the login
// page, CSRF on every form, security headers, fingerprinted assets and
// stored XSS in every name and text rendering inert.
func TestWebUI(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newWebWorld(t, databaseURL)
		w.seed(t)
		b := newBrowser(t, w.in.base)

		// Without a session every page leads to the login page, and the
		// API's paths still answer in JSON.
		for path, want := range map[string]string{"/": "/login", "/knowledge": "/login?next=%2Fknowledge",
			"/chat/c/" + w.convID: "/login?next=%2Fchat%2Fc%2F" + w.convID} {
			if resp, _, _ := b.get(path); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
				t.Errorf("GET %s signed out: %d Location %q, want %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
			}
		}
		if resp, body, _ := b.get("/api/v1/no-such-thing"); resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
			t.Errorf("an unknown API path: %d %s", resp.StatusCode, body)
		}

		// The login form: a wrong password, and a post without the login
		// form's token (another site's form) are refused.
		_, page, _ := b.get("/login")
		loginToken := csrfOf(t, page)
		if resp, body := b.post("/login", url.Values{"csrf": {loginToken}, "login": {w.orgLogin}, "password": {"wrong"}}, b.base); resp.StatusCode != 401 ||
			!strings.Contains(body, "Wrong login or password") {
			t.Errorf("wrong password: %d %s", resp.StatusCode, body)
		}
		if resp, _ := newBrowser(t, w.in.base).post("/login", url.Values{"csrf": {loginToken}, "login": {w.orgLogin},
			"password": {w.orgPass}}, ""); resp.StatusCode != 403 || strings.Contains(resp.Header.Get("Set-Cookie"), "nodus_session=") {
			t.Errorf("login without the login cookie: %d %v", resp.StatusCode, resp.Header)
		}

		csrf := b.signIn(w.orgLogin, w.orgPass)
		pages := []string{"/", "/knowledge", "/knowledge/" + w.kbID, "/knowledge/" + w.kbID + "?q=refunds", "/chatbots",
			"/chatbots/" + w.botID, "/chat", "/chat/new/" + w.botID, "/chat/c/" + w.convID}
		var css string
		for _, p := range pages {
			resp, body, took := b.get(p)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
			}
			h := resp.Header
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
				"Content-Type": "text/html; charset=utf-8"} {
				if h.Get(k) != want {
					t.Errorf("GET %s: %s = %q", p, k, h.Get(k))
				}
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'", "default-src 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("GET %s: CSP %q lacks %s", p, csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Errorf("GET %s: CSP %q", p, csp)
			}
			assertInert(t, p, body)
			if p != "/" && p != "/chat/new/"+w.botID && !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
				t.Errorf("GET %s: the stored payload is not shown as text", p)
			}
			t.Logf("GET %s: %d bytes of HTML in %v", p, len(body), took.Round(time.Microsecond))
			if m := regexp.MustCompile(`href="(/static/app\.[0-9a-f]+\.css)"`).FindStringSubmatch(body); m != nil {
				css = m[1]
			}
		}
		_, search, _ := b.get("/knowledge/" + w.kbID + "?q=refunds")
		if !strings.Contains(search, "<mark>") {
			t.Error("search results highlight nothing")
		}
		_, conv, _ := b.get("/chat/c/" + w.convID)
		if !strings.Contains(conv, `class="citations"`) || !strings.Contains(conv, "fourteen days") {
			t.Errorf("the answer shows no citation with its passage:\n%s", conv)
		}
		if resp, _, _ := b.get(css); css == "" || resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("stylesheet %q: %v", css, resp.Header)
		}

		// Branding: the tenant's name and colour, the colour through a
		// stylesheet (the CSP allows no inline style), with readable ink.
		w.org.must("PATCH", "/api/v1/settings", map[string]any{"branding": map[string]any{"product_name": "Acme " + xssPayload,
			"primary_color": "#FFCC00"}}, 200, nil)
		_, home, _ := b.get("/chat")
		assertInert(t, "branded page", home)
		if !strings.Contains(home, `href="/brand.css?c=ffcc00"`) || !strings.Contains(home, "<title>Chat · Acme &lt;img") {
			t.Errorf("the tenant's branding is not applied:\n%s", home)
		}
		if resp, brandCSS, _ := b.get("/brand.css?c=ffcc00"); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" ||
			brandCSS != ":root{--brand:#ffcc00;--brand-ink:#111111}\n" {
			t.Errorf("brand.css: %d %q", resp.StatusCode, brandCSS)
		}

		// CSRF: a form without the token, or from another origin, changes
		// nothing; with both it does.
		create := url.Values{"name": {"From a form"}}
		if resp, _ := b.post("/knowledge", create, b.base); resp.StatusCode != 403 {
			t.Errorf("POST /knowledge without a token: %d", resp.StatusCode)
		}
		create.Set("csrf", csrf)
		if resp, _ := b.post("/knowledge", create, "https://evil.test"); resp.StatusCode != 403 {
			t.Errorf("POST /knowledge from another origin: %d", resp.StatusCode)
		}
		var kbs struct {
			KnowledgeBases []struct{ Name string } `json:"knowledge_bases"`
		}
		w.org.must("GET", "/api/v1/knowledge-bases", nil, 200, &kbs)
		if len(kbs.KnowledgeBases) != 1 {
			t.Fatalf("a refused form created a knowledge base: %+v", kbs)
		}
		resp, body := b.post("/knowledge", create, b.base)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/knowledge/") {
			t.Fatalf("POST /knowledge: %d %s", resp.StatusCode, body)
		}
		// A form error is shown beside the form, with what was typed.
		if resp, body := b.post("/knowledge", create, b.base); resp.StatusCode != 409 || !strings.Contains(body, `value="From a form"`) ||
			!strings.Contains(body, `role="alert"`) {
			t.Errorf("duplicate knowledge base: %d %s", resp.StatusCode, body)
		}
		resp, body = b.post("/chatbots", url.Values{"csrf": {csrf}, "name": {"Second bot"}, "model_name": {"nodus/extractive"},
			"temperature": {"0.3"}, "knowledge_bases": {w.kbID}, "system_prompt": {"Be brief."}}, b.base)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /chatbots: %d %s", resp.StatusCode, body)
		}
		if resp, body := b.post("/chatbots", url.Values{"csrf": {csrf}, "name": {"Third"}, "model_name": {"nodus/extractive"},
			"temperature": {"warm"}}, b.base); resp.StatusCode != 400 || !strings.Contains(body, "must be a number") {
			t.Errorf("a bad temperature: %d %s", resp.StatusCode, body)
		}

		// Feedback from the page's form.
		resp, _ = b.post("/chat/c/"+w.convID+"/m/"+w.msgID+"/feedback", url.Values{"csrf": {csrf}, "rating": {"like"}}, b.base)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("like: %d", resp.StatusCode)
		}
		if _, conv, _ := b.get("/chat/c/" + w.convID); !strings.Contains(conv, `value="" aria-pressed="true"`) {
			t.Error("the like is not shown as pressed")
		}

		// Another user of the tenant sees neither the conversation nor its
		// message fragment.
		w.org.must("POST", "/api/v1/users", map[string]any{"email": "web-user@example.test", "username": "web-user",
			"role": "user", "password": "web-user-password-77"}, 201, nil)
		other := newBrowser(t, w.in.base)
		other.signIn("web-user", "web-user-password-77")
		for _, p := range []string{"/chat/c/" + w.convID, "/chat/c/" + w.convID + "/m/" + w.msgID} {
			if resp, _, _ := other.get(p); resp.StatusCode != 404 {
				t.Errorf("another user's GET %s: %d", p, resp.StatusCode)
			}
		}

		// Sign out ends the session itself, not just the cookie.
		var session string
		u, _ := url.Parse(w.in.base)
		for _, c := range b.hc.Jar.Cookies(u) {
			if c.Name == "nodus_session" {
				session = c.Value
			}
		}
		if resp, _ := b.post("/logout", url.Values{"csrf": {csrf}}, b.base); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		req, _ := http.NewRequest("GET", w.in.base+"/", nil)
		req.AddCookie(&http.Cookie{Name: "nodus_session", Value: session})
		old, err := b.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		old.Body.Close()
		if old.StatusCode != http.StatusSeeOther {
			t.Errorf("the old session cookie after sign-out: %d", old.StatusCode)
		}
	})
}
