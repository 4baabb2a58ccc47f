package knowledge_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// recorder is an Auditor that keeps the entries.
type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (r *recorder) Record(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	return nil
}

func TestManageKnowledge(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		s := e.service(t, nil, func(c *knowledge.Config) { c.Audit = rec })
		admin := knowledge.Manager{TenantID: e.a.id, UserID: "u1", Admin: true}
		member := admin
		member.Admin = false
		ctx := context.Background()
		name := func(v string) *string { return &v }

		// Writes need an admin; reads do not.
		_, err := s.CreateKnowledgeBase(ctx, member, knowledge.KnowledgeBaseInput{Name: name("x")})
		wantCode(t, "create as a member", err, nodus.EFORBIDDEN)
		_, err = s.UpdateKnowledgeBase(ctx, member, e.kb.ID, knowledge.KnowledgeBaseInput{Name: name("x")})
		wantCode(t, "update as a member", err, nodus.EFORBIDDEN)
		wantCode(t, "delete as a member", s.DeleteKnowledgeBase(ctx, member, e.kb.ID), nodus.EFORBIDDEN)
		if _, err := s.GetKnowledgeBase(ctx, member, e.kb.ID); err != nil {
			t.Fatal(err)
		}

		// Validation names every bad field at once; nothing is written.
		bad := -1
		_, err = s.UpdateKnowledgeBase(ctx, admin, e.kb.ID, knowledge.KnowledgeBaseInput{Name: name(""),
			Chunking: &knowledge.ChunkingInput{Size: &bad}})
		var ne *nodus.Error
		if nodus.ErrorCode(err) != nodus.EINVALID || !errors.As(err, &ne) || ne.Fields["name"] == "" || ne.Fields["chunking.size"] == "" {
			t.Fatalf("invalid update: %v", err)
		}
		if kb, _ := s.GetKnowledgeBase(ctx, member, e.kb.ID); kb.Name != "Handbook" {
			t.Fatalf("an invalid update changed the knowledge base: %+v", kb)
		}

		// Another tenant's knowledge base is not found.
		other := admin
		other.TenantID = e.b.id
		_, err = s.GetKnowledgeBase(ctx, other, e.kb.ID)
		wantCode(t, "get from another tenant", err, nodus.ENOTFOUND)
		wantCode(t, "delete from another tenant", s.DeleteKnowledgeBase(ctx, other, e.kb.ID), nodus.ENOTFOUND)

		// Retry and delete a document; the audit log never holds its text.
		const text = "confidential words of the document"
		d := e.upload(t, "notes.md", "markdown", []byte(text))
		if _, err := e.db.UpdateDocumentState(e.a.ctx, d.ID, func(d *knowledge.Document) error {
			d.Status, d.Error = knowledge.StatusFailed, "boom"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		_, err = s.RetryDocumentFor(ctx, member, e.kb.ID, d.ID)
		wantCode(t, "retry as a member", err, nodus.EFORBIDDEN)
		_, err = s.RetryDocumentFor(ctx, admin, nodus.NewID(), d.ID)
		wantCode(t, "retry under another knowledge base", err, nodus.ENOTFOUND)
		if got, err := s.RetryDocumentFor(ctx, admin, e.kb.ID, d.ID); err != nil || got.Status != knowledge.StatusPending {
			t.Fatalf("retry: %+v, %v", got, err)
		}
		if err := s.DeleteDocument(ctx, admin, e.kb.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.blobs.Stat(ctx, d.BlobID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("blob after delete: %v", err)
		}
		if err := s.DeleteKnowledgeBase(ctx, admin, e.kb.ID); err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, en := range rec.entries {
			actions = append(actions, en.Action)
			if j, _ := json.Marshal(en); strings.Contains(string(j), text) {
				t.Errorf("%s holds the document's text", en.Action)
			}
			if en.TenantID != e.a.id {
				t.Errorf("%s recorded for tenant %q", en.Action, en.TenantID)
			}
		}
		if got := strings.Join(actions, " "); got != "knowledge.document_retry knowledge.document_delete knowledge.kb_delete" {
			t.Errorf("audit actions: %s", got)
		}
	})
}
