package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGatewayQuick runs `bench gateway` end to end with tiny durations
// (the real nodus binary, set up over its API, the fake upstream) and
// checks that the report has every row and that its numbers make sense.
// It keeps the command working; it measures nothing worth quoting.
func TestGatewayQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nodus")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	err := runGateway(ctx, []string{"-quick", "-clients", "1,20", "-offered-rate", "2000", "-duration", "400ms", "-rounds", "2",
		"-saturate-clients", "4", "-rate-duration", "200ms", "-rate-start", "200", "-rate-max", "300", "-rate-bisect", "0"}, &out, &log)
	if err != nil {
		t.Fatalf("bench gateway: %v\n%s", err, log.String())
	}
	report := out.String()
	t.Log("\n" + report)

	duration := regexp.MustCompile(`(-?[0-9.]+) (µs|ms)`)
	parse := func(s []string) time.Duration {
		v, err := strconv.ParseFloat(s[1], 64)
		if err != nil {
			t.Fatalf("%q: %v", s[0], err)
		}
		if s[2] == "ms" {
			return time.Duration(v * float64(time.Millisecond))
		}
		return time.Duration(v * float64(time.Microsecond))
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "chat" && f[0] != "stream") {
			continue
		}
		key := f[0] + " " + f[1]
		rows[key] = true
		ds := duration.FindAllStringSubmatch(line, -1)
		if len(ds) != 7 {
			t.Errorf("%s: %d durations, want 7: %q", key, len(ds), line)
			continue
		}
		directP50, directP99, throughP50, throughP99 := parse(ds[1]), parse(ds[2]), parse(ds[3]), parse(ds[4])
		if directP50 <= 0 || throughP50 <= 0 || directP99 < directP50 || throughP99 < throughP50 {
			t.Errorf("%s: implausible latencies: %q", key, line)
		}
		if !strings.Contains(line, " 0/0 ") {
			t.Errorf("%s: requests failed: %q", key, line)
		}
		if !strings.HasSuffix(strings.TrimSpace(line), "MiB") {
			t.Errorf("%s: no RSS: %q", key, line)
		}
	}
	for _, want := range []string{"chat 1", "chat 20", "chat 4", "stream 1", "stream 20"} {
		if !rows[want] {
			t.Errorf("no row %q in the report", want)
		}
	}
	for _, want := range []string{"TTFT", "open loop", "highest rate with added p99 under 1 ms:", "highest closed-loop throughput through nodus:",
		"nodus RSS: idle", "added p50 under 100 µs sequentially"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("progress:\n%s", log.String())
	}
}
