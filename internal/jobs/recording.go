package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// RecordingArgs is the job that transcribes and summarises one uploaded
// recording.
type RecordingArgs struct {
	TenantID    string `json:"tenant_id"`
	RecordingID string `json:"recording_id"`
	// Wake, when set, makes the job distinct from one already queued or
	// running for the recording (see recordings.Store.QueueRecording).
	Wake string `json:"wake,omitempty"`
}

// Kind names the job in the queue.
func (RecordingArgs) Kind() string { return "nodus_recording_process" }

// InsertOpts makes a recording's job unique while it waits or runs, as
// IngestArgs does.
func (RecordingArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	}
}

// RecordingProcessor processes one recording (the recordings service);
// final is set on the job's last attempt, when a passing failure must
// fail the recording instead of waiting for a retry.
type RecordingProcessor func(ctx context.Context, tenantID, recordingID string, final bool) error

// recordingTimeout bounds one run: an hour of audio through a slow
// speech model, then a summary.
const recordingTimeout = 30 * time.Minute

type recordingWorker struct {
	river.WorkerDefaults[RecordingArgs]
	process RecordingProcessor
}

// Work processes the recording; the recording's row records every
// outcome for its user, so only errors a retry may fix are returned.
func (w *recordingWorker) Work(ctx context.Context, job *river.Job[RecordingArgs]) error {
	err := w.process(ctx, job.Args.TenantID, job.Args.RecordingID, job.Attempt >= job.MaxAttempts)
	if err == nil || final(ctx, err) {
		return nil
	}
	return fmt.Errorf("process recording %s: %w", job.Args.RecordingID, err)
}

// Timeout implements river.Worker.
func (w *recordingWorker) Timeout(*river.Job[RecordingArgs]) time.Duration { return recordingTimeout }

// RecordingSweepArgs is the periodic job that queues recordings again:
// those waiting for a speech model their tenant has configured since, and
// those a crashed run left mid-way.
type RecordingSweepArgs struct{}

// Kind names the job in the queue.
func (RecordingSweepArgs) Kind() string { return "nodus_recording_sweep" }

type recordingSweepWorker struct {
	river.WorkerDefaults[RecordingSweepArgs]
	sweep func(ctx context.Context) (int, error)
}

func (w *recordingSweepWorker) Work(ctx context.Context, _ *river.Job[RecordingSweepArgs]) error {
	if _, err := w.sweep(ctx); err != nil {
		return fmt.Errorf("sweep recordings: %w", err)
	}
	return nil
}

// Timeout bounds one sweep.
func (w *recordingSweepWorker) Timeout(*river.Job[RecordingSweepArgs]) time.Duration {
	return time.Minute
}

// AddRecordings registers the recording worker and the sweep, and
// returns the sweep's schedule: every interval, on the elected leader.
func AddRecordings(workers *river.Workers, process RecordingProcessor, sweep func(ctx context.Context) (int, error),
	interval time.Duration) *river.PeriodicJob {
	river.AddWorker(workers, &recordingWorker{process: process})
	river.AddWorker(workers, &recordingSweepWorker{sweep: sweep})
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return RecordingSweepArgs{}, nil },
		&river.PeriodicJobOpts{ID: "recording_sweep", RunOnStart: true})
}
