package jobs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/riverqueue/river"

	"github.com/nodus-os/nodus/internal/nodus"
)

// TestIngestWorker: errors a retry cannot fix end the job; the others are
// returned for River to retry.
func TestIngestWorker(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		retry bool
	}{
		{"done", nil, false},
		{"malformed file", nodus.Errorf(nodus.EINVALID, "the PDF is malformed"), false},
		{"too large", nodus.Errorf(nodus.ETOOLARGE, "too large"), false},
		{"deleted", fmt.Errorf("knowledge: %w", nodus.Errorf(nodus.ENOTFOUND, "document x not found")), false},
		{"another run", nodus.Errorf(nodus.ECONFLICT, "already being processed"), false},
		{"database", nodus.Errorf(nodus.EINTERNAL, "connection reset"), true},
		{"file over its time limit", nodus.Errorf(nodus.ETIMEOUT, "extraction took too long"), false},
		{"plain", errors.New("disk full"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotTenant, gotDoc string
			w := &ingestWorker{ingester: IngestFunc(func(_ context.Context, tenantID, documentID string) error {
				gotTenant, gotDoc = tenantID, documentID
				return tt.err
			})}
			err := w.Work(context.Background(), &river.Job[IngestArgs]{Args: IngestArgs{TenantID: "t1", DocumentID: "d1"}})
			if gotTenant != "t1" || gotDoc != "d1" {
				t.Errorf("ingested %q/%q, want t1/d1", gotTenant, gotDoc)
			}
			if (err != nil) != tt.retry {
				t.Errorf("Work = %v, want retry %v", err, tt.retry)
			}
		})
	}
	// A timeout because the job itself was stopped is retried.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := &ingestWorker{ingester: IngestFunc(func(context.Context, string, string) error {
		return nodus.Errorf(nodus.ETIMEOUT, "reading the PDF file was cancelled")
	})}
	if err := w.Work(ctx, &river.Job[IngestArgs]{Args: IngestArgs{TenantID: "t1", DocumentID: "d1"}}); err == nil {
		t.Error("a timeout of a stopped job was not retried")
	}
}
