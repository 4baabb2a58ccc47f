package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
)

type fakePruner struct {
	before time.Time
	err    error
}

func (p *fakePruner) PruneSpend(_ context.Context, before time.Time) (int, error) {
	p.before = before
	return 3, p.err
}

// TestSpendRetentionWorker: the job deletes what is older than the
// retention, counted from the job's run, and fails (to be retried) when
// the delete fails.
func TestSpendRetentionWorker(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	p := &fakePruner{}
	w := &spendRetentionWorker{pruner: p, retention: 90 * 24 * time.Hour, now: func() time.Time { return now }}
	if err := w.Work(context.Background(), &river.Job[SpendRetentionArgs]{}); err != nil {
		t.Fatal(err)
	}
	if want := now.AddDate(0, 0, -90); !p.before.Equal(want) {
		t.Errorf("pruned before %v, want %v", p.before, want)
	}
	p.err = errors.New("disk full")
	if err := w.Work(context.Background(), &river.Job[SpendRetentionArgs]{}); err == nil {
		t.Error("a failed prune did not fail the job")
	}
}
