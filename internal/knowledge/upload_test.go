package knowledge_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// countFiles counts the regular files under the blob store's root.
func (e *env) countFiles(t *testing.T) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(e.blobRoot, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUploadDocument(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		var mu sync.Mutex
		var queued []string
		var queueErr error
		s := e.service(t, nil, func(c *knowledge.Config) {
			c.Audit = rec
			c.Enqueue = func(_ context.Context, tenantID, id string) error {
				mu.Lock()
				defer mu.Unlock()
				queued = append(queued, tenantID+"/"+id)
				return queueErr
			}
		})
		admin := knowledge.Manager{TenantID: e.a.id, UserID: "u1", Admin: true}
		member := admin
		member.Admin = false
		ctx := context.Background()
		const text = "# Guide\n\nconfidential words of the upload\n"
		in := func(name, body string) knowledge.UploadInput {
			return knowledge.UploadInput{OriginalFilename: name, Body: strings.NewReader(body), Limit: 1 << 20,
				Metadata: map[string]json.RawMessage{"team": json.RawMessage(`"docs"`)}}
		}

		d, err := s.UploadDocument(ctx, admin, e.kb.ID, in("../../etc/\x00gui\x1bde.md", text))
		if err != nil {
			t.Fatal(err)
		}
		got := e.find(t, d.ID)
		if got.Status != knowledge.StatusPending || got.FileType != "markdown" || got.FileSize != int64(len(text)) ||
			got.OriginalFilename != "guide.md" || got.BlobID == "" || got.Filename != got.BlobID || len(got.ContentHash) != 64 ||
			got.UploadedBy != "u1" || string(got.Metadata["team"]) != `"docs"` {
			t.Fatalf("stored document: %+v", got)
		}
		if len(queued) != 1 || queued[0] != e.a.id+"/"+d.ID {
			t.Fatalf("queued %v", queued)
		}
		if n := len(rec.entries); n != 1 || rec.entries[0].Action != "knowledge.document_upload" {
			t.Fatalf("audit entries: %+v", rec.entries)
		}
		if b, _ := json.Marshal(rec.entries[0]); strings.Contains(string(b), "confidential") {
			t.Fatalf("the audit entry holds the content: %s", b)
		}
		files := e.countFiles(t)

		// The same content again is a conflict naming the first; the new
		// file is not kept.
		_, err = s.UploadDocument(ctx, admin, e.kb.ID, in("copy.md", text))
		if id, ok := knowledge.DuplicateOf(err); !ok || id != d.ID || nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Fatalf("duplicate: %v", err)
		}
		// The content decides: a PNG named .txt is refused.
		png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
		_, err = s.UploadDocument(ctx, admin, e.kb.ID, in("photo.txt", png))
		wantCode(t, "a PNG", err, nodus.EINVALID)
		_, err = s.UploadDocument(ctx, admin, e.kb.ID, in("empty.txt", ""))
		wantCode(t, "an empty file", err, nodus.EINVALID)
		big := in("big.txt", strings.Repeat("a", 2<<20))
		_, err = s.UploadDocument(ctx, admin, e.kb.ID, big)
		wantCode(t, "over the limit", err, nodus.ETOOLARGE)
		_, err = s.UploadDocument(ctx, member, e.kb.ID, in("m.md", "other"))
		wantCode(t, "as a member", err, nodus.EFORBIDDEN)
		other := admin
		other.TenantID = e.b.id
		_, err = s.UploadDocument(ctx, other, e.kb.ID, in("o.md", "other"))
		wantCode(t, "to another tenant's knowledge base", err, nodus.ENOTFOUND)
		if n := e.countFiles(t); n != files {
			t.Fatalf("%d files after refused uploads, want %d", n, files)
		}
		if len(queued) != 1 || len(rec.entries) != 1 {
			t.Fatalf("refused uploads queued %v, audited %d", queued, len(rec.entries))
		}

		// A queue that fails leaves the document pending, uploaded.
		queueErr = errors.New("queue down")
		d2, err := s.UploadDocument(ctx, admin, e.kb.ID, in("second.txt", "second file"))
		if err != nil || e.find(t, d2.ID).Status != knowledge.StatusPending {
			t.Fatalf("upload with the queue down: %v", err)
		}
		queueErr = nil

		// A retried document is queued again.
		if _, err := e.db.UpdateDocumentState(e.a.ctx, d.ID, func(d *knowledge.Document) error {
			d.Status, d.Error = knowledge.StatusFailed, "boom"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RetryDocumentFor(ctx, admin, e.kb.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		if last := queued[len(queued)-1]; last != e.a.id+"/"+d.ID {
			t.Fatalf("retry queued %v", queued)
		}
	})
}
