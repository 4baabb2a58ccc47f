package metrics

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"

	"github.com/nodus-os/nodus/internal/procstat"
)

// userHZ is the unit of the clock-tick fields in /proc/<pid>/stat. The
// kernel fixes it at 100 for user space on all mainstream architectures,
// and Go cannot call sysconf(_SC_CLK_TCK) without cgo.
const userHZ = 100

// registerProcess registers the process_* metrics, read from /proc and
// getrusage at scrape time.
func registerProcess(r *Registry) {
	pageSize := float64(os.Getpagesize())

	r.CounterFunc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
		nil, singleSample(func() (float64, error) {
			// getrusage has microsecond resolution, better than the
			// clock ticks in /proc/self/stat.
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
				return 0, err
			}
			return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, nil
		}))
	r.GaugeFunc("process_resident_memory_bytes", "Resident memory size in bytes.",
		nil, singleSample(func() (float64, error) {
			_, rss, err := readStatm()
			return rss * pageSize, err
		}))
	r.GaugeFunc("process_virtual_memory_bytes", "Virtual memory size in bytes.",
		nil, singleSample(func() (float64, error) {
			size, _, err := readStatm()
			return size * pageSize, err
		}))
	r.GaugeFunc("process_open_fds", "Number of open file descriptors.",
		nil, singleSample(countOpenFDs))
	r.GaugeFunc("process_max_fds", "Maximum number of open file descriptors.",
		nil, singleSample(func() (float64, error) {
			var rl syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
				return 0, err
			}
			return float64(rl.Cur), nil
		}))

	// The start time never changes, so read it once. If /proc is not
	// readable the metric is left out rather than reported wrong.
	if start, err := processStartTime(); err == nil {
		r.GaugeFunc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
			nil, func() []Sample { return []Sample{{Value: start}} })
	}
}

// readStatm returns the total program size and the resident set size from
// /proc/self/statm, both in pages.
func readStatm() (size, resident float64, err error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, 0, errors.New("metrics: malformed /proc/self/statm")
	}
	s, err1 := strconv.ParseUint(string(f[0]), 10, 64)
	r, err2 := strconv.ParseUint(string(f[1]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return float64(s), float64(r), nil
}

// countOpenFDs counts the entries of /proc/self/fd, less the descriptor
// opened to read that directory.
func countOpenFDs() (float64, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(256)
		n += len(names)
		if err != nil { // io.EOF at the end
			break
		}
	}
	return float64(n - 1), nil
}

// processStartTime returns the process start time in seconds since the
// epoch: the starttime field of /proc/self/stat, in clock ticks since boot,
// plus btime from /proc/stat.
func processStartTime() (float64, error) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	ticks, err := procstat.Int(stat, 22) // starttime
	if err != nil {
		return 0, err
	}

	all, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(all) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			btime, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, err
			}
			return float64(btime) + float64(ticks)/userHZ, nil
		}
	}
	return 0, errors.New("metrics: no btime in /proc/stat")
}
