package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/vector"
)

// `bench vectors` measures vector and hybrid search on knowledge bases of
// growing size, on SQLite and (with -postgres) PostgreSQL. Each chunk has
// Zipf text, as `bench search` writes, and a vector drawn from a mixture
// of Gaussian clusters (real embeddings cluster by topic; uniform noise
// would be the worst case for an approximate index and like no corpus).
// Rows are written through the store as ingestion writes them. Queries
// are drawn the same way; the bench hands the knowledge service each
// query's vector in place of an embedding model, so what is timed is
// Nodus alone: the store call, the ranking and the snippets.
//
// For each size it reports: the first search (the vectors loaded from the
// database), exact search, the approximate (HNSW) index's build time,
// latency and recall@10 against exact search, a restart's first search
// and recall through the saved graph (a new handle on the same database,
// once the built graph is saved), and hybrid search through the
// knowledge service as the API calls it.

type vectorBench struct {
	sizes    []int
	dim      int
	words    int
	queries  int
	pgURL    string
	noSQLite bool
	out      io.Writer
}

func runVectors(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vectors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "5000,100000", "knowledge base sizes to measure, in chunks")
	dim := fs.Int("dim", 384, "dimensions of the vectors (all-MiniLM-L6-v2 and bge-small give 384, OpenAI's small model 1536)")
	words := fs.Int("words", 150, "words per chunk")
	queries := fs.Int("queries", 300, "searches per size and kind")
	pgURL := fs.String("postgres", os.Getenv("NODUS_TEST_POSTGRES_URL"), "PostgreSQL URL to measure too: its main migrations are applied, and the bench's rows removed after")
	skipSQLite := fs.Bool("no-sqlite", false, "measure PostgreSQL only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b := &vectorBench{dim: *dim, words: *words, queries: *queries, pgURL: *pgURL, noSQLite: *skipSQLite, out: stdout}
	for _, s := range strings.Split(*sizes, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			return fmt.Errorf("bad size %q", s)
		}
		b.sizes = append(b.sizes, n)
	}
	if b.dim < 2 || b.dim > knowledge.MaxEmbeddingDim {
		return fmt.Errorf("-dim must be 2 to %d", knowledge.MaxEmbeddingDim)
	}
	return b.run(ctx)
}

type vectorRow struct {
	engine         string
	chunks         int
	build          time.Duration // writing the rows
	load           time.Duration // the first search: vectors read from the database
	exact          searchLatency
	hnswBuild      time.Duration // 0 when the size is searched exactly
	approx         searchLatency
	recall         float64
	hybrid         searchLatency
	cacheMiB       float64
	approximateUse bool
	// After a restart: the first search (vectors read, the saved HNSW
	// graph loaded and caught up), and recall@10 through the loaded graph.
	restartLoad   time.Duration
	restartRecall float64
}

func (b *vectorBench) run(ctx context.Context) error {
	engines := benchEngines(b.noSQLite, b.pgURL)
	var rows []vectorRow
	for _, engine := range engines {
		for _, size := range b.sizes {
			row, err := b.measure(ctx, engine, size)
			if err != nil {
				return fmt.Errorf("%s at %d chunks: %w", engine, size, err)
			}
			rows = append(rows, row)
			fmt.Fprintf(b.out, "  %s, %d chunks: load %s, exact p50 %s p99 %s, hnsw p50 %s p99 %s recall %.3f, hybrid p50 %s p99 %s\n",
				engine, size, row.load.Round(time.Millisecond), row.exact.p50, row.exact.p99, row.approx.p50, row.approx.p99,
				row.recall, row.hybrid.p50, row.hybrid.p99)
		}
	}
	w := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\nengine\tchunks\tdim\twritten in\tfirst search\texact p50\texact p99\tHNSW built in\tHNSW p50\tHNSW p99\trecall@10\trestart: first search\trestart: recall@10\thybrid p50\thybrid p99\tmemory\t\n")
	for _, r := range rows {
		approx, built, recall, restart := "-", "-", "-", "-\t-"
		if r.approximateUse {
			approx = fmt.Sprintf("%s\t%s", r.approx.p50, r.approx.p99)
			built = fmt.Sprintf("%.1fs", r.hnswBuild.Seconds())
			recall = fmt.Sprintf("%.3f", r.recall)
			restart = fmt.Sprintf("%s\t%.3f", r.restartLoad.Round(time.Millisecond), r.restartRecall)
		} else {
			approx = "-\t-"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%.1fs\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f MiB\t\n", r.engine, r.chunks, b.dim,
			r.build.Seconds(), r.load.Round(time.Millisecond), r.exact.p50, r.exact.p99, built, approx, recall, restart,
			r.hybrid.p50, r.hybrid.p99, r.cacheMiB)
	}
	return w.Flush()
}

// clusters draws vectors from a mixture of Gaussians.
type clusters struct {
	centres [][]float32
	rng     *rand.Rand
}

func newClusters(n, dim int, seed uint64) *clusters {
	rng := rand.New(rand.NewPCG(42, 42)) // the same centres for data and queries
	c := &clusters{centres: make([][]float32, n), rng: rand.New(rand.NewPCG(seed, 3))}
	for i := range c.centres {
		c.centres[i] = make([]float32, dim)
		for j := range c.centres[i] {
			c.centres[i][j] = float32(rng.NormFloat64())
		}
	}
	return c
}

func (c *clusters) next() []float32 {
	centre := c.centres[c.rng.IntN(len(c.centres))]
	v := make([]float32, len(centre))
	for j := range v {
		v[j] = centre[j] + float32(0.8*c.rng.NormFloat64())
	}
	vector.Normalize(v)
	return v
}

func (b *vectorBench) measure(ctx context.Context, engine string, size int) (vectorRow, error) {
	row := vectorRow{engine: engine, chunks: size}
	const model = "bench-embedding"
	bk, err := openBenchKB(ctx, engine, b.pgURL, func(kb *knowledge.KnowledgeBase) {
		kb.EmbeddingModel = model
		kb.Retrieval.Mode, kb.Retrieval.TopK = knowledge.ModeHybrid, 10
	})
	if err != nil {
		return row, err
	}
	defer bk.close()
	db, url, tctx, kb, tenant := bk.db, bk.url, bk.ctx, bk.kb, bk.tenant
	gen := newZipfText(50000, 42)
	vecs := newClusters(200, b.dim, 1)
	began := time.Now()
	err = bk.fill(size, func(j int) knowledge.Chunk {
		text := gen.text(b.words)
		return knowledge.Chunk{Index: j, Text: text, End: len(text), Tokens: b.words, Terms: fulltext.Analyze(text),
			Embedding: &knowledge.Embedding{Model: model, TextHash: knowledge.EmbeddingTextHash(text), Vector: vecs.next()}}
	})
	if err != nil {
		return row, err
	}
	row.build = time.Since(began)

	qgen, qvecs := newZipfText(50000, 7), newClusters(200, b.dim, 9)
	type query struct {
		text string
		vec  []float32
	}
	queries := make([]query, b.queries)
	byText := make(map[string][]float32, len(queries))
	for i := range queries {
		queries[i] = query{text: fmt.Sprintf("%s q%d", qgen.text(3+i%10), i), vec: qvecs.next()}
		byText[queries[i].text] = queries[i].vec
	}

	// Exact search: a handle that never builds an approximate index.
	exactDB, err := store.Open(ctx, store.Config{URL: url, ExactVectors: math.MaxInt32})
	if err != nil {
		return row, err
	}
	defer exactDB.Close()
	search := func(on *store.DB, q []float32) ([]knowledge.ChunkHit, error) {
		return on.Retrieve(tctx, kb.ID, func(_ knowledge.KnowledgeBase, ix knowledge.Indexes) ([]knowledge.Ranked, error) {
			hits, err := ix.Vectors.Search(tctx, model, q, 10)
			out := make([]knowledge.Ranked, len(hits))
			for i, h := range hits {
				out[i] = knowledge.Ranked{ChunkID: h.ChunkID, Score: h.Score}
			}
			return out, err
		})
	}
	t0 := time.Now()
	if _, err := search(exactDB, queries[0].vec); err != nil {
		return row, err
	}
	row.load = time.Since(t0)
	exact := make([][]string, len(queries))
	row.exact, err = timeQueries(len(queries), func(i int) (int, error) {
		exact[i] = exact[i][:0]
		hits, err := search(exactDB, queries[i].vec)
		for _, h := range hits {
			exact[i] = append(exact[i], h.ID)
		}
		return len(hits), err
	})
	if err != nil {
		return row, fmt.Errorf("exact: %w", err)
	}

	// The approximate index, built in the background once the vectors
	// outgrow the default exact limit.
	row.approximateUse = size > store.DefaultExactVectors
	if row.approximateUse {
		t0 = time.Now()
		if _, err := search(db, queries[0].vec); err != nil {
			return row, err
		}
		for !approximate(db, kb.ID) {
			if time.Since(t0) > 30*time.Minute {
				return row, fmt.Errorf("the HNSW index was not built in 30 minutes")
			}
			time.Sleep(20 * time.Millisecond)
		}
		row.hnswBuild = time.Since(t0)
		found, total := 0, 0
		row.approx, err = timeQueries(len(queries), func(i int) (int, error) {
			hits, err := search(db, queries[i].vec)
			for _, h := range hits {
				if slices.Contains(exact[i], h.ID) {
					found++
				}
			}
			total += len(exact[i])
			return len(hits), err
		})
		if err != nil {
			return row, fmt.Errorf("approximate: %w", err)
		}
		row.recall = float64(found) / float64(max(total, 1))
		if err := b.restart(ctx, &row, url, kb.ID, db, exact, func(on *store.DB, i int) ([]knowledge.ChunkHit, error) {
			return search(on, queries[i].vec)
		}); err != nil {
			return row, fmt.Errorf("restart: %w", err)
		}
	}
	// Hybrid search through the knowledge service, as the API calls it,
	// the query's vector handed over in place of an embedding model.
	blobs, err := blob.NewLocal(filepath.Join(os.TempDir(), "nodus-bench-vectors-blobs"))
	if err != nil {
		return row, err
	}
	defer blobs.Close()
	svc, err := knowledge.NewService(knowledge.Config{Store: db, Blobs: blobs,
		Embedder: knowledge.EmbedFunc(func(_ context.Context, _, _ string, texts []string) ([][]float32, error) {
			out := make([][]float32, len(texts))
			for i, t := range texts {
				out[i] = slices.Clone(byText[t])
			}
			return out, nil
		})})
	if err != nil {
		return row, err
	}
	mgr := knowledge.Manager{TenantID: tenant}
	// Two passes, the second timed: the first reads the full-text posting
	// lists cold (bench search measures that).
	for pass := range 2 {
		row.hybrid, err = timeQueries(len(queries), func(i int) (int, error) {
			res, err := svc.Search(ctx, mgr, kb.ID, knowledge.SearchInput{Query: queries[i].text})
			if err != nil {
				return 0, err
			}
			if res.Mode != knowledge.ModeHybrid {
				return 0, fmt.Errorf("searched by %s", res.Mode)
			}
			return len(res.Hits), nil
		})
		if err != nil {
			return row, fmt.Errorf("hybrid, pass %d: %w", pass+1, err)
		}
	}
	for _, s := range db.VectorCacheStats() {
		row.cacheMiB = float64(s.Bytes) / (1 << 20) // the index a server keeps
	}
	return row, nil
}

// restart measures a process that starts after the HNSW graph was saved:
// the time of its first search, and its recall against exact search
// (exact[i] holds the ids exact search found for query i).
func (b *vectorBench) restart(ctx context.Context, row *vectorRow, url, kbID string, db *store.DB, exact [][]string,
	search func(on *store.DB, i int) ([]knowledge.ChunkHit, error)) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var n int
		all := nodus.WithAllTenants(ctx)
		err := db.Read(all, func(tx *store.Tx) error {
			return tx.QueryRow(all, `SELECT count(*) FROM kb_vector_graphs WHERE knowledge_base_id = ?`, kbID).Scan(&n)
		})
		if err != nil {
			return err
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the HNSW graph was not saved in 5 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	restarted, err := store.Open(ctx, store.Config{URL: url})
	if err != nil {
		return err
	}
	defer restarted.Close()
	t0 := time.Now()
	if _, err := search(restarted, 0); err != nil {
		return err
	}
	row.restartLoad = time.Since(t0)
	if !approximate(restarted, kbID) {
		return fmt.Errorf("the first search after a restart was not through the saved graph")
	}
	found, total := 0, 0
	for i := range exact {
		hits, err := search(restarted, i)
		if err != nil {
			return err
		}
		for _, h := range hits {
			if slices.Contains(exact[i], h.ID) {
				found++
			}
		}
		total += len(exact[i])
	}
	row.restartRecall = float64(found) / float64(max(total, 1))
	return nil
}

// timeQueries runs n searches one after another and returns their
// latency.
func timeQueries(n int, search func(i int) (int, error)) (searchLatency, error) {
	lat := make([]time.Duration, 0, n)
	hits := 0
	for i := range n {
		t0 := time.Now()
		h, err := search(i)
		if err != nil {
			return searchLatency{}, err
		}
		lat = append(lat, time.Since(t0))
		hits += h
	}
	return latencyOf(lat, float64(hits)/float64(n)), nil
}

// approximate reports whether db searches the knowledge base's vectors
// through an HNSW index yet.
func approximate(db *store.DB, kbID string) bool {
	for _, s := range db.VectorCacheStats() {
		if s.KnowledgeBaseID == kbID && s.Approximate {
			return true
		}
	}
	return false
}
