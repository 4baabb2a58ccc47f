package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// TracingRollupArgs is the periodic job that rebuilds the rollups of the
// days traces were written to (or pruned from) since its last run.
type TracingRollupArgs struct{}

// Kind names the job in the queue.
func (TracingRollupArgs) Kind() string { return "nodus_tracing_rollup" }

// TraceRollup rebuilds the marked days' rollups (the tracing service).
type TraceRollup interface {
	Rollup(ctx context.Context) (int, error)
}

type tracingRollupWorker struct {
	river.WorkerDefaults[TracingRollupArgs]
	rollup TraceRollup
}

func (w *tracingRollupWorker) Work(ctx context.Context, _ *river.Job[TracingRollupArgs]) error {
	if _, err := w.rollup.Rollup(ctx); err != nil {
		return fmt.Errorf("tracing rollup: %w", err)
	}
	return nil
}

// Timeout bounds a run of up to a thousand days; what is left is taken up
// at the next run. Two runs that overlap are safe: a day's rebuild locks
// its mark.
func (w *tracingRollupWorker) Timeout(*river.Job[TracingRollupArgs]) time.Duration {
	return 5 * time.Minute
}

// AddTracingRollup registers the tracing-rollup worker and returns its
// schedule: every interval, on the elected leader.
func AddTracingRollup(workers *river.Workers, rollup TraceRollup, interval time.Duration) *river.PeriodicJob {
	river.AddWorker(workers, &tracingRollupWorker{rollup: rollup})
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return TracingRollupArgs{}, nil },
		&river.PeriodicJobOpts{ID: "tracing_rollup", RunOnStart: true})
}
