package backgroundtest

import (
	"runtime"
	"syscall"
	"testing"
)

// TestThreadNiceOfEveryThread: the calling thread's nice value is the one
// ThreadNices gives for its id, and it follows a change.
func TestThreadNiceOfEveryThread(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread ends with the goroutine: its nice goes with it
		tid := syscall.Gettid()
		before, err := ThreadNice()
		if err != nil {
			t.Error(err)
			return
		}
		if before >= 19 {
			t.Log("the test runs at the lowest priority already")
			return
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, before+1); err != nil {
			t.Errorf("setpriority: %v", err)
			return
		}
		got, err := ThreadNice()
		all, err2 := ThreadNices()
		if err != nil || err2 != nil {
			t.Error(err, err2)
			return
		}
		if got != before+1 || all[tid] != before+1 {
			t.Errorf("after raising nice from %d: ThreadNice %d, ThreadNices[%d] %d; want %d", before, got, tid, all[tid], before+1)
		}
	}()
	<-done
}
