package memory_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// countingStore counts the loads of a user's whole memories.
type countingStore struct {
	*store.DB
	loads atomic.Int64
}

func (s *countingStore) LoadMemoryCorpus(ctx context.Context, app, user string, limit int) (int64, []memory.Memory, error) {
	s.loads.Add(1)
	return s.DB.LoadMemoryCorpus(ctx, app, user, limit)
}

// TestSearchKeepsMemoriesAnalysed: a service keeps a user's memories
// analysed between searches and answers exactly as a service that keeps
// nothing: its own writes (Add verbatim and with a model, Update, Delete)
// update what it keeps without reading the memories again; another
// service's writes on the same store (another replica) are seen by the
// next search, which reads them again; DeleteAll and a purge forget them.
func TestSearchKeepsMemoriesAnalysed(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		model := &scriptedModel{}
		cs := &countingStore{DB: db}
		newService := func(s memory.Store) *memory.Service {
			svc, err := memory.NewService(memory.Config{Store: s, Models: model, Embedder: &wordEmbedder{}})
			if err != nil {
				t.Fatal(err)
			}
			return svc
		}
		svc, other := newService(cs), newService(db)
		tenant := nodus.NewID()
		add := func(s *memory.Service, texts ...string) []memory.Change {
			t.Helper()
			changes, err := s.Add(ctx, memory.AddInput{TenantID: tenant, AppName: "bot1", UserID: "alice",
				EmbeddingModel: "embed-test", Messages: userSays(texts...)})
			if err != nil {
				t.Fatal(err)
			}
			return changes
		}
		queries := []string{"which colour does alice like", "where does she live", "car automobile red", "teal"}
		// check compares svc's hits with a fresh service's, full text and
		// hybrid, and the loads svc made meanwhile.
		check := func(what string, wantLoads int64) {
			t.Helper()
			before := cs.loads.Load()
			for _, q := range queries {
				for _, emb := range []string{"", "embed-test"} {
					in := memory.SearchInput{TenantID: tenant, AppName: "bot1", UserID: "alice", Query: q, EmbeddingModel: emb}
					got, err := svc.Search(ctx, in)
					if err != nil {
						t.Fatal(err)
					}
					want, err := newService(db).Search(ctx, in)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s: search %q (%q) = %q, want %q", what, q, emb, hitTexts(got), hitTexts(want))
					}
				}
			}
			if got := cs.loads.Load() - before; got != wantLoads {
				t.Errorf("%s: %d loads of the memories, want %d", what, got, wantLoads)
			}
		}

		add(svc, "My favourite colour is teal.", "I live in Lisbon.", "My car is red.")
		check("the first searches", 1)
		changes := add(svc, "I use an automobile to get to work.")
		check("after this service's Add", 0)
		if _, err := svc.Update(ctx, tenant, changes[0].MemoryID, "I use a bicycle to get to work now.", "alice"); err != nil {
			t.Fatal(err)
		}
		check("after this service's Update", 0)
		if err := svc.Delete(ctx, tenant, changes[0].MemoryID, "alice"); err != nil {
			t.Fatal(err)
		}
		check("after this service's Delete", 0)

		// An Add through the model: one fact added, one updating a memory,
		// one deleting another, each decided against the memories as the
		// earlier ones left them.
		hits, err := svc.Search(ctx, memory.SearchInput{TenantID: tenant, AppName: "bot1", UserID: "alice", Query: "Lisbon"})
		if err != nil || len(hits) != 1 {
			t.Fatalf("Lisbon: %q, %v", hitTexts(hits), err)
		}
		lisbon := hits[0].Memory.ID
		hits, err = svc.Search(ctx, memory.SearchInput{TenantID: tenant, AppName: "bot1", UserID: "alice", Query: "car red"})
		if err != nil || len(hits) == 0 {
			t.Fatalf("car: %q, %v", hitTexts(hits), err)
		}
		car := hits[0].Memory.ID
		model.extract = func() string {
			return `{"facts": ["Lives in Porto since May", "Sold the red car", "Plays the cello"]}`
		}
		model.decide = func(fact string, shown []shownMemory) string {
			switch fact {
			case "Lives in Porto since May":
				return `{"event": "UPDATE", "id": "` + lisbon + `", "text": "Lives in Porto since May (was Lisbon)"}`
			case "Sold the red car":
				return `{"event": "DELETE", "id": "` + car + `"}`
			}
			return `{"event": "ADD"}`
		}
		changes, err = svc.Add(ctx, memory.AddInput{TenantID: tenant, AppName: "bot1", UserID: "alice", Model: "gpt-test",
			EmbeddingModel: "embed-test", Messages: userSays("news")})
		if err != nil || !reflect.DeepEqual(events(changes), []string{"UPDATE Lives in Porto since May (was Lisbon)",
			"DELETE ", "ADD Plays the cello"}) {
			t.Fatalf("Add with the model = %q, %v", events(changes), err)
		}
		queries = append(queries, "porto", "cello music")
		check("after this service's Add with a model", 0)

		// Another replica's writes: read again, once.
		more := add(other, "My cat is called Biscuit.")
		check("after another service's Add", 1)
		if _, err := other.Update(ctx, tenant, more[0].MemoryID, "My cat is called Pepper.", "alice"); err != nil {
			t.Fatal(err)
		}
		check("after another service's Update", 1)
		if err := other.Delete(ctx, tenant, more[0].MemoryID, "alice"); err != nil {
			t.Fatal(err)
		}
		check("after another service's Delete", 1)
		// Both: this service cannot tell its write was the only one.
		add(other, "I have a sister in Faro.")
		add(svc, "I work in a bakery.")
		check("after writes from both", 1)

		// A hit's lists are its own.
		hits, err = svc.Search(ctx, memory.SearchInput{TenantID: tenant, AppName: "bot1", UserID: "alice", Query: "bakery",
			EmbeddingModel: "embed-test"})
		if err != nil || len(hits) == 0 || len(hits[0].Memory.Embedding) == 0 {
			t.Fatalf("bakery: %+v, %v", hits, err)
		}
		for i := range hits[0].Memory.Embedding {
			hits[0].Memory.Embedding[i] = 0
		}
		queries = append(queries, "bakery")
		check("after a caller changed a hit", 0)

		if _, err := svc.DeleteAll(ctx, tenant, "bot1", "alice", "admin"); err != nil {
			t.Fatal(err)
		}
		check("after DeleteAll", 1)
		add(svc, "My favourite colour is teal.")
		check("after an Add", 0)
		if err := svc.PurgeTenant(ctx, tenant); err != nil {
			t.Fatal(err)
		}
		check("after the purge", 1)
	})
}

// TestSearchCacheIsBounded: users beyond what the cache holds are read
// again when searched, least recently searched first, and still answered.
func TestSearchCacheIsBounded(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		cs := &countingStore{DB: db}
		svc, err := memory.NewService(memory.Config{Store: cs})
		if err != nil {
			t.Fatal(err)
		}
		// About 10 KB a user: the cache holds three.
		memory.SetCorpusCacheBytes(svc, 32<<10)
		tenant := nodus.NewID()
		const users = 6
		now := nodus.SystemClock{}.Now()
		for u := range users {
			for i := range 20 {
				text := fmt.Sprintf("Memory %d of user %d: likes the number %d.", i, u, i*u)
				if err := db.CreateMemory(nodus.WithTenant(ctx, tenant), memory.Memory{ID: nodus.NewID(), TenantID: tenant,
					AppName: "bot1", UserID: fmt.Sprint("user-", u), Text: text, Hash: memory.Hash(text), CreatedAt: now, UpdatedAt: now},
					memory.HistoryEntry{ID: nodus.NewID(), CreatedAt: now}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// search searches user u and returns how many loads it took.
		search := func(u int) int64 {
			t.Helper()
			before := cs.loads.Load()
			hits, err := svc.Search(ctx, memory.SearchInput{TenantID: tenant, AppName: "bot1", UserID: fmt.Sprint("user-", u),
				Query: fmt.Sprintf("memory 7 of user %d", u)})
			if err != nil || len(hits) == 0 || hits[0].Memory.UserID != fmt.Sprint("user-", u) {
				t.Fatalf("user %d: %d hits, %v", u, len(hits), err)
			}
			return cs.loads.Load() - before
		}
		for u := range users {
			if n := search(u); n != 1 {
				t.Fatalf("user %d, first search: %d loads", u, n)
			}
		}
		if n := search(users - 1); n != 0 {
			t.Errorf("the user searched last was read again (%d loads)", n)
		}
		if n := search(0); n != 1 {
			t.Errorf("the user searched first was kept past the bound (%d loads)", n)
		}
		// A user larger than the whole cache is answered and not kept.
		memory.SetCorpusCacheBytes(svc, 1<<10)
		if n := search(1) + search(1); n != 2 {
			t.Errorf("a user larger than the cache: %d loads for two searches, want 2", n)
		}
	})
}

// TestSearchKeepsMemoriesAnalysedUnderConcurrentWrites: searches, Adds,
// edits and deletions of one user from several goroutines at once leave
// the service answering as a fresh one does.
func TestSearchKeepsMemoriesAnalysedUnderConcurrentWrites(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		svc, err := memory.NewService(memory.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		tenant := nodus.NewID()
		in := memory.SearchInput{TenantID: tenant, AppName: "bot1", UserID: "alice", Query: "my number colour"}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 8 {
					changes, err := svc.Add(ctx, memory.AddInput{TenantID: tenant, AppName: "bot1", UserID: "alice",
						Messages: userSays(fmt.Sprintf("My number %d-%d is lucky.", g, i))})
					if err != nil {
						errs <- err
						return
					}
					if _, err := svc.Search(ctx, in); err != nil {
						errs <- err
						return
					}
					id := changes[0].MemoryID
					switch i % 3 {
					case 1:
						_, err = svc.Update(ctx, tenant, id, fmt.Sprintf("My colour %d-%d is blue.", g, i), "alice")
					case 2:
						err = svc.Delete(ctx, tenant, id, "alice")
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		fresh, err := memory.NewService(memory.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		in.Limit = memory.MaxSearchLimit
		got, err := svc.Search(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := fresh.Search(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("hit %d: %+v\nwant %+v", i, got[i], want[i])
				break
			}
		}
		// Per goroutine: 8 added, 2 of them deleted (i = 2, 5).
		if len(want) != 4*(8-2) || !reflect.DeepEqual(got, want) {
			t.Fatalf("after concurrent writes: %d hits %q, want %d %q", len(got), hitTexts(got), len(want), hitTexts(want))
		}
	})
}
