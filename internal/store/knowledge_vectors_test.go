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
		c, docs, _ := manyVectors(t, url)
		db, a, kb := c.db, c.s, knowledge.KnowledgeBase{ID: c.kbID}
		c.nearest(t, "exact")
		c.waitKind(t, "hnsw")
		c.nearest(t, "approximate")

		// A deleted document's passages leave the graph.
		if _, err := db.DeleteDocument(a.ctx, docs[0].ID); err != nil {
			t.Fatal(err)
		}
		c.forget(0)
		c.nearest(t, "after a deletion")
		if kind := store.VectorIndexKind(db, kb.ID, "m", vecDim); kind != "hnsw" {
			t.Fatalf("after a quarter deleted the index is %q", kind)
		}
		// Past a quarter of the graph deleted, it is built again.
		if _, err := db.DeleteDocument(a.ctx, docs[1].ID); err != nil {
			t.Fatal(err)
		}
		c.forget(1)
		c.nearest(t, "after half was deleted")
		c.waitKind(t, "hnsw")
		c.nearest(t, "rebuilt")
	})
}

// TestKnowledgeVectorGraphSaved: a built HNSW graph is saved, and a
// process that loads the knowledge base later (a restart, another
// replica) starts from it, taking in the changes made since, instead of
// searching exactly while it builds one.
func TestKnowledgeVectorGraphSaved(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, url string) {
		c, docs, open := manyVectors(t, url)
		db, a, kb, vecs := c.db, c.s, knowledge.KnowledgeBase{ID: c.kbID}, c.vecs
		c.waitKind(t, "hnsw")
		version, nodes := waitSavedGraph(t, db, kb.ID, 0)
		if nodes != 400 {
			t.Fatalf("the saved graph has %d nodes, want 400", nodes)
		}
		// An older graph does not replace a newer one, and another
		// tenant's save does not touch tenant A's.
		b := newTenantScope()
		for _, save := range []struct {
			tenant  string
			version int64
		}{{a.id, version - 1}, {b.id, version + 1}} {
			if err := store.SaveVectorGraph(db, save.tenant, kb.ID, "m", vecDim, save.version, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if v, n := waitSavedGraph(t, db, kb.ID, 0); v != version || n != 400 {
				t.Fatalf("after a save at version %d by %s: version %d, %d nodes", save.version, save.tenant, v, n)
			}
		}

		// A restart searches through the saved graph at once.
		c.db = open()
		c.nearest(t, "restarted")
		if kind := store.VectorIndexKind(c.db, kb.ID, "m", vecDim); kind != "saved hnsw" {
			t.Fatalf("after a restart the index is %q, want the saved graph", kind)
		}
		if g := c.db.VectorGraphStats(); g != (store.VectorGraphStats{Loaded: 1}) {
			t.Fatalf("the restart's graph stats: %+v", g)
		}
		if g := db.VectorGraphStats(); g.Saved != 1 || g.None != 1 || g.Loaded != 0 {
			t.Fatalf("the first process's graph stats: %+v", g)
		}

		// Changes made while no process holds the vectors: a start takes
		// them in from the rows (a document deleted, one added).
		if _, err := db.DeleteDocument(a.ctx, docs[0].ID); err != nil {
			t.Fatal(err)
		}
		c.forget(0)
		addVectorDocs(t, db, a, kb.ID, vecs, 4, 1)
		c.db = open()
		c.nearest(t, "restarted after changes")
		if kind := store.VectorIndexKind(c.db, kb.ID, "m", vecDim); kind != "saved hnsw" {
			t.Fatalf("after changes and a restart the index is %q, want the saved graph", kind)
		}
		// It took in 200 changes, more than a tenth of the graph: saved again.
		v, n := waitSavedGraph(t, db, kb.ID, version)
		if n != 500 || v <= version {
			t.Fatalf("saved again: version %d, %d nodes; want past %d with 500 nodes", v, n, version)
		}
		// A start that finds nothing changed does not save it again,
		// tombstones and all.
		at := graphSavedAt(t, db, kb.ID)
		c.db = open()
		c.nearest(t, "restarted without changes")
		time.Sleep(100 * time.Millisecond)
		if again := graphSavedAt(t, db, kb.ID); !again.Equal(at) {
			t.Fatalf("a start without changes saved the graph again (%v, then %v)", at, again)
		}

		// A graph that cannot be read is built again, and replaced.
		if err := db.Write(platformCtx, func(tx *store.Tx) error {
			_, err := tx.Exec(platformCtx, `UPDATE kb_vector_graphs SET graph = ?, version = 0 WHERE knowledge_base_id = ?`,
				[]byte("not a graph"), kb.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		c.db = open()
		c.nearest(t, "with a corrupt graph")
		if g := c.db.VectorGraphStats(); g.Unusable != 1 || g.Loaded != 0 {
			t.Fatalf("graph stats with a corrupt graph: %+v", g)
		}
		c.waitKind(t, "hnsw")
		c.nearest(t, "rebuilt from a corrupt graph")
		waitSavedGraph(t, db, kb.ID, 0)

		// Another embedding model: the old model's graph goes.
		if _, err := db.UpdateKnowledgeBase(a.ctx, kb.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.EmbeddingModel = "m2"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db, "kb_vector_graphs", a.id); n != 0 {
			t.Fatalf("%d graphs left after the embedding model changed", n)
		}
		c.db = open()
		c.waitKind(t, "hnsw")
		waitSavedGraph(t, db, kb.ID, 0)

		// The graph leaves with its knowledge base.
		if _, err := db.DeleteKnowledgeBase(a.ctx, kb.ID); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db, "kb_vector_graphs", a.id); n != 0 {
			t.Fatalf("%d graphs left after the knowledge base was deleted", n)
		}
	})
}

// TestKnowledgeVectorGraphUnreadable: when the saved graphs cannot be
// read (here the table is missing, as before `nodus migrate up`), search
// works as it did without them: on PostgreSQL the failed read must not
// abort the search's transaction.
func TestKnowledgeVectorGraphUnreadable(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, url string) {
		c, _, open := manyVectors(t, url)
		if err := c.db.Write(platformCtx, func(tx *store.Tx) error {
			_, err := tx.Exec(platformCtx, `DROP TABLE kb_vector_graphs`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		c.db = open()
		c.nearest(t, "exact, no graph table")
		c.waitKind(t, "hnsw")
		c.db = open()
		c.nearest(t, "restarted, no graph table")
	})
}

// manyVectors opens url searching up to 150 vectors exactly (open opens
// it again so) and makes a knowledge base of 4 documents of addVectorDocs'
// passages, 400 vectors, to be checked with c.
func manyVectors(t *testing.T, url string) (c vectorCheck, docs []knowledge.Document, open func() *store.DB) {
	t.Helper()
	open = func() *store.DB { return openWith(t, url, func(c *store.Config) { c.ExactVectors = 150 }) }
	db := open()
	migrate(t, db, store.SetMain)
	a := newTenantScope()
	kb := mustCreateKB(t, db, a, "many")
	vecs := make(map[string][]float32)
	docs = addVectorDocs(t, db, a, kb.ID, vecs, 0, 4)
	return vectorCheck{db: db, s: a, kbID: kb.ID, vecs: vecs, gone: map[string]bool{}}, docs, open
}

// vecDim and vecsPerDoc shape the documents addVectorDocs writes.
const vecDim, vecsPerDoc = 24, 100

// addVectorDocs adds n documents numbered from first, of vecsPerDoc
// passages each with a random vector by model "m", recorded in vecs by
// passage text.
func addVectorDocs(t *testing.T, db *store.DB, s tenantScope, kbID string, vecs map[string][]float32, first, n int) []knowledge.Document {
	t.Helper()
	var docs []knowledge.Document
	for d := first; d < first+n; d++ {
		rng := rand.New(rand.NewPCG(1, uint64(d)))
		doc := mustCreateDoc(t, db, s, kbID, fmt.Sprintf("doc %d", d))
		docs = append(docs, doc)
		texts := make([]string, vecsPerDoc)
		vs := make([][]float32, vecsPerDoc)
		for i := range texts {
			texts[i] = fmt.Sprintf("doc %d passage %d", d, i)
			vs[i] = make([]float32, vecDim)
			for j := range vs[i] {
				vs[i][j] = float32(rng.NormFloat64())
			}
			vecs[texts[i]] = vs[i]
		}
		if err := db.ReplaceChunks(s.ctx, doc.ID, embedded("m", textChunks(texts...), vs...)); err != nil {
			t.Fatal(err)
		}
	}
	return docs
}

// vectorCheck searches a knowledge base of addVectorDocs' passages.
type vectorCheck struct {
	db   *store.DB
	s    tenantScope
	kbID string
	vecs map[string][]float32
	gone map[string]bool // passages deleted
}

// forget records document d's passages as deleted.
func (c vectorCheck) forget(d int) {
	for i := range vecsPerDoc {
		c.gone[fmt.Sprintf("doc %d passage %d", d, i)] = true
	}
}

// nearest checks that each passage's own vector finds it first, and that
// no deleted passage is found.
func (c vectorCheck) nearest(t *testing.T, what string) {
	t.Helper()
	for text, v := range c.vecs {
		hits := vecSearch(t, c.db, c.s.ctx, c.kbID, "m", v, 5)
		for _, h := range hits {
			if c.gone[h.Text] {
				t.Fatalf("%s: found %q, which was deleted", what, h.Text)
			}
		}
		if c.gone[text] {
			continue
		}
		if len(hits) == 0 || hits[0].Text != text {
			t.Fatalf("%s: %q found %q first", what, text, hitTexts(hits))
		}
	}
}

// waitKind searches until the knowledge base's vectors are held in an
// index of the kind.
func (c vectorCheck) waitKind(t *testing.T, kind string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for store.VectorIndexKind(c.db, c.kbID, "m", vecDim) != kind {
		if time.Now().After(deadline) {
			t.Fatalf("the index stayed %q, want %q", store.VectorIndexKind(c.db, c.kbID, "m", vecDim), kind)
		}
		time.Sleep(10 * time.Millisecond)
		vecSearch(t, c.db, c.s.ctx, c.kbID, "m", c.vecs["doc 1 passage 0"], 1)
	}
}

// graphSavedAt returns when the knowledge base's graph was saved.
func graphSavedAt(t *testing.T, db *store.DB, kbID string) time.Time {
	t.Helper()
	var at time.Time
	if err := db.Read(platformCtx, func(tx *store.Tx) error {
		return tx.QueryRow(platformCtx, `SELECT saved_at FROM kb_vector_graphs WHERE knowledge_base_id = ?`, kbID).Scan(&at)
	}); err != nil {
		t.Fatal(err)
	}
	return at
}

// waitSavedGraph waits for the knowledge base's saved graph to be of a
// version past after, and returns its version and nodes.
func waitSavedGraph(t *testing.T, db *store.DB, kbID string, after int64) (version int64, nodes int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := db.Read(platformCtx, func(tx *store.Tx) error {
			return tx.QueryRow(platformCtx, `SELECT version, nodes FROM kb_vector_graphs WHERE knowledge_base_id = ?`, kbID).
				Scan(&version, &nodes)
		})
		if err == nil && version > after {
			return version, nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("no graph saved past version %d: version %d, %v", after, version, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
