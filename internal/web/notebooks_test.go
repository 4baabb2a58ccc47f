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
	p := xssNotebook(base)
	p.CanEdit, p.CanChat, p.IsOwner = false, false, false
	reader := render(t, s, "notebook", p)
	assertInertPage(t, "notebook (reader)", reader)
	for _, unwanted := range []string{`/card"`, `/sources"`, `/delete"`, `/ask"`, `name="pinned"`} {
		if strings.Contains(reader, unwanted) {
			t.Errorf("the reader's page offers %s", unwanted)
		}
	}
}
