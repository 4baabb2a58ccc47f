package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/nodus-os/nodus/internal/nodus"
)

// IngestArgs is the job that runs one uploaded document through
// extraction, chunking and indexing.
type IngestArgs struct {
	TenantID   string `json:"tenant_id"`
	DocumentID string `json:"document_id"`
}

// Kind names the job in the queue.
func (IngestArgs) Kind() string { return "nodus_kb_ingest" }

// InsertOpts makes a document's job unique while it waits or runs: a
// second upload path or a retry that races the first queues nothing more.
// A finished job does not count, so a retried document is queued again.
func (IngestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	}
}

// Ingester ingests one document of a tenant (the knowledge service, via
// IngestFunc: jobs does not import the modules it runs).
type Ingester interface {
	Ingest(ctx context.Context, tenantID, documentID string) error
}

// IngestFunc adapts a function to Ingester.
type IngestFunc func(ctx context.Context, tenantID, documentID string) error

// Ingest implements Ingester.
func (f IngestFunc) Ingest(ctx context.Context, tenantID, documentID string) error {
	return f(ctx, tenantID, documentID)
}

// ingestTimeout bounds one run: extraction has its own limit (a minute by
// default); the rest is the database and, later, embedding.
const ingestTimeout = 10 * time.Minute

type ingestWorker struct {
	river.WorkerDefaults[IngestArgs]
	ingester Ingester
}

// Work ingests the document. An error a retry cannot fix ends the job: the
// document row already records the failure for its uploader (EINVALID,
// ETOOLARGE, or ETIMEOUT when the file took longer than its limit), is
// gone (ENOTFOUND), or belongs to another run (ECONFLICT). Anything else
// (the database, the job's own deadline or a shutdown) is returned for
// River to retry with backoff; the ingestion is idempotent.
func (w *ingestWorker) Work(ctx context.Context, job *river.Job[IngestArgs]) error {
	err := w.ingester.Ingest(ctx, job.Args.TenantID, job.Args.DocumentID)
	if err == nil || final(ctx, err) {
		return nil
	}
	return fmt.Errorf("ingest document %s: %w", job.Args.DocumentID, err)
}

// final reports whether err is one retrying the job cannot fix. A timeout
// is, unless the job's context ended too: the same file would take as
// long again, while a shutdown or the job's deadline says nothing of it.
func final(ctx context.Context, err error) bool {
	switch nodus.ErrorCode(err) {
	case nodus.EINVALID, nodus.ETOOLARGE, nodus.ENOTFOUND, nodus.ECONFLICT:
		return true
	case nodus.ETIMEOUT:
		return ctx.Err() == nil
	}
	return false
}

// Timeout implements river.Worker.
func (w *ingestWorker) Timeout(*river.Job[IngestArgs]) time.Duration { return ingestTimeout }

// AddIngest registers the ingestion worker.
func AddIngest(workers *river.Workers, ingester Ingester) {
	river.AddWorker(workers, &ingestWorker{ingester: ingester})
}
