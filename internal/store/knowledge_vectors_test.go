package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vector"
)

// embedded gives each chunk the vector of the same index, by model.
func embedded(model string, chunks []knowledge.Chunk, vecs ...[]float32) []knowledge.Chunk {
	for i := range chunks {
		if i < len(vecs) && vecs[i] != nil {
			v := slices.Clone(vecs[i])
			vector.Normalize(v)
			chunks[i].Embedding = &knowledge.Embedding{Model: model,
				TextHash: knowledge.EmbeddingTextHash(chunks[i].Prefix + chunks[i].Text), Vector: v}
		}
	}
	return chunks
}

// vecSearch runs a vector search through the store and returns the hits'
// texts.
func vecSearch(t *testing.T, db *store.DB, ctx context.Context, kbID, model string, q []float32, k int) []knowledge.ChunkHit {
	t.Helper()
	q = slices.Clone(q)
	vector.Normalize(q)
	hits, err := db.Retrieve(ctx, kbID, func(_ knowledge.KnowledgeBase, ix knowledge.Indexes) ([]knowledge.Ranked, error) {
		vh, err := ix.Vectors.Search(ctx, model, q, k)
		if err != nil {
			return nil, err
		}
		out := make([]knowledge.Ranked, len(vh))
		for i, h := range vh {
			out[i] = knowledge.Ranked{ChunkID: h.ChunkID, Score: h.Score, VectorScore: &vh[i].Score}
		}
		return out, nil
	})
	if err != nil {
		t.Fatalf("vector search: %v", err)
	}
	return hits
}

func openWith(t *testing.T, url string, change func(*store.Config)) *store.DB {
	t.Helper()
	cfg := storetest.Config(url)
	change(&cfg)
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestKnowledgeVectorSearch(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, url string) {
		db := openWith(t, url, func(*store.Config) {})
		migrate(t, db, store.SetMain)
		// Another process on the same database, and one that keeps no
		// vectors in memory and scans the database.
		other := openWith(t, url, func(*store.Config) {})
		scan := openWith(t, url, func(c *store.Config) { c.VectorCache = -1 })
		a, b := newTenantScope(), newTenantScope()

		kb := mustCreateKB(t, db, a, "vectors")
		d1 := mustCreateDoc(t, db, a, kb.ID, "one")
		d2 := mustCreateDoc(t, db, a, kb.ID, "two")
		e := func(x ...float32) []float32 { return x }
		if err := db.ReplaceChunks(a.ctx, d1.ID, embedded("m1", textChunks("north", "east", "up"),
			e(1, 0, 0, 0), e(0, 1, 0, 0), e(0, 0, 1, 0))); err != nil {
			t.Fatal(err)
		}
		if err := db.ReplaceChunks(a.ctx, d2.ID, embedded("m1", textChunks("north-east", "time", "no vector"),
			e(1, 1, 0, 0), e(0, 0, 0, 1))); err != nil {
			t.Fatal(err)
		}
		want := func(what string, hits []knowledge.ChunkHit, texts ...string) {
			t.Helper()
			if got := hitTexts(hits); !slices.Equal(got, texts) {
				t.Fatalf("%s: %q, want %q", what, got, texts)
			}
		}
		for _, on := range []*store.DB{db, other, scan} {
			hits := vecSearch(t, on, a.ctx, kb.ID, "m1", e(1, 0.1, 0, 0), 2)
			want("nearest to north", hits, "north", "north-east")
			if hits[0].Score < 0.99 || hits[0].DocumentID != d1.ID || hits[0].DocumentName != d1.OriginalFilename {
				t.Fatalf("top hit = %+v", hits[0])
			}
		}
		// A server's warm-up at start loads the vectors of knowledge bases
		// with an embedding model before any search.
		if _, err := db.UpdateKnowledgeBase(a.ctx, kb.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.EmbeddingModel = "m1"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		warm := openWith(t, url, func(*store.Config) {})
		if n, err := warm.WarmVectors(nodus.WithAllTenants(ctx)); err != nil || n != 5 {
			t.Fatalf("warm-up loaded %d vectors, %v; want 5", n, err)
		}
		if kind := store.VectorIndexKind(warm, kb.ID, "m1", 4); kind != "flat" {
			t.Fatalf("after the warm-up the vectors are %q", kind)
		}
		if _, err := warm.WarmVectors(a.ctx); nodus.ErrorCode(err) == "" {
			t.Fatal("a tenant's scope warmed every tenant's vectors")
		}

		// Vectors of another model or dimension are not compared.
		want("another model", vecSearch(t, db, a.ctx, kb.ID, "m2", e(1, 0, 0, 0), 5))
		want("another dimension", vecSearch(t, db, a.ctx, kb.ID, "m1", e(1, 0, 0), 5))

		// Vectors are reusable by the hash of their text.
		hashes := []string{knowledge.EmbeddingTextHash("east"), knowledge.EmbeddingTextHash("never embedded")}
		got, err := db.ReusableVectors(a.ctx, kb.ID, "m1", hashes)
		if err != nil || len(got) != 1 || got[hashes[0]][1] != 1 {
			t.Fatalf("reusable vectors = %v, %v", got, err)
		}
		if got, _ := db.ReusableVectors(b.ctx, kb.ID, "m1", hashes); len(got) != 0 {
			t.Fatal("another tenant reused tenant A's vectors")
		}

		// Deleting a document removes its vectors; re-indexing one
		// replaces them; every process catches up.
		if _, err := db.DeleteDocument(a.ctx, d2.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.ReplaceChunks(a.ctx, d1.ID, embedded("m1", textChunks("south", "east"),
			e(-1, 0, 0, 0), e(0, 1, 0, 0))); err != nil {
			t.Fatal(err)
		}
		for _, on := range []*store.DB{db, other, scan} {
			want("after changes", vecSearch(t, on, a.ctx, kb.ID, "m1", e(1, 0.1, 0, 0.5), 3), "east", "south")
		}
		if n := countRows(t, db, "kb_chunk_vectors", a.id); n != 2 {
			t.Fatalf("%d vector rows left, want 2", n)
		}

		// Another tenant cannot search tenant A's knowledge base.
		_, err = b.retrieve(db, kb.ID)
		wantCode(t, "another tenant's vector search", err, nodus.ENOTFOUND)

		// Deleting the knowledge base leaves no vector behind.
		if _, err := db.DeleteKnowledgeBase(a.ctx, kb.ID); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db, "kb_chunk_vectors", a.id); n != 0 {
			t.Fatalf("%d vector rows left after the knowledge base was deleted", n)
		}
		var removed int
		if err := db.Read(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM kb_vector_removed WHERE knowledge_base_id = ?`, kb.ID).Scan(&removed)
		}); err != nil || removed != 0 {
			t.Fatalf("%d removal records left, %v", removed, err)
		}
	})
}

func (s tenantScope) retrieve(db *store.DB, kbID string) ([]knowledge.ChunkHit, error) {
	return db.Retrieve(s.ctx, kbID, func(knowledge.KnowledgeBase, knowledge.Indexes) ([]knowledge.Ranked, error) {
		return nil, nil
	})
}

// TestKnowledgeVectorApproximate drives a knowledge base past the exact
// search limit: the HNSW index built in the background then answers, and
// keeps following the knowledge base's changes.
func TestKnowledgeVectorApproximate(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, url string) {
		db := openWith(t, url, func(c *store.Config) { c.ExactVectors = 150 })
		migrate(t, db, store.SetMain)
		a := newTenantScope()
		kb := mustCreateKB(t, db, a, "many")
		const dim, perDoc = 24, 100
		rng := rand.New(rand.NewPCG(1, 2))
		vecs := make(map[string][]float32)
		var docs []knowledge.Document
		for d := range 4 {
			doc := mustCreateDoc(t, db, a, kb.ID, fmt.Sprintf("doc %d", d))
			docs = append(docs, doc)
			texts := make([]string, perDoc)
			vs := make([][]float32, perDoc)
			for i := range texts {
				texts[i] = fmt.Sprintf("doc %d passage %d", d, i)
				vs[i] = make([]float32, dim)
				for j := range vs[i] {
					vs[i][j] = float32(rng.NormFloat64())
				}
				vecs[texts[i]] = vs[i]
			}
			if err := db.ReplaceChunks(a.ctx, doc.ID, embedded("m", textChunks(texts...), vs...)); err != nil {
				t.Fatal(err)
			}
		}
		// Each passage's own vector finds it first.
		check := func(what string, gone map[string]bool) {
			t.Helper()
			for text, v := range vecs {
				hits := vecSearch(t, db, a.ctx, kb.ID, "m", v, 5)
				for _, h := range hits {
					if gone[h.Text] {
						t.Fatalf("%s: found %q, which was deleted", what, h.Text)
					}
				}
				if gone[text] {
					continue
				}
				if len(hits) == 0 || hits[0].Text != text {
					t.Fatalf("%s: %q found %q first", what, text, hitTexts(hits))
				}
			}
		}
		check("exact", nil)
		waitKind := func(kind string) {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for store.VectorIndexKind(db, kb.ID, "m", dim) != kind {
				if time.Now().After(deadline) {
					t.Fatalf("the index stayed %q, want %q", store.VectorIndexKind(db, kb.ID, "m", dim), kind)
				}
				time.Sleep(10 * time.Millisecond)
				vecSearch(t, db, a.ctx, kb.ID, "m", vecs["doc 0 passage 0"], 1)
			}
		}
		waitKind("hnsw")
		check("approximate", nil)

		// A deleted document's passages leave the graph.
		if _, err := db.DeleteDocument(a.ctx, docs[0].ID); err != nil {
			t.Fatal(err)
		}
		gone := make(map[string]bool)
		for i := range perDoc {
			gone[fmt.Sprintf("doc 0 passage %d", i)] = true
		}
		check("after a deletion", gone)
		if kind := store.VectorIndexKind(db, kb.ID, "m", dim); kind != "hnsw" {
			t.Fatalf("after a quarter deleted the index is %q", kind)
		}
		// Past a quarter of the graph deleted, it is built again.
		if _, err := db.DeleteDocument(a.ctx, docs[1].ID); err != nil {
			t.Fatal(err)
		}
		for i := range perDoc {
			gone[fmt.Sprintf("doc 1 passage %d", i)] = true
		}
		check("after half was deleted", gone)
		waitKind("hnsw")
		check("rebuilt", gone)
	})
}
