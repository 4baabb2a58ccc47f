package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/nodus-os/nodus/internal/httpapi"
	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/store"
)

// maintenanceInterval is how often the databases are optimised and their
// WAL files truncated.
const maintenanceInterval = 6 * time.Hour

// serve runs Nodus until ctx ends, then drains in-flight requests and jobs.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("serve", "serve [flags]", stderr)
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return errUsage{fmt.Sprintf("serve takes no arguments, got %q", pos)}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg)
	logger.Info("starting nodus", "version", versionString(), "config", cfg)
	start := time.Now()

	dbs, err := store.OpenDatabases(ctx, cfg.DatabaseURLs(), cfg.StoreConfig)
	if err != nil {
		return err
	}
	defer dbs.Close()
	sets, queueSet, err := migrationSets(dbs)
	if err != nil {
		return err
	}
	if cfg.AutoMigrate {
		if err := migrateUp(ctx, sets, logger); err != nil {
			return err
		}
	}

	reg := metrics.NewRegistry()
	reg.RegisterRuntime()
	dbs.RegisterMetrics(reg)

	workers := river.NewWorkers()
	periodic := jobs.AddMaintenance(workers, dbs.Unique(), maintenanceInterval)
	queue, err := jobs.New(dbs.DB(store.SetMain), workers, jobs.Config{
		Workers:      cfg.JobWorkers,
		PollInterval: cfg.JobPollInterval,
		StopTimeout:  cfg.ShutdownTimeout,
		PeriodicJobs: []*river.PeriodicJob{periodic},
	}, logger, reg)
	if err != nil {
		return err
	}

	api := httpapi.NewServer(httpapi.Deps{
		Logger:  logger,
		Metrics: reg,
		Ready:   readiness(dbs, sets, logger),
		Version: versionString(),
	}, httpapi.Config{MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout})
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// The queue's tables exist only once its migrations ran; without them
	// Nodus still serves, and /ready says why it is not ready.
	queueStarted := false
	if st, err := queueSet.Status(ctx); err == nil && st.Pending() == 0 {
		// River stops when its start context ends; shutdown stops it
		// explicitly instead, after the HTTP server has drained.
		if err := queue.Start(context.WithoutCancel(ctx)); err != nil {
			ln.Close()
			return err
		}
		queueStarted = true
	} else {
		logger.Warn("job queue not started: its migrations are not applied; run `nodus migrate up`")
	}
	logger.Info("listening", "addr", "http://"+ln.Addr().String(), "startup", time.Since(start).Round(time.Millisecond))

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http: %w", err))
		srv.Close()
	}
	if queueStarted {
		if err := queue.Stop(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop jobs: %w", err))
		}
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	logger.Info("stopped")
	return errors.Join(errs...)
}

// migrationSets returns every migration set: each module's SQL set, then
// the job queue's schema in the main database, which it also returns alone.
func migrationSets(dbs *store.Databases) ([]store.MigrationSet, store.MigrationSet, error) {
	sets, err := dbs.MigrationSets()
	if err != nil {
		return nil, nil, err
	}
	q, err := jobs.NewMigrations(dbs.DB(store.SetMain))
	if err != nil {
		return nil, nil, err
	}
	return append(sets, q), q, nil
}

func migrateUp(ctx context.Context, sets []store.MigrationSet, logger *slog.Logger) error {
	for _, s := range sets {
		applied, err := s.Up(ctx)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			logger.Info("migrations applied", "set", s.Name(), "versions", applied)
		}
	}
	return nil
}

// readiness returns the /ready check: every database answers within a
// short timeout and every migration set has nothing pending.
func readiness(dbs *store.Databases, sets []store.MigrationSet, logger *slog.Logger) func(context.Context) httpapi.Readiness {
	return func(ctx context.Context) httpapi.Readiness {
		rd := httpapi.Readiness{Ready: true}
		fail := func(name, detail string, err error) {
			rd.Ready = false
			rd.Checks = append(rd.Checks, httpapi.Check{Name: name, Status: "failed", Detail: detail})
			logger.Warn("readiness check failed", "check", name, "err", err)
		}
		for _, db := range dbs.Unique() {
			name := "database:" + dbs.Label(db)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := db.Ping(pctx)
			cancel()
			if err != nil {
				fail(name, "unreachable", err)
				continue
			}
			rd.Checks = append(rd.Checks, httpapi.Check{Name: name, Status: "ok"})
		}
		for _, s := range sets {
			name := "migrations:" + s.Name()
			st, err := s.Status(ctx)
			switch {
			case err != nil:
				fail(name, "cannot read migration history", err)
			case st.Pending() > 0:
				fail(name, fmt.Sprintf("%d migrations pending; run `nodus migrate up`", st.Pending()), nil)
			default:
				rd.Checks = append(rd.Checks, httpapi.Check{Name: name, Status: "ok", Detail: fmt.Sprintf("version %d", st.Current())})
			}
		}
		return rd
	}
}
