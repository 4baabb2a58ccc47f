package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWALStaysBounded: under writes that never pause, passive checkpoints
// alone never let the WAL start again from its beginning; past
// walLimitFrames the checkpoint loop truncates it. Maintain then leaves
// it empty.
func TestWALStaysBounded(t *testing.T) {
	limit, every := walLimitFrames, walTruncateEvery
	walLimitFrames, walTruncateEvery = 256, 100*time.Millisecond // 1 MiB
	t.Cleanup(func() { walLimitFrames, walTruncateEvery = limit, every })

	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wal.db")
	db, err := Open(ctx, Config{URL: "sqlite:" + path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, "CREATE TABLE item (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			return 0
		}
		return fi.Size()
	}

	// Writers commit back to back, and a reader keeps reading, for two
	// seconds and at least 6,000 commits (a loaded machine commits fewer,
	// and a WAL truncated every 100 ms is then a larger share of what was
	// written), at most 20 s; the WAL's largest size is sampled meanwhile.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var commits atomic.Int64
	body := strings.Repeat("x", 3000)
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				if err := db.Write(ctx, func(tx *Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO item (body) VALUES (?)", body)
					return err
				}); err != nil {
					t.Error(err)
					return
				}
				commits.Add(1)
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			if err := db.Read(ctx, func(tx *Tx) error {
				var n int
				return tx.QueryRow(ctx, "SELECT COUNT(*) FROM item WHERE id > (SELECT MAX(id) - 100 FROM item)").Scan(&n)
			}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var largest int64
	start := time.Now()
	for since := time.Duration(0); since < 20*time.Second && (since < 2*time.Second || commits.Load() < 6000); since = time.Since(start) {
		largest = max(largest, walSize())
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	// Each commit appends one to three pages; without the truncation the
	// WAL holds them all (130-290 MB for 95-105 MB of rows here).
	// Truncated past 1 MiB every 100 ms or so, it holds about a tenth of a
	// second's worth (20-27 MB).
	written := commits.Load() * 4096
	t.Logf("%d commits (%d MB at a page each), largest WAL %d MB", commits.Load(), written>>20, largest>>20)
	if largest > written*2/3 {
		t.Errorf("the WAL reached %d MB after %d MB of rows: it was not truncated", largest>>20, written>>20)
	}
	if err := db.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := walSize(); n != 0 {
		t.Errorf("WAL of %d bytes after Maintain, want it truncated", n)
	}
}
