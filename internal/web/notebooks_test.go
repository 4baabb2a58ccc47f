package web

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/notebook"
)

// xssNotebook is a notebook page whose every user-controlled field holds
// xssName: names, source titles, URLs, summaries, card Markdown and
// citations, chat questions and answers.
func xssNotebook(base pageBase) *notebookPage {
	now := time.Now()
	n := &notebook.Notebook{ID: "n1", Name: xssName, Description: xssName, Model: xssName, Permission: notebook.PermOwner,
		UpdatedAt: now}
	cite := notebook.Citation{N: 1, SourceID: `s1"><script>alert(1)</script>`, Title: xssName, Quote: xssName, Cited: true}
	md, _ := json.Marshal(notebook.AnswerMetadata{Model: xssName, Citations: []notebook.Citation{cite}, Error: xssName})
	card := notebook.Card{ID: "c1", Title: xssName, Content: "# " + xssName + "\n\n[x](javascript:alert(1)) <script>alert(1)</script>",
		Kind: notebook.CardAI, Pinned: true, Citations: []notebook.Citation{cite}}
	p := &notebookPage{pageBase: base, Notebook: n, CanEdit: true, CanChat: true, IsOwner: true,
		Levels: []string{notebook.LevelFull, notebook.LevelSummary, notebook.LevelExcluded},
		Sources: []notebook.Source{{ID: "s1", Kind: notebook.KindURL, Ref: "javascript:alert(1)" + xssName, Title: xssName,
			ContextLevel: notebook.LevelSummary, Status: notebook.StatusReady, Summary: xssName, SummaryNote: xssName}},
		Chats: []notebook.Chat{{ID: "ch1", Title: xssName}}, Chat: &notebook.Chat{ID: "ch1", Title: xssName},
		Messages: []notebookMessage{
			viewNotebookMessage(notebook.Message{ID: "m1", Role: notebook.RoleUser, Content: xssName + " [x](javascript:alert(1))"}),
			viewNotebookMessage(notebook.Message{ID: "m2", Role: notebook.RoleAssistant,
				Content: "Quoted: " + xssName + " [1] [x](javascript:alert(1))", Metadata: md}),
		}}
	item := cardItem{Card: card, HTML: renderMarkdown(card.Content), First: true, Last: true}
	p.Cards, p.Pinned = []cardItem{item}, []cardItem{item}
	p.Perms = []string{notebook.PermRead, notebook.PermWrite}
	p.Members = []notebookMember{{UserID: "u1", Name: xssName, Username: xssName, Permission: notebook.PermWrite},
		{UserID: `u2"><script>alert(1)</script>`, Permission: notebook.PermRead}}
	p.Candidates = []notebookMember{{UserID: "u3", Name: xssName, Username: "carol"}}
	return p
}

// notebookPages are this file's pages for TestPagesRenderStoredXSSInert.
func notebookPages(base pageBase) map[string]pageData {
	return map[string]pageData{
		"notebooks": &notebooksPage{pageBase: base, CanCreate: true, Next: "/notebooks?cursor=" + xssName,
			Notebooks: []notebook.Notebook{{ID: "n1", Name: xssName, Description: xssName, Permission: xssName, UpdatedAt: time.Now()}}},
		"notebook": xssNotebook(base),
	}
}

// TestNotebookPage checks what the notebook page offers by permission:
// the forms a writer gets, a reader's read-only page, and that every form
// carries the CSRF token.
func TestNotebookPage(t *testing.T) {
	s := newTestServer(t)
	base := pageBase{Title: "Notebook", CSRF: "tok"}
	writer := render(t, s, "notebook", xssNotebook(base))
	forms := strings.Count(writer, "<form")
	if forms < 10 || strings.Count(writer, `name="csrf" value="tok"`) != forms {
		t.Errorf("%d forms, %d CSRF tokens", forms, strings.Count(writer, `name="csrf" value="tok"`))
	}
	for _, want := range []string{`action="/notebooks/n1/chats/ch1/m/m2/card"`, `<option value="summary" selected>`,
		`action="/notebooks/n1/sources"`, `name="pinned" value="false"`, `<h1>`, "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(writer, want) {
			t.Errorf("the writer's page lacks %s", want)
		}
	}
	if strings.Contains(writer, "javascript:alert") && strings.Contains(writer, `href="javascript:`) {
		t.Error("a javascript: link was rendered")
	}
	// The owner's sharing section: members by escaped name, their access
	// changed or removed, and the tenant's other users to add.
	escaped := "&lt;img src=x onerror=alert(1)&gt;&lt;svg onload=alert(1)&gt;"
	for _, want := range []string{`id="sharing"`, `action="/notebooks/n1/shares"`, `action="/notebooks/n1/shares/u1"`,
		`action="/notebooks/n1/shares/u1/delete"`, `<option value="write" selected>`, `<option value="u3">` + escaped + " (carol)</option>",
		escaped + " (" + escaped + ")", "user u2&#34;&gt;&lt;script&gt;", `name="user_id"`} {
		if !strings.Contains(writer, want) {
			t.Errorf("the owner's page lacks %s", want)
		}
	}
	if strings.Contains(writer, `/leave"`) {
		t.Error("the owner's page offers to leave the notebook")
	}
	// Past the users the form lists, it takes a username too, and the
	// list is no longer required.
	if strings.Contains(writer, `name="username"`) || !strings.Contains(writer, `name="user_id" required`) {
		t.Error("a tenant whose users are all listed is offered a username field, or the list is optional")
	}
	many := xssNotebook(base)
	many.MoreUsers, many.Candidates = true, nil
	page := render(t, s, "notebook", many)
	if !strings.Contains(page, `name="username"`) || strings.Contains(page, `name="user_id" required`) {
		t.Error("a tenant with more users than listed gets no username field, or the list stays required")
	}
	p := xssNotebook(base)
	p.CanEdit, p.CanChat, p.IsOwner = false, false, false
	p.Notebook.Permission, p.Perms, p.Candidates = notebook.PermRead, nil, nil
	p.Members[1].Self, p.Shared = true, true
	reader := render(t, s, "notebook", p)
	assertInertPage(t, "notebook (reader)", reader)
	for _, unwanted := range []string{`/card"`, `/sources"`, `/delete"`, `/ask"`, `name="pinned"`, `/shares`, `name="user_id"`,
		`name="permission"`} {
		if strings.Contains(reader, unwanted) {
			t.Errorf("the reader's page offers %s", unwanted)
		}
	}
	for _, want := range []string{`action="/notebooks/n1/leave"`, "for reading.", escaped + " (" + escaped + ")", `<span class="tag">you</span>`} {
		if !strings.Contains(reader, want) {
			t.Errorf("the reader's page lacks %s", want)
		}
	}
	if forms := strings.Count(reader, "<form"); strings.Count(reader, `name="csrf" value="tok"`) != forms {
		t.Errorf("the reader's page: %d forms, %d CSRF tokens", forms, strings.Count(reader, `name="csrf" value="tok"`))
	}
}

func TestNotebookMemberLabel(t *testing.T) {
	for _, tc := range []struct {
		m    notebookMember
		want string
	}{
		{notebookMember{UserID: "u1", Name: "Ada Lovelace", Username: "ada"}, "Ada Lovelace (ada)"},
		{notebookMember{UserID: "u1", Username: "ada"}, "ada"},
		{notebookMember{UserID: "u1"}, "user u1"},
	} {
		if got := tc.m.Label(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.m, got, tc.want)
		}
	}
}
