package memory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// benchFacts are the kinds of sentence a user's memories hold; each
// memory is one of them with its own subject and number, so no two are
// equal and a query matches a few.
var benchFacts = []string{
	"Prefers aisle seats on flights to %s and travels there about %d times a year",
	"Is allergic to %s and carries an epinephrine pen since %d",
	"Works on the %s team and has led its migration project since %d",
	"Has a dog called %s who turned %d this spring",
	"Reads about %s in the evenings and finished %d books on it last year",
}

var benchSubjects = []string{"Lisbon", "peanuts", "payments", "Biscuit", "astronomy", "Kyoto", "shellfish",
	"search", "Pepper", "gardening", "Nairobi", "penicillin", "billing", "Juno", "chess"}

// BenchmarkSearch is a recall from one user's memories (what a chatbot
// turn with memory does before the model), full text and hybrid (256-
// dimension vectors), with n memories stored for the user: cold, the
// memories read and analysed (a process's first search of the user, or
// the first after another replica wrote them), and warm, the version
// checked and the analysed memories reused.
//
//	NODUS_TEST_POSTGRES_URL=… go test -run '^$' -bench Search ./internal/memory/
func BenchmarkSearch(b *testing.B) {
	storetest.BenchMigrated(b, store.SetMain, func(b *testing.B, db *store.DB) {
		emb := &wordEmbedder{}
		svc, err := memory.NewService(memory.Config{Store: db, Embedder: emb})
		if err != nil {
			b.Fatal(err)
		}
		tenant, user := nodus.NewID(), "user-1"
		tctx := nodus.WithTenant(ctx, tenant)
		stored := 0
		for _, n := range []int{200, 1_000, 5_000} {
			for ; stored < n; stored++ {
				text := fmt.Sprintf(benchFacts[stored%len(benchFacts)], benchSubjects[(stored/len(benchFacts))%len(benchSubjects)], stored)
				vecs, err := emb.Embed(ctx, tenant, "embed-test", []string{text})
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				if err := db.CreateMemory(tctx, memory.Memory{ID: nodus.NewID(), TenantID: tenant, AppName: "app",
					UserID: user, Text: text, Hash: memory.Hash(text), EmbeddingModel: "embed-test",
					Embedding: vecs[0], CreatedAt: now, UpdatedAt: now}, memory.HistoryEntry{ID: nodus.NewID(), CreatedAt: now}); err != nil {
					b.Fatal(err)
				}
			}
			for _, mode := range []struct{ name, model string }{{"fulltext", ""}, {"hybrid", "embed-test"}} {
				for _, cold := range []bool{true, false} {
					name := fmt.Sprintf("%s/%d/warm", mode.name, n)
					if cold {
						name = fmt.Sprintf("%s/%d/cold", mode.name, n)
					}
					b.Run(name, func(b *testing.B) {
						for b.Loop() {
							if cold {
								memory.SetCorpusCacheBytes(svc, 64<<20)
							}
							hits, err := svc.Search(ctx, memory.SearchInput{TenantID: tenant, AppName: "app", UserID: user,
								Query: "which seat does the user like when flying to Kyoto", EmbeddingModel: mode.model})
							if err != nil || len(hits) == 0 {
								b.Fatalf("%d hits, %v", len(hits), err)
							}
						}
					})
				}
			}
		}
	})
}
