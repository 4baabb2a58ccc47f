package store_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// textChunks makes one analysed chunk per text.
func textChunks(texts ...string) []knowledge.Chunk {
	out := make([]knowledge.Chunk, len(texts))
	for i, text := range texts {
		out[i] = knowledge.Chunk{Index: i, Text: text, End: len(text), Tokens: len(text) / 4,
			Terms: fulltext.Analyze(text)}
	}
	return out
}

// search runs a full-text search through the store.
func search(t *testing.T, db *store.DB, ctx context.Context, kbID, query string, limit int) []knowledge.ChunkHit {
	t.Helper()
	hits, err := db.SearchChunks(ctx, kbID, func(_ knowledge.KnowledgeBase, ix fulltext.Index) ([]fulltext.Hit, error) {
		return fulltext.Search(ctx, ix, fulltext.Query{Text: query, Limit: limit}, fulltext.DefaultParams)
	})
	if err != nil {
		t.Fatalf("search %q: %v", query, err)
	}
	return hits
}

func hitTexts(hits []knowledge.ChunkHit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Text
	}
	return out
}

var searchCorpus = []string{
	"Solar panels convert sunlight into electricity with photovoltaic cells.",
	"Wind turbines turn the wind's energy into electricity.",
	"Photosynthesis lets plants turn sunlight into chemical energy.",
	"The cat sat on the mat.",
	"Batteries store electricity for later; solar farms pair them with panels.",
}

func TestKnowledgeSearch(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		kb := mustCreateKB(t, db, a, "energy")
		d1 := mustCreateDoc(t, db, a, kb.ID, "one")
		d2 := mustCreateDoc(t, db, a, kb.ID, "two")
		if err := db.ReplaceChunks(a.ctx, d1.ID, textChunks(searchCorpus[:3]...)); err != nil {
			t.Fatal(err)
		}
		if err := db.ReplaceChunks(a.ctx, d2.ID, textChunks(searchCorpus[3:]...)); err != nil {
			t.Fatal(err)
		}

		// BM25 ranks the chunks exactly as the reference index does.
		ref := memCorpus(searchCorpus)
		for _, q := range []string{"solar panels", "electricity", "sunlight energy", "cats on mats", "wind",
			"zebra", "the of and"} {
			got := search(t, db, a.ctx, kb.ID, q, 10)
			want, err := fulltext.Search(a.ctx, ref, fulltext.Query{Text: q, Limit: 10}, fulltext.DefaultParams)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%q: %d hits %q, want %d", q, len(got), hitTexts(got), len(want))
			}
			for i := range got {
				if got[i].Text != searchCorpus[want[i].Key] || math.Abs(got[i].Score-want[i].Score) > 1e-9 {
					t.Errorf("%q hit %d: %q %.6f, want %q %.6f", q, i, got[i].Text, got[i].Score,
						searchCorpus[want[i].Key], want[i].Score)
				}
			}
		}
		hits := search(t, db, a.ctx, kb.ID, "solar panels", 1)
		if len(hits) != 1 || hits[0].DocumentID != d1.ID || hits[0].Index != 0 || hits[0].DocumentName != d1.OriginalFilename ||
			hits[0].KnowledgeBaseID != kb.ID || hits[0].TenantID != a.id {
			t.Fatalf("top hit = %+v", hits)
		}

		// Another tenant's search of the same words finds only its own
		// chunks, and cannot reach the first tenant's knowledge base.
		kbB := mustCreateKB(t, db, b, "energy")
		dB := mustCreateDoc(t, db, b, kbB.ID, "bee")
		if err := db.ReplaceChunks(b.ctx, dB.ID, textChunks("Solar panels on the roof of tenant B.")); err != nil {
			t.Fatal(err)
		}
		if hits := search(t, db, b.ctx, kbB.ID, "solar panels", 10); len(hits) != 1 || hits[0].TenantID != b.id {
			t.Fatalf("tenant B's search = %q", hitTexts(hits))
		}
		_, err := db.SearchChunks(b.ctx, kb.ID, func(knowledge.KnowledgeBase, fulltext.Index) ([]fulltext.Hit, error) {
			t.Fatal("search ran on another tenant's knowledge base")
			return nil, nil
		})
		if nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Fatalf("search of another tenant's knowledge base: %v", err)
		}
		// Tenant B's chunks do not change tenant A's figures.
		if got := search(t, db, a.ctx, kb.ID, "roof", 10); len(got) != 0 {
			t.Fatalf("tenant A finds tenant B's roof: %q", hitTexts(got))
		}

		// Replacing a document's chunks replaces what search finds and the
		// figures it ranks with.
		if err := db.ReplaceChunks(a.ctx, d2.ID, textChunks("Zebras graze on the savanna.")); err != nil {
			t.Fatal(err)
		}
		ref = memCorpus(append(searchCorpus[:3:3], "Zebras graze on the savanna."))
		for _, q := range []string{"zebra", "electricity", "cat"} {
			got := search(t, db, a.ctx, kb.ID, q, 10)
			want, _ := fulltext.Search(a.ctx, ref, fulltext.Query{Text: q, Limit: 10}, fulltext.DefaultParams)
			if len(got) != len(want) {
				t.Fatalf("after replace, %q: %q, want %d hits", q, hitTexts(got), len(want))
			}
			for i := range got {
				if math.Abs(got[i].Score-want[i].Score) > 1e-9 {
					t.Errorf("after replace, %q hit %d scores %.6f, want %.6f", q, i, got[i].Score, want[i].Score)
				}
			}
		}

		// Deleting a document removes its chunks from search.
		if _, err := db.DeleteDocument(a.ctx, d1.ID); err != nil {
			t.Fatal(err)
		}
		if got := search(t, db, a.ctx, kb.ID, "solar sunlight wind", 10); len(got) != 0 {
			t.Fatalf("deleted document still found: %q", hitTexts(got))
		}
		if got := search(t, db, a.ctx, kb.ID, "zebra", 10); len(got) != 1 {
			t.Fatalf("zebra = %q", hitTexts(got))
		}
		if n := countRows(t, db, "kb_chunk_terms", a.id); n != 1 {
			t.Fatalf("%d chunk term rows left, want 1", n)
		}

		// Deleting the knowledge base, or the tenant, removes its index.
		if _, err := db.DeleteKnowledgeBase(a.ctx, kb.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.DeleteKnowledgeTenant(b.ctx); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"kb_chunk_terms"} {
			if n := countRows(t, db, table, a.id) + countRows(t, db, table, b.id); n != 0 {
				t.Fatalf("%d rows left in %s", n, table)
			}
		}
		var stats int
		err = db.Read(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM kb_term_stats`).Scan(&stats)
		})
		if err != nil || stats != 0 {
			t.Fatalf("kb_term_stats rows left: %d, %v", stats, err)
		}
		if db.Dialect() == store.SQLite {
			var fts int
			err := db.Read(ctx, func(tx *store.Tx) error {
				return tx.QueryRow(ctx, `SELECT count(*) FROM kb_fts`).Scan(&fts)
			})
			if err != nil || fts != 0 {
				t.Fatalf("kb_fts rows left: %d, %v", fts, err)
			}
		}
	})
}

// TestKnowledgeSearchLargerThanALimit checks the early stop on a knowledge
// base of many chunks: the store's results equal the reference's for
// queries mixing rare and common words.
func TestKnowledgeSearchManyChunks(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, _ tenantScope) {
		kb := mustCreateKB(t, db, a, "many")
		words := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"}
		var texts []string
		for i := range 300 {
			text := ""
			for j, w := range words {
				// Word j appears in about one chunk in j+1, more often in some.
				if i%(j+1) == 0 {
					text += fmt.Sprintf("%s %s ", w, w[:3]+fmt.Sprint(i%(j+2)))
				}
			}
			texts = append(texts, text+fmt.Sprintf("chunk%d", i))
		}
		for i := 0; i < len(texts); i += 50 {
			d := mustCreateDoc(t, db, a, kb.ID, fmt.Sprint("part", i))
			if err := db.ReplaceChunks(a.ctx, d.ID, textChunks(texts[i:i+50]...)); err != nil {
				t.Fatal(err)
			}
		}
		ref := memCorpus(texts)
		for _, q := range []string{"alpha", "sigma alpha", "kappa lambda sigma chunk7", "beta gamma delta",
			"sig1 lam3 alpha alpha"} {
			for _, limit := range []int{1, 5, 20} {
				got := search(t, db, a.ctx, kb.ID, q, limit)
				want, _ := fulltext.Search(a.ctx, ref, fulltext.Query{Text: q, Limit: limit}, fulltext.DefaultParams)
				if len(got) != len(want) {
					t.Fatalf("%q limit %d: %d hits, want %d", q, limit, len(got), len(want))
				}
				for i := range got {
					if math.Abs(got[i].Score-want[i].Score) > 1e-9 {
						t.Errorf("%q limit %d hit %d: %.6f, want %.6f", q, limit, i, got[i].Score, want[i].Score)
					}
				}
			}
		}
	})
}

// memIndex is a reference index over texts, keyed by their position.
type memIndex struct {
	vectors []fulltext.Vector
}

func memCorpus(texts []string) *memIndex {
	ix := &memIndex{}
	for _, t := range texts {
		ix.vectors = append(ix.vectors, fulltext.Analyze(t))
	}
	return ix
}

func (ix *memIndex) Stats(_ context.Context, terms []string) (fulltext.Stats, error) {
	st := fulltext.Stats{DF: make(map[string]int64)}
	for _, v := range ix.vectors {
		if v.Length == 0 {
			continue
		}
		st.Texts++
		st.Length += int64(v.Length)
		for _, tf := range v.Terms {
			for _, t := range terms {
				if tf.Term == t {
					st.DF[t]++
				}
			}
		}
	}
	return st, nil
}

func (ix *memIndex) Postings(_ context.Context, term string) ([]fulltext.Posting, error) {
	var out []fulltext.Posting
	for i, v := range ix.vectors {
		for _, tf := range v.Terms {
			if tf.Term == term {
				out = append(out, fulltext.Posting{Key: int64(i), Freq: int32(tf.Freq), Length: int32(v.Length)})
			}
		}
	}
	return out, nil
}

// TestKnowledgeSearchCacheCatchesUp checks that cached posting lists
// follow the knowledge base's changes: a new document, a replaced one and
// a deleted one are seen by the next search, and the lists of terms not
// searched since stay cached, caught up rather than dropped.
func TestKnowledgeSearchCacheCatchesUp(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, _ tenantScope) {
		kb := mustCreateKB(t, db, a, "moving")
		texts := []string{"solar panels and wind", "wind farms at sea", "solar farms in deserts"}
		d1 := mustCreateDoc(t, db, a, kb.ID, "one")
		if err := db.ReplaceChunks(a.ctx, d1.ID, textChunks(texts...)); err != nil {
			t.Fatal(err)
		}
		check := func(live []string, queries ...string) {
			t.Helper()
			ref := memCorpus(live)
			for _, q := range queries {
				got := search(t, db, a.ctx, kb.ID, q, 10)
				want, _ := fulltext.Search(a.ctx, ref, fulltext.Query{Text: q, Limit: 10}, fulltext.DefaultParams)
				if len(got) != len(want) {
					t.Fatalf("%q: %q, want %d hits", q, hitTexts(got), len(want))
				}
				for i := range got {
					if got[i].Text != live[want[i].Key] || math.Abs(got[i].Score-want[i].Score) > 1e-9 {
						t.Fatalf("%q hit %d: %q %.6f, want %q %.6f", q, i, got[i].Text, got[i].Score,
							live[want[i].Key], want[i].Score)
					}
				}
			}
		}
		check(texts, "solar", "wind farms")
		v1, cached := store.CachedTerms(db, kb.ID)
		if len(cached) != 3 {
			t.Fatalf("cached %q, want solar, wind, farm", cached)
		}

		// A second document: a search of other words catches the cache up.
		d2 := mustCreateDoc(t, db, a, kb.ID, "two")
		more := []string{"solar wind sea deserts", "farms of wind"}
		if err := db.ReplaceChunks(a.ctx, d2.ID, textChunks(more...)); err != nil {
			t.Fatal(err)
		}
		check(append(slices.Clone(texts), more...), "sea deserts")
		v2, cached := store.CachedTerms(db, kb.ID)
		if v2 <= v1 || len(cached) != 5 {
			t.Fatalf("after a new document: version %d (was %d), cached %q", v2, v1, cached)
		}
		check(append(slices.Clone(texts), more...), "solar", "wind farms", "sea")

		// Replacing and deleting documents.
		if err := db.ReplaceChunks(a.ctx, d1.ID, textChunks("only wind here")); err != nil {
			t.Fatal(err)
		}
		check(append([]string{"only wind here"}, more...), "solar", "wind farms", "deserts sea")
		if _, err := db.DeleteDocument(a.ctx, d2.ID); err != nil {
			t.Fatal(err)
		}
		check([]string{"only wind here"}, "solar", "wind farms", "deserts sea")
		if v, cached := store.CachedTerms(db, kb.ID); v <= v2 || len(cached) < 5 {
			t.Fatalf("after the changes: version %d, cached %q", v, cached)
		}
	})
}

// TestWarmSearchCache: warming reads the lists of each knowledge base's
// most frequent terms into the cache, and searches then answer the same.
func TestWarmSearchCache(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		kb := mustCreateKB(t, db, a, "warm")
		d := mustCreateDoc(t, db, a, kb.ID, "one")
		texts := []string{"solar solar wind", "solar panels", "wind farms", "solar farms at sea"}
		if err := db.ReplaceChunks(a.ctx, d.ID, textChunks(texts...)); err != nil {
			t.Fatal(err)
		}
		kbB := mustCreateKB(t, db, b, "other")
		dB := mustCreateDoc(t, db, b, kbB.ID, "two")
		if err := db.ReplaceChunks(b.ctx, dB.ID, textChunks("moon rocks", "moon dust")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.WarmSearchCache(a.ctx, 2); err == nil {
			t.Fatal("warming in one tenant's scope: no error")
		}
		n, err := db.WarmSearchCache(allTenants, 2)
		if err != nil || n != 4 {
			t.Fatalf("warmed %d lists, %v; want 2 per knowledge base", n, err)
		}
		// solar (3 chunks), then farm and wind (2 each): farm by name.
		if _, cached := store.CachedTerms(db, kb.ID); !slices.Equal(cached, []string{"farm", "solar"}) {
			t.Errorf("A's cached terms %q, want farm and solar", cached)
		}
		if _, cached := store.CachedTerms(db, kbB.ID); !slices.Equal(cached, []string{"dust", "moon"}) {
			t.Errorf("B's cached terms %q", cached)
		}
		ref := memCorpus(texts)
		for _, q := range []string{"solar farms", "wind", "sea panels"} {
			got := search(t, db, a.ctx, kb.ID, q, 10)
			want, _ := fulltext.Search(a.ctx, ref, fulltext.Query{Text: q, Limit: 10}, fulltext.DefaultParams)
			if len(got) != len(want) {
				t.Fatalf("%q after warming: %q", q, hitTexts(got))
			}
			for i := range got {
				if math.Abs(got[i].Score-want[i].Score) > 1e-9 {
					t.Errorf("%q hit %d: %.6f, want %.6f", q, i, got[i].Score, want[i].Score)
				}
			}
		}
	})
}
