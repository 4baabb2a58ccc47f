package store_test

import (
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// fixture is a three-step migration history written for both dialects.
func fixture(d store.Dialect) fstest.MapFS {
	ts := "TEXT"
	if d == store.Postgres {
		ts = "TIMESTAMPTZ"
	}
	return fstest.MapFS{
		"0001_create_note.up.sql":   {Data: []byte("CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT NOT NULL);\nCREATE INDEX note_body ON note (body);")},
		"0001_create_note.down.sql": {Data: []byte("DROP TABLE note;")},
		"0002_add_created.up.sql":   {Data: []byte("ALTER TABLE note ADD COLUMN created_at " + ts + ";")},
		"0002_add_created.down.sql": {Data: []byte("ALTER TABLE note DROP COLUMN created_at;")},
		"0003_create_tag.up.sql":    {Data: []byte("CREATE TABLE tag (name TEXT PRIMARY KEY);")},
		"0003_create_tag.down.sql":  {Data: []byte("DROP TABLE tag;")},
	}
}

func loadFixture(t *testing.T, fsys fs.FS) []store.Migration {
	t.Helper()
	ms, err := store.LoadMigrations(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func versions(st store.MigrationStatus, state string) []int {
	var out []int
	for _, v := range st.Versions {
		if v.State == state {
			out = append(out, v.Version)
		}
	}
	return out
}

func status(t *testing.T, m store.MigrationSet) store.MigrationStatus {
	t.Helper()
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMigratorUpDownStatus(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		m := store.NewMigratorFrom("main", db, loadFixture(t, fixture(db.Dialect())))

		st := status(t, m)
		if st.Current() != 0 || st.Pending() != 3 {
			t.Fatalf("fresh database: current %d pending %d, want 0 and 3", st.Current(), st.Pending())
		}
		applied, err := m.Up(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(applied, []int{1, 2, 3}) {
			t.Fatalf("Up applied %v", applied)
		}
		if again, err := m.Up(ctx); err != nil || len(again) != 0 {
			t.Fatalf("second Up = %v, %v; want nothing", again, err)
		}
		st = status(t, m)
		if st.Current() != 3 || st.Pending() != 0 || st.Versions[0].AppliedAt.IsZero() {
			t.Fatalf("after Up: %+v", st)
		}
		mustExec(t, db, "INSERT INTO note (id, body, created_at) VALUES (?, ?, ?)", "n1", "hello", nodus.SystemClock{}.Now())

		// Another set in the same database keeps its own history.
		other := store.NewMigratorFrom("other", db, nil)
		if st := status(t, other); st.Current() != 0 || len(st.Versions) != 0 {
			t.Fatalf("other set sees %+v", st)
		}

		reverted, err := m.Down(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(reverted, []int{3, 2}) {
			t.Fatalf("Down(2) reverted %v", reverted)
		}
		if got := versions(status(t, m), store.StatePending); !slices.Equal(got, []int{2, 3}) {
			t.Fatalf("pending after Down(2) = %v", got)
		}
		// The note survived: only the column went.
		mustExec(t, db, "UPDATE note SET body = ? WHERE id = ?", "still here", "n1")

		reverted, err = m.Down(ctx, 5)
		if err != nil || !slices.Equal(reverted, []int{1}) {
			t.Fatalf("Down(5) past the start = %v, %v; want [1]", reverted, err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatalf("Up after full rollback: %v", err)
		}
	})
}

func TestMigratorFailureRollsBack(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		fsys := fixture(db.Dialect())
		fsys["0003_create_tag.up.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE tag (name TEXT PRIMARY KEY);\nTHIS IS NOT SQL;")}
		m := store.NewMigratorFrom("main", db, loadFixture(t, fsys))
		applied, err := m.Up(ctx)
		if err == nil {
			t.Fatal("Up with a broken migration succeeded")
		}
		if !slices.Equal(applied, []int{1, 2}) {
			t.Fatalf("applied %v before the failure, want [1 2]", applied)
		}
		if st := status(t, m); st.Current() != 2 {
			t.Fatalf("current = %d after failure, want 2", st.Current())
		}
		// The first statement of the broken migration was rolled back too.
		mustExec(t, db, "CREATE TABLE tag (name TEXT PRIMARY KEY)")
	})
}

func TestMigratorModifiedAndUnknown(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		fsys := fixture(db.Dialect())
		if _, err := store.NewMigratorFrom("main", db, loadFixture(t, fsys)).Up(ctx); err != nil {
			t.Fatal(err)
		}
		// A binary whose file 0002 was edited and which lacks 0003.
		fsys["0002_add_created.up.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE note ADD COLUMN created TEXT;")}
		delete(fsys, "0003_create_tag.up.sql")
		delete(fsys, "0003_create_tag.down.sql")
		older := store.NewMigratorFrom("main", db, loadFixture(t, fsys))
		st := status(t, older)
		if got := versions(st, store.StateModified); !slices.Equal(got, []int{2}) {
			t.Errorf("modified = %v, want [2]", got)
		}
		if got := versions(st, store.StateUnknown); !slices.Equal(got, []int{3}) {
			t.Errorf("unknown = %v, want [3]", got)
		}
		if _, err := older.Down(ctx, 1); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("rolling back a version the binary does not know: %v, want ECONFLICT", err)
		}
	})
}

// TestMigratorConcurrentUp starts several migrators at once, as replicas
// starting together would; each version must be applied exactly once.
func TestMigratorConcurrentUp(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, url string) {
		var wg sync.WaitGroup
		results := make(chan []int, 4)
		errs := make(chan error, 4)
		for range 4 {
			db, err := store.Open(ctx, storetest.Config(url))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			m := store.NewMigratorFrom("main", db, loadFixture(t, fixture(db.Dialect())))
			wg.Go(func() {
				applied, err := m.Up(ctx)
				results <- applied
				errs <- err
			})
		}
		wg.Wait()
		close(results)
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var all []int
		for r := range results {
			all = append(all, r...)
		}
		slices.Sort(all)
		if !slices.Equal(all, []int{1, 2, 3}) {
			t.Fatalf("versions applied across migrators = %v, want each once", all)
		}
	})
}

func TestLoadMigrationsRejects(t *testing.T) {
	tests := map[string]fstest.MapFS{
		"no down":      {"0001_a.up.sql": {Data: []byte("SELECT 1")}},
		"no up":        {"0001_a.down.sql": {Data: []byte("SELECT 1")}},
		"bad name":     {"first.up.sql": {Data: []byte("SELECT 1")}},
		"bad suffix":   {"0001_a.sideways.sql": {Data: []byte("SELECT 1")}},
		"zero version": {"0000_a.up.sql": {Data: []byte("SELECT 1")}, "0000_a.down.sql": {Data: []byte("SELECT 1")}},
		"two names": {"0001_a.up.sql": {Data: []byte("SELECT 1")}, "0001_a.down.sql": {Data: []byte("SELECT 1")},
			"0001_b.up.sql": {Data: []byte("SELECT 1")}, "0001_b.down.sql": {Data: []byte("SELECT 1")}},
	}
	for name, fsys := range tests {
		if _, err := store.LoadMigrations(fsys, "."); err == nil {
			t.Errorf("%s: loaded without error", name)
		}
	}
}

// TestEmbeddedMigrationsMatch checks that every set has the same versions,
// with the same names, for SQLite and PostgreSQL, and that each loads.
func TestEmbeddedMigrationsMatch(t *testing.T) {
	for _, set := range store.MigrationSets() {
		lite, err := store.EmbeddedMigrations(set, store.SQLite)
		if err != nil {
			t.Fatal(err)
		}
		pg, err := store.EmbeddedMigrations(set, store.Postgres)
		if err != nil {
			t.Fatal(err)
		}
		names := func(ms []store.Migration) string {
			var b strings.Builder
			for _, m := range ms {
				b.WriteString(m.Name)
				b.WriteByte(' ')
			}
			return b.String()
		}
		if len(lite) != len(pg) || names(lite) != names(pg) {
			t.Errorf("set %s: sqlite has %d migrations (%s), postgres %d (%s)", set, len(lite), names(lite), len(pg), names(pg))
			continue
		}
		for i := range lite {
			if lite[i].Version != pg[i].Version {
				t.Errorf("set %s: migration %d is version %d on sqlite and %d on postgres", set, i, lite[i].Version, pg[i].Version)
			}
		}
	}
}

// TestEmbeddedMigrationsApply applies and rolls back every embedded set on
// both engines.
func TestEmbeddedMigrationsApply(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		for _, set := range store.MigrationSets() {
			m, err := store.NewMigrator(set, db)
			if err != nil {
				t.Fatal(err)
			}
			applied, err := m.Up(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) > 0 {
				if _, err := m.Down(ctx, len(applied)); err != nil {
					t.Fatalf("set %s down: %v", set, err)
				}
				if _, err := m.Up(ctx); err != nil {
					t.Fatalf("set %s up again: %v", set, err)
				}
			}
		}
	})
}
