package background

import (
	"os"
	"runtime"
)

// Nice is how much less priority a lowered thread gets than the process:
// on a contended core, Linux's scheduler gives a thread at nice 10 about a
// tenth of the time of one at nice 0.
const Nice = 10

// Lower locks the calling goroutine to its OS thread and lowers that
// thread's priority by Nice (to at most 19). It returns an error where a
// sandbox does not allow it, or one matching errors.ErrUnsupported off
// Linux; the goroutine is then unlocked again and runs as before.
func Lower() error {
	runtime.LockOSThread()
	if err := lowerThread(Nice); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	return nil
}

// ExtraProcs gives the Go scheduler one P more than its default (the
// cores, or the container's CPU limit), for a lowered thread to hold,
// unless GOMAXPROCS is set in the environment (then it is obeyed). It
// returns the number of Ps in effect; calling it again changes nothing.
// The runtime no longer follows changes of the CPU limit after it.
func ExtraProcs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	runtime.SetDefaultGOMAXPROCS()
	n := runtime.GOMAXPROCS(0) + 1
	runtime.GOMAXPROCS(n)
	return n
}

// Normal runs f on an ordinary goroutine, at the process's priority, and
// returns once it has: the way for a lowered goroutine to do work while
// the cores are busy. A stop-the-world phase of Go's collector waits for
// every running goroutine, and a lowered thread the kernel keeps off a
// busy core makes the whole process wait with it (measured: a 21 ms
// pause at 1,000 clients, against 2 ms at most otherwise).
func Normal(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
