package vault

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestHandleCacheBounded: the cache never holds more than its entries or
// bytes; a full cache drops expired entries first, then the oldest, and
// zeroes the plaintext of what it drops.
func TestHandleCacheBounded(t *testing.T) {
	c := newHandleCache(time.Minute, 3, 1<<10)
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	fills := 0
	get := func(i int, now time.Time) *resolvedEntry {
		t.Helper()
		key := handleKey{tenantID: "t", handleID: fmt.Sprint(i)}
		var kept *resolvedEntry
		_, err := c.resolve(context.Background(), key, now, func() (*resolvedEntry, error) {
			fills++
			kept = &resolvedEntry{r: Resolved{HandleID: key.handleID}, plain: []byte("value " + key.handleID)}
			return kept, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return kept
	}
	for i := range 5 {
		get(i, start.Add(time.Duration(i)*time.Second))
		if c.len() > 3 {
			t.Fatalf("%d entries after %d fills, want at most 3", c.len(), i+1)
		}
	}
	// 0 and 1 went, oldest first; 2, 3 and 4 are hits.
	fills = 0
	for _, i := range []int{2, 3, 4} {
		get(i, start.Add(5*time.Second))
	}
	if fills != 0 {
		t.Errorf("%d of the 3 newest were not kept", fills)
	}
	get(0, start.Add(5*time.Second))
	if fills != 1 || c.len() != 3 {
		t.Errorf("the oldest was kept: %d fills, %d entries", fills, c.len())
	}

	// Expired entries go before live ones, and their plaintext is zeroed.
	c = newHandleCache(time.Minute, 3, 1<<10)
	get(0, start)
	first := c.entries[handleKey{tenantID: "t", handleID: "0"}].Value.(*resolvedEntry)
	get(1, start.Add(50*time.Second))
	get(2, start.Add(61*time.Second)) // 0 has expired: it goes, 1 stays
	if _, ok := c.entries[handleKey{tenantID: "t", handleID: "1"}]; !ok || c.len() != 2 {
		t.Errorf("a live entry went before an expired one: %d entries", c.len())
	}
	for _, b := range first.plain {
		if b != 0 {
			t.Fatal("the dropped entry's plaintext was not zeroed")
		}
	}

	// The bytes are bounded too: two values of 400 bytes fit in 1 KiB, a
	// third pushes the oldest out, and one over 1 KiB is never kept.
	c = newHandleCache(time.Minute, 10, 1<<10)
	put := func(id string, size int) {
		t.Helper()
		_, err := c.resolve(context.Background(), handleKey{tenantID: "t", handleID: id}, start, func() (*resolvedEntry, error) {
			return &resolvedEntry{plain: make([]byte, size)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("a", 400)
	put("b", 400)
	put("c", 400)
	if _, ok := c.entries[handleKey{tenantID: "t", handleID: "a"}]; ok || c.len() != 2 || c.bytes != 800 {
		t.Errorf("over the byte budget: %d entries, %d bytes", c.len(), c.bytes)
	}
	put("huge", 2<<10)
	if _, ok := c.entries[handleKey{tenantID: "t", handleID: "huge"}]; ok || c.bytes != 800 {
		t.Errorf("a value larger than the budget was kept: %d bytes", c.bytes)
	}
}

// TestHandleCacheStaleFill: a fill that a write overtakes is not kept, and
// a caller arriving after the write does not join it.
func TestHandleCacheStaleFill(t *testing.T) {
	c := newHandleCache(time.Minute, 10, 1<<10)
	key := handleKey{tenantID: "t", handleID: "h"}
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	inFill, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := c.resolve(context.Background(), key, now, func() (*resolvedEntry, error) {
			close(inFill)
			<-release
			return &resolvedEntry{plain: []byte("old")}, nil
		})
		done <- err
	}()
	<-inFill
	c.forget("t") // a write lands while the fill reads
	r, err := c.resolve(context.Background(), key, now, func() (*resolvedEntry, error) {
		return &resolvedEntry{plain: []byte("new")}, nil
	})
	if err != nil || r.Value.Reveal() != "new" {
		t.Errorf("a caller after the write joined the older fill: %v, %v", r, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r, _ = c.resolve(context.Background(), key, now, func() (*resolvedEntry, error) { return nil, errors.New("no fill expected") })
	if r == nil || r.Value.Reveal() != "new" {
		t.Errorf("the overtaken fill replaced the fresh entry: %v", r)
	}
}
