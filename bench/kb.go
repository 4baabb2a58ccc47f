package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// benchKB is a scratch knowledge base of a tenant of its own, on a fresh
// SQLite file or on the PostgreSQL database the bench was given, for the
// search benchmarks (search.go, vectors.go).
type benchKB struct {
	url    string // the database's, for more handles on it
	db     *store.DB
	tenant string
	ctx    context.Context // scoped to the tenant
	kb     knowledge.KnowledgeBase
	close  func()
}

// openBenchKB opens the database of engine ("sqlite" or "postgres" at
// pgURL), applies the main migrations and creates the knowledge base,
// after change (nil for the defaults) has set it up. close removes the
// tenant's rows (PostgreSQL is shared) and the SQLite file.
func openBenchKB(ctx context.Context, engine, pgURL string, change func(*knowledge.KnowledgeBase)) (*benchKB, error) {
	b := &benchKB{url: pgURL}
	var cleanup []func()
	b.close = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	fail := func(err error) (*benchKB, error) {
		b.close()
		return nil, err
	}
	if engine == "sqlite" {
		dir, err := os.MkdirTemp("", "nodus-bench-kb-")
		if err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		b.url = "sqlite:" + filepath.Join(dir, "main.db")
	}
	db, err := store.Open(ctx, store.Config{URL: b.url})
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, func() { db.Close() })
	b.db = db
	m, err := store.NewMigrator(store.SetMain, db)
	if err != nil {
		return fail(err)
	}
	if _, err := m.Up(ctx); err != nil {
		return fail(err)
	}
	b.tenant = nodus.NewID()
	b.ctx = nodus.WithTenant(ctx, b.tenant)
	cleanup = append(cleanup, func() {
		db.DeleteKnowledgeTenant(nodus.WithTenant(context.WithoutCancel(ctx), b.tenant))
	})
	now := nodus.SystemClock{}.Now()
	b.kb = knowledge.KnowledgeBase{ID: nodus.NewID(), TenantID: b.tenant, Name: "bench", CreatedAt: now, UpdatedAt: now}
	b.kb.SetDefaults()
	if change != nil {
		change(&b.kb)
	}
	if err := db.CreateKnowledgeBase(b.ctx, b.kb); err != nil {
		return fail(err)
	}
	return b, nil
}

// fill writes size chunks made by chunk (given each chunk's index in its
// document), in documents of 100, through the store as ingestion writes
// them.
func (b *benchKB) fill(size int, chunk func(index int) knowledge.Chunk) error {
	now := nodus.SystemClock{}.Now()
	const perDoc = 100
	for i := 0; i < size; i += perDoc {
		d := knowledge.Document{ID: nodus.NewID(), TenantID: b.tenant, KnowledgeBaseID: b.kb.ID, Filename: "f",
			OriginalFilename: fmt.Sprintf("part-%d.txt", i), FileType: "text/plain", ContentHash: fmt.Sprintf("%064x", i),
			BlobID: nodus.NewID(), Status: knowledge.StatusPending, CreatedAt: now, UpdatedAt: now}
		if err := b.db.CreateDocument(b.ctx, d); err != nil {
			return err
		}
		chunks := make([]knowledge.Chunk, min(perDoc, size-i))
		for j := range chunks {
			chunks[j] = chunk(j)
		}
		if err := b.db.ReplaceChunks(b.ctx, d.ID, chunks); err != nil {
			return err
		}
	}
	return nil
}

// benchEngines lists the engines a search benchmark measures: SQLite
// unless told not to, PostgreSQL when given a URL.
func benchEngines(noSQLite bool, pgURL string) []string {
	var engines []string
	if !noSQLite {
		engines = append(engines, "sqlite")
	}
	if pgURL != "" {
		engines = append(engines, "postgres")
	}
	return engines
}

// latencyOf sorts lat and returns its p50, p99 and max, rounded for
// reading, with hits per query.
func latencyOf(lat []time.Duration, hits float64) searchLatency {
	slices.Sort(lat)
	pick := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(math.Round(p*float64(len(lat)-1))))].Round(10 * time.Microsecond)
	}
	return searchLatency{p50: pick(0.5), p99: pick(0.99), max: pick(1), hits: hits}
}
