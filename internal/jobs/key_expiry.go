package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// KeyExpiryArgs is the periodic job that tells the owners and admins of
// gateway keys expiring soon.
type KeyExpiryArgs struct{}

// Kind names the job in the queue.
func (KeyExpiryArgs) Kind() string { return "nodus_key_expiry" }

// KeyExpiryNotifier reports expiring keys (notifywire.KeyExpiry); it
// publishes each key and expiry once, so runs may overlap or repeat.
type KeyExpiryNotifier interface {
	NotifyExpiring(ctx context.Context) (int, error)
}

type keyExpiryWorker struct {
	river.WorkerDefaults[KeyExpiryArgs]
	n KeyExpiryNotifier
}

func (w *keyExpiryWorker) Work(ctx context.Context, _ *river.Job[KeyExpiryArgs]) error {
	if _, err := w.n.NotifyExpiring(ctx); err != nil {
		return fmt.Errorf("key expiry: %w", err)
	}
	return nil
}

// Timeout bounds one sweep.
func (w *keyExpiryWorker) Timeout(*river.Job[KeyExpiryArgs]) time.Duration { return 5 * time.Minute }

// AddKeyExpiry registers the sweep and returns its schedule: every
// interval, on the elected leader.
func AddKeyExpiry(workers *river.Workers, n KeyExpiryNotifier, interval time.Duration) *river.PeriodicJob {
	river.AddWorker(workers, &keyExpiryWorker{n: n})
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return KeyExpiryArgs{}, nil },
		&river.PeriodicJobOpts{ID: "key_expiry", RunOnStart: true})
}
