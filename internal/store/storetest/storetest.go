// Package storetest gives tests real databases: a SQLite file in a temp
// directory, and a fresh schema on the PostgreSQL server named by
// NODUS_TEST_POSTGRES_URL. Run runs a test on both, which is how every store
// test is written.
//
// Without NODUS_TEST_POSTGRES_URL the PostgreSQL half is skipped with a
// reason, except under CI=true, where it fails: CI must never pass by
// skipping. `make test` starts a throwaway server and sets the variable.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// PostgresEnv is the variable naming the test server.
const PostgresEnv = "NODUS_TEST_POSTGRES_URL"

// Run runs fn as two subtests, "sqlite" and "postgres", each with a new,
// empty database.
func Run(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	if !rlsPass() {
		t.Run("sqlite", func(t *testing.T) { fn(t, OpenSQLite(t)) })
	}
	t.Run("postgres", func(t *testing.T) { fn(t, OpenPostgres(t)) })
}

// rlsPass tells whether this run is the PostgreSQL pass under row-level
// security (RLSEnv): the SQLite subtests, which it does not change, ran
// in the main pass.
func rlsPass() bool { return os.Getenv(RLSEnv) == "1" }

// RunMigrated is Run with the migrations of set (store.SetMain, …)
// applied to each database first.
func RunMigrated(t *testing.T, set string, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	Run(t, func(t *testing.T, db *store.DB) {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(context.Background()); err != nil {
			t.Fatalf("migrate %s: %v", set, err)
		}
		fn(t, db)
	})
}

// BenchMigrated runs fn as a sub-benchmark on SQLite and on PostgreSQL
// (a throwaway server when NODUS_TEST_POSTGRES_URL is unset), each a new
// database with the migrations of set applied.
func BenchMigrated(b *testing.B, set string, fn func(b *testing.B, db *store.DB)) {
	b.Helper()
	for _, engine := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", OpenSQLite}, {"postgres", OpenPostgres}} {
		b.Run(engine.name, func(b *testing.B) {
			db := engine.open(b)
			m, err := store.NewMigrator(set, db)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Up(context.Background()); err != nil {
				b.Fatalf("migrate %s: %v", set, err)
			}
			fn(b, db)
		})
	}
}

// RunURL is Run for tests that open databases themselves: fn gets a URL of
// a new, empty database.
func RunURL(t *testing.T, fn func(t *testing.T, url string)) {
	t.Helper()
	if !rlsPass() {
		t.Run("sqlite", func(t *testing.T) { fn(t, SQLiteURL(t)) })
	}
	t.Run("postgres", func(t *testing.T) { fn(t, PostgresURL(t)) })
}

// Config returns the store configuration tests use for url.
func Config(url string) store.Config {
	return store.Config{URL: url, PoolSize: 4, PoolTimeout: 10 * time.Second}
}

// SQLiteURL returns the URL of a new SQLite file in a temp directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
}

// OpenSQLite opens a new SQLite database, closed when the test ends.
func OpenSQLite(t testing.TB) *store.DB {
	t.Helper()
	return open(t, SQLiteURL(t))
}

// OpenPostgres opens a new schema on the test server, dropped when the test
// ends.
func OpenPostgres(t testing.TB) *store.DB {
	t.Helper()
	return open(t, PostgresURL(t))
}

func open(t testing.TB, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), Config(url))
	if err != nil {
		t.Fatalf("open %s: %v", store.Redact(url), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// ServerURL returns NODUS_TEST_POSTGRES_URL, skipping the test when it is
// unset outside CI and failing it under CI.
func ServerURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(PostgresEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set under CI=true: PostgreSQL tests must run in CI (use `make test`)", PostgresEnv)
		}
		t.Skipf("PostgreSQL test skipped: %s is not set (`make test` starts a throwaway server)", PostgresEnv)
	}
	return u
}

// RLSEnv, set to 1, makes PostgresURL connect as RLSRole rather than as
// the test server's user: the test server's user is usually a superuser,
// which bypasses row-level security, so only this way do the tests prove
// that the store works with the policies in force, as production's
// least-privilege roles see them.
const RLSEnv = "NODUS_TEST_POSTGRES_RLS"

// RLSRole is the role PostgresAppURL connects as: a login role that is
// neither superuser nor BYPASSRLS, and owns the schema it is given, as a
// production role owns its database. The tables' FORCE ROW LEVEL SECURITY
// holds their owner to the policies.
const RLSRole = "nodus_test_app"

// PostgresURL creates a schema with a random name on the test server and
// returns a URL whose search_path points at it. The schema is dropped when
// the test ends. Under NODUS_TEST_POSTGRES_RLS=1 it is PostgresAppURL.
func PostgresURL(t testing.TB) string {
	t.Helper()
	if rlsPass() {
		return PostgresAppURL(t)
	}
	return postgresSchema(t, "")
}

// PostgresAppURL is PostgresURL connecting as RLSRole, which owns the
// schema: row-level security applies to everything done through the URL.
func PostgresAppURL(t testing.TB) string {
	t.Helper()
	server := ServerURL(t)
	// Roles are cluster-wide and test binaries run in parallel: create it
	// once, and let a concurrent creator win.
	exec(t, server, `DO $$ BEGIN
		CREATE ROLE `+RLSRole+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
	EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
	END $$`)
	return postgresSchema(t, RLSRole)
}

// postgresSchema creates the schema, owned by owner when it is not "",
// and returns a URL to it as owner (or as the server's user).
func postgresSchema(t testing.TB, owner string) string {
	t.Helper()
	server := ServerURL(t)
	schema := "test_" + randomHex(8)
	create := "CREATE SCHEMA " + schema
	if owner != "" {
		create += " AUTHORIZATION " + owner
	}
	exec(t, server, create)
	t.Cleanup(func() { exec(t, server, "DROP SCHEMA "+schema+" CASCADE") })

	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	if owner != "" {
		u.User = url.User(owner) // the test server trusts local connections
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgresDatabase creates a database with a random name on the test server
// and returns its URL; it is dropped when the test ends. Tests that need a
// whole database (roles, extensions) use it; most use PostgresURL.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	server := ServerURL(t)
	name := "test_" + randomHex(8)
	exec(t, server, "CREATE DATABASE "+name)
	t.Cleanup(func() { exec(t, server, "DROP DATABASE "+name+" WITH (FORCE)") })
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

func exec(t testing.TB, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// BenchBatches is the loop of a write benchmark: 20 batches first and
// ANALYZE, as a database that has served a while has statistics
// (autovacuum's ANALYZE, the SQLite optimize job; the planner of an empty
// table scans), then b.N timed batches of per units each, reported as
// units per second. batch gets the batch's index, negative for the
// warm-up.
func BenchBatches(b *testing.B, db *store.DB, per int, unit string, batch func(i int)) {
	b.Helper()
	for i := range 20 {
		batch(-1 - i)
	}
	ctx := context.Background()
	if err := db.Write(nodus.WithAllTenants(ctx), func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, "ANALYZE")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		batch(i)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), unit+"/s")
}
