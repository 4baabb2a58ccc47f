package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// UsageRollupArgs is the periodic job that recomputes the usage metrics of
// yesterday and today from their sources.
type UsageRollupArgs struct{}

// Kind names the job in the queue.
func (UsageRollupArgs) Kind() string { return "nodus_usage_rollup" }

// UsageRollup recomputes the days still changing (the usage service).
// A day is replaced whole, so runs may repeat or overlap.
type UsageRollup interface {
	Rollup(ctx context.Context) (int, error)
}

type usageRollupWorker struct {
	river.WorkerDefaults[UsageRollupArgs]
	rollup UsageRollup
}

func (w *usageRollupWorker) Work(ctx context.Context, _ *river.Job[UsageRollupArgs]) error {
	if _, err := w.rollup.Rollup(ctx); err != nil {
		return fmt.Errorf("usage rollup: %w", err)
	}
	return nil
}

// Timeout bounds a run of two days.
func (w *usageRollupWorker) Timeout(*river.Job[UsageRollupArgs]) time.Duration {
	return 5 * time.Minute
}

// AddUsageRollup registers the usage-rollup worker and returns its
// schedule: every interval, on the elected leader.
func AddUsageRollup(workers *river.Workers, rollup UsageRollup, interval time.Duration) *river.PeriodicJob {
	river.AddWorker(workers, &usageRollupWorker{rollup: rollup})
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return UsageRollupArgs{}, nil },
		&river.PeriodicJobOpts{ID: "usage_rollup", RunOnStart: true})
}
