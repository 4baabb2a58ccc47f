package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

func newMemory(tenantID, app, user, text string, at time.Time) memory.Memory {
	return memory.Memory{ID: nodus.NewID(), TenantID: tenantID, AppName: app, UserID: user, Text: text,
		Hash: memory.Hash(text), CreatedAt: at, UpdatedAt: at}
}

func historyEntry(actor string, at time.Time) memory.HistoryEntry {
	return memory.HistoryEntry{ID: nodus.NewID(), Actor: actor, CreatedAt: at}
}

func mustCreateMemory(t *testing.T, db *store.DB, s tenantScope, app, user, text string, at time.Time) memory.Memory {
	t.Helper()
	m := newMemory(s.id, app, user, text, at)
	if err := db.CreateMemory(s.ctx, m, historyEntry("u1", at)); err != nil {
		t.Fatalf("create memory %q: %v", text, err)
	}
	return m
}

func memoryTexts(ms []memory.Memory) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

func historyEvents(hs []memory.HistoryEntry) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Event + ":" + h.Old + "→" + h.New
	}
	return out
}

func TestMemories(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		t0 := nodus.SystemClock{}.Now()
		m := newMemory(a.id, "bot1", "alice", "My favourite colour is teal.", t0)
		m.Categories = []string{"preferences"}
		m.SessionID = "s1"
		m.SourceMessageIDs = []string{nodus.NewID(), nodus.NewID()}
		m.EmbeddingModel, m.Embedding = "embed-small", []float32{0.6, 0.8, 0}
		if err := db.CreateMemory(a.ctx, m, historyEntry("u1", t0)); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindMemory(a.ctx, m.ID)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("FindMemory = %+v, %v; want %+v", got, err, m)
		}
		// A bare memory round-trips with nil lists and no vector.
		bare := mustCreateMemory(t, db, a, "bot1", "alice", "I live in Lisbon.", t0.Add(time.Second))
		if got, err := db.FindMemory(a.ctx, bare.ID); err != nil || !reflect.DeepEqual(got, bare) {
			t.Fatalf("FindMemory(bare) = %+v, %v; want %+v", got, err, bare)
		}
		if got, err := db.FindMemoryByHash(a.ctx, "bot1", "alice", memory.Hash("i live in lisbon")); err != nil ||
			got.ID != bare.ID {
			t.Fatalf("FindMemoryByHash = %+v, %v", got, err)
		}
		_, err = db.FindMemoryByHash(a.ctx, "bot1", "bob", bare.Hash)
		wantCode(t, "hash of another user", err, nodus.ENOTFOUND)

		// The hash is unique per tenant, app and user; a failed create
		// leaves no history.
		dup := newMemory(a.id, "bot1", "alice", "my favourite colour is TEAL", t0)
		err = db.CreateMemory(a.ctx, dup, historyEntry("u1", t0))
		wantCode(t, "duplicate hash", err, nodus.ECONFLICT)
		_, err = db.ListMemoryHistory(a.ctx, dup.ID)
		wantCode(t, "history of a memory never created", err, nodus.ENOTFOUND)
		mustCreateMemory(t, db, a, "bot1", "bob", "My favourite colour is teal.", t0)
		mustCreateMemory(t, db, a, "bot2", "alice", "My favourite colour is teal.", t0)
		mustCreateMemory(t, db, b, "bot1", "alice", "My favourite colour is teal.", t0)

		// A vector without its model, or the other way round, is refused.
		odd := newMemory(a.id, "bot1", "alice", "I use Go.", t0)
		odd.Embedding = []float32{1}
		wantCode(t, "vector without model", db.CreateMemory(a.ctx, odd, historyEntry("u1", t0)), nodus.EINTERNAL)

		// Listing is per app and user, newest first, in pages.
		third := mustCreateMemory(t, db, a, "bot1", "alice", "I work as a nurse.", t0.Add(2*time.Second))
		page, next, err := db.ListMemories(a.ctx, "bot1", "alice", "", 2)
		if err != nil || next == "" || !reflect.DeepEqual(memoryTexts(page), []string{third.Text, bare.Text}) {
			t.Fatalf("page 1 = %q, %q, %v", memoryTexts(page), next, err)
		}
		page, next, err = db.ListMemories(a.ctx, "bot1", "alice", next, 2)
		if err != nil || next != "" || !reflect.DeepEqual(memoryTexts(page), []string{m.Text}) {
			t.Fatalf("page 2 = %q, %q, %v", memoryTexts(page), next, err)
		}
		_, _, err = db.ListMemories(a.ctx, "bot1", "alice", "bogus!", 2)
		wantCode(t, "bad cursor", err, nodus.EINVALID)
		v, all, err := db.LoadMemoryCorpus(a.ctx, "bot1", "alice", 2)
		if err != nil || len(all) != 2 || all[0].ID != third.ID || all[1].ID != bare.ID || v == 0 {
			t.Fatalf("LoadMemoryCorpus(2) = %d, %q, %v", v, memoryTexts(all), err)
		}
		_, all, _ = db.LoadMemoryCorpus(a.ctx, "bot1", "alice", 10)
		if len(all) != 3 || !reflect.DeepEqual(all[2].Embedding, m.Embedding) {
			t.Fatalf("LoadMemoryCorpus(10) = %+v", all)
		}

		// Update writes the text, hash and vector with its history.
		t1 := t0.Add(time.Minute)
		up, err := db.UpdateMemory(a.ctx, m.ID, func(x *memory.Memory) error {
			x.Text, x.Hash, x.UpdatedAt = "My favourite colour is navy.", memory.Hash("My favourite colour is navy."), t1
			x.EmbeddingModel, x.Embedding = "", nil
			x.UserID, x.SessionID = "mallory", "other" // ignored
			return nil
		}, historyEntry("u2", t1))
		if err != nil || up.UserID != "alice" || up.SessionID != "s1" || up.Embedding != nil {
			t.Fatalf("UpdateMemory = %+v, %v", up, err)
		}
		if got, _ := db.FindMemory(a.ctx, m.ID); !reflect.DeepEqual(got, up) {
			t.Fatalf("after update FindMemory = %+v, want %+v", got, up)
		}
		// Updating to another memory's text is a conflict and changes
		// nothing, history included.
		_, err = db.UpdateMemory(a.ctx, m.ID, func(x *memory.Memory) error {
			x.Text, x.Hash = bare.Text, bare.Hash
			return nil
		}, historyEntry("u2", t1))
		wantCode(t, "update to a taken hash", err, nodus.ECONFLICT)

		t2 := t1.Add(time.Minute)
		gone, err := db.DeleteMemory(a.ctx, m.ID, historyEntry("u3", t2))
		if err != nil || gone.Text != up.Text {
			t.Fatalf("DeleteMemory = %+v, %v", gone, err)
		}
		_, err = db.FindMemory(a.ctx, m.ID)
		wantCode(t, "deleted memory", err, nodus.ENOTFOUND)
		// The history outlives the memory.
		hist, err := db.ListMemoryHistory(a.ctx, m.ID)
		want := []string{"ADD:→My favourite colour is teal.",
			"UPDATE:My favourite colour is teal.→My favourite colour is navy.",
			"DELETE:My favourite colour is navy.→"}
		if err != nil || !reflect.DeepEqual(historyEvents(hist), want) {
			t.Fatalf("history = %q, %v; want %q", historyEvents(hist), err, want)
		}
		if hist[0].Actor != "u1" || hist[1].Actor != "u2" || hist[2].Actor != "u3" || !hist[2].CreatedAt.Equal(t2) ||
			hist[0].TenantID != a.id || hist[0].MemoryID != m.ID {
			t.Fatalf("history rows = %+v", hist)
		}
		// The memory's text is free again.
		mustCreateMemory(t, db, a, "bot1", "alice", "My favourite colour is navy.", t2)

		// Tenant B sees none of it.
		_, err = db.FindMemory(b.ctx, bare.ID)
		wantCode(t, "B finds A's memory", err, nodus.ENOTFOUND)
		_, err = db.ListMemoryHistory(b.ctx, m.ID)
		wantCode(t, "B reads A's history", err, nodus.ENOTFOUND)
		_, err = db.UpdateMemory(b.ctx, bare.ID, func(*memory.Memory) error { return nil }, historyEntry("b", t2))
		wantCode(t, "B updates A's memory", err, nodus.ENOTFOUND)
		_, err = db.DeleteMemory(b.ctx, bare.ID, historyEntry("b", t2))
		wantCode(t, "B deletes A's memory", err, nodus.ENOTFOUND)
		if n, err := db.DeleteMemories(b.ctx, "bot1", "alice", historyEntry("b", t2)); err != nil || n != 1 {
			t.Fatalf("B's DeleteMemories = %d, %v; want its own one", n, err)
		}
		if page, _, _ := db.ListMemories(b.ctx, "bot1", "alice", "", 10); len(page) != 0 {
			t.Fatalf("B lists %q", memoryTexts(page))
		}
		if page, _, _ := db.ListMemories(a.ctx, "bot1", "alice", "", 10); len(page) != 3 {
			t.Fatalf("A lists %q after B's delete", memoryTexts(page))
		}
		_, err = db.FindMemory(nodus.WithAllTenants(ctx), bare.ID)
		if err != nil {
			t.Fatalf("platform scope: %v", err)
		}

		// DeleteMemories removes one user's memories of one app, each
		// with its history.
		n, err := db.DeleteMemories(a.ctx, "bot1", "alice", historyEntry("u4", t2))
		if err != nil || n != 3 {
			t.Fatalf("DeleteMemories = %d, %v", n, err)
		}
		hist, _ = db.ListMemoryHistory(a.ctx, bare.ID)
		if len(hist) != 2 || hist[1].Event != memory.EventDelete || hist[1].Old != bare.Text || hist[1].Actor != "u4" {
			t.Fatalf("bare history = %+v", hist)
		}
		if page, _, _ := db.ListMemories(a.ctx, "bot1", "bob", "", 10); len(page) != 1 {
			t.Fatalf("bob lost his memories: %q", memoryTexts(page))
		}
		if page, _, _ := db.ListMemories(a.ctx, "bot2", "alice", "", 10); len(page) != 1 {
			t.Fatalf("bot2 lost its memories: %q", memoryTexts(page))
		}

		// Purging a tenant removes its memories and history, and only its.
		if err := db.DeleteMemoryTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteMemoryTenant(a.ctx); err != nil {
			t.Fatalf("purge again: %v", err)
		}
		for _, table := range []string{"adk_conversation_memory", "adk_memory_history"} {
			if n := countRows(t, db, table, a.id); n != 0 {
				t.Fatalf("%d rows of A left in %s", n, table)
			}
		}
		if n := countRows(t, db, "adk_memory_history", b.id); n != 2 {
			t.Fatalf("B's history: %d rows, want 2", n)
		}
		wantCode(t, "purge without scope", db.DeleteMemoryTenant(ctx), nodus.EINTERNAL)
	})
}

// TestMemoryVersions: every write to a user's memories moves their
// version on by one, bulk deletions once per memory, and leaves other
// users', apps' and tenants' alone; a purged user starts again elsewhere.
func TestMemoryVersions(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		version := func(s tenantScope, app, user string) int64 {
			t.Helper()
			v, err := db.MemoryVersion(s.ctx, app, user)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if v := version(a, "bot1", "alice"); v != 0 {
			t.Fatalf("no memories: version %d", v)
		}
		t0 := nodus.SystemClock{}.Now()
		first := mustCreateMemory(t, db, a, "bot1", "alice", "Lives in Porto.", t0)
		v0 := version(a, "bot1", "alice")
		if v0 <= 0 {
			t.Fatalf("after a create: version %d", v0)
		}
		mustCreateMemory(t, db, a, "bot1", "bob", "Lives in Faro.", t0)
		mustCreateMemory(t, db, a, "bot2", "alice", "Likes jazz.", t0)
		mustCreateMemory(t, db, b, "bot1", "alice", "Lives in Braga.", t0)
		if v := version(a, "bot1", "alice"); v != v0 {
			t.Fatalf("others' writes moved alice's version: %d → %d", v0, v)
		}
		if v := version(b, "bot1", "bob"); v != 0 {
			t.Errorf("tenant B sees a version for A's bob: %d", v)
		}
		second := mustCreateMemory(t, db, a, "bot1", "alice", "Works nights.", t0)
		if _, err := db.UpdateMemory(a.ctx, first.ID, func(m *memory.Memory) error {
			m.Text, m.Hash = "Lives in Lisbon.", memory.Hash("Lives in Lisbon.")
			return nil
		}, historyEntry("u1", t0)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.DeleteMemory(a.ctx, second.ID, historyEntry("u1", t0)); err != nil {
			t.Fatal(err)
		}
		if v := version(a, "bot1", "alice"); v != v0+3 {
			t.Fatalf("create, update, delete: version %d, want %d", v, v0+3)
		}
		mustCreateMemory(t, db, a, "bot1", "alice", "Works days.", t0)
		if n, err := db.DeleteMemories(a.ctx, "bot1", "alice", historyEntry("u1", t0)); err != nil || n != 2 {
			t.Fatalf("DeleteMemories = %d, %v", n, err)
		}
		if v := version(a, "bot1", "alice"); v != v0+6 {
			t.Fatalf("a create and a deletion of two: version %d, want %d", v, v0+6)
		}
		// The corpus reads the version with the memories.
		mustCreateMemory(t, db, a, "bot1", "alice", "Lives in Porto again.", t0)
		if v, mems, err := db.LoadMemoryCorpus(a.ctx, "bot1", "alice", 10); err != nil || v != v0+7 || len(mems) != 1 {
			t.Fatalf("LoadMemoryCorpus = %d, %d memories, %v; want version %d", v, len(mems), err, v0+7)
		}

		// A purge takes the versions with the memories; the user's next
		// memory starts a version of its own.
		if err := db.DeleteMemoryTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		if v := version(a, "bot1", "alice"); v != 0 {
			t.Fatalf("after the purge: version %d", v)
		}
		var left int
		all := nodus.WithAllTenants(ctx)
		if err := db.Read(all, func(tx *store.Tx) error {
			return tx.QueryRow(all, `SELECT count(*) FROM adk_memory_versions WHERE tenant_id = ?`, a.id).Scan(&left)
		}); err != nil || left != 0 {
			t.Fatalf("version rows left after the purge: %d, %v", left, err)
		}
		mustCreateMemory(t, db, a, "bot1", "alice", "Lives in Porto.", t0)
		if v := version(a, "bot1", "alice"); v <= 0 || v >= v0 && v <= v0+7 {
			t.Errorf("after the purge, a new memory: version %d, within the old ones %d..%d", v, v0, v0+7)
		}
	})
}
