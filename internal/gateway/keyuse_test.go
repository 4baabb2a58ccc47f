package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestKeyLastUsed: a key's use is recorded as last_used_at, in batches
// and at most once a minute per key, so a busy key costs one write a
// minute, not one per call.
func TestKeyLastUsed(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		k, err := db.FindKey(w.tctx, w.keyID)
		if err != nil {
			t.Fatal(err)
		}
		if k.LastUsedAt != nil {
			t.Fatalf("a new key has last_used_at %v", k.LastUsedAt)
		}
		call := func() {
			t.Helper()
			if _, err := w.client(w.key).Models.List(ctx); err != nil {
				t.Fatal(err)
			}
		}
		before := time.Now().Add(-time.Second)
		call()
		w.svc.FlushKeyUse(ctx)
		k, err = db.FindKey(w.tctx, w.keyID)
		if err != nil {
			t.Fatal(err)
		}
		if k.LastUsedAt == nil || k.LastUsedAt.Before(before) || k.LastUsedAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("last_used_at %v after a call at %v", k.LastUsedAt, before)
		}
		first := *k.LastUsedAt
		time.Sleep(20 * time.Millisecond)
		call()
		call()
		w.svc.FlushKeyUse(ctx)
		k, err = db.FindKey(w.tctx, w.keyID)
		if err != nil {
			t.Fatal(err)
		}
		if !k.LastUsedAt.Equal(first) {
			t.Errorf("last_used_at moved from %v to %v within a minute", first, k.LastUsedAt)
		}
	})
}
