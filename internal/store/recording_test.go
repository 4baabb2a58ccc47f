package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/recordings"
	"github.com/nodus-os/nodus/internal/store"
)

func newRecording(tenantID, userID string, at time.Time) recordings.Recording {
	return recordings.Recording{ID: nodus.NewID(), TenantID: tenantID, UserID: userID, Title: "Standup",
		Filename: "standup.wav", BlobID: nodus.NewID(), MIME: "audio/wav", Size: 1234, Duration: 2.5,
		Status: recordings.StatusPending, CreatedAt: at, UpdatedAt: at}
}

// TestRecordings covers the recordings store on both databases: create
// with its job, find, keyset pages newest first per user and per tenant,
// a locked update, the sweep's read, deletion, and tenant isolation.
func TestRecordings(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		var queued []string
		enqueue := func(_ context.Context, _ *store.Tx, tenantID, id string) error {
			queued = append(queued, tenantID+"/"+id)
			return nil
		}
		var mine []recordings.Recording
		for i := range 5 {
			user := "alice"
			if i == 2 {
				user = "bob"
			}
			r := newRecording(a.id, user, t0.Add(time.Duration(i%4)*time.Minute)) // two share a time
			if err := db.CreateRecording(a.ctx, r, enqueue); err != nil {
				t.Fatalf("create: %v", err)
			}
			if user == "alice" {
				mine = append(mine, r)
			}
		}
		if len(queued) != 5 {
			t.Fatalf("queued %v, want 5 jobs", queued)
		}
		// A failed enqueue rolls the row back.
		bad := newRecording(a.id, "alice", t0)
		if err := db.CreateRecording(a.ctx, bad, func(context.Context, *store.Tx, string, string) error {
			return errors.New("queue down")
		}); err == nil {
			t.Fatal("create with a failing enqueue succeeded")
		}
		if _, err := db.FindRecording(a.ctx, bad.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Fatalf("the recording of a failed enqueue exists: %v", err)
		}
		// B's recording, and B cannot see A's.
		rb := newRecording(b.id, "carol", t0)
		if err := db.CreateRecording(b.ctx, rb, nil); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateRecording(b.ctx, newRecording(a.id, "x", t0), nil); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("B created a row of A: %v", err)
		}
		if _, err := db.FindRecording(b.ctx, mine[0].ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's recording: %v", err)
		}
		if _, err := db.UpdateRecording(b.ctx, mine[0].ID, func(r *recordings.Recording) error { r.Title = "x"; return nil }, nil); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B updates A's recording: %v", err)
		}
		if _, err := db.DeleteRecording(b.ctx, mine[0].ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B deletes A's recording: %v", err)
		}
		if _, err := db.FindRecording(context.Background(), mine[0].ID); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("no scope: %v", err)
		}

		// Alice's four, newest first, two per page, across the shared time.
		var got []string
		cursor := ""
		for range 3 {
			page, next, err := db.ListRecordings(a.ctx, recordings.Filter{UserID: "alice"}, cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				got = append(got, r.ID)
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if len(got) != 4 {
			t.Fatalf("alice's pages hold %d recordings, want 4", len(got))
		}
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Fatalf("recording %s listed twice", id)
			}
			seen[id] = true
		}
		all, _, err := db.ListRecordings(a.ctx, recordings.Filter{}, "", 50)
		if err != nil || len(all) != 5 {
			t.Fatalf("tenant list = %d, %v", len(all), err)
		}
		for i := 1; i < len(all); i++ {
			if all[i].CreatedAt.After(all[i-1].CreatedAt) {
				t.Fatalf("not newest first: %v after %v", all[i].CreatedAt, all[i-1].CreatedAt)
			}
		}
		if _, _, err := db.ListRecordings(a.ctx, recordings.Filter{}, "garbage!", 2); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("a bad cursor: %v", err)
		}
		if bl, _, _ := db.ListRecordings(b.ctx, recordings.Filter{}, "", 50); len(bl) != 1 || bl[0].ID != rb.ID {
			t.Errorf("B's list = %+v", bl)
		}

		// An update keeps what never changes and queues with enqueue.
		queued = nil
		segs := []recordings.Segment{{ID: 0, Start: 0, End: 1.5, Text: "hello", AvgLogprob: -0.2, NoSpeechProb: 0.01}}
		up, err := db.UpdateRecording(a.ctx, mine[0].ID, func(r *recordings.Recording) error {
			r.Status, r.Text, r.Segments, r.KeyPoints, r.Language = recordings.StatusCompleted, "hello", segs, []string{"greeting"}, "en"
			r.UserID, r.BlobID = "mallory", "other"
			r.UpdatedAt = t0.Add(time.Hour)
			return nil
		}, enqueue)
		if err != nil || len(queued) != 1 {
			t.Fatalf("update: %v, queued %v", err, queued)
		}
		found, err := db.FindRecording(a.ctx, mine[0].ID)
		if err != nil || found.UserID != "alice" || found.BlobID != mine[0].BlobID || found.Text != "hello" ||
			len(found.Segments) != 1 || found.Segments[0] != segs[0] || found.KeyPoints[0] != "greeting" ||
			!found.UpdatedAt.Equal(t0.Add(time.Hour)) || found.Duration != 2.5 || found.Language != "en" {
			t.Fatalf("after update %+v, %v (returned %+v)", found, err, up)
		}
		// A failing change writes nothing.
		if _, err := db.UpdateRecording(a.ctx, mine[0].ID, func(r *recordings.Recording) error {
			r.Title = "lost"
			return errors.New("no")
		}, nil); err == nil {
			t.Fatal("a failing change succeeded")
		}
		if f, _ := db.FindRecording(a.ctx, mine[0].ID); f.Title != "Standup" {
			t.Fatalf("a failed change was written: %q", f.Title)
		}

		// The sweep sees pending recordings of every tenant, and running
		// ones only when stale.
		if _, err := db.UpdateRecording(a.ctx, mine[1].ID, func(r *recordings.Recording) error {
			r.Status, r.UpdatedAt = recordings.StatusTranscribing, t0
			return nil
		}, nil); err != nil {
			t.Fatal(err)
		}
		stalled, err := db.StalledRecordings(nodus.WithAllTenants(context.Background()), t0.Add(time.Second), 100)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, r := range stalled {
			ids[r.ID] = true
		}
		if len(stalled) != 5 || !ids[rb.ID] || !ids[mine[1].ID] || ids[mine[0].ID] {
			t.Fatalf("stalled = %d %v", len(stalled), ids)
		}
		if s, _ := db.StalledRecordings(nodus.WithAllTenants(context.Background()), t0.Add(-time.Second), 100); len(s) != 4 {
			t.Fatalf("a fresh transcribing recording counted as stalled: %d", len(s))
		}

		// Deletion returns the row (for its blob); the tenant purge takes
		// only the scope's rows.
		del, err := db.DeleteRecording(a.ctx, mine[0].ID)
		if err != nil || del.BlobID != mine[0].BlobID {
			t.Fatalf("delete = %+v, %v", del, err)
		}
		blobs, err := db.DeleteRecordingsTenant(a.ctx)
		if err != nil || len(blobs) != 4 {
			t.Fatalf("purge = %v, %v", blobs, err)
		}
		if _, err := db.FindRecording(b.ctx, rb.ID); err != nil {
			t.Fatalf("A's purge touched B: %v", err)
		}
	})
}
