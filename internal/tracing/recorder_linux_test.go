package tracing_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/background/backgroundtest"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// nicedStore notes the nice value of the thread each batch is written on.
type nicedStore struct {
	tracing.Store
	mu    sync.Mutex
	nices []int
}

func (s *nicedStore) IngestEvents(ctx context.Context, events []tracing.Event, now time.Time) ([]string, error) {
	s.mu.Lock()
	s.nices = append(s.nices, threadNice())
	s.mu.Unlock()
	return s.Store.IngestEvents(ctx, events, now)
}

func (s *nicedStore) first() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.nices...)
}

// threadNice is the calling thread's nice value; -100 when unreadable,
// which no check accepts.
func threadNice() int {
	n, err := backgroundtest.ThreadNice()
	if err != nil {
		return -100
	}
	return n
}

// TestRecorderLowersLightBatches: a tick with a few events writes them on
// a thread of lower priority; a tick with many (the cores busy) at the
// usual one.
func TestRecorderLowersLightBatches(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		base := threadNice()
		if base >= 19 {
			t.Skip("the test runs at the lowest priority already")
		}
		at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		tenant := nodus.NewID()
		record := func(rec *tracing.Recorder, n int) {
			for range n {
				rec.Record(tenant, tracing.Event{ID: nodus.NewID(), Timestamp: at, Trace: &tracing.TracePatch{ID: nodus.NewID(), Timestamp: &at}})
			}
		}
		run := func(queued int) []int {
			st := &nicedStore{Store: db}
			svc, err := tracing.NewService(tracing.Config{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			rec := svc.NewRecorder()
			record(rec, queued)
			ctx, stop := context.WithCancel(context.Background())
			go rec.Run(ctx)
			for deadline := time.Now().Add(10 * time.Second); rec.Written() < int64(queued); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("written %d of %d", rec.Written(), queued)
				}
			}
			stop()
			rec.Wait()
			return st.first()
		}
		if nices := run(3); len(nices) != 1 || nices[0] <= base {
			t.Errorf("a light tick was written at nice %v, want above the test's %d", nices, base)
		}
		if nices := run(1000); len(nices) == 0 || nices[0] != base {
			t.Errorf("a busy tick was written at nice %v, want the test's %d first", nices, base)
		}
	})
}
