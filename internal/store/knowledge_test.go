package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// runKnowledge runs fn on both databases with the main set applied and
// returns two tenants' contexts.
func runKnowledge(t *testing.T, fn func(t *testing.T, db *store.DB, a, b tenantScope)) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetMain)
		fn(t, db, newTenantScope(), newTenantScope())
	})
}

func newKnowledgeBase(tenantID, name string) knowledge.KnowledgeBase {
	now := nodus.SystemClock{}.Now()
	kb := knowledge.KnowledgeBase{ID: nodus.NewID(), TenantID: tenantID, Name: name, Description: "about " + name,
		CreatedBy: "u1", CreatedAt: now, UpdatedAt: now}
	kb.SetDefaults()
	return kb
}

func mustCreateKB(t *testing.T, db *store.DB, s tenantScope, name string) knowledge.KnowledgeBase {
	t.Helper()
	kb := newKnowledgeBase(s.id, name)
	if err := db.CreateKnowledgeBase(s.ctx, kb); err != nil {
		t.Fatalf("create knowledge base %s: %v", name, err)
	}
	return kb
}

func newDocument(tenantID, kbID, content string) knowledge.Document {
	now := nodus.SystemClock{}.Now()
	blob := nodus.NewID()
	return knowledge.Document{ID: nodus.NewID(), TenantID: tenantID, KnowledgeBaseID: kbID, Filename: blob,
		OriginalFilename: "notes " + content + ".md", FileType: "text/markdown", FileSize: int64(len(content)),
		ContentHash: fmt.Sprintf("%x", hashOf(content)), BlobID: blob, Status: knowledge.StatusPending,
		Metadata:   map[string]json.RawMessage{"lang": json.RawMessage(`"en"`)},
		UploadedBy: "u1", CreatedAt: now, UpdatedAt: now}
}

func mustCreateDoc(t *testing.T, db *store.DB, s tenantScope, kbID, content string) knowledge.Document {
	t.Helper()
	d := newDocument(s.id, kbID, content)
	if err := db.CreateDocument(s.ctx, d); err != nil {
		t.Fatalf("create document %q: %v", content, err)
	}
	return d
}

// chunkSet is n chunks whose text names the set, so a mixture shows.
func chunkSet(set string, n int) []knowledge.Chunk {
	out := make([]knowledge.Chunk, n)
	for i := range out {
		text := fmt.Sprintf("%s chunk %d", set, i)
		out[i] = knowledge.Chunk{Index: i, Text: text, Prefix: "Guide > " + set + "\n\n",
			Headings: []string{"Guide", set}, Start: i * 100, End: i*100 + len(text), Tokens: 5}
	}
	return out
}

// countRows counts a table's rows of a tenant, unscoped.
func countRows(t *testing.T, db *store.DB, table, tenantID string) int {
	t.Helper()
	var n int
	if err := db.Read(platformCtx, func(tx *store.Tx) error {
		return tx.QueryRow(platformCtx, `SELECT count(*) FROM `+table+` WHERE tenant_id = ?`, tenantID).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKnowledgeBases(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		kb1 := newKnowledgeBase(a.id, "Handbook")
		kb1.EmbeddingModel = "text-embedding-3-small"
		kb1.Retrieval = knowledge.RetrievalSettings{Mode: knowledge.ModeHybrid, TopK: 7, ScoreThreshold: 0.25,
			HybridWeight: 0.7}
		kb1.Chunking = knowledge.ChunkingSettings{Size: 300, Overlap: 30, HeaderAware: false}
		if err := db.CreateKnowledgeBase(a.ctx, kb1); err != nil {
			t.Fatal(err)
		}
		kb2, kb3 := mustCreateKB(t, db, a, "Policies"), mustCreateKB(t, db, a, "Runbooks")

		got, err := db.FindKnowledgeBase(a.ctx, kb1.ID)
		if err != nil || !reflect.DeepEqual(got, kb1) {
			t.Fatalf("FindKnowledgeBase = %+v, %v; want %+v", got, err, kb1)
		}

		// Names are unique per tenant, not across tenants.
		dup := newKnowledgeBase(a.id, "Handbook")
		err = db.CreateKnowledgeBase(a.ctx, dup)
		wantCode(t, "duplicate name", err, nodus.ECONFLICT)
		if nodus.ErrorFields(err)["name"] == "" {
			t.Errorf("duplicate name: no field error: %v", err)
		}
		mustCreateKB(t, db, b, "Handbook")
		wantCode(t, "duplicate id", db.CreateKnowledgeBase(a.ctx, kb1), nodus.ECONFLICT)
		bad := newKnowledgeBase(a.id, "Bad")
		bad.Retrieval.TopK = 0
		wantCode(t, "top_k 0", db.CreateKnowledgeBase(a.ctx, bad), nodus.EINVALID)
		wantCode(t, "record of another tenant", db.CreateKnowledgeBase(b.ctx, newKnowledgeBase(a.id, "x")), nodus.EINTERNAL)
		wantCode(t, "no scope", db.CreateKnowledgeBase(ctx, newKnowledgeBase("", "x")), nodus.EINTERNAL)

		// Pages of two, by id.
		page, next, err := db.ListKnowledgeBases(a.ctx, "", 2)
		if err != nil || len(page) != 2 || next == "" || page[0].ID != kb1.ID || page[1].ID != kb2.ID {
			t.Fatalf("first page: %+v, %q, %v", page, next, err)
		}
		page, next, err = db.ListKnowledgeBases(a.ctx, next, 2)
		if err != nil || len(page) != 1 || next != "" || !reflect.DeepEqual(page[0], kb3) {
			t.Fatalf("second page: %+v, %q, %v", page, next, err)
		}
		if _, _, err := db.ListKnowledgeBases(a.ctx, "not a cursor", 2); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("bad cursor: %v", err)
		}

		// Update: a read-modify-write; identity fields stay.
		later := kb1.UpdatedAt.Add(time.Minute)
		updated, err := db.UpdateKnowledgeBase(a.ctx, kb1.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.Name, kb.Retrieval.TopK, kb.Chunking.HeaderAware, kb.UpdatedAt = "Handbook v2", 12, true, later
			kb.CreatedBy, kb.TenantID = "intruder", b.id
			return nil
		})
		want := kb1
		want.Name, want.Retrieval.TopK, want.Chunking.HeaderAware, want.UpdatedAt = "Handbook v2", 12, true, later
		if err != nil || !reflect.DeepEqual(updated, want) {
			t.Fatalf("UpdateKnowledgeBase = %+v, %v; want %+v", updated, err, want)
		}
		if got, _ := db.FindKnowledgeBase(a.ctx, kb1.ID); !reflect.DeepEqual(got, want) {
			t.Errorf("after update: %+v, want %+v", got, want)
		}
		kb1 = want
		_, err = db.UpdateKnowledgeBase(a.ctx, kb1.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.Name = "Policies"
			return nil
		})
		wantCode(t, "rename onto another", err, nodus.ECONFLICT)
		_, err = db.UpdateKnowledgeBase(a.ctx, kb1.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.Retrieval.Mode, kb.EmbeddingModel = knowledge.ModeVector, ""
			return nil
		})
		wantCode(t, "vector without a model", err, nodus.EINVALID)
		_, err = db.UpdateKnowledgeBase(a.ctx, kb1.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.Name = "changed"
			return nodus.Errorf(nodus.EFORBIDDEN, "no")
		})
		wantCode(t, "callback error", err, nodus.EFORBIDDEN)
		if got, _ := db.FindKnowledgeBase(a.ctx, kb1.ID); !reflect.DeepEqual(got, kb1) {
			t.Errorf("failed updates changed the row: %+v", got)
		}

		// Tenant B neither sees nor changes A's knowledge bases.
		wantCode(t, "B finds A's", func() error { _, err := db.FindKnowledgeBase(b.ctx, kb1.ID); return err }(), nodus.ENOTFOUND)
		if list, _, err := db.ListKnowledgeBases(b.ctx, "", 10); err != nil || len(list) != 1 || list[0].Name != "Handbook" {
			t.Errorf("B lists %+v, %v", list, err)
		}
		_, err = db.UpdateKnowledgeBase(b.ctx, kb1.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.Name = "pwned"
			return nil
		})
		wantCode(t, "B updates A's", err, nodus.ENOTFOUND)
		wantCode(t, "B deletes A's", func() error { _, err := db.DeleteKnowledgeBase(b.ctx, kb1.ID); return err }(), nodus.ENOTFOUND)
		if got, _ := db.FindKnowledgeBase(a.ctx, kb1.ID); !reflect.DeepEqual(got, kb1) {
			t.Errorf("A's knowledge base changed by B: %+v", got)
		}

		// The platform scope sees every tenant's.
		if list, _, err := db.ListKnowledgeBases(platform, "", 10); err != nil || len(list) != 4 {
			t.Errorf("platform lists %d, %v", len(list), err)
		}

		if blobs, err := db.DeleteKnowledgeBase(a.ctx, kb2.ID); err != nil || len(blobs) != 0 {
			t.Fatalf("delete empty: %v, %v", blobs, err)
		}
		wantCode(t, "find deleted", func() error { _, err := db.FindKnowledgeBase(a.ctx, kb2.ID); return err }(), nodus.ENOTFOUND)
		wantCode(t, "delete twice", func() error { _, err := db.DeleteKnowledgeBase(a.ctx, kb2.ID); return err }(), nodus.ENOTFOUND)
		wantCode(t, "list without scope", func() error { _, _, err := db.ListKnowledgeBases(ctx, "", 1); return err }(), nodus.EINTERNAL)
	})
}

func TestKnowledgeDocuments(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		kb, other := mustCreateKB(t, db, a, "Handbook"), mustCreateKB(t, db, a, "Other")
		d1 := newDocument(a.id, kb.ID, "alpha")
		processed := nodus.SystemClock{}.Now()
		d1.SourceURL, d1.ProcessedAt = "https://example.com/alpha", &processed
		if err := db.CreateDocument(a.ctx, d1); err != nil {
			t.Fatal(err)
		}
		d2, d3 := mustCreateDoc(t, db, a, kb.ID, "beta"), mustCreateDoc(t, db, a, kb.ID, "gamma")
		if got, err := db.FindDocument(a.ctx, d1.ID); err != nil || !reflect.DeepEqual(got, d1) {
			t.Fatalf("FindDocument = %+v, %v; want %+v", got, err, d1)
		}

		// The same content in the same knowledge base is detected and names
		// the first copy; nothing is created.
		again := newDocument(a.id, kb.ID, "beta")
		err := db.CreateDocument(a.ctx, again)
		wantCode(t, "same content", err, nodus.ECONFLICT)
		if id, ok := knowledge.DuplicateOf(err); !ok || id != d2.ID || !strings.Contains(nodus.ErrorMessage(err), d2.ID) {
			t.Errorf("same content: %v (DuplicateOf %q, %v), want it to name %s", err, id, ok, d2.ID)
		}
		wantCode(t, "duplicate not created", func() error { _, err := db.FindDocument(a.ctx, again.ID); return err }(), nodus.ENOTFOUND)
		// … but allowed in another knowledge base, and unknown contents never clash.
		mustCreateDoc(t, db, a, other.ID, "beta")
		for range 2 {
			d := newDocument(a.id, other.ID, "")
			d.ContentHash, d.SourceURL = "", "https://example.com/later"
			if err := db.CreateDocument(a.ctx, d); err != nil {
				t.Fatalf("document of unknown content: %v", err)
			}
		}
		wantCode(t, "unknown knowledge base", db.CreateDocument(a.ctx, newDocument(a.id, nodus.NewID(), "x")), nodus.ENOTFOUND)
		wantCode(t, "B's document in A's knowledge base", db.CreateDocument(b.ctx, newDocument(b.id, kb.ID, "x")), nodus.ENOTFOUND)
		bad := newDocument(a.id, kb.ID, "bad")
		bad.Status = "done"
		wantCode(t, "bad status", db.CreateDocument(a.ctx, bad), nodus.EINVALID)

		if got, _ := db.FindKnowledgeBase(a.ctx, kb.ID); got.DocumentCount != 3 {
			t.Errorf("DocumentCount = %d, want 3", got.DocumentCount)
		}

		// Pages of two, by id; and by status.
		page, next, err := db.ListDocuments(a.ctx, kb.ID, "", "", 2)
		if err != nil || len(page) != 2 || next == "" || page[0].ID != d1.ID || page[1].ID != d2.ID {
			t.Fatalf("first page: %d, %q, %v", len(page), next, err)
		}
		page, next, err = db.ListDocuments(a.ctx, kb.ID, "", next, 2)
		if err != nil || len(page) != 1 || next != "" || !reflect.DeepEqual(page[0], d3) {
			t.Fatalf("second page: %+v, %q, %v", page, next, err)
		}

		// State changes: the callback enforces the transitions.
		step := func(s tenantScope, id, status, stage string, progress int) (knowledge.Document, error) {
			return db.UpdateDocumentState(s.ctx, id, func(d *knowledge.Document) error {
				if err := knowledge.CheckTransition(d.Status, status); err != nil {
					return err
				}
				d.Status, d.Stage, d.Progress, d.UpdatedAt = status, stage, progress, d.UpdatedAt.Add(time.Second)
				return nil
			})
		}
		got, err := step(a, d2.ID, knowledge.StatusProcessing, knowledge.StageChunking, 40)
		if err != nil || got.Status != knowledge.StatusProcessing || got.Stage != knowledge.StageChunking || got.Progress != 40 {
			t.Fatalf("to processing: %+v, %v", got, err)
		}
		if found, _ := db.FindDocument(a.ctx, d2.ID); !reflect.DeepEqual(found, got) {
			t.Errorf("stored %+v, returned %+v", found, got)
		}
		d2 = got
		if page, _, err := db.ListDocuments(a.ctx, kb.ID, knowledge.StatusProcessing, "", 10); err != nil ||
			len(page) != 1 || page[0].ID != d2.ID {
			t.Errorf("processing documents: %+v, %v", page, err)
		}
		if _, _, err := db.ListDocuments(a.ctx, kb.ID, "done", "", 10); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("unknown status filter: %v", err)
		}
		_, err = step(a, d3.ID, knowledge.StatusCompleted, "", 100)
		wantCode(t, "pending to completed", err, nodus.EINVALID)
		_, err = step(a, d2.ID, knowledge.StatusProcessing, knowledge.StageChunking, 101)
		wantCode(t, "progress 101", err, nodus.EINVALID)
		_, err = db.UpdateDocumentState(a.ctx, d2.ID, func(d *knowledge.Document) error {
			d.Status, d.Error, d.Metadata["lang"] = knowledge.StatusFailed, "boom", json.RawMessage(`"de"`)
			return errors.New("callback failed")
		})
		if err == nil || err.Error() != "callback failed" {
			t.Errorf("callback error: %v", err)
		}
		_, err = db.UpdateDocumentState(a.ctx, d2.ID, func(d *knowledge.Document) error {
			d.ContentHash = d1.ContentHash
			return nil
		})
		if id, ok := knowledge.DuplicateOf(err); !ok || id != d1.ID {
			t.Errorf("hash of another document: %v", err)
		}
		if found, _ := db.FindDocument(a.ctx, d2.ID); !reflect.DeepEqual(found, d2) {
			t.Errorf("failed updates changed the row: %+v, want %+v", found, d2)
		}
		// Fields the state update does not own stay.
		got, err = db.UpdateDocumentState(a.ctx, d2.ID, func(d *knowledge.Document) error {
			d.ChunkCount, d.KnowledgeBaseID, d.TenantID, d.UploadedBy = 99, other.ID, b.id, "intruder"
			d.Status, d.Stage, d.Progress, d.ProcessedAt = knowledge.StatusCompleted, "", 100, &processed
			return nil
		})
		if err != nil || got.ChunkCount != 0 || got.KnowledgeBaseID != kb.ID || got.TenantID != a.id ||
			got.UploadedBy != "u1" || got.Status != knowledge.StatusCompleted || !got.ProcessedAt.Equal(processed) {
			t.Fatalf("completed: %+v, %v", got, err)
		}
		d2 = got

		// Tenant B neither sees nor changes A's documents.
		wantCode(t, "B finds A's", func() error { _, err := db.FindDocument(b.ctx, d1.ID); return err }(), nodus.ENOTFOUND)
		wantCode(t, "B lists A's", func() error { _, _, err := db.ListDocuments(b.ctx, kb.ID, "", "", 10); return err }(), nodus.ENOTFOUND)
		_, err = step(b, d1.ID, knowledge.StatusProcessing, "", 0)
		wantCode(t, "B updates A's", err, nodus.ENOTFOUND)
		wantCode(t, "B deletes A's", func() error { _, err := db.DeleteDocument(b.ctx, d1.ID); return err }(), nodus.ENOTFOUND)
		if found, _ := db.FindDocument(a.ctx, d1.ID); !reflect.DeepEqual(found, d1) {
			t.Errorf("A's document changed by B: %+v", found)
		}

		if err := db.ReplaceChunks(a.ctx, d1.ID, chunkSet("one", 3)); err != nil {
			t.Fatal(err)
		}
		blob, err := db.DeleteDocument(a.ctx, d1.ID)
		if err != nil || blob != d1.BlobID {
			t.Fatalf("DeleteDocument = %q, %v; want %q", blob, err, d1.BlobID)
		}
		wantCode(t, "find deleted", func() error { _, err := db.FindDocument(a.ctx, d1.ID); return err }(), nodus.ENOTFOUND)
		if n, err := db.CountChunks(a.ctx, kb.ID); err != nil || n != 0 {
			t.Errorf("chunks after deleting the document: %d, %v", n, err)
		}
		wantCode(t, "delete twice", func() error { _, err := db.DeleteDocument(a.ctx, d1.ID); return err }(), nodus.ENOTFOUND)
		// Its content may be uploaded again.
		mustCreateDoc(t, db, a, kb.ID, "alpha")
	})
}

func TestKnowledgeChunks(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		kb := mustCreateKB(t, db, a, "Handbook")
		d1, d2 := mustCreateDoc(t, db, a, kb.ID, "alpha"), mustCreateDoc(t, db, a, kb.ID, "beta")

		first := chunkSet("first", 5)
		first[0].ID = nodus.NewID()
		first[4].Headings, first[4].Prefix = nil, ""
		if err := db.ReplaceChunks(a.ctx, d1.ID, first); err != nil {
			t.Fatal(err)
		}
		second := chunkSet("second", 3)
		if err := db.ReplaceChunks(a.ctx, d1.ID, second); err != nil {
			t.Fatal(err)
		}
		got, err := db.ListChunks(a.ctx, d1.ID)
		if err != nil || len(got) != 3 {
			t.Fatalf("ListChunks: %d chunks, %v", len(got), err)
		}
		for i, c := range got {
			want := second[i]
			want.ID, want.TenantID, want.KnowledgeBaseID, want.DocumentID = c.ID, a.id, kb.ID, d1.ID
			if !reflect.DeepEqual(c, want) || !nodus.ValidID(c.ID) {
				t.Errorf("chunk %d = %+v, want %+v", i, c, want)
			}
		}
		if d, _ := db.FindDocument(a.ctx, d1.ID); d.ChunkCount != 3 {
			t.Errorf("ChunkCount = %d, want 3", d.ChunkCount)
		}
		// The first set's caller-given id is free again.
		if err := db.ReplaceChunks(a.ctx, d2.ID, first[:1]); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.ListChunks(a.ctx, d2.ID); len(got) != 1 || got[0].ID != first[0].ID || got[0].Headings == nil {
			t.Errorf("d2's chunks: %+v", got)
		}
		if n, err := db.CountChunks(a.ctx, kb.ID); err != nil || n != 4 {
			t.Errorf("CountChunks = %d, %v; want 4", n, err)
		}

		// A batch larger than one statement.
		if err := db.ReplaceChunks(a.ctx, d2.ID, chunkSet("big", 700)); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.ListChunks(a.ctx, d2.ID); len(got) != 700 || got[699].Index != 699 {
			t.Errorf("big set: %d chunks", len(got))
		}
		if err := db.ReplaceChunks(a.ctx, d2.ID, nil); err != nil {
			t.Fatal(err)
		}
		if d, _ := db.FindDocument(a.ctx, d2.ID); d.ChunkCount != 0 {
			t.Errorf("ChunkCount after emptying = %d", d.ChunkCount)
		}

		dupIndex := chunkSet("dup", 2)
		dupIndex[1].Index = 0
		wantCode(t, "two chunks at index 0", db.ReplaceChunks(a.ctx, d1.ID, dupIndex), nodus.ECONFLICT)
		badOffsets := chunkSet("bad", 1)
		badOffsets[0].End = -1
		wantCode(t, "bad offsets", db.ReplaceChunks(a.ctx, d1.ID, badOffsets), nodus.EINVALID)
		wantCode(t, "unknown document", db.ReplaceChunks(a.ctx, nodus.NewID(), chunkSet("x", 1)), nodus.ENOTFOUND)

		// Tenant B can neither read nor replace A's chunks.
		wantCode(t, "B replaces A's", db.ReplaceChunks(b.ctx, d1.ID, chunkSet("evil", 1)), nodus.ENOTFOUND)
		wantCode(t, "B lists A's", func() error { _, err := db.ListChunks(b.ctx, d1.ID); return err }(), nodus.ENOTFOUND)
		wantCode(t, "B counts A's", func() error { _, err := db.CountChunks(b.ctx, kb.ID); return err }(), nodus.ENOTFOUND)
		if after, _ := db.ListChunks(a.ctx, d1.ID); !reflect.DeepEqual(after, got) {
			t.Errorf("A's chunks changed by failed replacements: %+v", after)
		}
	})
}

// TestKnowledgeReplaceChunksConcurrent: concurrent ingestions of the same
// document (a retry racing a stale worker) end with exactly one complete
// set, and the count matches it (SECURITY.md check 26).
func TestKnowledgeReplaceChunksConcurrent(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, _ tenantScope) {
		kb := mustCreateKB(t, db, a, "Handbook")
		d := mustCreateDoc(t, db, a, kb.ID, "alpha")
		const workers = 8
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for w := range workers {
			wg.Go(func() {
				for range 3 {
					if err := db.ReplaceChunks(a.ctx, d.ID, chunkSet(fmt.Sprintf("w%d", w), 20+w)); err != nil {
						errs[w] = err
						return
					}
				}
			})
		}
		wg.Wait()
		for w, err := range errs {
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		}
		got, err := db.ListChunks(a.ctx, d.ID)
		if err != nil || len(got) == 0 {
			t.Fatalf("ListChunks: %d, %v", len(got), err)
		}
		set, _, _ := strings.Cut(got[0].Text, " ")
		want := chunkSet(set, 20+int(set[1]-'0'))
		if len(got) != len(want) {
			t.Fatalf("%d chunks, want the %d of set %s", len(got), len(want), set)
		}
		for i, c := range got {
			if c.Index != i || c.Text != want[i].Text {
				t.Errorf("chunk %d: %q, want %q (sets mixed)", i, c.Text, want[i].Text)
			}
		}
		if doc, _ := db.FindDocument(a.ctx, d.ID); doc.ChunkCount != len(got) {
			t.Errorf("ChunkCount = %d, %d chunks stored", doc.ChunkCount, len(got))
		}
		if n, _ := db.CountChunks(a.ctx, kb.ID); n != len(got) {
			t.Errorf("CountChunks = %d, %d chunks listed", n, len(got))
		}
	})
}

func TestKnowledgeDeleteKnowledgeBase(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, _ tenantScope) {
		kb, kept := mustCreateKB(t, db, a, "Doomed"), mustCreateKB(t, db, a, "Kept")
		var blobs []string
		for _, content := range []string{"one", "two", "three"} {
			d := mustCreateDoc(t, db, a, kb.ID, content)
			blobs = append(blobs, d.BlobID)
			if err := db.ReplaceChunks(a.ctx, d.ID, chunkSet(content, 4)); err != nil {
				t.Fatal(err)
			}
		}
		noBlob := newDocument(a.id, kb.ID, "")
		noBlob.ContentHash, noBlob.BlobID, noBlob.Filename = "", "", ""
		if err := db.CreateDocument(a.ctx, noBlob); err != nil {
			t.Fatal(err)
		}
		k := mustCreateDoc(t, db, a, kept.ID, "one")
		if err := db.ReplaceChunks(a.ctx, k.ID, chunkSet("kept", 2)); err != nil {
			t.Fatal(err)
		}

		got, err := db.DeleteKnowledgeBase(a.ctx, kb.ID)
		slices.Sort(got)
		slices.Sort(blobs)
		if err != nil || !slices.Equal(got, blobs) {
			t.Fatalf("DeleteKnowledgeBase = %v, %v; want %v", got, err, blobs)
		}
		if n := countRows(t, db, "documents", a.id); n != 1 {
			t.Errorf("%d documents left, want the kept one", n)
		}
		if n := countRows(t, db, "kb_chunks", a.id); n != 2 {
			t.Errorf("%d chunks left, want the kept 2", n)
		}
		if n, err := db.CountChunks(a.ctx, kept.ID); err != nil || n != 2 {
			t.Errorf("kept knowledge base: %d chunks, %v", n, err)
		}
	})
}

// TestKnowledgeTenantPurge: deleting a tenant removes its knowledge rows
// and only its (tenants live in the auth database: the purge, not a
// foreign key, does it).
func TestKnowledgeTenantPurge(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		var want []string
		for _, s := range []tenantScope{a, b} {
			kb := mustCreateKB(t, db, s, "Handbook")
			d := mustCreateDoc(t, db, s, kb.ID, "alpha")
			if err := db.ReplaceChunks(s.ctx, d.ID, chunkSet("x", 3)); err != nil {
				t.Fatal(err)
			}
			if s == a {
				want = []string{d.BlobID}
			}
		}
		tables := []string{"knowledge_bases", "documents", "kb_chunks"}
		for _, table := range tables {
			if countRows(t, db, table, a.id) == 0 {
				t.Fatalf("%s holds nothing of the tenant before the purge: the test checks nothing", table)
			}
		}
		if got, err := db.DeleteKnowledgeTenant(a.ctx); err != nil || !slices.Equal(got, want) {
			t.Fatalf("DeleteKnowledgeTenant = %v, %v; want %v", got, err, want)
		}
		for _, table := range tables {
			if n := countRows(t, db, table, a.id); n != 0 {
				t.Errorf("%s still holds %d rows of the purged tenant", table, n)
			}
			if n := countRows(t, db, table, b.id); n == 0 {
				t.Errorf("%s lost the other tenant's rows", table)
			}
		}
		if got, err := db.DeleteKnowledgeTenant(a.ctx); err != nil || len(got) != 0 {
			t.Errorf("purge again: %v, %v", got, err)
		}
		wantCode(t, "purge without a tenant", func() error { _, err := db.DeleteKnowledgeTenant(platform); return err }(), nodus.EINTERNAL)
	})
}

// TestListStalledDocuments: the ingestion sweep finds, in every tenant,
// documents pending for too long and processing with no update for too
// long, oldest first, and nothing else; it needs the all-tenants scope.
func TestListStalledDocuments(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		now := nodus.SystemClock{}.Now()
		hour := now.Add(-time.Hour)
		want := map[string]bool{}
		for _, s := range []tenantScope{a, b} {
			kb := mustCreateKB(t, db, s, "kb")
			for i, tc := range []struct {
				status  string
				at      time.Time
				stalled bool
			}{
				{knowledge.StatusPending, hour, true},
				{knowledge.StatusPending, now, false},
				{knowledge.StatusProcessing, hour, true},
				{knowledge.StatusProcessing, now, false},
				{knowledge.StatusCompleted, hour, false},
				{knowledge.StatusFailed, hour, false},
			} {
				d := newDocument(s.id, kb.ID, fmt.Sprintf("doc %d", i))
				d.CreatedAt, d.UpdatedAt = tc.at, tc.at
				if err := db.CreateDocument(s.ctx, d); err != nil {
					t.Fatal(err)
				}
				if tc.status != knowledge.StatusPending {
					if _, err := db.UpdateDocumentState(s.ctx, d.ID, func(d *knowledge.Document) error {
						d.Status, d.UpdatedAt = tc.status, tc.at
						if tc.status == knowledge.StatusProcessing {
							d.Stage = knowledge.StageExtracting
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				if tc.stalled {
					want[s.id+"/"+d.ID] = true
				}
			}
		}
		cut := now.Add(-time.Minute)
		got, err := db.ListStalledDocuments(nodus.WithAllTenants(context.Background()), cut, cut, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d stalled documents, want %d: %+v", len(got), len(want), got)
		}
		for _, r := range got {
			if !want[r.TenantID+"/"+r.ID] {
				t.Errorf("%+v is not stalled", r)
			}
		}
		if _, err := db.ListStalledDocuments(a.ctx, cut, cut, 100); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("a tenant scope: %v, want forbidden", err)
		}
	})
}
