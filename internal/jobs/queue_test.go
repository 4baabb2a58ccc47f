package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

var ctx = context.Background()

type echoArgs struct {
	Name string `json:"name"`
}

func (echoArgs) Kind() string { return "test_echo" }

// echoWorker reports each job's name; it fails the first attempt of names
// listed in failOnce, to show that a failed job runs again.
type echoWorker struct {
	river.WorkerDefaults[echoArgs]
	seen     chan string
	failOnce map[string]bool
}

func (w *echoWorker) Work(ctx context.Context, job *river.Job[echoArgs]) error {
	if w.failOnce[job.Args.Name] && job.Attempt == 1 {
		return errors.New("transient failure")
	}
	w.seen <- job.Args.Name
	return nil
}

func (w *echoWorker) NextRetry(*river.Job[echoArgs]) time.Time { return time.Now() }

type blockArgs struct{}

func (blockArgs) Kind() string { return "test_block" }

// blockWorker runs until released or cancelled.
type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	started   chan struct{}
	release   chan struct{}
	cancelled atomic.Bool
}

func (w *blockWorker) Work(ctx context.Context, job *river.Job[blockArgs]) error {
	close(w.started)
	select {
	case <-w.release:
		return nil
	case <-ctx.Done():
		w.cancelled.Store(true)
		return ctx.Err()
	}
}

func newQueue(t *testing.T, db *store.DB, workers *river.Workers, stopTimeout time.Duration) *jobs.Queue {
	t.Helper()
	m, err := jobs.NewMigrations(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(db, workers, jobs.Config{Workers: 4, PollInterval: 20 * time.Millisecond, StopTimeout: stopTimeout},
		slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func countJobs(t *testing.T, db *store.DB, kind string) int {
	t.Helper()
	var n int
	if err := db.Read(ctx, func(tx *store.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = ?", kind).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInsertTxFollowsTransaction(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := &echoWorker{seen: make(chan string, 10), failOnce: map[string]bool{"flaky": true}}
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		q := newQueue(t, db, workers, time.Second)
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer q.Stop(ctx)

		if err := db.Write(ctx, func(tx *store.Tx) error {
			_, err := q.InsertTx(ctx, tx, echoArgs{Name: "committed"}, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		rollback := errors.New("rollback")
		if err := db.Write(ctx, func(tx *store.Tx) error {
			if _, err := q.InsertTx(ctx, tx, echoArgs{Name: "rolled back"}, nil); err != nil {
				return err
			}
			return rollback
		}); !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		if err := db.Write(ctx, func(tx *store.Tx) error {
			_, err := q.InsertTx(ctx, tx, echoArgs{Name: "flaky"}, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}

		got := map[string]bool{}
		timeout := time.After(15 * time.Second)
		for len(got) < 2 {
			select {
			case name := <-w.seen:
				got[name] = true
			case <-timeout:
				t.Fatalf("jobs worked: %v; want committed and flaky", got)
			}
		}
		if !got["committed"] || !got["flaky"] {
			t.Fatalf("jobs worked: %v", got)
		}
		if n := countJobs(t, db, "test_echo"); n != 2 {
			t.Fatalf("%d echo jobs in the table, want 2 (the rolled-back one must not exist)", n)
		}
	})
}

func TestStopWaitsThenCancels(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		for _, finish := range []bool{true, false} {
			w := &blockWorker{started: make(chan struct{}), release: make(chan struct{})}
			workers := river.NewWorkers()
			river.AddWorker(workers, w)
			q := newQueue(t, db, workers, 300*time.Millisecond)
			if err := q.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db.Write(ctx, func(tx *store.Tx) error {
				_, err := q.InsertTx(ctx, tx, blockArgs{}, nil)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-w.started:
			case <-time.After(15 * time.Second):
				t.Fatal("job never started")
			}
			if finish {
				// A job that ends within the stop timeout completes.
				time.AfterFunc(50*time.Millisecond, func() { close(w.release) })
			}
			start := time.Now()
			if err := q.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("Stop took %v", d)
			}
			if w.cancelled.Load() == finish {
				t.Fatalf("finish=%v: job cancelled=%v", finish, w.cancelled.Load())
			}
		}
	})
}

func TestMigrationsUpDown(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		m, err := jobs.NewMigrations(db)
		if err != nil {
			t.Fatal(err)
		}
		st, err := m.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Current() != 0 || st.Pending() == 0 {
			t.Fatalf("fresh database: %+v", st)
		}
		latest := st.Versions[len(st.Versions)-1].Version
		applied, err := m.Up(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) != len(st.Versions) {
			t.Fatalf("applied %v of %d versions", applied, len(st.Versions))
		}
		if st, _ = m.Status(ctx); st.Current() != latest || st.Pending() != 0 {
			t.Fatalf("after Up: current %d pending %d", st.Current(), st.Pending())
		}
		reverted, err := m.Down(ctx, 1)
		if err != nil || len(reverted) != 1 || reverted[0] != latest {
			t.Fatalf("Down(1) = %v, %v", reverted, err)
		}
		if st, _ = m.Status(ctx); st.Pending() != 1 {
			t.Fatalf("after Down(1): pending %d", st.Pending())
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestJobCounts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		workers := river.NewWorkers()
		river.AddWorker(workers, &echoWorker{seen: make(chan string, 10)})
		q := newQueue(t, db, workers, time.Second) // not started: jobs stay available
		for _, opts := range []*river.InsertOpts{nil, nil, {ScheduledAt: time.Now().Add(time.Hour)}} {
			if err := db.Write(ctx, func(tx *store.Tx) error {
				_, err := q.InsertTx(ctx, tx, echoArgs{Name: "x"}, opts)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		counts, err := db.JobCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts["available"] != 2 || counts["scheduled"] != 1 || counts["running"] != 0 {
			t.Fatalf("counts = %v, want 2 available and 1 scheduled", counts)
		}
	})
}
