package jobs

import (
	"context"
	"errors"
	"testing"

	"github.com/riverqueue/river"
)

type fakeRollup struct {
	runs int
	err  error
}

func (f *fakeRollup) Rollup(context.Context) (int, error) {
	f.runs++
	return 2, f.err
}

// TestTracingRollupWorker: a run rebuilds the marked days, and fails (to
// be retried) when the rebuild fails.
func TestTracingRollupWorker(t *testing.T) {
	f := &fakeRollup{}
	w := &tracingRollupWorker{rollup: f}
	if err := w.Work(context.Background(), &river.Job[TracingRollupArgs]{}); err != nil || f.runs != 1 {
		t.Fatalf("run: %v, %d rollups", err, f.runs)
	}
	f.err = errors.New("database busy")
	if err := w.Work(context.Background(), &river.Job[TracingRollupArgs]{}); !errors.Is(err, f.err) {
		t.Errorf("a failed rollup gave %v", err)
	}
}
