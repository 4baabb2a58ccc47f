package background

import (
	"fmt"
	"syscall"
)

// lowerThread adds nice to the calling thread's nice value: on Linux,
// setpriority with a thread id changes that thread alone.
func lowerThread(nice int) error {
	tid := syscall.Gettid()
	// The raw getpriority returns 20 - nice (1 to 40).
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return fmt.Errorf("background: reading the thread's priority: %w", err)
	}
	to := min(20-raw+nice, 19)
	if to <= 20-raw {
		return nil // already as low as it goes
	}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, to); err != nil {
		return fmt.Errorf("background: lowering the thread's priority: %w", err)
	}
	return nil
}
