package store_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// BenchmarkWriteSpend measures the spend writer's side of the gateway
// database: batches of 500 spend-log rows, with their daily rollups and a
// key budget's spend, written as the spend writer writes them at a few
// thousand calls a second. The SQLite file is opened as OpenDatabases
// opens the gateway database (temporary storage in memory), after 10,000
// rows and ANALYZE.
//
//	NODUS_TEST_POSTGRES_URL=… go test -run '^$' -bench WriteSpend -benchtime 40x ./internal/store/
func BenchmarkWriteSpend(b *testing.B) {
	dbs := map[string]func(testing.TB) *store.DB{"sqlite": func(tb testing.TB) *store.DB {
		cfg := storetest.Config(storetest.SQLiteURL(tb))
		cfg.WriteTempMemory = true
		db, err := store.Open(context.Background(), cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		return db
	}}
	if os.Getenv("NODUS_TEST_POSTGRES_URL") != "" {
		dbs["postgres"] = storetest.OpenPostgres
	}
	for _, name := range []string{"sqlite", "postgres"} {
		open := dbs[name]
		if open == nil {
			continue
		}
		b.Run(name, func(b *testing.B) {
			db := open(b)
			m, err := store.NewMigrator(store.SetGateway, db)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Up(context.Background()); err != nil {
				b.Fatal(err)
			}
			s := newTenantScope()
			key := nodus.NewID()
			budget := newBudget(s.id, gateway.BudgetTenant, "", 1<<50)
			if err := db.CreateBudget(s.ctx, budget); err != nil {
				b.Fatal(err)
			}
			const rows = 500
			start := time.Now().Add(-time.Hour)
			batch := func(i int) {
				logs := make([]gateway.SpendLog, rows)
				for j := range logs {
					logs[j] = spendLog(s.id, key, start.Add(time.Duration(i*rows+j)*time.Millisecond), 103)
				}
				if err := db.WriteSpend(ctx, logs, []gateway.BudgetSpend{{BudgetID: budget.ID, Micros: rows * 103}}); err != nil {
					b.Fatal(err)
				}
			}
			storetest.BenchBatches(b, db, rows, "rows", batch)
		})
	}
}
