package background

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/background/backgroundtest"
)

// TestLowerLowersOnlyItsThread checks that Lower changes the nice value of
// the calling goroutine's thread alone, and that the thread ends with the
// goroutine rather than go back to run others.
func TestLowerLowersOnlyItsThread(t *testing.T) {
	// Go wedges the main thread, rather than end it, when a locked
	// goroutine returns on it; a second goroutine cannot land there.
	for range 2 {
		if lowerOnce(t) != syscall.Getpid() {
			return
		}
		t.Log("the goroutine ran on the main thread, which Go wedges: once more")
	}
	t.Fatal("Lower ran on the main thread twice")
}

// lowerOnce runs Lower in a goroutine, checks the threads' nice values,
// lets the goroutine return and checks that its thread ended. It returns
// the thread's id.
func lowerOnce(t *testing.T) int {
	t.Helper()
	type lowered struct{ tid, before int }
	got := make(chan lowered)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		tid := syscall.Gettid()
		before := threadNices(t)[tid]
		if err := Lower(); err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- lowered{tid, before}
		<-release
	}()
	before := threadNices(t)
	l, ok := <-got
	if !ok {
		t.FailNow()
	}
	after := threadNices(t)
	if want := min(l.before+Nice, 19); after[l.tid] != want {
		t.Errorf("the lowered thread's nice is %d, want %d", after[l.tid], want)
	}
	for id, nice := range after {
		if was, ok := before[id]; ok && id != l.tid && nice != was {
			t.Errorf("thread %d's nice changed from %d to %d", id, was, nice)
		}
	}
	close(release)
	if l.tid == syscall.Getpid() {
		return l.tid
	}
	waitThreadEnd(t, l.tid)
	return l.tid
}

// threadNices is every thread's nice value, by thread id.
func threadNices(t *testing.T) map[int]int {
	t.Helper()
	nices, err := backgroundtest.ThreadNices()
	if err != nil {
		t.Fatal(err)
	}
	return nices
}

// TestNormal checks that a lowered goroutine's Normal runs its function
// at the process's priority.
func TestNormal(t *testing.T) {
	base := threadNices(t)[syscall.Gettid()]
	got := make(chan [2]int)
	go func() {
		if err := Lower(); err != nil {
			t.Error(err)
			close(got)
			return
		}
		var n [2]int
		n[0] = threadNices(t)[syscall.Gettid()]
		Normal(func() { n[1] = threadNices(t)[syscall.Gettid()] })
		got <- n
	}()
	n, ok := <-got
	if !ok {
		t.FailNow()
	}
	if n[0] != min(base+Nice, 19) || n[1] != base {
		t.Errorf("lowered at nice %d, Normal at %d; want %d and %d", n[0], n[1], min(base+Nice, 19), base)
	}
}

// waitThreadEnd waits for a thread to end: Go ends a locked thread just
// after its goroutine returns.
func waitThreadEnd(t *testing.T, tid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join("/proc/self/task", strconv.Itoa(tid))); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lowered thread %d outlived its goroutine", tid)
		}
	}
}
