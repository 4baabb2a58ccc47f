package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

type notebookAnswer struct {
	Notebook struct {
		ID         string `json:"id"`
		Permission string `json:"permission"`
	} `json:"notebook"`
}

type notebookSourceAnswer struct {
	Source struct {
		ID            string `json:"id"`
		Title         string `json:"title"`
		Status        string `json:"status"`
		ContextLevel  string `json:"context_level"`
		Summary       string `json:"summary"`
		SummaryMethod string `json:"summary_method"`
		SummaryNote   string `json:"summary_note"`
	} `json:"source"`
}

type notebookCitation struct {
	N        int    `json:"n"`
	SourceID string `json:"source_id"`
	Title    string `json:"title"`
	Quote    string `json:"quote"`
	Cited    bool   `json:"cited"`
}

type notebookCardAnswer struct {
	Card struct {
		ID        string             `json:"id"`
		Title     string             `json:"title"`
		Content   string             `json:"content"`
		Kind      string             `json:"kind"`
		Citations []notebookCitation `json:"citations"`
	} `json:"card"`
}

// TestNotebookEndToEnd runs a full `nodus serve`, on both databases: a
// notebook with an indexed knowledge-base document included in full and a
// pasted text excluded; each source's summary job runs (an extract, no
// chat model being set, which it says); a chat answer through the gateway
// in process (nodus/extractive, offline) quotes the included source only,
// never the excluded one, and is saved as an ai card citing it. Sharing is
// checked over HTTP: a read share reads but cannot write, a user it is not
// shared with gets 404, and a URL on loopback is refused by egress.
func TestNotebookEndToEnd(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayFreeWorld(t, databaseURL)
		var kb struct {
			KnowledgeBase struct{ ID string } `json:"knowledge_base"`
		}
		w.do(t, w.orgAdmin, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Policies"}, 201, &kb)
		docs := "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID + "/documents"
		status, body := w.orgAdmin.upload(docs, "refunds.md",
			"# Refunds\n\nRefunds for cancelled orders are issued within fourteen days of the return.\n")
		var doc documentAnswer
		if status != 201 || json.Unmarshal(body, &doc) != nil {
			t.Fatalf("upload: %d %s", status, body)
		}
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var d documentAnswer
			w.do(t, w.orgAdmin, "GET", docs+"/"+doc.Document.ID, nil, 200, &d)
			if d.Document.Status == "completed" {
				break
			}
			if d.Document.Status == "failed" || time.Now().After(deadline) {
				t.Fatalf("document %+v", d.Document)
			}
		}

		owner := w.orgAdmin
		var nb notebookAnswer
		w.do(t, owner, "POST", "/api/v1/notebooks", map[string]any{"name": "Returns research"}, 201, &nb)
		base := "/api/v1/notebooks/" + nb.Notebook.ID
		var included, excluded notebookSourceAnswer
		w.do(t, owner, "POST", base+"/sources", map[string]any{"kind": "document", "document_id": doc.Document.ID,
			"context_level": "full"}, 201, &included)
		w.do(t, owner, "POST", base+"/sources", map[string]any{"kind": "text", "title": "Rumours",
			"text":          "Refunds for cancelled orders are issued by carrier pigeon, says the excluded-canary.",
			"context_level": "excluded"}, 201, &excluded)
		if included.Source.Title != "refunds.md" || included.Source.Status != "summarising" {
			t.Fatalf("document source %+v", included.Source)
		}
		// The summary jobs run in the background.
		for _, id := range []string{included.Source.ID, excluded.Source.ID} {
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				var s notebookSourceAnswer
				w.do(t, owner, "GET", base+"/sources/"+id, nil, 200, &s)
				if s.Source.Status == "ready" {
					if s.Source.SummaryMethod != "extract" || s.Source.SummaryNote == "" || s.Source.Summary == "" {
						t.Fatalf("summary without a model: %+v", s.Source)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("source %s never summarised: %+v\n%s", id, s.Source, w.in.logs.String())
				}
			}
		}

		var chat struct{ Chat struct{ ID string } }
		w.do(t, owner, "POST", base+"/chats", map[string]any{}, 201, &chat)
		var turn struct {
			Answer struct {
				ID      string `json:"id"`
				Content string `json:"content"`
			} `json:"answer"`
			Citations []notebookCitation `json:"citations"`
		}
		w.do(t, owner, "POST", base+"/chats/"+chat.Chat.ID+"/messages",
			map[string]any{"message": "How are refunds for cancelled orders issued?"}, 200, &turn)
		if !strings.Contains(turn.Answer.Content, "fourteen days") || strings.Contains(turn.Answer.Content, "pigeon") ||
			strings.Contains(turn.Answer.Content, "excluded-canary") {
			t.Fatalf("answer %q", turn.Answer.Content)
		}
		if len(turn.Citations) != 1 || turn.Citations[0].SourceID != included.Source.ID || !turn.Citations[0].Cited {
			t.Fatalf("citations %+v", turn.Citations)
		}
		// Streamed: the same answer in pieces, between message_start (with
		// the sources it may cite) and message_end (with its metadata).
		status, events := chatStream(t, w.in.base, owner.token, base+"/chats/"+chat.Chat.ID+"/messages",
			map[string]any{"message": "How are refunds for cancelled orders issued?", "stream": true}, nil)
		if status != 200 || len(events) < 3 || events[0].name != "message_start" || events[len(events)-1].name != "message_end" {
			t.Fatalf("stream: %d %+v", status, events)
		}
		var streamed strings.Builder
		for _, ev := range events[1 : len(events)-1] {
			if ev.name != "message" {
				t.Fatalf("event %+v", ev)
			}
			streamed.WriteString(ev.data["answer"].(string))
		}
		end := events[len(events)-1].data
		cites := end["metadata"].(map[string]any)["citations"].([]any)
		if streamed.String() != turn.Answer.Content || len(cites) != 1 || cites[0].(map[string]any)["cited"] != true ||
			end["message_id"] != events[0].data["message_id"] {
			t.Fatalf("streamed %q, end %+v", streamed.String(), end)
		}
		var session struct {
			Messages []struct{ ID, Content string }
		}
		w.do(t, owner, "GET", base+"/chats/"+chat.Chat.ID, nil, 200, &session)
		if len(session.Messages) != 4 || session.Messages[3].ID != end["message_id"] || session.Messages[3].Content != turn.Answer.Content {
			t.Fatalf("session after the streamed turn: %+v", session.Messages)
		}
		var card notebookCardAnswer
		w.do(t, owner, "POST", base+"/chats/"+chat.Chat.ID+"/messages/"+turn.Answer.ID+"/card", map[string]any{}, 201, &card)
		if card.Card.Kind != "ai" || card.Card.Content != turn.Answer.Content || len(card.Card.Citations) != 1 ||
			card.Card.Citations[0].SourceID != included.Source.ID || !strings.Contains(card.Card.Citations[0].Quote, "fourteen days") {
			t.Fatalf("card %+v", card.Card)
		}
		var cards struct{ Cards []struct{ ID string } }
		w.do(t, owner, "GET", base+"/cards", nil, 200, &cards)
		if len(cards.Cards) != 1 || cards.Cards[0].ID != card.Card.ID {
			t.Fatalf("cards %+v", cards)
		}

		// Sharing: a reader reads and chats but cannot write; a user it is
		// not shared with, not even the tenant's admin when not the owner,
		// finds nothing.
		for _, u := range []string{"reader", "outsider"} {
			w.do(t, owner, "POST", "/api/v1/users", map[string]any{"email": u + "@example.test", "username": u,
				"role": "user", "password": canaryOrgPassword}, 201, nil)
		}
		reader, outsider := signIn(t, w.in.base, "reader", canaryOrgPassword), signIn(t, w.in.base, "outsider", canaryOrgPassword)
		w.do(t, owner, "PUT", base+"/shares/"+reader.user.ID, map[string]any{"permission": "read"}, 200, nil)
		var audited struct {
			Entries []struct {
				TargetID string `json:"target_id"`
			}
		}
		w.do(t, owner, "GET", "/api/v1/audit?action=notebook.share", nil, 200, &audited)
		if len(audited.Entries) != 1 || audited.Entries[0].TargetID != nb.Notebook.ID {
			t.Fatalf("share audit %+v", audited)
		}
		w.do(t, reader, "GET", base, nil, 200, &nb)
		if nb.Notebook.Permission != "read" {
			t.Fatalf("reader's permission %q", nb.Notebook.Permission)
		}
		w.do(t, reader, "GET", base+"/cards", nil, 200, nil)
		w.do(t, reader, "POST", base+"/cards", map[string]any{"title": "mine"}, 403, nil)
		w.do(t, reader, "PATCH", base+"/sources/"+excluded.Source.ID, map[string]any{"context_level": "full"}, 403, nil)
		w.do(t, reader, "PUT", base+"/shares/"+outsider.user.ID, map[string]any{"permission": "write"}, 403, nil)
		w.do(t, reader, "DELETE", base, nil, 403, nil)
		var readerChat struct{ Chat struct{ ID string } }
		w.do(t, reader, "POST", base+"/chats", map[string]any{}, 201, &readerChat)
		w.do(t, reader, "POST", base+"/chats/"+readerChat.Chat.ID+"/messages", map[string]any{"message": "Refunds?"}, 200, nil)
		w.do(t, reader, "GET", base+"/chats/"+chat.Chat.ID, nil, 404, nil) // the owner's session
		for _, path := range []string{base, base + "/sources", base + "/cards", base + "/sources/" + included.Source.ID} {
			w.do(t, outsider, "GET", path, nil, 404, nil)
		}
		w.do(t, outsider, "POST", base+"/cards", map[string]any{"title": "intrusion"}, 404, nil)
		w.do(t, outsider, "PUT", base+"/shares/"+outsider.user.ID, map[string]any{"permission": "write"}, 404, nil)
		var list struct{ Notebooks []struct{ ID string } }
		w.do(t, outsider, "GET", "/api/v1/notebooks", nil, 200, &list)
		if len(list.Notebooks) != 0 {
			t.Fatalf("outsider lists %+v", list)
		}
		// A write share edits the content.
		w.do(t, owner, "PUT", base+"/shares/"+reader.user.ID, map[string]any{"permission": "write"}, 200, nil)
		w.do(t, reader, "POST", base+"/cards", map[string]any{"title": "Mine now", "content": "**ok**"}, 201, nil)
		// Egress refuses a URL on loopback, at dial time.
		w.do(t, owner, "POST", base+"/sources", map[string]any{"kind": "url", "url": w.in.base + "/health"}, 403, nil)
	})
}
