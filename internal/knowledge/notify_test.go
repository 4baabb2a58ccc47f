package knowledge_test

import (
	"context"
	"testing"

	"github.com/nodus-os/nodus/internal/knowledge"
)

// TestIngestNotifies checks that Config.Notify hears of each ingestion's
// end, with the document as it ended: completed once, failed once, and
// nothing for a completed document ingested again without force.
func TestIngestNotifies(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		var told []knowledge.Document
		svc := e.service(t, nil, func(c *knowledge.Config) {
			c.Notify = func(_ context.Context, d knowledge.Document) { told = append(told, d) }
		})
		ok := e.upload(t, "install.md", "markdown", []byte(markdownDoc))
		if err := svc.Ingest(context.Background(), e.a.id, ok.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Ingest(context.Background(), e.a.id, ok.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		bad := e.upload(t, "blank.md", "markdown", []byte("  \n\n "))
		if err := svc.Ingest(context.Background(), e.a.id, bad.ID, knowledge.IngestOptions{}); err == nil {
			t.Fatal("a blank document ingested")
		}
		if len(told) != 2 {
			t.Fatalf("told of %d documents, want 2: %+v", len(told), told)
		}
		if d := told[0]; d.ID != ok.ID || d.Status != knowledge.StatusCompleted || d.UploadedBy != "u1" || d.TenantID != e.a.id ||
			d.ProcessedAt == nil {
			t.Errorf("completed document told as %+v", d)
		}
		if d := told[1]; d.ID != bad.ID || d.Status != knowledge.StatusFailed || d.Error == "" || d.Stage != knowledge.StageExtracting {
			t.Errorf("failed document told as %+v", d)
		}
	})
}
