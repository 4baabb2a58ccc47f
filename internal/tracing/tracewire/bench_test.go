package tracewire_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
	"github.com/nodus-os/nodus/internal/tracing/tracewire"
)

// BenchmarkRecordGatewayCalls measures what recording the gateway's own
// calls costs the tracing database: batches of 500 calls (a trace and a
// generation each, with a short prompt and answer, as the recorder writes
// them at a few thousand calls a second) ingested into a fresh database.
//
// A 10,000-call warm-up with statistics comes first.
//
//	NODUS_TEST_POSTGRES_URL=… go test -run '^$' -bench RecordGatewayCalls -benchtime 40x ./internal/tracing/tracewire/
func BenchmarkRecordGatewayCalls(b *testing.B) {
	dbs := map[string]func(testing.TB) *store.DB{"sqlite": openTracingSQLite}
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
			m, err := store.NewMigrator(store.SetTracing, db)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Up(context.Background()); err != nil {
				b.Fatal(err)
			}
			tenant := nodus.NewID()
			ctx := nodus.WithTenant(context.Background(), tenant)
			content := "Hello from the fake upstream."
			chat := &gateway.ChatRequest{Model: "gpt-4o", Messages: []gateway.Message{
				{Role: "user", Content: gateway.TextContent("Say hello")}}}
			const calls = 500
			start := time.Now().Add(-time.Hour)
			batch := func(i int) {

				events := make([]tracing.Event, 0, 2*calls)
				for j := range calls {
					at := start.Add(time.Duration(i*calls+j) * time.Millisecond)
					rec := gateway.CallRecord{Chat: chat, Streamed: content, Log: gateway.SpendLog{RequestID: nodus.NewID(), TenantID: tenant,
						KeyID: "key-1", UserID: "user-1", CallType: "chat", Model: "gpt-4o", DeploymentID: "dep-1",
						Provider: "openai", UpstreamModel: "gpt-4o-2024-08-06", PromptTokens: 9, CompletionTokens: 8,
						CostMicros: 103, StartedAt: at, EndedAt: at.Add(40 * time.Millisecond), TTFT: 20 * time.Millisecond,
						Status: gateway.StatusSuccess, StatusCode: 200}}
					events = append(events, tracewire.Events(rec)...)
				}
				if _, err := db.IngestEvents(ctx, events, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			storetest.BenchBatches(b, db, calls, "calls", batch)
		})
	}
}

// openTracingSQLite opens a SQLite file as OpenDatabases opens the
// tracing database: with its larger writer cache and its temporary
// storage in memory.
func openTracingSQLite(tb testing.TB) *store.DB {
	cfg := storetest.Config(storetest.SQLiteURL(tb))
	cfg.WriteCacheKiB = store.TracingWriteCacheKiB
	cfg.WriteTempMemory = true
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
