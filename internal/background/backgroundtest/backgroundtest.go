// Package backgroundtest reads the nice values of the process's threads,
// for tests of code that runs work at a lower priority (package
// background). It reads Linux's /proc and fails elsewhere.
package backgroundtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nodus-os/nodus/internal/procstat"
)

// ThreadNice is the calling thread's nice value. The goroutine should be
// locked to its thread (runtime.LockOSThread) for the answer to stay true.
func ThreadNice() (int, error) {
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		return 0, err
	}
	return parseNice(b)
}

// ThreadNices maps the id of every thread of the process to its nice
// value.
func ThreadNices() (map[int]int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	out := make(map[int]int, len(tasks))
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "stat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			return nil, fmt.Errorf("backgroundtest: task %q: %w", task.Name(), err)
		}
		if out[tid], err = parseNice(b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseNice reads a stat line's nice value (field 19).
func parseNice(stat []byte) (int, error) {
	n, err := procstat.Int(stat, 19)
	return int(n), err
}
