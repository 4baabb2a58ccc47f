package store_test

import (
	"slices"
	"testing"

	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// UpTo stops at the version asked for, leaves the rest pending, and a later
// Up applies exactly what is left.
func TestMigratorUpTo(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		m := store.NewMigratorFrom("fixture", db, loadFixture(t, fixture(db.Dialect())))
		if _, err := m.UpTo(ctx, -1); err == nil {
			t.Fatal("UpTo(-1) succeeded; want an error")
		}
		applied, err := m.UpTo(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(applied, []int{1}) {
			t.Fatalf("UpTo(1) applied %v, want [1]", applied)
		}
		st := status(t, m)
		if got := versions(st, store.StatePending); !slices.Equal(got, []int{2, 3}) {
			t.Fatalf("pending after UpTo(1) = %v, want [2 3]", got)
		}
		// Version 1's table exists and version 2's column does not yet.
		if err := db.Write(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO note (id, body) VALUES ('a', 'kept')")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if applied, err = m.UpTo(ctx, 1); err != nil || len(applied) != 0 {
			t.Fatalf("second UpTo(1) = %v, %v; want nothing applied", applied, err)
		}
		if applied, err = m.Up(ctx); err != nil || !slices.Equal(applied, []int{2, 3}) {
			t.Fatalf("Up after UpTo(1) = %v, %v; want [2 3]", applied, err)
		}
		var body string
		if err := db.Read(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, "SELECT body FROM note WHERE id = 'a' AND created_at IS NULL").Scan(&body)
		}); err != nil || body != "kept" {
			t.Fatalf("row after upgrade = %q, %v; want kept", body, err)
		}
	})
}
