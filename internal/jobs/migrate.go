package jobs

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/nodus-os/nodus/internal/store"
)

// SetName is the name `nodus migrate` shows for the queue's schema.
const SetName = "jobs"

// Migrations is River's schema as a store.MigrationSet, so `nodus migrate`
// applies, rolls back and reports it beside Nodus's own sets. River keeps
// its history in its own river_migration table; each step runs inside a
// store transaction, where on PostgreSQL the migration lock is held.
type Migrations struct {
	db *store.DB
	// Each func runs River's migrator inside tx.
	all      func() []rivermigrate.Migration
	existing func(ctx context.Context, tx *store.Tx) ([]rivermigrate.Migration, error)
	migrate  func(ctx context.Context, tx *store.Tx, dir rivermigrate.Direction, opts *rivermigrate.MigrateOpts) (*rivermigrate.MigrateResult, error)
}

// NewMigrations returns the queue's migration set on db.
func NewMigrations(db *store.DB) (*Migrations, error) {
	m := &Migrations{db: db}
	var err error
	switch db.Dialect() {
	case store.SQLite:
		err = bindMigrations(m, riversqlite.New(db.WritePool()), (*store.Tx).SQLTx)
	case store.Postgres:
		err = bindMigrations(m, riverpgxv5.New(db.PgxPool()), func(tx *store.Tx) pgx.Tx { return tx.PgxTx() })
	default:
		err = fmt.Errorf("jobs: unsupported dialect %s", db.Dialect())
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// bindMigrations connects m to River's migrator for one driver; txOf
// extracts the driver's transaction type from a store.Tx.
func bindMigrations[TTx any](m *Migrations, driver riverdriver.Driver[TTx], txOf func(*store.Tx) TTx) error {
	rm, err := rivermigrate.New(driver, nil)
	if err != nil {
		return fmt.Errorf("jobs: migrator: %w", err)
	}
	m.all = rm.AllVersions
	m.existing = func(ctx context.Context, tx *store.Tx) ([]rivermigrate.Migration, error) {
		return rm.ExistingVersionsTx(ctx, txOf(tx))
	}
	m.migrate = func(ctx context.Context, tx *store.Tx, dir rivermigrate.Direction, opts *rivermigrate.MigrateOpts) (*rivermigrate.MigrateResult, error) {
		return rm.MigrateTx(ctx, txOf(tx), dir, opts)
	}
	return nil
}

// Name returns "jobs".
func (m *Migrations) Name() string { return SetName }

// Status lists River's versions and which are applied.
func (m *Migrations) Status(ctx context.Context) (store.MigrationStatus, error) {
	st := store.MigrationStatus{Set: SetName, Database: m.db.URL()}
	var existing []rivermigrate.Migration
	err := m.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		existing, err = m.existing(ctx, tx)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("jobs: migration status: %w", err)
	}
	applied := map[int]bool{}
	for _, e := range existing {
		applied[e.Version] = true
	}
	for _, v := range m.all() {
		state := store.StatePending
		if applied[v.Version] {
			state = store.StateApplied
			delete(applied, v.Version)
		}
		st.Versions = append(st.Versions, store.VersionStatus{Version: v.Version, Name: v.Name, State: state})
	}
	for v := range applied {
		st.Versions = append(st.Versions, store.VersionStatus{Version: v, State: store.StateUnknown})
	}
	slices.SortFunc(st.Versions, func(a, b store.VersionStatus) int { return a.Version - b.Version })
	return st, nil
}

// Up applies River's pending migrations.
func (m *Migrations) Up(ctx context.Context) ([]int, error) {
	return m.run(ctx, rivermigrate.DirectionUp, -1)
}

// Down rolls back River's last steps migrations.
func (m *Migrations) Down(ctx context.Context, steps int) ([]int, error) {
	if steps <= 0 {
		return nil, fmt.Errorf("jobs: steps must be positive")
	}
	return m.run(ctx, rivermigrate.DirectionDown, steps)
}

// run applies one version per transaction: some of River's PostgreSQL
// migrations add an enum value that a later one uses, which PostgreSQL
// allows only after the adding transaction commits. steps < 0 means all.
func (m *Migrations) run(ctx context.Context, dir rivermigrate.Direction, steps int) ([]int, error) {
	var done []int
	for steps < 0 || len(done) < steps {
		var res *rivermigrate.MigrateResult
		err := m.db.Write(ctx, func(tx *store.Tx) error {
			if err := store.LockMigrations(ctx, tx); err != nil {
				return err
			}
			var err error
			res, err = m.migrate(ctx, tx, dir, &rivermigrate.MigrateOpts{MaxSteps: 1})
			return err
		})
		if err != nil {
			return done, fmt.Errorf("jobs: migrate %s: %w", dir, err)
		}
		if len(res.Versions) == 0 {
			break
		}
		for _, v := range res.Versions {
			done = append(done, v.Version)
		}
	}
	return done, nil
}
