package jobs

import (
	"context"
	"errors"
	"testing"

	"github.com/riverqueue/river"
)

type fakeRequeuer struct{ err error }

func (f fakeRequeuer) RequeueStalled(context.Context) (int, error) { return 2, f.err }

// TestRequeueWorker: a failed sweep fails the job, so River reports it.
func TestRequeueWorker(t *testing.T) {
	if err := (&requeueWorker{requeuer: fakeRequeuer{}}).Work(context.Background(), &river.Job[RequeueArgs]{}); err != nil {
		t.Fatal(err)
	}
	if err := (&requeueWorker{requeuer: fakeRequeuer{err: errors.New("db down")}}).Work(context.Background(), &river.Job[RequeueArgs]{}); err == nil {
		t.Error("a failed sweep did not fail the job")
	}
}
