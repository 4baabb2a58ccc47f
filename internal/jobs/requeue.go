package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// RequeueArgs is the periodic job that queues ingestion again for
// documents left pending or processing: a lost job or a crashed run never
// leaves a document stuck.
type RequeueArgs struct{}

// Kind names the job in the queue.
func (RequeueArgs) Kind() string { return "nodus_kb_requeue" }

// Requeuer queues stalled documents again (the knowledge service).
type Requeuer interface {
	RequeueStalled(ctx context.Context) (int, error)
}

type requeueWorker struct {
	river.WorkerDefaults[RequeueArgs]
	requeuer Requeuer
}

func (w *requeueWorker) Work(ctx context.Context, _ *river.Job[RequeueArgs]) error {
	if _, err := w.requeuer.RequeueStalled(ctx); err != nil {
		return fmt.Errorf("requeue stalled documents: %w", err)
	}
	return nil
}

// Timeout bounds one sweep.
func (w *requeueWorker) Timeout(*river.Job[RequeueArgs]) time.Duration { return time.Minute }

// AddRequeue registers the sweep and returns its schedule: every interval,
// on the elected leader.
func AddRequeue(workers *river.Workers, r Requeuer, interval time.Duration) *river.PeriodicJob {
	river.AddWorker(workers, &requeueWorker{requeuer: r})
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return RequeueArgs{}, nil },
		&river.PeriodicJobOpts{ID: "kb_requeue", RunOnStart: true})
}
