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

	db      *store.DB
	svc     *knowledge.Service
	manager knowledge.Manager
	kb      *knowledge.KnowledgeBase
}

// retrievalFigures are what a run measured.
type retrievalFigures struct {
	docs, dups, failed, chunks int
	bytes                      int64
	ingest                     time.Duration
	queries                    int
	latencies                  []time.Duration
	report                     eval.Report
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
	e.svc, err = knowledge.NewService(knowledge.Config{Store: db, Blobs: blobs})
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
	e.kb, err = e.svc.CreateKnowledgeBase(ctx, e.manager, knowledge.KnowledgeBaseInput{Name: &name})
	if err != nil {
		return err
	}

	var fig retrievalFigures
	byDoc, err := e.ingest(ctx, &fig)
	if err != nil {
		return err
	}
	run, err := e.search(ctx, queries, qrels, byDoc, &fig)
	if err != nil {
		return err
	}
	fig.report = eval.Evaluate(qrels, run, eval.Options{})
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
func (e *retrievalEval) search(ctx context.Context, queries []eval.Query, qrels eval.Qrels, byDoc map[string]string, fig *retrievalFigures) (map[string][]string, error) {
	run := make(map[string][]string)
	for _, q := range queries {
		if _, ok := qrels[q.ID]; !ok {
			continue
		}
		if e.maxQueries > 0 && fig.queries == e.maxQueries {
			break
		}
		began := time.Now()
		res, err := e.svc.Search(ctx, e.manager, e.kb.ID, knowledge.SearchInput{Query: q.Text, TopK: e.topK})
		if err != nil && nodus.ErrorCode(err) != nodus.EINVALID {
			return nil, fmt.Errorf("query %s: %w", q.ID, err)
		}
		fig.latencies = append(fig.latencies, time.Since(began))
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
	lat := slices.Clone(f.latencies)
	slices.Sort(lat)
	fmt.Fprintf(w, "Search     p50 %s, p99 %s, max %s (top %d, sequential)\n", percentile(lat, 0.50),
		percentile(lat, 0.99), percentile(lat, 1), e.topK)
	fmt.Fprintf(w, "\n%-12s %8s\n", "metric", "full-text")
	fmt.Fprintf(w, "%-12s %8.4f\n", "nDCG@10", f.report.Mean.NDCG10)
	fmt.Fprintf(w, "%-12s %8.4f\n", "Recall@100", f.report.Mean.Recall100)
	fmt.Fprintf(w, "%-12s %8.4f\n", "MRR@10", f.report.Mean.MRR10)
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
