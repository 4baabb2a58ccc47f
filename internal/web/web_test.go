package web

import (
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"golang.org/x/net/html"
)

// newTestServer builds the UI without services: enough to render its
// templates with crafted data and to serve its static files.
func newTestServer(t testing.TB) *Server {
	t.Helper()
	a, err := newAssets(mustSub(t))
	if err != nil {
		t.Fatal(err)
	}
	pages, err := parsePages(a)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{deps: Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, mux: http.NewServeMux(), assets: a,
		pages: pages, clock: time.Now, perms: identity.NewPermissions()}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.pattern, rt.handler)
	}
	return s
}

func mustSub(t testing.TB) fs.FS {
	t.Helper()
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// render renders a page with data and returns its HTML.
func render(t *testing.T, s *Server, page string, data pageData) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.render(rec, httptest.NewRequest("GET", "/", nil), http.StatusOK, page, data)
	if rec.Code != 200 {
		t.Fatalf("render %s: %d %s", page, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// assertInertPage fails on anything in a page that runs script: inline
// script, an event handler attribute, a javascript: URL, or an element a
// payload would bring (an <img src=x>, an <svg> outside the charts).
func assertInertPage(t *testing.T, name, page string) {
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
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("%s: event handler %s=%q on <%s>", name, a.Key, a.Val, tok.Data)
			}
			if (a.Key == "href" || a.Key == "src" || a.Key == "action") && strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
				t.Errorf("%s: javascript: URL in <%s %s>", name, tok.Data, a.Key)
			}
			if a.Key == "style" {
				t.Errorf("%s: inline style on <%s> (the CSP forbids it)", name, tok.Data)
			}
		}
		switch tok.Data {
		case "script":
			if !strings.HasPrefix(attrs["src"], "/static/") {
				t.Errorf("%s: a script that is not one of ours: %v", name, tok)
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

const xssName = `<img src=x onerror=alert(1)><svg onload=alert(1)>`

// TestPagesRenderStoredXSSInert renders every page with stored XSS in the
// names and texts users control: chatbot, knowledge base and document
// names, chat messages (Markdown), citations and search snippets.
func TestPagesRenderStoredXSSInert(t *testing.T) {
	s := newTestServer(t)
	u := &identity.User{ID: "u1", TenantID: "t1", Username: xssName, FullName: xssName, Role: identity.RoleOrgAdmin}
	base := pageBase{Title: xssName, CSRF: "tok", User: u, Brand: brand{Name: xssName, LogoURL: "javascript:alert(1)"},
		Nav: []navItem{{Label: xssName, Path: "/"}}}
	now := time.Now()
	doc := knowledge.Document{ID: "d1", KnowledgeBaseID: "kb1", OriginalFilename: xssName + ".md", Status: "failed", Error: xssName, CreatedAt: now}
	kb := knowledge.KnowledgeBase{ID: "kb1", Name: xssName, Description: xssName, UpdatedAt: now}
	bot := chat.Chatbot{ID: "b1", Name: xssName, Description: xssName, ModelName: xssName, WelcomeMessage: "[x](javascript:alert(1))", IsActive: true, UpdatedAt: now}
	editor := &chatbotEditor{Form: chatbotForm{Name: xssName, SystemPrompt: "</textarea>" + xssName, ModelName: xssName},
		Models: []string{xssName}, Bases: []kbChoice{{ID: "kb1", Name: xssName}}, CSRF: "tok",
		Error: &formError{Message: xssName, Fields: map[string]string{"name": xssName}}, Action: "/chatbots"}
	answer := chat.Message{ID: "m2", ConversationID: "c1", Role: chat.RoleAssistant,
		Content:  "Here: " + xssName + " [click](javascript:alert(1)) `" + xssName + "`",
		Metadata: []byte(`{"citations":[{"n":1,"knowledge_base_id":"kb1","document_name":"<svg onload=alert(1)>","snippet":"<img src=x onerror=alert(1)> <mark>hit</mark>","content":"<img src=x onerror=alert(1)>","cited":true}],"error":"<svg onload=alert(1)>","notice":"<img src=x onerror=alert(1)>"}`)}
	question := chat.Message{ID: "m1", ConversationID: "c1", Role: chat.RoleUser, Content: xssName + " [x](javascript:alert(1))"}
	conv := chat.Conversation{ID: "c1", ChatbotID: "b1", Title: xssName, UpdatedAt: now}

	pages := map[string]pageData{
		"login":           &loginPage{pageBase: base, Login: xssName, Next: "javascript:alert(1)", Error: xssName},
		"error":           &errorPage{pageBase: base, Status: 404, Message: xssName},
		"knowledge_bases": &knowledgeBasesPage{pageBase: base, Bases: []knowledge.KnowledgeBase{kb}, CanEdit: true, Form: kbForm{Name: xssName}, Error: &formError{Message: xssName}},
		"knowledge_base": &knowledgeBasePage{pageBase: base, Base: &kb, Documents: []knowledge.Document{doc}, CanEdit: true, Query: xssName, Searched: true,
			Result: &knowledge.SearchResult{Warning: xssName, Hits: []knowledge.SearchHit{{ChunkHit: knowledge.ChunkHit{DocumentName: xssName}, Snippet: xssName + " <mark>" + xssName + "</mark>"}}}},
		"chatbots":      &chatbotsPage{pageBase: base, Bots: []chat.Chatbot{bot}, CanEdit: true, Editor: editor},
		"chatbot":       &chatbotPage{pageBase: base, Bot: &bot, Editor: editor},
		"conversations": &conversationsPage{pageBase: base, Conversations: []conversationRow{{Conversation: conv, BotName: xssName}}, Bots: []chat.Chatbot{bot}},
		"conversation": &conversationPage{pageBase: base, Bot: &bot, Conversation: &conv, CanChat: true,
			Messages: []messageView{viewMessage(&question, "tok"), viewMessage(&answer, "tok")}},
	}
	days, models := summarize([]gateway.DailySpend{{Day: now.UTC().Format(time.DateOnly), Model: xssName, Requests: 3, PromptTokens: 10, CostMicros: 5}}, now.UTC(), 14)
	pages["dashboard"] = &dashboardPage{pageBase: base, Days: 14, Models: models,
		Charts: []chart{barChart("requests", xssName, days, func(d dayTotals) int64 { return d.Requests }, func(n int64, _ int) string { return xssName })}}
	// The traces, gateway and memories pages, from modules_test.go.
	for name, data := range modulePages(base) {
		pages[name] = data
	}
	// The notifications and webhooks pages, from notifications_test.go.
	for name, data := range notifyPages(base) {
		pages[name] = data
	}
	// The notebook pages, from notebooks_test.go.
	for name, data := range notebookPages(base) {
		pages[name] = data
	}
	// The recordings pages, from recordings_test.go.
	for name, data := range recordingPages(base) {
		pages[name] = data
	}
	// The administration pages, from admin_test.go.
	for name, data := range adminPages(base) {
		pages[name] = data
	}
	for name := range s.pages {
		if pages[name] == nil {
			t.Errorf("page %s is not covered by this test", name)
		}
	}
	for name, data := range pages {
		out := render(t, s, name, data)
		assertInertPage(t, name, out)
		if name != "error" && !strings.Contains(out, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Errorf("%s: the payload is not shown as text", name)
		}
	}
	// An empty conversation shows the bot's welcome message through the
	// Markdown renderer too.
	empty := render(t, s, "conversation", &conversationPage{pageBase: base, Bot: &bot, CanChat: true})
	assertInertPage(t, "empty conversation", empty)
}

func TestStaticAssetsFingerprinted(t *testing.T) {
	s := newTestServer(t)
	for _, name := range []string{"app.css", "app.js"} {
		u, err := s.assets.url(name)
		if err != nil {
			t.Fatal(err)
		}
		if u == "/static/"+name || !strings.HasPrefix(u, "/static/app.") {
			t.Fatalf("%s served as %s: not fingerprinted", name, u)
		}
		rec := httptest.NewRecorder()
		s.mux.ServeHTTP(rec, httptest.NewRequest("GET", u, nil))
		if rec.Code != 200 || !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") ||
			!strings.Contains(rec.Header().Get("Cache-Control"), "max-age=31536000") {
			t.Errorf("GET %s: %d %v", u, rec.Code, rec.Header())
		}
	}
	for _, p := range []string{"/static/app.css", "/static/app.000000000000.css", "/static/..%2fweb.go"} {
		rec := httptest.NewRecorder()
		s.mux.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 404 {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
	if _, err := s.assets.url("missing.js"); err == nil {
		t.Error("a missing asset has a URL")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"": "/", "/knowledge": "/knowledge", "/chat/c/1?x=2": "/chat/c/1?x=2",
		"//evil.test/": "/", "/\\evil.test": "/", "https://evil.test/": "/", "javascript:alert(1)": "/", "knowledge": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckForm(t *testing.T) {
	post := func(body, origin, site string) *http.Request {
		r := httptest.NewRequest("POST", "http://nodus.test/knowledge", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
		}
		return r
	}
	tests := []struct {
		name       string
		r          *http.Request
		want       string
		acceptable bool
	}{
		{"same origin with token", post("csrf=good", "http://nodus.test", "same-origin"), "good", true},
		{"no Origin header (older browsers) with token", post("csrf=good", "", ""), "good", true},
		{"missing token", post("name=x", "http://nodus.test", ""), "good", false},
		{"wrong token", post("csrf=bad", "http://nodus.test", ""), "good", false},
		{"other origin", post("csrf=good", "https://evil.test", ""), "good", false},
		{"cross-site fetch metadata", post("csrf=good", "", "cross-site"), "good", false},
		{"no session token", post("csrf=", "", ""), "", false},
	}
	for _, tt := range tests {
		if err := checkForm(tt.r, tt.want); (err == nil) != tt.acceptable {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}

func TestInkOn(t *testing.T) {
	for c, want := range map[string]string{"#2563eb": "#ffffff", "#ffff00": "#111111", "#000000": "#ffffff", "#ffffff": "#111111"} {
		if got := inkOn(c); got != want {
			t.Errorf("inkOn(%s) = %s, want %s", c, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	rows := []gateway.DailySpend{
		{Day: "2026-03-14", Model: "a", Requests: 2, PromptTokens: 10, CompletionTokens: 5, CostMicros: 100},
		{Day: "2026-03-14", Model: "b", Requests: 1, PromptTokens: 1, CostMicros: 900},
		{Day: "2026-03-10", Model: "a", Requests: 4, CostMicros: 50},
		{Day: "2026-01-01", Model: "old", Requests: 9}, // outside the period: counted per model only
	}
	days, models := summarize(rows, now, 7)
	if len(days) != 7 || days[0].Day != "2026-03-08" || days[6].Day != "2026-03-14" {
		t.Fatalf("days = %+v", days)
	}
	if d := days[6]; d.Requests != 3 || d.Tokens != 16 || d.Micros != 1000 {
		t.Errorf("today = %+v", d)
	}
	if d := days[2]; d.Requests != 4 {
		t.Errorf("2026-03-10 = %+v", d)
	}
	if models[0].Model != "b" || models[1].Model != "a" || models[1].Requests != 6 {
		t.Errorf("models by cost = %+v", models)
	}
	c := barChart("r", "Requests", days, func(d dayTotals) int64 { return d.Requests }, func(n int64, _ int) string { return "n" })
	if len(c.Bars) != 7 || c.Bars[3].H != 0 || c.Bars[2].H != c.Base-chartTop || c.Bars[6].H >= c.Bars[2].H {
		t.Errorf("bars = %+v", c.Bars)
	}
	if usd(1_234_567) != "$1.23" || usd(5) != "$0.000005" || usd(0) != "$0.00" {
		t.Errorf("usd: %s %s %s", usd(1_234_567), usd(5), usd(0))
	}
}

// TestEveryPageNeedsSession walks the route table: every route but the
// explicit public ones sends a browser without a session to the login
// page, before its handler runs.
func TestEveryPageNeedsSession(t *testing.T) {
	s := newTestServer(t)
	s.cfg.RequestTimeout = time.Second
	public := map[string]bool{"GET /static/{file}": true, "GET /login": true, "POST /login": true}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		if rt.public != public[rt.pattern] {
			t.Errorf("route %s: public = %v", rt.pattern, rt.public)
		}
		mux.Handle(rt.pattern, s.wrap(rt))
	}
	fill := strings.NewReplacer("{id}", "x", "{doc}", "x", "{bot}", "x", "{msg}", "x", "{file}", "x", "{$}", "")
	for _, rt := range s.routes() {
		if rt.public {
			continue
		}
		method, path, _ := strings.Cut(rt.pattern, " ")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, fill.Replace(path), strings.NewReader("csrf=x")))
		if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login") {
			t.Errorf("%s without a session: %d %v", rt.pattern, rec.Code, rec.Header())
		}
	}
}
