package store_test

import (
	"fmt"
	"testing"

	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// BenchmarkStore measures one write transaction (an insert) and one read
// transaction (a point lookup) on each engine: the floor under every
// module's store method.
//
//	go test -run '^$' -bench Store ./internal/store/
func BenchmarkStore(b *testing.B) {
	for _, engine := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.OpenSQLite}, {"postgres", storetest.OpenPostgres}} {
		b.Run(engine.name, func(b *testing.B) {
			db := engine.open(b)
			if err := db.Write(ctx, func(tx *store.Tx) error {
				_, err := tx.Exec(ctx, "CREATE TABLE item (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
				return err
			}); err != nil {
				b.Fatal(err)
			}
			b.Run("write", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if err := db.Write(ctx, func(tx *store.Tx) error {
						_, err := tx.Exec(ctx, "INSERT INTO item (id, body) VALUES (?, ?)", fmt.Sprintf("w%d", i), "hello")
						return err
					}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("read", func(b *testing.B) {
				for b.Loop() {
					var body string
					if err := db.Read(ctx, func(tx *store.Tx) error {
						return tx.QueryRow(ctx, "SELECT body FROM item WHERE id = ?", "w0").Scan(&body)
					}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("read-parallel", func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						var body string
						if err := db.Read(ctx, func(tx *store.Tx) error {
							return tx.QueryRow(ctx, "SELECT body FROM item WHERE id = ?", "w0").Scan(&body)
						}); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		})
	}
}
