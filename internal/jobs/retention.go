package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// SpendRetentionArgs is the periodic job that deletes the gateway's spend
// rows past their retention.
type SpendRetentionArgs struct{}

// Kind names the job in the queue.
func (SpendRetentionArgs) Kind() string { return "nodus_gateway_spend_retention" }

// SpendPruner deletes spend rows older than a time (the gateway).
type SpendPruner interface {
	PruneSpend(ctx context.Context, before time.Time) (int, error)
}

type spendRetentionWorker struct {
	river.WorkerDefaults[SpendRetentionArgs]
	pruner    SpendPruner
	retention time.Duration
	now       func() time.Time
}

func (w *spendRetentionWorker) Work(ctx context.Context, _ *river.Job[SpendRetentionArgs]) error {
	before := w.now().Add(-w.retention)
	if _, err := w.pruner.PruneSpend(ctx, before); err != nil {
		return fmt.Errorf("spend retention before %s: %w", before.Format(time.RFC3339), err)
	}
	return nil
}

// Timeout leaves room for a large first backlog; what is left is taken up
// at the next run.
func (w *spendRetentionWorker) Timeout(*river.Job[SpendRetentionArgs]) time.Duration {
	return 10 * time.Minute
}

// AddSpendRetention registers the spend-retention worker and returns its
// schedule: every interval, on the elected leader, it deletes the rows
// older than retention.
func AddSpendRetention(workers *river.Workers, pruner SpendPruner, retention, interval time.Duration, now func() time.Time) *river.PeriodicJob {
	if now == nil {
		now = time.Now
	}
	river.AddWorker(workers, &spendRetentionWorker{pruner: pruner, retention: retention, now: now})
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return SpendRetentionArgs{}, nil },
		&river.PeriodicJobOpts{ID: "gateway_spend_retention", RunOnStart: true})
}
