// Command bench measures Nodus as an operator sees it and prints a table.
//
//	go run ./bench [-runs 5] [-idle 3s]        start-up time and idle memory
//	go run ./bench -me [-duration 10s] [-concurrency 32]
//	                                           authenticated GET /api/v1/me throughput
//	go run ./bench gateway [-quick] [-json]    latency the LLM gateway adds (gateway.go)
//	go run ./bench search [-sizes 5000,100000] [-postgres URL]
//	                                           full-text search latency by knowledge base size (search.go)
//	go run ./bench vectors [-sizes 5000,100000] [-dim 384] [-postgres URL]
//	                                           vector and hybrid search latency, HNSW recall (vectors.go)
//	go run ./bench chat [-sizes 5000,100000] [-postgres URL]
//	                                           a chat turn's time before the model is called (chat.go)
//	go run ./bench tracing [-duration 1m] [-observations 1000000] [-postgres URL]
//	                                           Langfuse ingestion rate, trace list latency (tracing.go)
//	go run ./bench synth -docs 50000 -out DIR  a synthetic BEIR dataset for `nodus eval retrieval` (synth.go)
//	go run ./bench web [-conversations 10000] [-requests 50]
//	                                           the UI's page weight and time with that many conversations (web.go)
//
// `bench bare-proxy` is not for people: `bench gateway` starts it, a
// minimal reverse proxy in its own process, as the floor nodus is
// compared with (gateway_bare.go).
//
// It builds the nodus binary, then starts it repeatedly on SQLite: first on
// an empty data directory (every migration applied), then on the existing
// one. For each start it records the time from exec to the first 200 from
// /ready, the resident memory (RSS) after an idle period, and the time
// SIGTERM takes to stop it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Targets from the foundation issue.
const (
	targetReady = 300 * time.Millisecond
	targetRSS   = 40 << 20
)

// subcommands are the benchmarks run as `bench NAME [flags]`; each stops
// at SIGINT or SIGTERM through its context.
var subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	bareProxyCommand: runBareProxy,
	"synth": func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		return runSynth(args, stdout, stderr)
	},
	"search":  runSearch,
	"vectors": runVectors,
	"chat":    runChat,
	"tracing": runTracing,
	"gateway": runGateway,
	"web":     runWeb,
}

func main() {
	if len(os.Args) > 1 {
		if cmd, ok := subcommands[os.Args[1]]; ok {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			err := cmd(ctx, os.Args[2:], os.Stdout, os.Stderr)
			if os.Args[1] == "gateway" && ctx.Err() != nil {
				err = errors.New("interrupted; nodus stopped and its data directory removed")
			}
			stop()
			if err != nil && !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Args[1], err)
				os.Exit(1)
			}
			return
		}
	}
	runs := flag.Int("runs", 5, "starts per scenario")
	idle := flag.Duration("idle", 3*time.Second, "idle time before reading RSS")
	me := flag.Bool("me", false, "measure authenticated GET /api/v1/me instead of start-up")
	duration := flag.Duration("duration", 10*time.Second, "-me: how long to send requests")
	concurrency := flag.Int("concurrency", 4, "-me: clients sending at once")
	flag.Parse()
	var err error
	if *me {
		err = benchMe(*duration, *concurrency)
	} else {
		err = run(*runs, *idle)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type sample struct {
	ready, shutdown time.Duration
	rss, peak       int64
	anon, file      int64 // rss split: private memory, and mapped file pages (the binary's)
}

// buildNodus builds the binary into a new temp directory, which the caller
// removes.
func buildNodus() (tmp, bin string, err error) {
	tmp, err = os.MkdirTemp("", "nodus-bench-")
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(tmp, "nodus")
	build := exec.Command("go", "build", "-o", bin, "./cmd/nodus")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(tmp)
		return "", "", fmt.Errorf("build: %w", err)
	}
	return tmp, bin, nil
}

func run(runs int, idle time.Duration) error {
	tmp, bin, err := buildNodus()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	type scenario struct {
		name    string
		samples []sample
	}
	first := scenario{name: "first start (empty data dir, migrations applied)"}
	restart := scenario{name: "restart (existing data dir)"}
	for i := range runs {
		dir := filepath.Join(tmp, "data"+strconv.Itoa(i))
		s, err := start(bin, dir, idle)
		if err != nil {
			return err
		}
		first.samples = append(first.samples, s)
		if s, err = start(bin, dir, idle); err != nil {
			return err
		}
		restart.samples = append(restart.samples, s)
	}

	host, _ := os.Hostname()
	fmt.Printf("nodus start-up and idle memory, SQLite, %d runs each, RSS read after %s idle\n", runs, idle)
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s; %s\n\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(),
		time.Now().UTC().Format("2006-01-02"))
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tready min\tready median\tready max\tRSS median\tRSS max\tof which private\tof which file\tpeak RSS\tstop median\t")
	pass := true
	for _, sc := range []scenario{first, restart} {
		ready := durations(sc.samples, func(s sample) time.Duration { return s.ready })
		stop := durations(sc.samples, func(s sample) time.Duration { return s.shutdown })
		rss := ints(sc.samples, func(s sample) int64 { return s.rss })
		peak := ints(sc.samples, func(s sample) int64 { return s.peak })
		anon := ints(sc.samples, func(s sample) int64 { return s.anon })
		file := ints(sc.samples, func(s sample) int64 { return s.file })
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sc.name,
			ms(ready[0]), ms(ready[len(ready)/2]), ms(ready[len(ready)-1]),
			mib(rss[len(rss)/2]), mib(rss[len(rss)-1]), mib(anon[len(anon)/2]), mib(file[len(file)/2]),
			mib(peak[len(peak)-1]), ms(stop[len(stop)/2]))
		pass = pass && ready[len(ready)/2] < targetReady && rss[len(rss)/2] < targetRSS
	}
	tw.Flush()
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	fmt.Println("\nprivate: RssAnon, the heap, stacks and SQLite's caches. file: RssFile, pages of the nodus binary mapped in;")
	fmt.Println("clean and shared with the page cache, and mapped by the kernel 64 KiB around each page touched (fault-around).")
	fmt.Printf("\ntargets: ready median < %s, idle RSS median < %s: %s\n", ms(targetReady), mib(targetRSS), verdict)
	if !pass {
		return fmt.Errorf("targets missed")
	}
	return nil
}

// start runs nodus once on dir and measures it.
func start(bin, dir string, idle time.Duration) (sample, error) {
	var s sample
	port, err := freePort()
	if err != nil {
		return s, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dir, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "NODUS_AUTO_MIGRATE=true")
	cmd.Stderr = os.Stderr
	client := &http.Client{Timeout: time.Second}

	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	defer cmd.Process.Kill()
	for {
		resp, err := client.Get("http://" + addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(begin) > 30*time.Second {
			return s, fmt.Errorf("nodus not ready after 30s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	s.ready = time.Since(begin)

	time.Sleep(idle)
	if s.rss, s.peak, err = memory(cmd.Process.Pid); err != nil {
		return s, err
	}
	if s.anon, s.file, err = residentSplit(cmd.Process.Pid); err != nil {
		return s, err
	}

	stopAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return s, fmt.Errorf("nodus exited with %w", err)
		}
	case <-ctx.Done():
		return s, fmt.Errorf("nodus did not stop within 60s of SIGTERM")
	}
	s.shutdown = time.Since(stopAt)
	return s, nil
}

// memory reads the resident set (VmRSS) and its peak (VmHWM) of pid.
func memory(pid int) (rss, peak int64, err error) {
	f, err := procStatus(pid)
	return f["VmRSS"], f["VmHWM"], err
}

// residentSplit reads the private (RssAnon) and file-backed (RssFile)
// parts of pid's resident set.
func residentSplit(pid int) (anon, file int64, err error) {
	f, err := procStatus(pid)
	return f["RssAnon"], f["RssFile"], err
}

// procStatus reads the kB fields of /proc/PID/status, in bytes.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read memory (Linux /proc needed): %w", err)
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(b)) {
		name, rest, ok := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[name] = kb << 10
		}
	}
	return out, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func durations(ss []sample, f func(sample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	slices.Sort(out)
	return out
}

func ints(ss []sample, f func(sample) int64) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	slices.Sort(out)
	return out
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
