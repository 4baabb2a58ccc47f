package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// NotebookSummaryArgs is the job that summarises a notebook's source.
type NotebookSummaryArgs struct {
	TenantID   string `json:"tenant_id"`
	NotebookID string `json:"notebook_id"`
	SourceID   string `json:"source_id"`
}

// Kind names the job in the queue.
func (NotebookSummaryArgs) Kind() string { return "nodus_notebook_summary" }

// InsertOpts retries a few times: the summary calls a model, which may be
// briefly down (after the last try the summariser falls back to an
// extract by itself).
func (NotebookSummaryArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 3} }

// Summarizer writes a source's summary (the notebook service, wired in
// cmd/nodus).
type Summarizer func(ctx context.Context, args NotebookSummaryArgs) error

// notebookTimeout bounds one run: one model call.
const notebookTimeout = 3 * time.Minute

type notebookWorker struct {
	river.WorkerDefaults[NotebookSummaryArgs]
	summarize Summarizer
}

// Work summarises the source; errors a retry cannot fix end the job.
func (w *notebookWorker) Work(ctx context.Context, job *river.Job[NotebookSummaryArgs]) error {
	err := w.summarize(ctx, job.Args)
	if err == nil || final(ctx, err) {
		return nil
	}
	return fmt.Errorf("summarise notebook source %s: %w", job.Args.SourceID, err)
}

// Timeout implements river.Worker.
func (w *notebookWorker) Timeout(*river.Job[NotebookSummaryArgs]) time.Duration {
	return notebookTimeout
}

// AddNotebook registers the notebook summary worker.
func AddNotebook(workers *river.Workers, summarize Summarizer) {
	river.AddWorker(workers, &notebookWorker{summarize: summarize})
}
