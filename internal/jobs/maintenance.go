package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/nodus-os/nodus/internal/store"
)

// MaintenanceArgs is the periodic job that keeps the databases lean.
type MaintenanceArgs struct{}

// Kind names the job in the queue.
func (MaintenanceArgs) Kind() string { return "nodus_db_maintenance" }

// maintenanceWorker runs store.DB.Maintain on every database.
type maintenanceWorker struct {
	river.WorkerDefaults[MaintenanceArgs]
	dbs []*store.DB
}

func (w *maintenanceWorker) Work(ctx context.Context, _ *river.Job[MaintenanceArgs]) error {
	var errs []error
	for _, db := range w.dbs {
		if err := db.Maintain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("maintain %s: %w", db.URL(), err))
		}
	}
	return errors.Join(errs...)
}

// Timeout leaves room for a checkpoint of a large WAL.
func (w *maintenanceWorker) Timeout(*river.Job[MaintenanceArgs]) time.Duration {
	return 5 * time.Minute
}

// AddMaintenance registers the maintenance worker for dbs and returns its
// schedule: every interval, run by the elected leader only.
func AddMaintenance(workers *river.Workers, dbs []*store.DB, interval time.Duration) *river.PeriodicJob {
	river.AddWorker(workers, &maintenanceWorker{dbs: dbs})
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return MaintenanceArgs{}, nil },
		&river.PeriodicJobOpts{ID: "db_maintenance"})
}
