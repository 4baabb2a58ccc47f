package metrics

import (
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleLine matches a sample line of the text format as this package
// writes it: name, optional labels, and a value.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? (\S+)$`)

// parseUnlabelled checks every line of an exposition for well-formedness and
// returns the values of the series without labels.
func parseUnlabelled(t *testing.T, exposition string) map[string]float64 {
	t.Helper()
	values := map[string]float64{}
	for line := range strings.Lines(exposition) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("malformed line %q", line)
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Errorf("line %q: %v", line, err)
		}
		if m[2] == "" {
			values[m[1]] = v
		}
	}
	return values
}

func TestRegisterRuntime(t *testing.T) {
	r := NewRegistry()
	r.RegisterRuntime()
	runtime.GC() // so go_gc_cycles_total is at least 1
	got := parseUnlabelled(t, text(t, r))

	type check struct {
		name string
		ok   func(v float64) bool
		want string
	}
	positive := func(v float64) bool { return v > 0 }
	checks := []check{
		{"go_goroutines", positive, "> 0"},
		{"go_gc_cycles_total", func(v float64) bool { return v >= 1 }, ">= 1"},
		{"go_memstats_heap_alloc_bytes", positive, "> 0"},
		{"go_memstats_sys_bytes", func(v float64) bool { return v >= got["go_memstats_heap_alloc_bytes"] }, ">= heap alloc"},
	}
	if runtime.GOOS == "linux" {
		now := float64(time.Now().Unix())
		checks = append(checks,
			check{"process_resident_memory_bytes", func(v float64) bool { return v > 1<<20 }, "> 1 MiB"},
			check{"process_virtual_memory_bytes", func(v float64) bool { return v >= got["process_resident_memory_bytes"] }, ">= RSS"},
			check{"process_open_fds", positive, "> 0"},
			check{"process_max_fds", func(v float64) bool { return v >= got["process_open_fds"] }, ">= open fds"},
			check{"process_cpu_seconds_total", func(v float64) bool { return v >= 0 }, ">= 0"},
			// btime has a resolution of one second.
			check{"process_start_time_seconds", func(v float64) bool { return v <= now+1 && v > now-24*3600 }, "within the last day"},
		)
	}
	for _, c := range checks {
		v, ok := got[c.name]
		if !ok {
			t.Errorf("%s missing", c.name)
			continue
		}
		if !c.ok(v) {
			t.Errorf("%s = %v, want %s", c.name, v, c.want)
		}
	}
}

func TestCountOpenFDs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	r := NewRegistry()
	r.RegisterRuntime()
	before := parseUnlabelled(t, text(t, r))["process_open_fds"]
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	after := parseUnlabelled(t, text(t, r))["process_open_fds"]
	f.Close()
	if after != before+1 {
		t.Errorf("open fds %v after opening a file, want %v", after, before+1)
	}
}
