package knowledge_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/knowledge"
)

// TestRequeueStalled: a document whose job was lost is queued again once
// it has waited past the grace period; a fresh upload is left to its own
// job; with no queue configured nothing happens.
func TestRequeueStalled(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		var queued []string
		clock := time.Now().UTC()
		s := e.service(t, nil, func(c *knowledge.Config) {
			c.Now = func() time.Time { return clock }
			c.Enqueue = func(_ context.Context, tenantID, id string) error {
				mu.Lock()
				defer mu.Unlock()
				queued = append(queued, tenantID+"/"+id)
				return nil
			}
		})
		d := e.upload(t, "notes.md", "markdown", []byte("# Notes\n\nSome text."))
		if n, err := s.RequeueStalled(context.Background()); err != nil || n != 0 {
			t.Fatalf("a fresh upload was queued again: %d, %v", n, err)
		}
		clock = clock.Add(2 * time.Minute)
		if n, err := s.RequeueStalled(context.Background()); err != nil || n != 1 {
			t.Fatalf("stalled document: queued %d, %v", n, err)
		}
		if len(queued) != 1 || queued[0] != e.a.id+"/"+d.ID {
			t.Errorf("queued %v, want %s", queued, d.ID)
		}
		none := e.service(t, nil, nil)
		if n, err := none.RequeueStalled(context.Background()); err != nil || n != 0 {
			t.Errorf("without a queue: %d, %v", n, err)
		}
	})
}
