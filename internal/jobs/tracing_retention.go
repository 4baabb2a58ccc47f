package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// TracingRetentionArgs is the periodic job that deletes traces past their
// tenant's retention, and envelope ids past the deduplication window.
type TracingRetentionArgs struct{}

// Kind names the job in the queue.
func (TracingRetentionArgs) Kind() string { return "nodus_tracing_retention" }

// TracePruner deletes what retention no longer keeps (the tracing
// service).
type TracePruner interface {
	Prune(ctx context.Context, now time.Time) (int, error)
}

type tracingRetentionWorker struct {
	river.WorkerDefaults[TracingRetentionArgs]
	pruner TracePruner
	now    func() time.Time
}

func (w *tracingRetentionWorker) Work(ctx context.Context, _ *river.Job[TracingRetentionArgs]) error {
	if _, err := w.pruner.Prune(ctx, w.now()); err != nil {
		return fmt.Errorf("tracing retention: %w", err)
	}
	return nil
}

// Timeout leaves room for a large first backlog; what is left is taken up
// at the next run.
func (w *tracingRetentionWorker) Timeout(*river.Job[TracingRetentionArgs]) time.Duration {
	return 10 * time.Minute
}

// AddTracingRetention registers the tracing-retention worker and returns
// its schedule: every interval, on the elected leader.
func AddTracingRetention(workers *river.Workers, pruner TracePruner, interval time.Duration, now func() time.Time) *river.PeriodicJob {
	if now == nil {
		now = time.Now
	}
	river.AddWorker(workers, &tracingRetentionWorker{pruner: pruner, now: now})
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return TracingRetentionArgs{}, nil },
		&river.PeriodicJobOpts{ID: "tracing_retention", RunOnStart: true})
}
