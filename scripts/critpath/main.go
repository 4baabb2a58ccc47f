// Command critpath reads a Go execution trace of a proxy (nodus, or the
// gateway bench's bare proxy) taken under sequential load and breaks each
// request's time inside the process into running, system calls, waiting
// to be scheduled and other waits, apart from the wait on the upstream.
//
// A request is the stretch of an HTTP connection goroutine
// (net/http.(*conn).serve) from its wake-up with the client's request (or,
// when the next request is there before it waits, from the end of its
// last answer) to the end of the write that sends its answer (the flush
// in net/http's finishRequest); the upstream wait is the time it is
// blocked on the upstream's answer (nodus's egress client, or net/http's Transport
// in the bare proxy, whose own write to the upstream then happens on the
// Transport's goroutine and counts in that wait).
//
//	curl -o nodus.trace 'http://$NODUS_DEBUG_ADDR/debug/pprof/trace?seconds=2'
//	go run . nodus.trace
//
// It is a module of its own so that golang.org/x/exp stays out of
// nodus's.
package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: critpath TRACE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	reqs, syscalls, err := read(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	report(os.Stdout, reqs, syscalls)
}

// request is one request's time in the process.
type request struct {
	inside   time.Duration // from the wake-up to the answer written, less the upstream wait
	running  time.Duration // on a P, system calls included
	syscalls time.Duration // in system calls that kept their P
	nsys     int
	sched    time.Duration // runnable, waiting for a P
	waits    time.Duration // blocked on anything but the client and the upstream
	upstream time.Duration
}

// syscallSite totals the system calls made from one call stack.
type syscallSite struct {
	stack string
	n     int
	total time.Duration
}

// goroutine is what read follows of one goroutine.
type goroutine struct {
	inRequest  bool
	cur        request
	start      trace.Time // the request's wake-up
	runnable   trace.Time // when it last became runnable
	running    trace.Time // when it last started running
	syscall    trace.Time // when its system call began
	sysSite    string
	block      string // why it last blocked: idle, upstream or other
	blockStart trace.Time
}

func read(r io.Reader) ([]request, []syscallSite, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	gs := map[trace.GoID]*goroutine{}
	sites := map[string]*syscallSite{}
	var reqs []request
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		id := st.Resource.Goroutine()
		g := gs[id]
		if g == nil {
			g = &goroutine{}
			gs[id] = g
		}
		from, to := st.Goroutine()
		now := ev.Time()
		switch {
		case from == trace.GoWaiting && to == trace.GoRunnable:
			g.runnable = now
			switch {
			case g.block == "idle":
				g.inRequest, g.start, g.cur = true, now, request{}
			case g.inRequest && g.block == "upstream":
				g.cur.upstream += time.Duration(now - g.blockStart)
			case g.inRequest:
				g.cur.waits += time.Duration(now - g.blockStart)
			}
		case from == trace.GoRunnable && to == trace.GoRunning:
			if g.inRequest {
				g.cur.sched += time.Duration(now - g.runnable)
			}
			g.running = now
		case from == trace.GoRunning && to == trace.GoSyscall:
			g.syscall, g.sysSite = now, site(ev.Stack(), 9)
		case from == trace.GoSyscall && to == trace.GoRunning:
			if g.inRequest {
				d := time.Duration(now - g.syscall)
				if strings.Contains(g.sysSite, "net/http.(*response).finishRequest") {
					// The answer is out: the request ends, and what
					// follows belongs to the next one if it is already
					// there (no wait for it in between).
					g.cur.running += time.Duration(now - g.running)
					g.cur.syscalls += d
					g.cur.nsys++
					g.cur.inside = time.Duration(now-g.start) - g.cur.upstream
					reqs = append(reqs, g.cur)
					g.start, g.running, g.cur = now, now, request{}
					continue
				}
				g.cur.syscalls += d
				g.cur.nsys++
				s := sites[g.sysSite]
				if s == nil {
					s = &syscallSite{stack: g.sysSite}
					sites[g.sysSite] = s
				}
				s.n++
				s.total += d
			}
		case (from == trace.GoRunning || from == trace.GoSyscall) && to == trace.GoRunnable:
			// Preempted, or its P taken during a system call.
			if g.inRequest {
				g.cur.running += time.Duration(now - g.running)
			}
			g.runnable = now
		case from == trace.GoRunning && to == trace.GoWaiting:
			if g.inRequest {
				g.cur.running += time.Duration(now - g.running)
			}
			g.block, g.blockStart = blockKind(ev.Stack()), now
			if g.block == "idle" {
				g.inRequest = false // after an answer: no request yet
			}
		}
	}
	var out []syscallSite
	for _, s := range sites {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b syscallSite) int { return cmp.Compare(b.total, a.total) })
	return reqs, out, nil
}

// blockKind tells a wait for the client's next request (idle) and a wait
// on the upstream from the rest.
func blockKind(s trace.Stack) string {
	var serve, read, handler, upstream bool
	for f := range s.Frames() {
		fn := f.Func
		switch {
		case fn == "net/http.(*conn).serve":
			serve = true
		case fn == "net/http.(*conn).readRequest", fn == "bufio.(*Reader).Peek":
			read = true
		case strings.HasSuffix(fn, ".ServeHTTP"):
			handler = true
		case strings.Contains(fn, "egress.(*h1Conn).exchange"), strings.Contains(fn, "readUpstreamBody"),
			fn == "net/http.(*persistConn).roundTrip", fn == "net/http.(*bodyEOFSignal).Read":
			upstream = true
		}
	}
	switch {
	case upstream:
		return "upstream"
	case serve && read && !handler:
		return "idle"
	}
	return "other"
}

// site names a call stack by its innermost frames.
func site(s trace.Stack, depth int) string {
	var fns []string
	for f := range s.Frames() {
		fns = append(fns, f.Func)
		if len(fns) == depth {
			break
		}
	}
	return strings.Join(fns, " < ")
}

func report(w io.Writer, reqs []request, sites []syscallSite) {
	fmt.Fprintf(w, "%d requests; per request, p50 / p90 / mean:\n", len(reqs))
	col := func(name string, get func(request) time.Duration) {
		v := make([]time.Duration, len(reqs))
		var sum time.Duration
		for i, r := range reqs {
			v[i] = get(r)
			sum += v[i]
		}
		slices.Sort(v)
		if len(v) == 0 {
			return
		}
		fmt.Fprintf(w, "  %-34s %9s %9s %9s\n", name, us(v[len(v)/2]), us(v[len(v)*9/10]), us(sum/time.Duration(len(v))))
	}
	col("inside the process (no upstream)", func(r request) time.Duration { return r.inside })
	col("  running (system calls included)", func(r request) time.Duration { return r.running })
	col("    in system calls", func(r request) time.Duration { return r.syscalls })
	col("    running outside system calls", func(r request) time.Duration { return r.running - r.syscalls })
	col("  waiting for a P", func(r request) time.Duration { return r.sched })
	col("  other waits", func(r request) time.Duration { return r.waits })
	col("upstream wait", func(r request) time.Duration { return r.upstream })
	col("system calls (count)", func(r request) time.Duration { return time.Duration(r.nsys) * time.Microsecond })
	fmt.Fprintln(w, "system calls inside requests, by call site (count per request, mean):")
	for i, s := range sites {
		if i == 6 {
			break
		}
		fmt.Fprintf(w, "  %5.2f  %9s  %s\n", float64(s.n)/float64(max(len(reqs), 1)), us(s.total/time.Duration(s.n)), s.stack)
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }
