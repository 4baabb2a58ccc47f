package knowledge_test

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// conceptEmbedder embeds a text as counts of its words over 64
// dimensions, synonyms sharing one: a vector search finds "automobile" in
// a passage about a car, which full text cannot. It records its calls and
// fails while fail is set.
type conceptEmbedder struct {
	mu    sync.Mutex
	calls [][]string // the texts of each call
	fail  error
	bad   func(texts []string) [][]float32 // a malformed answer, when set
}

var concepts = map[string]int{"car": 0, "automobile": 0, "vehicle": 0, "doctor": 1, "physician": 1,
	"happy": 2, "joyful": 2, "ocean": 3, "sea": 3}

func conceptVector(text string) []float32 {
	v := make([]float32, 64)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if i, ok := concepts[w]; ok {
			v[i] += 3
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(w))
		v[8+h.Sum32()%56]++
	}
	return v
}

func (c *conceptEmbedder) Embed(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return nil, c.fail
	}
	c.calls = append(c.calls, slices.Clone(texts))
	if c.bad != nil {
		return c.bad(texts), nil
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = conceptVector(t)
	}
	return out, nil
}

func (c *conceptEmbedder) embedded() (calls, texts int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, call := range c.calls {
		texts += len(call)
	}
	return len(c.calls), texts
}

func (c *conceptEmbedder) reset(fail error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls, c.fail, c.bad = nil, fail, nil
}

// withEmbeddings gives the env's knowledge base an embedding model, hybrid
// search and small chunks.
func (e *env) withEmbeddings(t *testing.T) {
	t.Helper()
	kb, err := e.db.UpdateKnowledgeBase(e.a.ctx, e.kb.ID, func(kb *knowledge.KnowledgeBase) error {
		kb.EmbeddingModel = "emb"
		kb.Retrieval.Mode = knowledge.ModeHybrid
		kb.Chunking = knowledge.ChunkingSettings{Size: 50, Overlap: 0}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.kb = kb
}

var passages = []string{
	"The car needs new tyres before the long drive to the coast next week.",
	"A physician examined the patient and prescribed rest and fluids.",
	"The children were happy to see snow falling over the village.",
	"Waves crashed against the cliffs as the storm moved over the sea.",
}

// longDoc is passages repeated into a document of several chunks.
func longDoc() string {
	var b strings.Builder
	for i := range 3 {
		for _, p := range passages {
			fmt.Fprintf(&b, "%s Paragraph %d.\n\n", p, i)
		}
	}
	return b.String()
}

func TestIngestEmbeds(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		e.withEmbeddings(t)
		emb := &conceptEmbedder{}
		svc := e.service(t, nil, func(c *knowledge.Config) { c.Embedder = emb; c.EmbedBatch = 2 })
		ctx := context.Background()
		var docs []knowledge.Document
		for i, p := range passages {
			d := e.upload(t, fmt.Sprintf("p%d.txt", i), "text", []byte(p))
			if err := svc.Ingest(ctx, e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
				t.Fatal(err)
			}
			e.wantOneSet(t, d.ID)
			docs = append(docs, d)
		}
		long := e.upload(t, "long.txt", "text", []byte(longDoc()))
		emb.reset(nil)
		if err := svc.Ingest(ctx, e.a.id, long.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		cs := e.wantOneSet(t, long.ID)
		calls, texts := emb.embedded()
		if len(cs) < 3 || texts != len(cs) || calls != (len(cs)+1)/2 {
			t.Fatalf("%d chunks embedded as %d texts in %d calls, want batches of 2", len(cs), texts, calls)
		}

		m := knowledge.Manager{TenantID: e.a.id, UserID: "u1"}
		search := func(mode, query string, k int) *knowledge.SearchResult {
			t.Helper()
			res, err := svc.Search(ctx, m, e.kb.ID, knowledge.SearchInput{Query: query, Mode: mode, TopK: k})
			if err != nil {
				t.Fatalf("%s search %q: %v", mode, query, err)
			}
			if res.Mode != mode {
				t.Fatalf("%s search ranked by %s", mode, res.Mode)
			}
			return res
		}
		// A synonym: full text finds nothing, vector and hybrid search
		// find the passage about the car first.
		if res := search(knowledge.ModeFullText, "automobile", 5); len(res.Hits) != 0 {
			t.Fatalf("full text found %d hits for a word no passage has", len(res.Hits))
		}
		for _, mode := range []string{knowledge.ModeVector, knowledge.ModeHybrid} {
			res := search(mode, "automobile", 3)
			if len(res.Hits) == 0 || !strings.Contains(res.Hits[0].Text, "car needs new tyres") ||
				res.Hits[0].VectorScore == nil || *res.Hits[0].VectorScore <= 0 {
				t.Fatalf("%s search for automobile: %+v", mode, res.Hits)
			}
		}
		// Hybrid scores lie in 0..1 and name each side's score.
		res := search(knowledge.ModeHybrid, "physician patient", 4)
		if len(res.Hits) == 0 || !strings.Contains(res.Hits[0].Text, "physician") ||
			res.Hits[0].FullTextScore == nil || res.Hits[0].VectorScore == nil {
			t.Fatalf("hybrid search: %+v", res.Hits)
		}
		for _, h := range res.Hits {
			if h.Score < 0 || h.Score > 1 {
				t.Fatalf("hybrid score %v outside 0..1", h.Score)
			}
		}
		if !slices.IsSortedFunc(res.Hits, func(a, b knowledge.SearchHit) int { return cmp.Compare(b.Score, a.Score) }) {
			t.Fatal("hybrid hits are not best first")
		}

		// Re-indexing keeps every passage's text, so nothing is embedded
		// again: the stored vectors are reused.
		emb.reset(nil)
		for _, d := range append(docs, long) {
			if err := svc.Ingest(ctx, e.a.id, d.ID, knowledge.IngestOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			e.wantOneSet(t, d.ID)
		}
		if calls, _ := emb.embedded(); calls != 0 {
			t.Fatalf("re-indexing unchanged text made %d embedding calls", calls)
		}
		if res := search(knowledge.ModeVector, "automobile", 1); len(res.Hits) != 1 {
			t.Fatal("vectors lost by re-indexing")
		}

		// Deleting a document takes its vectors with it.
		if _, err := e.db.DeleteDocument(e.a.ctx, docs[0].ID); err != nil {
			t.Fatal(err)
		}
		for _, h := range search(knowledge.ModeVector, "automobile", 20).Hits {
			if h.DocumentID == docs[0].ID {
				t.Fatal("a deleted document's vector was found")
			}
		}
	})
}

func TestIngestEmbeddingFailures(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		e.withEmbeddings(t)
		emb := &conceptEmbedder{}
		svc := e.service(t, nil, func(c *knowledge.Config) { c.Embedder = emb })
		ctx := context.Background()

		// The model is down: the document fails at the embedding stage
		// with the gateway's message, and a retry once it is back
		// completes it with one set of chunks.
		emb.reset(nodus.Errorf(nodus.EUNAVAILABLE, "embedding model emb: the upstream is unavailable"))
		d := e.upload(t, "down.txt", "text", []byte(passages[0]))
		err := svc.Ingest(ctx, e.a.id, d.ID, knowledge.IngestOptions{})
		wantCode(t, "ingest with the model down", err, nodus.EUNAVAILABLE)
		e.wantFailed(t, d, knowledge.StageEmbedding)
		if got := e.find(t, d.ID); !strings.Contains(got.Error, "upstream is unavailable") {
			t.Fatalf("error %q does not say why", got.Error)
		}
		emb.reset(nil)
		if _, err := svc.RetryDocument(ctx, e.a.id, d.ID); err != nil {
			t.Fatal(err)
		}
		if err := svc.Ingest(ctx, e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		e.wantOneSet(t, d.ID)

		// Malformed answers fail the document, readably.
		bad := map[string]func([]string) [][]float32{
			"too few vectors": func([]string) [][]float32 { return nil },
			"a zero vector":   func(in []string) [][]float32 { return [][]float32{make([]float32, 8)} },
			"mixed sizes": func(in []string) [][]float32 {
				out := make([][]float32, len(in))
				for i := range in {
					out[i] = make([]float32, 8+i)
					out[i][0] = 1
				}
				return out
			},
		}
		for name, answer := range bad {
			emb.reset(nil)
			emb.bad = answer
			text := passages[1]
			if name == "mixed sizes" {
				text = longDoc()
			}
			d := e.upload(t, name+".txt", "text", []byte(text+" "+name))
			if err := svc.Ingest(ctx, e.a.id, d.ID, knowledge.IngestOptions{}); err == nil {
				t.Fatalf("%s: ingested", name)
			}
			e.wantFailed(t, d, knowledge.StageEmbedding)
		}

		// Without a gateway the document says so.
		plain := e.service(t, nil, nil)
		d = e.upload(t, "nogateway.txt", "text", []byte(passages[2]))
		err = plain.Ingest(ctx, e.a.id, d.ID, knowledge.IngestOptions{})
		wantCode(t, "ingest without a gateway", err, nodus.EUNAVAILABLE)
		e.wantFailed(t, d, knowledge.StageEmbedding)

		// A search whose query cannot be embedded: hybrid falls back to
		// full text and says so, vector search fails.
		m := knowledge.Manager{TenantID: e.a.id, UserID: "u1"}
		emb.reset(nodus.Errorf(nodus.ETIMEOUT, "embedding model emb: timed out"))
		res, err := svc.Search(ctx, m, e.kb.ID, knowledge.SearchInput{Query: "car tyres"})
		if err != nil || res.Mode != knowledge.ModeFullText || !strings.Contains(res.Warning, "timed out") || len(res.Hits) == 0 {
			t.Fatalf("hybrid search with the model down: %+v, %v", res, err)
		}
		_, err = svc.Search(ctx, m, e.kb.ID, knowledge.SearchInput{Query: "car tyres", Mode: knowledge.ModeVector})
		wantCode(t, "vector search with the model down", err, nodus.ETIMEOUT)
		emb.reset(nil)

		// Vector search of a knowledge base without a model is refused.
		kb, err := e.db.UpdateKnowledgeBase(e.a.ctx, e.kb.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.EmbeddingModel, kb.Retrieval.Mode = "", knowledge.ModeFullText
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.Search(ctx, m, kb.ID, knowledge.SearchInput{Query: "car", Mode: knowledge.ModeVector})
		wantCode(t, "vector search without a model", err, nodus.EINVALID)
		for _, in := range []knowledge.SearchInput{{Query: "car", Mode: "semantic"},
			{Query: "car", HybridWeight: ptrTo(1.5)}} {
			_, err := svc.Search(ctx, m, kb.ID, in)
			wantCode(t, fmt.Sprintf("search %+v", in), err, nodus.EINVALID)
		}
	})
}

func ptrTo(f float64) *float64 { return &f }
