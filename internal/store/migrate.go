package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// migrationFS holds migrations/<set>/<dialect>/NNNN_name.{up,down}.sql.
//
//go:embed migrations
var migrationFS embed.FS

// Migration sets, one per module database. On PostgreSQL they usually share
// one database; each keeps its own version sequence.
const (
	SetMain    = "main"
	SetAuth    = "auth"
	SetGateway = "gateway"
	SetTracing = "tracing"
	SetVault   = "vault"
)

// MigrationSets lists the sets in the order they are applied.
func MigrationSets() []string {
	return []string{SetMain, SetAuth, SetGateway, SetTracing, SetVault}
}

// Migration is one versioned schema change.
type Migration struct {
	Version  int
	Name     string
	Up       string
	Down     string
	Checksum string // SHA-256 of Up, to notice a file edited after it was applied
}

// Migration states reported by Status.
const (
	StateApplied  = "applied"
	StatePending  = "pending"
	StateModified = "modified" // applied, but the file changed since
	StateUnknown  = "unknown"  // applied by a newer binary
)

// VersionStatus is one line of a migration history.
type VersionStatus struct {
	Version   int
	Name      string
	State     string
	AppliedAt time.Time
}

// MigrationStatus is the history of one set in one database.
type MigrationStatus struct {
	Set      string
	Database string // redacted URL
	Versions []VersionStatus
}

// Current returns the highest applied version, 0 when none is.
func (s MigrationStatus) Current() int {
	v := 0
	for _, m := range s.Versions {
		if m.State != StatePending {
			v = max(v, m.Version)
		}
	}
	return v
}

// Pending returns how many known migrations are not applied.
func (s MigrationStatus) Pending() int {
	n := 0
	for _, m := range s.Versions {
		if m.State == StatePending {
			n++
		}
	}
	return n
}

// MigrationSet is a versioned schema in one database that `nodus migrate`
// manages: the SQL sets of this package, and the job queue's schema.
type MigrationSet interface {
	Name() string
	Status(ctx context.Context) (MigrationStatus, error)
	// Up applies every pending migration and returns the versions applied.
	Up(ctx context.Context) ([]int, error)
	// Down rolls back the last steps migrations and returns their versions.
	Down(ctx context.Context, steps int) ([]int, error)
}

// LoadMigrations reads the migrations in dir of fsys. A missing dir is an
// empty set. Every NNNN_name.up.sql needs a matching NNNN_name.down.sql.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read migrations %s: %w", dir, err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		base, dir2, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), ".")
		if !ok || (dir2 != "up" && dir2 != "down") {
			return nil, fmt.Errorf("store: migration %s/%s: name must be NNNN_name.up.sql or NNNN_name.down.sql", dir, name)
		}
		num, label, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 || label == "" {
			return nil, fmt.Errorf("store: migration %s/%s: name must start with a positive version and an underscore", dir, name)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s/%s: %w", dir, name, err)
		}
		m := byVersion[version]
		if m == nil {
			m = &Migration{Version: version, Name: label}
			byVersion[version] = m
		} else if m.Name != label {
			return nil, fmt.Errorf("store: migration %s: version %d is used by %q and %q", dir, version, m.Name, label)
		}
		if dir2 == "up" {
			m.Up = string(body)
			sum := sha256.Sum256(body)
			m.Checksum = hex.EncodeToString(sum[:])
		} else {
			m.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" {
			return nil, fmt.Errorf("store: migration %s: version %d has a down file but no up file", dir, m.Version)
		}
		if m.Down == "" {
			return nil, fmt.Errorf("store: migration %s: version %d has no down file", dir, m.Version)
		}
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// EmbeddedMigrations returns the migrations built into the binary for a set
// and dialect.
func EmbeddedMigrations(set string, d Dialect) ([]Migration, error) {
	return LoadMigrations(migrationFS, path.Join("migrations", set, d.String()))
}

// Migrator applies one set of SQL migrations to a database. It keeps its
// history in schema_migrations, keyed by set, so several sets can share a
// database.
type Migrator struct {
	set        string
	db         *DB
	migrations []Migration
}

// NewMigrator returns a Migrator for the embedded migrations of set.
func NewMigrator(set string, db *DB) (*Migrator, error) {
	ms, err := EmbeddedMigrations(set, db.Dialect())
	if err != nil {
		return nil, err
	}
	return NewMigratorFrom(set, db, ms), nil
}

// NewMigratorFrom returns a Migrator for the given migrations.
func NewMigratorFrom(set string, db *DB, migrations []Migration) *Migrator {
	return &Migrator{set: set, db: db, migrations: migrations}
}

// Name returns the set's name.
func (m *Migrator) Name() string { return m.set }

// migrationLockKey serialises migrations across processes on PostgreSQL
// (replicas starting together). SQLite's BEGIN IMMEDIATE does the same.
const migrationLockKey = 0x6e6f647573 // "nodus"

// LockMigrations takes the cross-process migration lock for the rest of
// tx: an advisory lock on PostgreSQL; on SQLite the write transaction's
// BEGIN IMMEDIATE already excludes every other writer.
func LockMigrations(ctx context.Context, tx *Tx) error {
	if tx.Dialect() != Postgres {
		return nil
	}
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(?)", int64(migrationLockKey))
	return err
}

// lock takes the migration lock and makes sure the history table exists.
func (m *Migrator) lock(ctx context.Context, tx *Tx) error {
	if err := LockMigrations(ctx, tx); err != nil {
		return err
	}
	ddl := `CREATE TABLE IF NOT EXISTS schema_migrations (
		migration_set TEXT NOT NULL,
		version INTEGER NOT NULL,
		name TEXT NOT NULL,
		checksum TEXT NOT NULL,
		applied_at TEXT NOT NULL,
		PRIMARY KEY (migration_set, version))`
	if tx.Dialect() == Postgres {
		ddl = strings.Replace(ddl, "applied_at TEXT", "applied_at TIMESTAMPTZ", 1)
	}
	_, err := tx.Exec(ctx, ddl)
	return err
}

type appliedMigration struct {
	version   int
	name      string
	checksum  string
	appliedAt time.Time
}

func (m *Migrator) applied(ctx context.Context, tx *Tx) (map[int]appliedMigration, error) {
	rows, err := tx.Query(ctx, `SELECT version, name, checksum, applied_at FROM schema_migrations
		WHERE migration_set = ? ORDER BY version`, m.set)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]appliedMigration{}
	for rows.Next() {
		var a appliedMigration
		if err := rows.Scan(&a.version, &a.name, &a.checksum, &a.appliedAt); err != nil {
			return nil, err
		}
		out[a.version] = a
	}
	return out, rows.Err()
}

// tableExists reports whether schema_migrations exists, so Status can read
// an empty database without writing to it.
func (m *Migrator) tableExists(ctx context.Context, tx *Tx) (bool, error) {
	q := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
	if tx.Dialect() == Postgres {
		q = "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'schema_migrations' AND schemaname = current_schema()"
	}
	var n int
	err := tx.QueryRow(ctx, q).Scan(&n)
	return n > 0, err
}

// Status returns the set's history: every known migration and every applied
// one, in version order.
func (m *Migrator) Status(ctx context.Context) (MigrationStatus, error) {
	st := MigrationStatus{Set: m.set, Database: m.db.URL()}
	var applied map[int]appliedMigration
	err := m.db.Read(ctx, func(tx *Tx) error {
		ok, err := m.tableExists(ctx, tx)
		if err != nil || !ok {
			return err
		}
		applied, err = m.applied(ctx, tx)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("store: migration status of %s: %w", m.set, err)
	}
	for _, mig := range m.migrations {
		v := VersionStatus{Version: mig.Version, Name: mig.Name, State: StatePending}
		if a, ok := applied[mig.Version]; ok {
			v.State, v.AppliedAt = StateApplied, a.appliedAt
			if a.checksum != mig.Checksum {
				v.State = StateModified
			}
			delete(applied, mig.Version)
		}
		st.Versions = append(st.Versions, v)
	}
	for _, a := range applied {
		st.Versions = append(st.Versions, VersionStatus{Version: a.version, Name: a.name, State: StateUnknown, AppliedAt: a.appliedAt})
	}
	slices.SortFunc(st.Versions, func(a, b VersionStatus) int { return a.Version - b.Version })
	return st, nil
}

// Up applies every pending migration in order, each in its own transaction
// together with its history row, so a failure leaves the database at the
// last good version.
func (m *Migrator) Up(ctx context.Context) ([]int, error) {
	return m.UpTo(ctx, 0)
}

// UpTo is Up stopping after version: migrations numbered above it stay
// pending. It lets a test build a database as an older release left it.
// version 0 means every migration.
func (m *Migrator) UpTo(ctx context.Context, version int) ([]int, error) {
	if version < 0 {
		return nil, nodus.Errorf(nodus.EINVALID, "version must not be negative")
	}
	// The history table exists after the first Up even when the set has no
	// migrations yet, so every database Nodus manages is marked as such.
	if err := m.db.Write(ctx, func(tx *Tx) error { return m.lock(ctx, tx) }); err != nil {
		return nil, fmt.Errorf("store: migrate %s: %w", m.set, err)
	}
	restore, err := m.db.spillTemp(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate %s: %w", m.set, err)
	}
	defer restore()
	var done []int
	for _, mig := range m.migrations {
		if version > 0 && mig.Version > version {
			break
		}
		var ran bool
		err := m.db.Write(ctx, func(tx *Tx) error {
			if err := m.lock(ctx, tx); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM schema_migrations WHERE migration_set = ? AND version = ?",
				m.set, mig.Version).Scan(&n); err != nil || n > 0 {
				return err
			}
			if err := tx.execScript(ctx, mig.Up); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (migration_set, version, name, checksum, applied_at)
				VALUES (?, ?, ?, ?, ?)`, m.set, mig.Version, mig.Name, mig.Checksum, time.Now().UTC())
			ran = err == nil
			return err
		})
		if err != nil {
			return done, fmt.Errorf("store: migrate %s up to %d (%s): %w", m.set, mig.Version, mig.Name, err)
		}
		if ran {
			done = append(done, mig.Version)
		}
	}
	return done, nil
}

// Down rolls back the last steps applied migrations, newest first.
func (m *Migrator) Down(ctx context.Context, steps int) ([]int, error) {
	if steps <= 0 {
		return nil, nodus.Errorf(nodus.EINVALID, "steps must be positive")
	}
	restore, err := m.db.spillTemp(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate %s down: %w", m.set, err)
	}
	defer restore()
	var done []int
	for range steps {
		var version int
		err := m.db.Write(ctx, func(tx *Tx) error {
			if err := m.lock(ctx, tx); err != nil {
				return err
			}
			err := tx.QueryRow(ctx, "SELECT version FROM schema_migrations WHERE migration_set = ? ORDER BY version DESC LIMIT 1",
				m.set).Scan(&version)
			if errors.Is(err, sql.ErrNoRows) {
				version = 0
				return nil
			}
			if err != nil {
				return err
			}
			i := slices.IndexFunc(m.migrations, func(x Migration) bool { return x.Version == version })
			if i < 0 {
				return nodus.Errorf(nodus.ECONFLICT,
					"version %d was applied by a newer Nodus; roll it back with that binary", version)
			}
			if err := tx.execScript(ctx, m.migrations[i].Down); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "DELETE FROM schema_migrations WHERE migration_set = ? AND version = ?", m.set, version)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("store: migrate %s down from %d: %w", m.set, version, err)
		}
		if version == 0 {
			break
		}
		done = append(done, version)
	}
	return done, nil
}
