package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/store"
)

// Config tunes the queue.
type Config struct {
	// Workers is how many jobs run at once.
	Workers int
	// PollInterval is how often an idle SQLite queue looks for new work.
	PollInterval time.Duration
	// StopTimeout is how long Stop lets running jobs finish before it
	// cancels them.
	StopTimeout time.Duration
	// PeriodicJobs are scheduled by the elected leader.
	PeriodicJobs []*river.PeriodicJob
}

// Queue inserts and works jobs.
type Queue struct {
	logger      *slog.Logger
	stopTimeout time.Duration

	insertTx      func(ctx context.Context, tx *store.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	start         func(ctx context.Context) error
	stop          func(ctx context.Context) error
	stopAndCancel func(ctx context.Context) error
}

// New returns a queue on db that runs the given workers. Call Start to
// begin working; a queue that is never started can still insert.
func New(db *store.DB, workers *river.Workers, cfg Config, logger *slog.Logger, reg *metrics.Registry) (*Queue, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 10
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	rc := &river.Config{
		Logger:           slog.New(quietCancel{logger.Handler()}).With("component", "jobs"),
		Queues:           map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:          workers,
		PeriodicJobs:     cfg.PeriodicJobs,
		WorkerMiddleware: []rivertype.WorkerMiddleware{newInstrument(reg)},
		// Stop is driven by Queue.Stop, which applies StopTimeout itself.
		SoftStopTimeout: 0,
	}
	q := &Queue{logger: logger, stopTimeout: cfg.StopTimeout}
	registerDepth(reg, db, logger)
	var err error
	switch db.Dialect() {
	case store.SQLite:
		rc.PollOnly = true
		rc.FetchPollInterval = cfg.PollInterval
		rc.FetchCooldown = min(cfg.PollInterval, river.FetchCooldownDefault)
		err = bind(q, riversqlite.New(db.WritePool()), rc, (*store.Tx).SQLTx)
	case store.Postgres:
		if !ownsJobTables(db) {
			// River's daily maintenance reindexes its job table's indexes
			// (REINDEX … CONCURRENTLY), which PostgreSQL allows only the
			// owner: a runtime role that does not own the tables (nodus db
			// provision's _app roles) would fail every night. The owner's
			// scheduled REINDEX does that job (docs/operations.md).
			rc.ReindexerSchedule = river.NeverSchedule()
			logger.Info("jobs: the database role does not own the job tables; River's nightly reindex is left to the owner")
		}
		err = bind(q, riverpgxv5.New(db.PgxPool()), rc, func(tx *store.Tx) pgx.Tx { return tx.PgxTx() })
	default:
		err = fmt.Errorf("jobs: unsupported dialect %s", db.Dialect())
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

// bind connects q to a River client for one driver; txOf extracts the
// driver's transaction type from a store.Tx.
func bind[TTx any](q *Queue, driver riverdriver.Driver[TTx], cfg *river.Config, txOf func(*store.Tx) TTx) error {
	c, err := river.NewClient(driver, cfg)
	if err != nil {
		return fmt.Errorf("jobs: new client: %w", err)
	}
	q.insertTx = func(ctx context.Context, tx *store.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
		return c.InsertTx(ctx, txOf(tx), args, opts)
	}
	q.start = c.Start
	q.stop = c.Stop
	q.stopAndCancel = c.StopAndCancel
	return nil
}

// InsertTx enqueues a job inside the caller's transaction: it becomes
// visible to workers only if tx commits.
func (q *Queue) InsertTx(ctx context.Context, tx *store.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	res, err := q.insertTx(ctx, tx, args, opts)
	if err != nil {
		return nil, fmt.Errorf("jobs: insert %s: %w", args.Kind(), err)
	}
	return res, nil
}

// Start begins fetching and working jobs. It returns at once.
func (q *Queue) Start(ctx context.Context) error {
	if err := q.start(ctx); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	return nil
}

// Stop stops fetching, waits up to StopTimeout for running jobs and then
// cancels those still running (they are retried later, at least once being
// the promise). It returns when every worker has returned.
func (q *Queue) Stop(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, q.stopTimeout)
	defer cancel()
	err := q.stop(sctx)
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		q.logger.Warn("jobs still running after stop timeout; cancelling them", "timeout", q.stopTimeout)
		return q.stopAndCancel(context.WithoutCancel(ctx))
	}
	return err
}

// instrument records how many jobs ran, how they ended and how long they
// took.
type instrument struct {
	river.MiddlewareDefaults
	runs     *metrics.CounterVec
	duration *metrics.HistogramVec
}

func newInstrument(reg *metrics.Registry) *instrument {
	return &instrument{
		runs: reg.Counter("nodus_jobs_total", "Jobs worked, by kind and outcome.", "kind", "outcome"),
		duration: reg.Histogram("nodus_job_duration_seconds", "Time spent working a job, by kind.",
			[]float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300}, "kind"),
	}
}

func (m *instrument) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	start := time.Now()
	err := doInner(ctx)
	m.duration.With(job.Kind).Observe(time.Since(start).Seconds())
	outcome := "completed"
	if err != nil {
		outcome = "failed"
		var cancel *rivertype.JobCancelError
		var snooze *rivertype.JobSnoozeError
		switch {
		case errors.As(err, &cancel):
			outcome = "cancelled"
		case errors.As(err, &snooze):
			outcome = "snoozed"
		}
	}
	m.runs.With(job.Kind, outcome).Inc()
	return err
}

// registerDepth exposes how many jobs wait or run, by state, read at scrape
// time. A failed read leaves the series out of that scrape (and is logged)
// rather than reporting a false zero.
func registerDepth(reg *metrics.Registry, db *store.DB, logger *slog.Logger) {
	reg.GaugeFunc("nodus_jobs", "Jobs waiting or running, by state.", []string{"state"}, func() []metrics.Sample {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		counts, err := db.JobCounts(ctx)
		if err != nil {
			logger.Warn("count jobs for metrics", "err", err)
			return nil
		}
		out := make([]metrics.Sample, 0, len(counts))
		for state, n := range counts {
			out = append(out, metrics.Sample{LabelValues: []string{state}, Value: float64(n)})
		}
		return out
	})
}

// ownsJobTables reports whether the connected role owns (or is a member
// of the owner of) River's job table; true when the table does not exist
// yet, since this role's migrations will then create it.
func ownsJobTables(db *store.DB) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var owns bool
	err := db.PgxPool().QueryRow(ctx, `SELECT COALESCE((SELECT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')
		FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass('river_job')), true)`).Scan(&owns)
	return err != nil || owns
}
