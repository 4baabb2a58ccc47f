package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notebook"
	"github.com/nodus-os/nodus/internal/store"
)

func newNotebook(t *testing.T, db *store.DB, s tenantScope, owner, name string, at time.Time) notebook.Notebook {
	t.Helper()
	n := notebook.Notebook{ID: nodus.NewID(), TenantID: s.id, OwnerID: owner, Name: name, CreatedAt: at, UpdatedAt: at}
	if err := db.CreateNotebook(s.ctx, n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNotebooks is the notebooks store's contract: who sees a notebook
// (owner, shares, nobody of another tenant), keyset pages, sources and the
// transaction their summary job joins, cards and their order, chat
// sessions of one user, and the tenant purge.
func TestNotebooks(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		t0 := nodus.SystemClock{}.Now().UTC().Truncate(time.Millisecond)
		n1 := newNotebook(t, db, a, "alice", "Research", t0)
		n2 := newNotebook(t, db, a, "alice", "Ideas", t0.Add(time.Second))
		n3 := newNotebook(t, db, a, "bob", "Bob's", t0.Add(2*time.Second))
		nb := newNotebook(t, db, b, "alice", "B's", t0.Add(3*time.Second))

		got, err := db.FindNotebookFor(a.ctx, n1.ID, "alice")
		if err != nil || got.Name != "Research" || got.Permission != notebook.PermOwner || !got.CreatedAt.Equal(t0) {
			t.Fatalf("find own: %+v %v", got, err)
		}
		_, err = db.FindNotebookFor(a.ctx, n3.ID, "alice")
		wantCode(t, "another user's unshared notebook", err, nodus.ENOTFOUND)
		_, err = db.FindNotebookFor(a.ctx, nb.ID, "alice")
		wantCode(t, "another tenant's notebook, same user id", err, nodus.ENOTFOUND)
		_, err = db.FindNotebook(b.ctx, n1.ID)
		wantCode(t, "A's notebook in B's scope", err, nodus.ENOTFOUND)
		_, err = db.FindNotebook(context.Background(), n1.ID)
		if err == nil {
			t.Fatal("a read without a scope succeeded")
		}

		// Sharing: bob shares with alice for reading; B cannot share A's.
		if err := db.PutNotebookShare(a.ctx, notebook.Share{NotebookID: n3.ID, TenantID: a.id, UserID: "alice",
			Permission: notebook.PermRead, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		err = db.PutNotebookShare(b.ctx, notebook.Share{NotebookID: n3.ID, TenantID: b.id, UserID: "mallory",
			Permission: notebook.PermWrite, CreatedAt: t0})
		wantCode(t, "B shares A's notebook", err, nodus.ENOTFOUND)
		if got, err := db.FindNotebookFor(a.ctx, n3.ID, "alice"); err != nil || got.Permission != notebook.PermRead {
			t.Fatalf("shared: %+v %v", got, err)
		}
		// Upgrading the share is one row.
		if err := db.PutNotebookShare(a.ctx, notebook.Share{NotebookID: n3.ID, TenantID: a.id, UserID: "alice",
			Permission: notebook.PermWrite, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		shares, err := db.ListNotebookShares(a.ctx, n3.ID)
		if err != nil || len(shares) != 1 || shares[0].Permission != notebook.PermWrite {
			t.Fatalf("shares: %+v %v", shares, err)
		}
		if _, err := db.ListNotebookShares(b.ctx, n3.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Fatalf("B lists A's shares: %v", err)
		}

		// Alice's list: newest first, one a page, her own and the shared one.
		var names []string
		cursor := ""
		for i := 0; i < 5; i++ {
			page, next, err := db.ListNotebooksFor(a.ctx, "alice", nil, cursor, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range page {
				names = append(names, n.Name+":"+n.Permission)
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if want := "Bob's:write Ideas:owner Research:owner"; joinNames(names) != want {
			t.Fatalf("alice's notebooks %q, want %q", joinNames(names), want)
		}
		archived := true
		if _, err := db.UpdateNotebook(a.ctx, n2.ID, func(n *notebook.Notebook) error {
			n.Archived, n.UpdatedAt = true, t0.Add(time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if page, _, err := db.ListNotebooksFor(a.ctx, "alice", &archived, "", 10); err != nil || len(page) != 1 || page[0].ID != n2.ID {
			t.Fatalf("archived: %+v %v", page, err)
		}
		if page, _, err := db.ListNotebooksFor(b.ctx, "alice", nil, "", 10); err != nil || len(page) != 1 || page[0].ID != nb.ID {
			t.Fatalf("B's list for the same user id: %+v %v", page, err)
		}
		_, err = db.UpdateNotebook(b.ctx, n1.ID, func(n *notebook.Notebook) error { n.Name = "hijacked"; return nil })
		wantCode(t, "B updates A's notebook", err, nodus.ENOTFOUND)

		// Sources: the job hook runs in the transaction; a failing hook
		// leaves no source.
		src := notebook.Source{ID: nodus.NewID(), NotebookID: n1.ID, TenantID: a.id, Kind: notebook.KindText, Title: "Notes",
			ContextLevel: notebook.LevelFull, Status: notebook.StatusSummarising, FullText: "Pasted text.", CreatedBy: "alice",
			CreatedAt: t0, UpdatedAt: t0}
		hooked := false
		if err := db.CreateNotebookSource(a.ctx, src, func(ctx context.Context, tx *store.Tx) error {
			hooked = true
			return nil
		}); err != nil || !hooked {
			t.Fatalf("create source: %v (hook ran: %v)", err, hooked)
		}
		failed := src
		failed.ID = nodus.NewID()
		if err := db.CreateNotebookSource(a.ctx, failed, func(context.Context, *store.Tx) error {
			return nodus.Errorf(nodus.EUNAVAILABLE, "queue down")
		}); err == nil {
			t.Fatal("a failing hook did not fail the source")
		}
		wrong := src
		wrong.ID, wrong.TenantID, wrong.NotebookID = nodus.NewID(), b.id, n1.ID
		wantCode(t, "B adds a source to A's notebook", db.CreateNotebookSource(b.ctx, wrong, nil), nodus.ENOTFOUND)
		if n, err := db.CountNotebookSources(a.ctx, n1.ID); err != nil || n != 1 {
			t.Fatalf("count sources %d %v", n, err)
		}
		upd, err := db.UpdateNotebookSource(a.ctx, n1.ID, src.ID, func(s *notebook.Source) error {
			s.Summary, s.SummaryMethod, s.Status, s.ContextLevel = "Sum.", notebook.SummaryExtract, notebook.StatusReady, notebook.LevelSummary
			s.FullText = "ignored"
			return nil
		})
		if err != nil || upd.FullText != "Pasted text." {
			t.Fatalf("update source: %+v %v", upd, err)
		}
		srcs, err := db.ListNotebookSources(a.ctx, n1.ID)
		if err != nil || len(srcs) != 1 || srcs[0].Summary != "Sum." || srcs[0].ContextLevel != notebook.LevelSummary {
			t.Fatalf("sources: %+v %v", srcs, err)
		}
		if srcs, err := db.ListNotebookSources(b.ctx, n1.ID); err != nil || len(srcs) != 0 {
			t.Fatalf("B lists A's sources: %+v %v", srcs, err)
		}
		_, err = db.FindNotebookSource(a.ctx, n2.ID, src.ID)
		wantCode(t, "a source through another notebook", err, nodus.ENOTFOUND)
		wantCode(t, "B deletes A's source", db.DeleteNotebookSource(b.ctx, n1.ID, src.ID), nodus.ENOTFOUND)

		// Cards: appended in order, reordered, pinned.
		var cards []notebook.Card
		for _, title := range []string{"one", "two", "three"} {
			c, err := db.CreateNotebookCard(a.ctx, notebook.Card{ID: nodus.NewID(), NotebookID: n1.ID, TenantID: a.id, Title: title,
				Kind: notebook.CardAI, Citations: []notebook.Citation{{SourceID: src.ID, Title: "Notes", Quote: "Pasted"}},
				CreatedAt: t0, UpdatedAt: t0})
			if err != nil {
				t.Fatal(err)
			}
			cards = append(cards, c)
		}
		if cards[2].Position != 2 {
			t.Fatalf("positions: %+v", cards)
		}
		if _, err := db.ReorderNotebookCards(a.ctx, n1.ID, []string{cards[2].ID, cards[0].ID}, t0); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Fatalf("reorder naming two of three: %v", err)
		}
		reordered, err := db.ReorderNotebookCards(a.ctx, n1.ID, []string{cards[2].ID, cards[0].ID, cards[1].ID}, t0)
		if err != nil || reordered[0].Title != "three" || reordered[2].Title != "two" {
			t.Fatalf("reorder: %+v %v", reordered, err)
		}
		if _, err := db.ReorderNotebookCards(b.ctx, n1.ID, []string{cards[0].ID, cards[1].ID, cards[2].ID}, t0); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Fatalf("B reorders A's cards: %v", err)
		}
		pinned, err := db.UpdateNotebookCard(a.ctx, n1.ID, cards[1].ID, func(c *notebook.Card) error {
			c.Pinned, c.Content = true, "**bold**"
			return nil
		})
		if err != nil || !pinned.Pinned || len(pinned.Citations) != 1 || pinned.Citations[0].Quote != "Pasted" {
			t.Fatalf("pin: %+v %v", pinned, err)
		}
		_, err = db.UpdateNotebookCard(b.ctx, n1.ID, cards[1].ID, func(c *notebook.Card) error { return nil })
		wantCode(t, "B updates A's card", err, nodus.ENOTFOUND)

		// Chats are their user's.
		ch := notebook.Chat{ID: nodus.NewID(), NotebookID: n1.ID, TenantID: a.id, UserID: "alice", CreatedAt: t0, UpdatedAt: t0}
		if err := db.CreateNotebookChat(a.ctx, ch); err != nil {
			t.Fatal(err)
		}
		q := notebook.Message{ID: nodus.NewID(), ChatID: ch.ID, TenantID: a.id, Role: notebook.RoleUser, Content: "Q?", CreatedAt: t0}
		ans := notebook.Message{ID: nodus.NewID(), ChatID: ch.ID, TenantID: a.id, Role: notebook.RoleAssistant, Content: "A [1]",
			Metadata: json.RawMessage(`{"model":"m"}`), CreatedAt: t0}
		if err := db.AddNotebookMessages(a.ctx, ch.ID, "Q?", t0.Add(time.Minute), q, ans); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "B adds to A's chat", db.AddNotebookMessages(b.ctx, ch.ID, "", t0, notebook.Message{ID: nodus.NewID(),
			Role: notebook.RoleUser, Content: "x", CreatedAt: t0}), nodus.ENOTFOUND)
		if got, err := db.FindNotebookChat(a.ctx, n1.ID, ch.ID, "alice"); err != nil || got.Title != "Q?" || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("chat: %+v %v", got, err)
		}
		_, err = db.FindNotebookChat(a.ctx, n1.ID, ch.ID, "bob")
		wantCode(t, "another user's chat", err, nodus.ENOTFOUND)
		msgs, err := db.ListNotebookMessages(a.ctx, ch.ID)
		if err != nil || len(msgs) != 2 || msgs[1].Content != "A [1]" || string(msgs[1].Metadata) != `{"model":"m"}` {
			t.Fatalf("messages: %+v %v", msgs, err)
		}
		if page, _, err := db.ListNotebookChats(a.ctx, n1.ID, "bob", "", 10); err != nil || len(page) != 0 {
			t.Fatalf("bob's chats: %+v %v", page, err)
		}

		// Deleting a notebook takes everything in it; B's purge leaves A's.
		if err := db.DeleteNotebook(a.ctx, n1.ID); err != nil {
			t.Fatal(err)
		}
		if msgs, err := db.ListNotebookMessages(a.ctx, ch.ID); err != nil || len(msgs) != 0 {
			t.Fatalf("messages after delete: %+v %v", msgs, err)
		}
		if err := db.DeleteNotebookTenant(b.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindNotebook(a.ctx, n3.ID); err != nil {
			t.Fatalf("B's purge touched A: %v", err)
		}
		if _, err := db.FindNotebook(b.ctx, nb.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Fatalf("B's notebook after purge: %v", err)
		}
	})
}

func joinNames(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out
}
