package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/retrieval/eval"
	"github.com/nodus-os/nodus/internal/store"
)

// evalCmd is `nodus eval retrieval DIR`: it loads a BEIR-layout dataset
// into a scratch knowledge base through the real pipeline (upload, blob
// store, extraction, chunking, indexing), runs every query of a split
// through the real search, and prints nDCG@10, Recall@100 and MRR@10 with
// the ingestion throughput and the search latency.
func evalCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", "", "the database to load into: postgres://… (a scratch tenant, removed after) or sqlite:PATH; default a scratch SQLite file")
	split := fs.String("split", "", "the qrels split to evaluate (default test, or the only split)")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "documents ingested in parallel")
	maxQueries := fs.Int("queries", 0, "evaluate only the first N queries of the split (0: all)")
	keep := fs.Bool("keep", false, "keep the scratch knowledge base (and SQLite file) for inspection")
	topK := fs.Int("top-k", knowledge.MaxTopK, "chunks each search returns (Recall@100 needs 100)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	embURL := fs.String("embedding-url", "", "an OpenAI-compatible API (…/v1) to embed with: the knowledge base gets --embedding-model and vector and hybrid search are measured too")
	embModel := fs.String("embedding-model", "", "the embedding model to ask --embedding-url for")
	embKeyEnv := fs.String("embedding-key-env", "", "the environment variable holding --embedding-url's API key, if it needs one")
	weights := fs.String("hybrid-weights", "0.3,0.5,0.7", "the vector side's shares to measure hybrid search at")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: nodus eval retrieval [flags] DIR\n\nDIR holds corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv (BEIR layout).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return errUsage{"eval needs a subcommand: retrieval"}
	case pos[0] != "retrieval":
		return errUsage{fmt.Sprintf("unknown eval subcommand %q", pos[0])}
	case len(pos) != 2:
		return errUsage{"eval retrieval needs exactly one dataset directory"}
	case *workers < 1:
		return errUsage{"--workers must be at least 1"}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	e := &retrievalEval{dir: eval.Dir(pos[1]), split: *split, workers: *workers, maxQueries: *maxQueries,
		topK: *topK, keep: *keep, out: stdout}
	e.modes = []evalMode{{label: "full-text", mode: knowledge.ModeFullText}}
	if *embURL != "" || *embModel != "" {
		if *embURL == "" || *embModel == "" {
			return errUsage{"--embedding-url and --embedding-model go together"}
		}
		key := ""
		if *embKeyEnv != "" {
			key = os.Getenv(*embKeyEnv)
		}
		e.embedder = newEvalEmbedder(*embURL, *embModel, key)
		e.modes = append(e.modes, evalMode{label: "vector", mode: knowledge.ModeVector})
		for _, w := range strings.Split(*weights, ",") {
			var f float64
			if _, err := fmt.Sscan(strings.TrimSpace(w), &f); err != nil || f < 0 || f > 1 {
				return errUsage{fmt.Sprintf("--hybrid-weights: %q is not a share from 0 to 1", w)}
			}
			e.modes = append(e.modes, evalMode{label: fmt.Sprintf("hybrid %.2g", f), mode: knowledge.ModeHybrid, weight: f})
		}
	}
	return e.run(ctx, *dbURL)
}

type retrievalEval struct {
	dir        eval.Dir
	split      string
	workers    int
	maxQueries int
	topK       int
	keep       bool
	out        io.Writer
	modes      []evalMode    // full text, then vector and hybrid with an embedder
	embedder   *evalEmbedder // nil for full text only

	db      *store.DB
	svc     *knowledge.Service
	manager knowledge.Manager
	kb      *knowledge.KnowledgeBase
}

// evalMode is one way the queries are searched.
type evalMode struct {
	label  string
	mode   string
	weight float64 // hybrid's vector share
}

// retrievalFigures are what a run measured.
type retrievalFigures struct {
	docs, dups, failed, chunks int
	bytes                      int64
	ingest                     time.Duration
	queries                    int
	// By mode, in the order of retrievalEval.modes.
	latencies [][]time.Duration
	reports   []eval.Report
}

func (e *retrievalEval) run(ctx context.Context, dbURL string) error {
	split, err := e.pickSplit()
	if err != nil {
		return err
	}
	qrels, err := e.dir.Qrels(split)
	if err != nil {
		return err
	}
	queries, err := e.dir.Queries()
	if err != nil {
		return err
	}

	scratch, err := os.MkdirTemp("", "nodus-eval-")
	if err != nil {
		return err
	}
	if e.keep {
		fmt.Fprintf(e.out, "scratch files kept in %s\n", scratch)
	} else {
		defer os.RemoveAll(scratch)
	}
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(scratch, "nodus.db")
	}
	db, err := store.Open(ctx, store.Config{URL: dbURL, PoolSize: e.workers + 4})
	if err != nil {
		return err
	}
	defer db.Close()
	e.db = db
	m, err := store.NewMigrator(store.SetMain, db)
	if err != nil {
		return err
	}
	if _, err := m.Up(ctx); err != nil {
		return fmt.Errorf("migrating %s: %w", db.Dialect(), err)
	}
	blobs, err := blob.NewLocal(filepath.Join(scratch, "blobs"))
	if err != nil {
		return err
	}
	defer blobs.Close()
	cfg := knowledge.Config{Store: db, Blobs: blobs}
	if e.embedder != nil {
		cfg.Embedder = e.embedder
	}
	e.svc, err = knowledge.NewService(cfg)
	if err != nil {
		return err
	}
	// A tenant of its own: knowledge rows need no tenant row, and
	// PurgeTenant removes them all afterwards.
	e.manager = knowledge.Manager{TenantID: nodus.NewID(), UserID: "nodus-eval", Admin: true}
	if !e.keep {
		defer func() {
			if err := e.svc.PurgeTenant(context.WithoutCancel(ctx), e.manager.TenantID); err != nil {
				fmt.Fprintf(e.out, "warning: removing the scratch knowledge base: %v\n", err)
			}
		}()
	}
	name := "eval " + filepath.Base(string(e.dir))
	in := knowledge.KnowledgeBaseInput{Name: &name}
	if e.embedder != nil {
		in.EmbeddingModel = &e.embedder.model
	}
	e.kb, err = e.svc.CreateKnowledgeBase(ctx, e.manager, in)
	if err != nil {
		return err
	}

	var fig retrievalFigures
	byDoc, err := e.ingest(ctx, &fig)
	if err != nil {
		return err
	}
	for i, m := range e.modes {
		fig.queries = 0
		fig.latencies = append(fig.latencies, nil)
		run, err := e.search(ctx, m, queries, qrels, byDoc, &fig.latencies[i], &fig)
		if err != nil {
			return fmt.Errorf("%s search: %w", m.label, err)
		}
		fig.reports = append(fig.reports, eval.Evaluate(qrels, run, eval.Options{}))
	}
	e.print(db.Dialect().String(), split, &fig)
	return nil
}

// pickSplit is the split asked for, else test, else the only one.
func (e *retrievalEval) pickSplit() (string, error) {
	if e.split != "" {
		return e.split, nil
	}
	if _, err := os.Stat(string(e.dir)); err != nil {
		return "", fmt.Errorf("the dataset directory: %w", err)
	}
	splits, err := e.dir.Splits()
	if err != nil {
		return "", err
	}
	switch {
	case len(splits) == 0:
		return "", fmt.Errorf("%s has no SPLIT.tsv files: not a BEIR dataset", filepath.Join(string(e.dir), "qrels"))
	case slices.Contains(splits, "test"):
		return "test", nil
	case len(splits) == 1:
		return splits[0], nil
	}
	return "", errUsage{fmt.Sprintf("the dataset has splits %s: choose one with --split", strings.Join(splits, ", "))}
}

// ingest uploads every corpus document as a text file and ingests it,
// workers at a time, and returns the corpus id of each document id.
func (e *retrievalEval) ingest(ctx context.Context, fig *retrievalFigures) (map[string]string, error) {
	type job struct{ corpusID, body string }
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		byDoc    = make(map[string]string)
		firstErr error
		done     atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	began := time.Now()
	var wg sync.WaitGroup
	for range e.workers {
		wg.Go(func() {
			for j := range jobs {
				doc, err := e.svc.UploadDocument(ctx, e.manager, e.kb.ID, knowledge.UploadInput{
					OriginalFilename: j.corpusID + ".txt", DeclaredType: "text/plain",
					Body: strings.NewReader(j.body), Limit: int64(len(j.body)),
					Metadata: map[string]json.RawMessage{"corpus_id": mustJSON(j.corpusID)}})
				if _, dup := knowledge.DuplicateOf(err); dup {
					mu.Lock()
					fig.dups++
					mu.Unlock()
					continue
				}
				if err != nil {
					fail(fmt.Errorf("uploading document %s: %w", j.corpusID, err))
					cancel()
					continue
				}
				err = e.svc.Ingest(ctx, e.manager.TenantID, doc.ID, knowledge.IngestOptions{})
				mu.Lock()
				byDoc[doc.ID] = j.corpusID
				fig.docs++
				fig.bytes += int64(len(j.body))
				if err != nil {
					fig.failed++
				}
				mu.Unlock()
				if n := done.Add(1); n%1000 == 0 {
					fmt.Fprintf(e.out, "  %d documents ingested (%.0f/s)\n", n, float64(n)/time.Since(began).Seconds())
				}
			}
		})
	}
	err := e.dir.Corpus(func(d eval.Document) error {
		body := d.Text
		if d.Title != "" {
			body = d.Title + "\n\n" + d.Text
		}
		if strings.TrimSpace(body) == "" {
			return nil
		}
		select {
		case jobs <- job{d.ID, body}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	fig.ingest = time.Since(began)
	if firstErr != nil {
		return nil, firstErr
	}
	if err != nil {
		return nil, err
	}
	n, err := e.db.CountChunks(nodus.WithTenant(ctx, e.manager.TenantID), e.kb.ID)
	if err != nil {
		return nil, err
	}
	fig.chunks = n
	return byDoc, nil
}

// search runs the queries of qrels through the knowledge base's search and
// returns each query's ranking of corpus ids.
func (e *retrievalEval) search(ctx context.Context, m evalMode, queries []eval.Query, qrels eval.Qrels, byDoc map[string]string, latencies *[]time.Duration, fig *retrievalFigures) (map[string][]string, error) {
	run := make(map[string][]string)
	for _, q := range queries {
		if _, ok := qrels[q.ID]; !ok {
			continue
		}
		if e.maxQueries > 0 && fig.queries == e.maxQueries {
			break
		}
		began := time.Now()
		in := knowledge.SearchInput{Query: q.Text, TopK: e.topK, Mode: m.mode}
		if m.mode == knowledge.ModeHybrid {
			in.HybridWeight = &m.weight
		}
		res, err := e.svc.Search(ctx, e.manager, e.kb.ID, in)
		if err != nil && nodus.ErrorCode(err) != nodus.EINVALID {
			return nil, fmt.Errorf("query %s: %w", q.ID, err)
		}
		if res != nil && res.Mode != m.mode {
			return nil, fmt.Errorf("query %s was searched by %s: %s", q.ID, res.Mode, res.Warning)
		}
		*latencies = append(*latencies, time.Since(began))
		fig.queries++
		// A document ranks where its best chunk does.
		var ranking []string
		seen := make(map[string]bool)
		if res != nil {
			for _, h := range res.Hits {
				if id := byDoc[h.DocumentID]; id != "" && !seen[id] {
					seen[id] = true
					ranking = append(ranking, id)
				}
			}
		}
		run[q.ID] = ranking
	}
	if e.maxQueries > 0 {
		// Score only the queries run.
		for id := range qrels {
			if _, ok := run[id]; !ok {
				delete(qrels, id)
			}
		}
	}
	return run, nil
}

func (e *retrievalEval) print(engine, split string, f *retrievalFigures) {
	w := e.out
	secs := f.ingest.Seconds()
	fmt.Fprintf(w, "\nDataset    %s (split %s, %d queries)\n", e.dir, split, f.queries)
	fmt.Fprintf(w, "Database   %s\n", engine)
	fmt.Fprintf(w, "Ingested   %d documents (%d duplicates skipped, %d failed), %d chunks, %.1f MB of text\n",
		f.docs, f.dups, f.failed, f.chunks, float64(f.bytes)/1e6)
	fmt.Fprintf(w, "Ingestion  %.1f s: %.0f documents/s, %.2f MB/s (%d workers)\n", secs, float64(f.docs)/secs,
		float64(f.bytes)/1e6/secs, e.workers)
	for i, m := range e.modes {
		lat := slices.Clone(f.latencies[i])
		slices.Sort(lat)
		note := ""
		if m.mode != knowledge.ModeFullText && i == 1 {
			note = ", each query embedded once by the model, its time included"
		} else if m.mode != knowledge.ModeFullText {
			note = ", the query's vector reused"
		}
		fmt.Fprintf(w, "Search     %-11s p50 %s, p99 %s, max %s (top %d, sequential%s)\n", m.label, percentile(lat, 0.50),
			percentile(lat, 0.99), percentile(lat, 1), e.topK, note)
	}
	fmt.Fprintf(w, "\n%-12s", "metric")
	for _, m := range e.modes {
		fmt.Fprintf(w, " %11s", m.label)
	}
	for _, metric := range []struct {
		name string
		of   func(eval.Scores) float64
	}{{"nDCG@10", func(m eval.Scores) float64 { return m.NDCG10 }},
		{"Recall@100", func(m eval.Scores) float64 { return m.Recall100 }},
		{"MRR@10", func(m eval.Scores) float64 { return m.MRR10 }}} {
		fmt.Fprintf(w, "\n%-12s", metric.name)
		for _, r := range f.reports {
			fmt.Fprintf(w, " %11.4f", metric.of(r.Mean))
		}
	}
	fmt.Fprintln(w)
}

// percentile of sorted durations, rounded for reading.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(p*float64(len(sorted)-1)+0.5))
	return sorted[i].Round(time.Microsecond)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(errors.New("eval: " + err.Error()))
	}
	return b
}
