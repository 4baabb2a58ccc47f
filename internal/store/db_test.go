package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

var ctx = context.Background()

// platformCtx is for a test's own SQL that inspects or tampers with tenant
// rows directly: with row-level security in force (storetest.RLSEnv) an
// unscoped transaction would see none of them.
var platformCtx = nodus.WithAllTenants(ctx)

func mustExec(t *testing.T, db *store.DB, query string, args ...any) {
	t.Helper()
	err := db.Write(platformCtx, func(tx *store.Tx) error {
		_, err := tx.Exec(platformCtx, query, args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// timeType is the column type the migrations use for times.
func timeType(db *store.DB) string {
	if db.Dialect() == store.Postgres {
		return "TIMESTAMPTZ"
	}
	return "TEXT"
}

func TestTxCommitAndRollback(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		mustExec(t, db, "CREATE TABLE item (id TEXT PRIMARY KEY, n INTEGER NOT NULL)")

		if err := db.Write(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO item (id, n) VALUES (?, ?)", "a", 1)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if err := db.Write(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO item (id, n) VALUES (?, ?)", "b", 2); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("Write returned %v, want boom", err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic was swallowed")
				}
			}()
			_ = db.Write(ctx, func(tx *store.Tx) error {
				if _, err := tx.Exec(ctx, "INSERT INTO item (id, n) VALUES (?, ?)", "c", 3); err != nil {
					return err
				}
				panic("half-way")
			})
		}()

		var ids []string
		err := db.Read(ctx, func(tx *store.Tx) error {
			rows, err := tx.Query(ctx, "SELECT id FROM item ORDER BY id")
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(ids, ",") != "a" {
			t.Fatalf("rows after commit, error and panic = %v, want only a", ids)
		}
	})
}

func TestErrorCodes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		mustExec(t, db, "CREATE TABLE parent (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, n INTEGER CHECK (n >= 0))")
		mustExec(t, db, "CREATE TABLE child (id TEXT PRIMARY KEY, parent_id TEXT NOT NULL REFERENCES parent (id))")
		mustExec(t, db, "INSERT INTO parent (id, name, n) VALUES (?, ?, ?)", "p1", "one", 1)

		tests := []struct {
			name, query string
			args        []any
			code        string
		}{
			{"duplicate primary key", "INSERT INTO parent (id, name) VALUES (?, ?)", []any{"p1", "other"}, nodus.ECONFLICT},
			{"duplicate unique", "INSERT INTO parent (id, name) VALUES (?, ?)", []any{"p2", "one"}, nodus.ECONFLICT},
			{"missing foreign key", "INSERT INTO child (id, parent_id) VALUES (?, ?)", []any{"c1", "nope"}, nodus.ECONFLICT},
			{"not null", "INSERT INTO parent (id, name) VALUES (?, ?)", []any{"p3", nil}, nodus.EINVALID},
			{"check", "INSERT INTO parent (id, name, n) VALUES (?, ?, ?)", []any{"p4", "four", -1}, nodus.EINVALID},
			{"syntax error is internal", "INSERT INTO nowhere VALUES (?)", []any{1}, nodus.EINTERNAL},
		}
		for _, tt := range tests {
			err := db.Write(ctx, func(tx *store.Tx) error {
				_, err := tx.Exec(ctx, tt.query, tt.args...)
				return err
			})
			if got := nodus.ErrorCode(err); got != tt.code {
				t.Errorf("%s: code %q (%v), want %q", tt.name, got, err, tt.code)
			}
		}

		err := db.Read(ctx, func(tx *store.Tx) error {
			var n int
			return tx.QueryRow(ctx, "SELECT n FROM parent WHERE id = ?", "missing").Scan(&n)
		})
		if !errors.Is(err, sql.ErrNoRows) {
			t.Errorf("QueryRow on no rows = %v, want sql.ErrNoRows", err)
		}
	})
}

func TestReadIsReadOnly(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		mustExec(t, db, "CREATE TABLE item (id TEXT PRIMARY KEY)")
		err := db.Read(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO item (id) VALUES (?)", "x")
			return err
		})
		if err == nil {
			t.Fatal("a write inside Read succeeded")
		}
	})
}

func TestTimeRoundTrip(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		mustExec(t, db, "CREATE TABLE ev (id INTEGER PRIMARY KEY, at "+timeType(db)+" NOT NULL, done_at "+timeType(db)+")")
		local := time.FixedZone("CET", 3600)
		at := time.Date(2026, 11, 23, 10, 11, 12, 123456000, local)
		later := at.Add(90 * time.Minute)
		mustExec(t, db, "INSERT INTO ev (id, at, done_at) VALUES (?, ?, ?)", 1, at, &later)
		mustExec(t, db, "INSERT INTO ev (id, at, done_at) VALUES (?, ?, ?)", 2, at.Add(-time.Hour), nil)

		type row struct {
			at     time.Time
			doneAt *time.Time
		}
		var got []row
		err := db.Read(ctx, func(tx *store.Tx) error {
			rows, err := tx.Query(ctx, "SELECT at, done_at FROM ev WHERE at > ? ORDER BY at", at.Add(-2*time.Hour))
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.at, &r.doneAt); err != nil {
					return err
				}
				got = append(got, r)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d rows, want 2", len(got))
		}
		if !got[1].at.Equal(at) || got[1].at.Location() != time.UTC {
			t.Errorf("at = %v, want %v in UTC", got[1].at, at.UTC())
		}
		if got[1].doneAt == nil || !got[1].doneAt.Equal(later) {
			t.Errorf("done_at = %v, want %v", got[1].doneAt, later)
		}
		if got[0].doneAt != nil {
			t.Errorf("NULL done_at scanned as %v", got[0].doneAt)
		}
	})
}

// TestConcurrentWriters checks that concurrent read-modify-write
// transactions neither lose updates nor fail: SQLite serialises them on the
// write connection, PostgreSQL on the row lock.
func TestConcurrentWriters(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		mustExec(t, db, "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
		mustExec(t, db, "INSERT INTO counter (id, n) VALUES (1, 0)")
		const writers, each = 20, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for range writers {
			wg.Go(func() {
				for range each {
					errs <- db.Write(ctx, func(tx *store.Tx) error {
						_, err := tx.Exec(ctx, "UPDATE counter SET n = n + 1 WHERE id = 1")
						return err
					})
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := db.Read(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, "SELECT n FROM counter WHERE id = 1").Scan(&n)
		}); err != nil {
			t.Fatal(err)
		}
		if n != writers*each {
			t.Fatalf("counter = %d, want %d", n, writers*each)
		}
	})
}

// TestPoolTimeout checks that a caller waiting for a busy pool gives up
// after PoolTimeout with EUNAVAILABLE instead of hanging.
func TestPoolTimeout(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, url string) {
		cfg := storetest.Config(url)
		cfg.PoolSize = 1
		cfg.PoolTimeout = 150 * time.Millisecond
		db, err := store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()

		held := make(chan struct{})
		release := make(chan struct{})
		done := make(chan error)
		go func() {
			done <- db.Write(ctx, func(tx *store.Tx) error {
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		start := time.Now()
		err = db.Write(ctx, func(tx *store.Tx) error { return nil })
		if nodus.ErrorCode(err) != nodus.EUNAVAILABLE {
			t.Errorf("second writer got %v, want EUNAVAILABLE", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("second writer waited %v", d)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestSQLiteSettings(t *testing.T) {
	url := storetest.SQLiteURL(t)
	db, err := store.Open(ctx, storetest.Config(url))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	var fk, sync int
	err = db.Read(ctx, func(tx *store.Tx) error {
		if err := tx.QueryRow(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "PRAGMA synchronous").Scan(&sync)
	})
	if err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || fk != 1 || sync != 1 { // 1 = NORMAL
		t.Errorf("journal_mode=%s foreign_keys=%d synchronous=%d, want wal 1 1", mode, fk, sync)
	}
	fi, err := os.Stat(store.SQLitePath(url))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %o, want 600", perm)
	}

	cfg := storetest.Config(storetest.SQLiteURL(t))
	cfg.Synchronous = "OFF"
	if _, err := store.Open(ctx, cfg); nodus.ErrorCode(err) != nodus.EINVALID {
		t.Errorf("synchronous=OFF: %v, want EINVALID", err)
	}
}

func TestOpenPostgresFailure(t *testing.T) {
	// Nothing listens on port 1; the error must come quickly and must not
	// carry the password.
	cfg := store.Config{URL: "postgres://nodus:canary-pw@127.0.0.1:1/nodus?sslmode=disable", PoolTimeout: 2 * time.Second}
	start := time.Now()
	_, err := store.Open(ctx, cfg)
	if err == nil {
		t.Fatal("open succeeded")
	}
	if strings.Contains(err.Error(), "canary-pw") {
		t.Errorf("error leaks the password: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("open took %v", d)
	}
}

// itemFile is a SQLite database with one table, item, for the checkpoint
// tests: they watch the main file grow as the WAL is copied back.
type itemFile struct {
	t    testing.TB
	db   *store.DB
	path string
}

func newItemFile(t testing.TB) *itemFile {
	t.Helper()
	url := storetest.SQLiteURL(t)
	db, err := store.Open(context.Background(), storetest.Config(url))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &itemFile{t: t, db: db, path: store.SQLitePath(url)}
	w.exec("CREATE TABLE item (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
	return w
}

func (w *itemFile) exec(query string, args ...any) {
	w.t.Helper()
	ctx := context.Background()
	if err := w.db.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, query, args...)
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
}

// insert commits one row.
func (w *itemFile) insert(id int, body string) {
	w.t.Helper()
	w.exec("INSERT INTO item (id, body) VALUES (?, ?)", id, body)
}

// size is the main file's size: what checkpoints have copied back.
func (w *itemFile) size() int64 {
	w.t.Helper()
	fi, err := os.Stat(w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	return fi.Size()
}

// TestBackgroundCheckpoint checks that commits reach the database file
// without any commit checkpointing (the writer's autocheckpoint is off):
// the background loop copies the WAL back, so the main file grows while
// the test only writes.
func TestBackgroundCheckpoint(t *testing.T) {
	w := newItemFile(t)
	time.Sleep(200 * time.Millisecond) // let the table's creation land
	size := w.size
	before := size()
	for i := range 300 {
		w.insert(i, strings.Repeat("x", 1000))
	}
	deadline := time.Now().Add(5 * time.Second)
	for size() < before+200_000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes after 300 KB of commits (was %d): nothing checkpointed it", size(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCheckpointWaitsForCommits: a few commits are not copied back at
// once (the round that copies everything makes the next commit sync the
// WAL's header), but within about checkpointAge.
func TestCheckpointWaitsForCommits(t *testing.T) {
	w := newItemFile(t)
	// The table's creation lands: the file stops growing for longer than
	// a round waits.
	size := w.size
	before := size()
	for stable, deadline := time.Now(), time.Now().Add(10*time.Second); time.Since(stable) < 1200*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatal("the database file never stopped growing")
		}
		time.Sleep(50 * time.Millisecond)
		if got := size(); got != before {
			before, stable = got, time.Now()
		}
	}
	for i := range 5 {
		w.insert(i, strings.Repeat("x", 3000))
	}
	time.Sleep(300 * time.Millisecond)
	if got := size(); got != before {
		t.Fatalf("database file %d bytes 300 ms after five commits (was %d): copied back at once", got, before)
	}
	deadline := time.Now().Add(5 * time.Second)
	for size() == before {
		if time.Now().After(deadline) {
			t.Fatal("five commits never copied back into the database file")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkSparseCommits: single-row write transactions 20 ms apart, as an
// API's writes come, with the background checkpoint running; reports the
// commit's p50 and p90.
//
//	go test -run '^$' -bench SparseCommits -benchtime 200x ./internal/store/
func BenchmarkSparseCommits(b *testing.B) {
	w := newItemFile(b)
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		w.insert(i, "x")
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*9/10].Microseconds()), "p90-µs")
}

// TestWriteCache: the tracing database's writer gets the larger page
// cache, every other database SQLite's default; the tracing and gateway
// writers keep their temporary storage in memory, the others on files.
func TestWriteCache(t *testing.T) {
	dir := t.TempDir()
	urls := map[string]string{}
	for _, set := range store.MigrationSets() {
		urls[set] = "sqlite:" + filepath.Join(dir, set+".db")
	}
	dbs, err := store.OpenDatabases(ctx, urls, storetest.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer dbs.Close()
	for _, set := range store.MigrationSets() {
		var size int
		if err := dbs.DB(set).Write(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, "PRAGMA cache_size").Scan(&size)
		}); err != nil {
			t.Fatal(err)
		}
		want := -2000 // SQLite's default: 2,000 KiB
		if set == store.SetTracing {
			want = -store.TracingWriteCacheKiB
		}
		if size != want {
			t.Errorf("%s: the writer's cache_size is %d, want %d", set, size, want)
		}
		wantTemp := 0 // DEFAULT: files
		if slices.Contains(store.TempMemorySets, set) {
			wantTemp = 2 // MEMORY
		}
		if got := tempStore(t, dbs.DB(set)); got != wantTemp {
			t.Errorf("%s: the writer's temp_store is %d, want %d", set, got, wantTemp)
		}
	}
}

func tempStore(t *testing.T, db *store.DB) int {
	t.Helper()
	var mode int
	if err := db.Write(ctx, func(tx *store.Tx) error {
		return tx.QueryRow(ctx, "PRAGMA temp_store").Scan(&mode)
	}); err != nil {
		t.Fatal(err)
	}
	return mode
}

// TestMigrationsSortOnDisk: a writer that keeps temp_store MEMORY runs
// its migrations on files, where a CREATE INDEX on a large table sorts,
// and is back in memory after them, up or down.
func TestMigrationsSortOnDisk(t *testing.T) {
	cfg := storetest.Config(storetest.SQLiteURL(t))
	cfg.WriteTempMemory = true
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := tempStore(t, db); got != 2 {
		t.Fatalf("temp_store %d after Open, want 2 (MEMORY)", got)
	}
	m := store.NewMigratorFrom("main", db, loadFixture(t, fstest.MapFS{
		"0001_seen.up.sql":   {Data: []byte("CREATE TABLE seen (mode INTEGER NOT NULL);\nINSERT INTO seen SELECT temp_store FROM pragma_temp_store;")},
		"0001_seen.down.sql": {Data: []byte("INSERT INTO seen SELECT temp_store FROM pragma_temp_store;")},
	}))
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tempStore(t, db); got != 2 {
		t.Errorf("temp_store %d after Up, want 2 (MEMORY)", got)
	}
	// Down keeps the table (its script only records the mode), so both
	// migrations' modes are there to read.
	if _, err := m.Down(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := tempStore(t, db); got != 2 {
		t.Errorf("temp_store %d after Down, want 2 (MEMORY)", got)
	}
	var modes []int
	if err := db.Write(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, "SELECT mode FROM seen")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m int
			if err := rows.Scan(&m); err != nil {
				return err
			}
			modes = append(modes, m)
		}
		return rows.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(modes, []int{1, 1}) {
		t.Errorf("temp_store during the migrations up and down: %v, want [1 1] (FILE)", modes)
	}
}
