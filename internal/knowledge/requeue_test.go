package knowledge_test

import (
	"context"
	"strings"
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
		// Queued, it waits out another grace period before a sweep
		// queues it again.
		if n, err := s.RequeueStalled(context.Background()); err != nil || n != 0 {
			t.Fatalf("a document just queued was queued again: %d, %v", n, err)
		}
		clock = clock.Add(2 * time.Minute)
		if n, err := s.RequeueStalled(context.Background()); err != nil || n != 1 {
			t.Fatalf("a document whose job was lost again: queued %d, %v", n, err)
		}
		none := e.service(t, nil, nil)
		if n, err := none.RequeueStalled(context.Background()); err != nil || n != 0 {
			t.Errorf("without a queue: %d, %v", n, err)
		}
	})
}

// TestReindexOnSettingsChange: changing a knowledge base's chunking moves
// its completed documents back to pending and queues them; ingesting them
// again splits them by the new settings; a change of name alone does not.
func TestReindexOnSettingsChange(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		var queued []string
		rec := &recorder{}
		s := e.service(t, nil, func(c *knowledge.Config) {
			c.Audit = rec
			c.Enqueue = func(_ context.Context, _, id string) error {
				mu.Lock()
				defer mu.Unlock()
				queued = append(queued, id)
				return nil
			}
		})
		ctx := context.Background()
		admin := knowledge.Manager{TenantID: e.a.id, UserID: "u1", Admin: true}
		d := e.upload(t, "long.txt", "text", []byte(strings.Repeat("Refunds take fourteen days to arrive. ", 300)))
		if err := s.Ingest(ctx, e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		before := len(e.wantOneSet(t, d.ID))

		renamed := "Renamed"
		if _, err := s.UpdateKnowledgeBase(ctx, admin, e.kb.ID, knowledge.KnowledgeBaseInput{Name: &renamed}); err != nil {
			t.Fatal(err)
		}
		if got := e.find(t, d.ID); got.Status != knowledge.StatusCompleted || len(queued) != 0 {
			t.Fatalf("a rename re-indexed: %s, queued %v", got.Status, queued)
		}

		size, overlap := 60, 0
		if _, err := s.UpdateKnowledgeBase(ctx, admin, e.kb.ID, knowledge.KnowledgeBaseInput{
			Chunking: &knowledge.ChunkingInput{Size: &size, Overlap: &overlap}}); err != nil {
			t.Fatal(err)
		}
		if got := e.find(t, d.ID); got.Status != knowledge.StatusPending || got.ChunkCount != before {
			t.Fatalf("after a chunking change: %s with %d chunks, want pending with its %d", got.Status,
				got.ChunkCount, before)
		}
		if len(queued) != 1 || queued[0] != d.ID {
			t.Fatalf("queued %v, want %s", queued, d.ID)
		}
		last := rec.entries[len(rec.entries)-1]
		if last.Changes["documents_reindexed"].After != 1 {
			t.Errorf("audit changes %v, want documents_reindexed 1", last.Changes)
		}
		if err := s.Ingest(ctx, e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		if after := len(e.wantOneSet(t, d.ID)); after <= before {
			t.Fatalf("re-indexed at size 60: %d chunks, at 500: %d", after, before)
		}
	})
}
