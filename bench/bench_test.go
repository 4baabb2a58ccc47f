package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the bench binary: `bench
// gateway` re-executes os.Executable() as `bare-proxy`, which under `go
// test` is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == bareProxyCommand {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestGatewayQuick runs `bench gateway` end to end with tiny durations
// (the real nodus binary, set up over its API, the bare proxy, the fake
// upstream) and checks that the report has every row and that its numbers
// make sense. It keeps the command working; it measures nothing worth
// quoting.
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
	percentile := regexp.MustCompile(`(TTFT )?p(50|99)`)
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
	// A gap printed beside the two figures it is the difference of; the
	// figures above 10 ms are rounded to 0.1 ms.
	near := func(got, want time.Duration) bool { return (got - want).Abs() <= 200*time.Microsecond }

	rows := map[string]bool{}
	p50s := map[string][3]time.Duration{}
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "chat" && f[0] != "stream") {
			continue
		}
		ds := duration.FindAllStringSubmatchIndex(line, -1)
		if len(ds) == 0 {
			t.Errorf("no upstream latency: %q", line)
			continue
		}
		cell := strings.Join(strings.Fields(line[:ds[0][0]]), " ") // "chat 1", "chat 4 sat"
		rest := line[ds[0][1]:]

		if strings.HasSuffix(strings.TrimSpace(line), "MiB") { // throughput
			key := cell + " req/s"
			rows[key] = true
			rf := strings.Fields(rest)
			if len(rf) < 6 {
				t.Errorf("%s: too few columns: %q", key, line)
				continue
			}
			for i, name := range []string{"direct", "bare", "nodus"} {
				if v, err := strconv.ParseFloat(rf[i], 64); err != nil || v <= 0 {
					t.Errorf("%s: %s req/s %q: %v", key, name, rf[i], err)
				}
			}
			if rf[3] != "0/0/0" {
				t.Errorf("%s: requests failed: %q", key, line)
			}
			// Every call through nodus is recorded in tracing (the
			// bench's default), and at this load none is dropped.
			if n, err := strconv.Atoi(rf[4]); err != nil || n <= 0 {
				t.Errorf("%s: calls traced %q: %v", key, rf[4], err)
			}
			if rf[5] != "0" {
				t.Errorf("%s: trace drops %q", key, rf[5])
			}
			if strings.Count(line, "MiB") != 2 {
				t.Errorf("%s: want nodus and bare RSS: %q", key, line)
			}
			continue
		}

		p := percentile.FindString(rest)
		if p == "" {
			t.Errorf("%s: no percentile: %q", cell, line)
			continue
		}
		key := cell + " " + p
		rows[key] = true
		all := duration.FindAllStringSubmatch(line, -1)
		if len(all) != 7 {
			t.Errorf("%s: %d durations, want 7: %q", key, len(all), line)
			continue
		}
		direct, bare, nodus := parse(all[1]), parse(all[2]), parse(all[3])
		bareAdds, nodusAdds, overBare := parse(all[4]), parse(all[5]), parse(all[6])
		if direct <= 0 || bare <= 0 || nodus <= 0 {
			t.Errorf("%s: implausible latencies: %q", key, line)
		}
		if !near(bareAdds, bare-direct) || !near(nodusAdds, nodus-direct) || !near(overBare, nodus-bare) {
			t.Errorf("%s: the gaps are not the differences of the figures: %q", key, line)
		}
		low := strings.Replace(key, "p99", "p50", 1)
		if low == key {
			p50s[key] = [3]time.Duration{direct, bare, nodus}
		} else if l, ok := p50s[low]; !ok {
			t.Errorf("%s: no %s row before it", key, low)
		} else if direct < l[0] || bare < l[1] || nodus < l[2] {
			t.Errorf("%s: a p99 under its p50 %v: %q", key, l, line)
		}
	}
	for _, cell := range []string{"chat 1", "chat 20", "chat 4 sat", "stream 1", "stream 20"} {
		want := []string{cell + " p50", cell + " p99", cell + " req/s"}
		if strings.HasPrefix(cell, "stream") {
			want = append(want, cell+" TTFT p50", cell+" TTFT p99")
		}
		for _, w := range want {
			if !rows[w] {
				t.Errorf("no row %q in the report", w)
			}
		}
	}

	steps := 0
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (f[len(f)-1] != "pass" && f[len(f)-1] != "fail") {
			continue
		}
		steps++
		if len(f) != 18 || (f[len(f)-2] != "pass" && f[len(f)-2] != "fail") {
			t.Errorf("open-loop row without a bare and a nodus verdict: %q", line)
		}
	}
	if steps == 0 {
		t.Error("no open-loop rows")
	}
	for _, want := range []string{"TTFT", "open loop", "highest rate with added p99 under 1 ms: nodus ", ", bare proxy ",
		"highest closed-loop throughput (non-streaming): nodus ", "nodus RSS: idle", "bare proxy peak",
		"added p50 under 100 µs sequentially (non-streaming, 1 client): nodus ", "a bare Go proxy", "nodus's own: "} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("progress:\n%s", log.String())
	}
}

// TestEdge checks the rate the open-loop search reports: the highest pass
// below the lowest failure, whatever passed above it.
func TestEdge(t *testing.T) {
	steps := func(rates ...float64) []Step { // a negative rate failed
		var out []Step
		for _, r := range rates {
			out = append(out, Step{Rate: max(r, -r), Pass: r > 0})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		steps  []Step
		lo, hi float64
	}{
		{"none", nil, 0, 0},
		{"all pass", steps(1000, 1500), 1500, 0},
		{"first fails", steps(-1000), 0, 1000},
		{"ramp then bisect", steps(1000, 1500, -2250, 1875, -2062), 1875, 2062},
		{"a pass above a failure", steps(1000, 1500, -2250, -1875, 1687, -1593), 1500, 1593},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := edge(tc.steps, func(s Step) bool { return s.Pass })
			if lo != tc.lo || hi != tc.hi {
				t.Errorf("edge = %v, %v; want %v, %v", lo, hi, tc.lo, tc.hi)
			}
		})
	}
}
