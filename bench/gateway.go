package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
)

// Targets from the gateway issue.
const (
	targetAddedSeq  = 100 * time.Microsecond // added p50, one client
	targetAdded1000 = time.Millisecond       // added p50, 1,000 clients
	targetGatewayRP = 5000                   // req/s through the gateway
	maxRateBound    = time.Millisecond       // added p99 under which a rate counts
)

// gatewayOptions are the flags of `bench gateway`.
type gatewayOptions struct {
	duration      time.Duration
	rounds        int
	clients       []int
	offered       float64
	latency       time.Duration
	saturate      int
	chunks        int
	chunkInterval time.Duration
	rateDuration  time.Duration
	rateStart     float64
	rateMax       float64
	rateSteps     int
	noRate        bool
	jsonOut       bool
	quick         bool
	traceCalls    string
	modes         []string
}

func parseGatewayFlags(args []string, stderr io.Writer) (gatewayOptions, error) {
	var o gatewayOptions
	fs := flag.NewFlagSet("bench gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./bench gateway [flags]\n\nMeasures the latency the gateway adds: the same load straight to a fake upstream, through a bare Go proxy in its own process, and through nodus, side by side.")
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.duration, "duration", 6*time.Second, "measuring time per side of each cell (direct, bare and through each get this, split into rounds)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per cell; the order of direct, bare and through rotates, so noise hits all three")
	clients := fs.String("clients", "1,100,1000", "closed-loop concurrencies, comma-separated")
	modes := fs.String("modes", "chat,stream", "kinds of request measured in the closed-loop cells, comma-separated: chat, stream or both")
	fs.Float64Var(&o.offered, "offered-rate", 5000, "req/s each loaded cell offers: the fake upstream answers after clients/rate (1,000 clients: 200 ms); one client gets no upstream latency")
	fs.DurationVar(&o.latency, "upstream-latency", 0, "fixed fake upstream latency for cells of more than one client (0: derived from -offered-rate)")
	fs.IntVar(&o.saturate, "saturate-clients", 32, "clients of the saturation cell (no upstream latency, non-streaming): the highest closed-loop throughput; 0 skips it")
	fs.IntVar(&o.chunks, "chunks", 3, "content chunks of a streamed answer")
	fs.DurationVar(&o.chunkInterval, "chunk-interval", time.Millisecond, "fake upstream's pause between two stream chunks")
	fs.DurationVar(&o.rateDuration, "rate-duration", 2*time.Second, "measuring time per side of each step of the max-rate search, in two rounds")
	fs.Float64Var(&o.rateStart, "rate-start", 1000, "max-rate search: first rate (req/s)")
	fs.Float64Var(&o.rateMax, "rate-max", 50000, "max-rate search: highest rate tried")
	fs.IntVar(&o.rateSteps, "rate-bisect", 4, "max-rate search: bisection steps after the first failing rate")
	fs.BoolVar(&o.noRate, "no-rate", false, "skip the max-rate search")
	fs.BoolVar(&o.jsonOut, "json", false, "print the results as JSON instead of tables")
	fs.BoolVar(&o.quick, "quick", false, "a short run: 1.2 s cells in 2 rounds, 0.5 s rate steps, 2 bisection steps")
	fs.StringVar(&o.traceCalls, "trace-gateway-calls", "all", "nodus's NODUS_TRACE_GATEWAY_CALLS: all, traced or none (the bench's calls carry no traceparent)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["duration"] {
			o.duration = 1200 * time.Millisecond
		}
		if !set["rounds"] {
			o.rounds = 2
		}
		if !set["rate-duration"] {
			o.rateDuration = 500 * time.Millisecond
		}
		if !set["rate-bisect"] {
			o.rateSteps = 2
		}
	}
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-clients: %q is not a positive number", s)
		}
		o.clients = append(o.clients, n)
	}
	for _, m := range strings.Split(*modes, ",") {
		m = strings.TrimSpace(m)
		if m != "chat" && m != "stream" {
			return o, fmt.Errorf("-modes: %q is neither chat nor stream", m)
		}
		if !slices.Contains(o.modes, m) {
			o.modes = append(o.modes, m)
		}
	}
	if o.rounds < 1 || o.duration <= 0 || o.offered <= 0 || o.rateStart <= 0 || o.chunks < 1 {
		return o, errors.New("-rounds, -duration, -offered-rate, -rate-start and -chunks must be positive")
	}
	return o, nil
}

// upstreamLatency is the fake upstream's latency for a cell of n clients:
// none for one client (the added latency alone), otherwise enough that n
// closed-loop clients offer about -offered-rate req/s, so the cell
// measures the gateway under that load rather than CPU queueing.
func (o gatewayOptions) upstreamLatency(n int) time.Duration {
	switch {
	case n <= 1:
		return 0
	case o.latency > 0:
		return o.latency
	}
	return time.Duration(float64(n) / o.offered * float64(time.Second)).Round(time.Millisecond)
}

// Cell is one measured configuration, the same load on three sides:
// straight to the fake upstream (direct), through the bare proxy (bare),
// and through Nodus (through).
type Cell struct {
	Mode            string        `json:"mode"` // "chat" or "stream"
	Clients         int           `json:"clients"`
	UpstreamLatency time.Duration `json:"upstream_latency_ns"`
	Saturation      bool          `json:"saturation,omitempty"`
	Direct          Stats         `json:"direct"`
	Bare            Stats         `json:"bare"`
	Through         Stats         `json:"through"`
	BareAdds        Gap           `json:"bare_adds"`       // bare − direct
	NodusAdds       Gap           `json:"nodus_adds"`      // through − direct
	OverBare        Gap           `json:"nodus_over_bare"` // through − bare
	RSSAfter        int64         `json:"rss_after_bytes"`
	BareRSSAfter    int64         `json:"bare_rss_after_bytes"`
	// CPU time (user and system) each proxy process spent over the cell,
	// its deferred work included (nodus's tracing and spend writes), per
	// request it answered: steadier than latency on a shared machine.
	NodusCPUPerReq time.Duration `json:"nodus_cpu_per_request_ns"`
	BareCPUPerReq  time.Duration `json:"bare_cpu_per_request_ns"`
	// The gateway calls nodus's tracing recorder wrote as generations
	// during the cell (and after it, draining its buffer), and those it
	// dropped for a full buffer.
	Traced     int64 `json:"traced"`
	TraceDrops int64 `json:"trace_drops"`
}

// Stats summarises one side of a cell or rate step.
type Stats struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	FirstErr string        `json:"first_error,omitempty"`
	Dropped  int           `json:"dropped,omitempty"`
	Rate     float64       `json:"req_per_s"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	TTFTP50  time.Duration `json:"ttft_p50_ns,omitempty"`
	TTFTP99  time.Duration `json:"ttft_p99_ns,omitempty"`
}

func summarise(s side) Stats {
	s.finish()
	return Stats{Requests: len(s.lat), Errors: s.errors, FirstErr: s.firstErr, Dropped: s.dropped, Rate: s.rate(),
		P50: pct(s.lat, 0.50), P99: pct(s.lat, 0.99), TTFTP50: pct(s.ttft, 0.50), TTFTP99: pct(s.ttft, 0.99)}
}

// Gap is how much slower one side was than another, percentile by
// percentile.
type Gap struct {
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
	TTFTP50 time.Duration `json:"ttft_p50_ns,omitempty"`
	TTFTP99 time.Duration `json:"ttft_p99_ns,omitempty"`
}

func gap(slow, fast Stats) Gap {
	return Gap{P50: slow.P50 - fast.P50, P99: slow.P99 - fast.P99, TTFTP50: slow.TTFTP50 - fast.TTFTP50, TTFTP99: slow.TTFTP99 - fast.TTFTP99}
}

// Step is one rate of the open-loop search.
type Step struct {
	Rate         float64       `json:"rate"`
	Direct       Stats         `json:"direct"`
	Bare         Stats         `json:"bare"`
	Through      Stats         `json:"through"`
	BareAddedP99 time.Duration `json:"bare_added_p99_ns"`
	AddedP99     time.Duration `json:"added_p99_ns"`
	BarePass     bool          `json:"bare_pass"`
	Pass         bool          `json:"pass"`
}

// Report is everything `bench gateway` measured.
type Report struct {
	Command             string    `json:"command"`
	Date                string    `json:"date"`
	CPU                 string    `json:"cpu"`
	Cores               int       `json:"cores"`
	GoVersion           string    `json:"go_version"`
	Cells               []Cell    `json:"cells"`
	Steps               []Step    `json:"rate_steps,omitempty"`
	MaxRate             float64   `json:"max_rate_under_1ms_added_p99"`
	BareMaxRate         float64   `json:"bare_max_rate_under_1ms_added_p99"`
	MaxThroughput       float64   `json:"max_closed_loop_throughput"`
	BareMaxThroughput   float64   `json:"bare_max_closed_loop_throughput"`
	DirectMaxThroughput float64   `json:"direct_max_closed_loop_throughput"`
	IdleRSS             int64     `json:"idle_rss_bytes"`
	PeakRSS             int64     `json:"peak_rss_bytes"`
	BarePeakRSS         int64     `json:"bare_peak_rss_bytes"`
	Options             string    `json:"options"`
	Verdicts            []Verdict `json:"targets"`
}

// Verdict is one of the targets, Nodus's figure and the bare
// proxy's on the same run. Met is Nodus's alone.
type Verdict struct {
	Target  string `json:"target"`
	Value   string `json:"measured"`
	Bare    string `json:"bare_proxy"`
	Own     string `json:"nodus_over_bare,omitempty"`
	Met     bool   `json:"met"`
	BareMet bool   `json:"bare_proxy_met"`
}

// runGateway is `bench gateway`: it starts the fake upstream in this
// process, and nodus and the bare proxy as children, sets nodus up over
// its API, measures, and prints a report.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseGatewayFlags(args, stderr)
	if err != nil {
		return err
	}
	maxClients := max(o.saturate, 1)
	for _, n := range o.clients {
		maxClients = max(maxClients, n)
	}

	tmp, err := os.MkdirTemp("", "nodus-bench-gateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(stderr, "building nodus…")
	bin, err := buildNodusIn(tmp, stderr)
	if err != nil {
		return err
	}

	up := gatewaytest.NewUpstream(gatewaytest.Script{APIKey: benchUpstreamKey, DisableRecording: true})
	defer up.Close()
	fmt.Fprintln(stderr, "starting nodus and the bare proxy…")
	nodus, err := startChild(ctx, bin, filepath.Join(tmp, "data"), benchAdminPass, o.traceCalls)
	if err != nil {
		return err
	}
	defer nodus.stop()
	key, err := setupGateway(nodus.base, up.URL)
	if err != nil {
		return fmt.Errorf("set up the gateway over the API: %w\nnodus log:\n%s", err, nodus.tail())
	}
	conns := maxClients + 64
	bareProc, err := startBareProxy(ctx, tmp, up.URL, conns)
	if err != nil {
		return err
	}
	defer bareProc.stop()

	direct := newTarget("direct", up.URL+"/v1/chat/completions", benchUpstreamKey, conns)
	bare := newTarget("bare", bareProc.base+"/v1/chat/completions", benchUpstreamKey, conns)
	through := newTarget("through", nodus.base+"/v1/chat/completions", key, conns)
	targets := []*target{direct, bare, through}
	loads := map[string]load{
		"chat": {body: []byte(`{"model":"` + benchModel + `","messages":[{"role":"user","content":"Say hello"}],"max_tokens":50}`)},
		"stream": {stream: true, body: []byte(`{"model":"` + benchModel + `","stream":true,"stream_options":{"include_usage":true},` +
			`"messages":[{"role":"user","content":"Say hello"}],"max_tokens":50}`)},
	}
	script := func(latency time.Duration) {
		up.SetScript(gatewaytest.Script{APIKey: benchUpstreamKey, DisableRecording: true, Latency: latency,
			Chunks: o.chunks, ChunkInterval: o.chunkInterval})
	}
	script(0)

	// One call of each kind first, so a broken setup fails loudly instead
	// of measuring errors; then a short warm-up of every side.
	for _, mode := range []string{"chat", "stream"} {
		for _, t := range targets {
			if _, err := newCaller(ctx, t, loads[mode]).do(); err != nil {
				return fmt.Errorf("first %s request %s: %w\nnodus log:\n%s\nbare proxy log:\n%s", mode, t.name, err, nodus.tail(), bareProc.tail())
			}
		}
	}
	idle, _ := nodus.rss()
	for _, t := range targets {
		closedLoop(ctx, t, loads["chat"], 4, 300*time.Millisecond, 0)
	}

	r := &Report{Command: "go run ./bench gateway " + strings.Join(args, " "), Date: time.Now().UTC().Format("2006-01-02"),
		CPU: cpuModel(), Cores: runtime.NumCPU(), GoVersion: runtime.Version(), IdleRSS: idle,
		Options: fmt.Sprintf("cells %s per side in %d rounds, the order of direct, bare and through rotating; stream %d chunks %s apart; offered rate %.0f/s",
			o.duration, o.rounds, o.chunks, o.chunkInterval, o.offered)}
	type spec struct {
		mode       string
		clients    int
		latency    time.Duration
		saturation bool
	}
	var specs []spec
	for _, mode := range o.modes {
		for _, n := range o.clients {
			specs = append(specs, spec{mode, n, o.upstreamLatency(n), false})
		}
		if mode == "chat" && o.saturate > 0 {
			specs = append(specs, spec{mode, o.saturate, 0, true})
		}
	}
	for _, sp := range specs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(stderr, "%s, %d clients, upstream latency %s…\n", sp.mode, sp.clients, sp.latency)
		script(sp.latency)
		written0, dropped0, err := nodus.drainRecorder()
		if err != nil {
			return err
		}
		nodusCPU0, bareCPU0 := nodus.cpu(), bareProc.cpu()
		sides := make([]side, len(targets))
		per := o.duration / time.Duration(o.rounds)
		for i := range o.rounds {
			// Rotate which side goes first, so a drift in the machine's
			// load favours none.
			for j := range targets {
				k := (i + j) % len(targets)
				sides[k].add(closedLoop(ctx, targets[k], loads[sp.mode], sp.clients, per, sp.latency))
			}
		}
		c := Cell{Mode: sp.mode, Clients: sp.clients, UpstreamLatency: sp.latency, Saturation: sp.saturation,
			Direct: summarise(sides[0]), Bare: summarise(sides[1]), Through: summarise(sides[2])}
		c.BareAdds, c.NodusAdds, c.OverBare = gap(c.Bare, c.Direct), gap(c.Through, c.Direct), gap(c.Through, c.Bare)
		c.RSSAfter, _ = nodus.rss()
		c.BareRSSAfter, _ = bareProc.rss()
		written, dropped, err := nodus.drainRecorder()
		if err != nil {
			return err
		}
		c.Traced, c.TraceDrops = written-written0, dropped-dropped0
		c.NodusCPUPerReq = perRequest(nodus.cpu()-nodusCPU0, c.Through.Requests)
		c.BareCPUPerReq = perRequest(bareProc.cpu()-bareCPU0, c.Bare.Requests)
		r.Cells = append(r.Cells, c)
		if sp.mode == "chat" {
			r.MaxThroughput = max(r.MaxThroughput, c.Through.Rate)
			r.BareMaxThroughput = max(r.BareMaxThroughput, c.Bare.Rate)
			r.DirectMaxThroughput = max(r.DirectMaxThroughput, c.Direct.Rate)
		}
	}

	if !o.noRate {
		script(0)
		r.Steps, r.BareMaxRate, r.MaxRate = searchRate(ctx, o, targets, loads["chat"], stderr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	_, r.PeakRSS = nodus.rss()
	_, r.BarePeakRSS = bareProc.rss()
	r.Verdicts = verdicts(r)

	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(stdout, r, o)
	return nil
}

// edge is what the steps so far say of one side: hi is the lowest rate
// that failed (0: none yet), lo the highest that passed below it. On a
// noisy machine a rate can pass above one that failed; it does not count.
func edge(steps []Step, pass func(Step) bool) (lo, hi float64) {
	for _, s := range steps {
		if !pass(s) && (hi == 0 || s.Rate < hi) {
			hi = s.Rate
		}
	}
	for _, s := range steps {
		if pass(s) && s.Rate > lo && (hi == 0 || s.Rate < hi) {
			lo = s.Rate
		}
	}
	return lo, hi
}

// searchRate finds, for the bare proxy and for nodus, the highest
// open-loop rate of non-streaming requests at which the added p99 (that
// side − direct at the same rate) stays under 1 ms: it steps up by 1.5×
// from -rate-start until both have failed, then bisects between each
// one's edge. Every step measures all three sides (targets: direct, bare,
// through), so it narrows both searches.
func searchRate(ctx context.Context, o gatewayOptions, targets []*target, l load, stderr io.Writer) (steps []Step, bareRate, nodusRate float64) {
	barePass := func(s Step) bool { return s.BarePass }
	nodusPass := func(s Step) bool { return s.Pass }
	tried := map[float64]bool{}
	try := func(rate float64) {
		tried[rate] = true
		fmt.Fprintf(stderr, "open loop at %.0f req/s…\n", rate)
		workers := 256 + int(rate/20) // 50 ms of arrivals in flight before dropping
		// Two rounds, the second in the reverse order of the first.
		sides := make([]side, len(targets))
		for _, round := range [][]int{{0, 1, 2}, {2, 1, 0}} {
			for _, k := range round {
				sides[k].add(openLoop(ctx, targets[k], l, rate, o.rateDuration/2, workers))
			}
		}
		s := Step{Rate: rate, Direct: summarise(sides[0]), Bare: summarise(sides[1]), Through: summarise(sides[2])}
		s.BareAddedP99, s.AddedP99 = s.Bare.P99-s.Direct.P99, s.Through.P99-s.Direct.P99
		pass := func(x Stats, added time.Duration) bool {
			return added < maxRateBound && x.Errors == 0 && x.Dropped == 0 && s.Direct.Dropped == 0 && x.Rate >= 0.95*rate && x.Requests > 0
		}
		s.BarePass, s.Pass = pass(s.Bare, s.BareAddedP99), pass(s.Through, s.AddedP99)
		steps = append(steps, s)
	}
	for rate := o.rateStart; rate <= o.rateMax && ctx.Err() == nil; rate = float64(int(rate * 1.5)) {
		_, bareHi := edge(steps, barePass)
		_, nodusHi := edge(steps, nodusPass)
		if bareHi > 0 && nodusHi > 0 {
			break
		}
		try(rate)
	}
	for range o.rateSteps {
		for _, pass := range []func(Step) bool{barePass, nodusPass} {
			lo, hi := edge(steps, pass)
			mid := float64(int((lo + hi) / 2))
			if hi > 0 && mid > lo && !tried[mid] && ctx.Err() == nil {
				try(mid)
			}
		}
	}
	bareRate, _ = edge(steps, barePass)
	nodusRate, _ = edge(steps, nodusPass)
	return steps, bareRate, nodusRate
}

func verdicts(r *Report) []Verdict {
	latency := func(target string, c Cell, bound time.Duration) Verdict {
		return Verdict{Target: target, Value: us(c.NodusAdds.P50), Bare: us(c.BareAdds.P50), Own: us(c.OverBare.P50),
			Met: c.NodusAdds.P50 < bound, BareMet: c.BareAdds.P50 < bound}
	}
	var out []Verdict
	for _, c := range r.Cells {
		switch {
		case c.Mode == "chat" && c.Clients == 1:
			out = append(out, latency("added p50 under 100 µs sequentially (non-streaming, 1 client)", c, targetAddedSeq))
		case c.Mode == "chat" && c.Clients == 1000 && !c.Saturation:
			out = append(out, latency("added p50 under 1 ms at 1,000 concurrent (non-streaming)", c, targetAdded1000))
		}
	}
	// The throughput counts only if tracing kept up with it: calls whose
	// generations were dropped were cheaper than a traced call.
	var fastest Cell
	for _, c := range r.Cells {
		if c.Mode == "chat" && c.Through.Rate >= fastest.Through.Rate {
			fastest = c
		}
	}
	value := fmt.Sprintf("%.0f req/s", r.MaxThroughput)
	switch {
	case fastest.TraceDrops > 0:
		value += fmt.Sprintf(" (but tracing dropped %d of its calls)", fastest.TraceDrops)
	case fastest.Traced > 0:
		value += " (every call traced)"
	}
	out = append(out, Verdict{Target: "at least 5,000 req/s through the gateway (highest closed-loop non-streaming throughput)",
		Value: value, Bare: fmt.Sprintf("%.0f req/s", r.BareMaxThroughput),
		Met: r.MaxThroughput >= targetGatewayRP && fastest.TraceDrops == 0, BareMet: r.BareMaxThroughput >= targetGatewayRP})
	return out
}

func printReport(w io.Writer, r *Report, o gatewayOptions) {
	fmt.Fprintf(w, "nodus gateway: latency added to /v1/chat/completions (fake upstream in this process; nodus and a bare Go reverse proxy as children on loopback; SQLite)\n")
	fmt.Fprintf(w, "command: %s\n", r.Command)
	fmt.Fprintf(w, "machine: %s, %d cores, %s/%s, %s; %s\n", r.CPU, r.Cores, runtime.GOOS, runtime.GOARCH, r.GoVersion, r.Date)
	fmt.Fprintf(w, "%s\n", r.Options)
	fmt.Fprintln(w, "The load generator, the fake upstream, the bare proxy and nodus share the machine's cores; the three sides alternate, so compare them, not runs.")
	fmt.Fprintln(w, "direct: straight to the fake upstream. bare: a minimal Go reverse proxy in its own process (read the body, POST it upstream")
	fmt.Fprintln(w, "on a keep-alive transport, copy the answer back), the floor of any separate-process gateway here. nodus: through nodus.")
	fmt.Fprintln(w, "Closed loop: each client sends its next request when the last is answered, on its own keep-alive connection.")
	fmt.Fprintln(w, "Above one client the fake upstream waits (upstream column) so that the clients offer about the -offered-rate; sat = no latency, as fast as it goes.")

	fmt.Fprintln(w, "\nlatency (bare adds = bare − direct, nodus adds = nodus − direct, nodus over bare = nodus − bare: nodus's own cost)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tclients\tupstream\t\tdirect\tbare\tnodus\tbare adds\tnodus adds\tnodus over bare\t")
	for _, c := range r.Cells {
		for _, p := range []struct {
			name                string
			d, b, t, ba, na, ob time.Duration
		}{
			{"p50", c.Direct.P50, c.Bare.P50, c.Through.P50, c.BareAdds.P50, c.NodusAdds.P50, c.OverBare.P50},
			{"p99", c.Direct.P99, c.Bare.P99, c.Through.P99, c.BareAdds.P99, c.NodusAdds.P99, c.OverBare.P99},
		} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Mode, cellClients(c), ms(c.UpstreamLatency), p.name,
				us(p.d), us(p.b), us(p.t), us(p.ba), us(p.na), us(p.ob))
		}
	}
	tw.Flush()

	fmt.Fprintln(w, "\nthroughput (requests completed per second of measuring window) and memory")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tclients\tupstream\tdirect req/s\tbare req/s\tnodus req/s\terrors d/b/n\tnodus calls traced\ttrace drops\tbare CPU/req\tnodus CPU/req\tnodus RSS after\tbare RSS after\t")
	for _, c := range r.Cells {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%d/%d/%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", c.Mode, cellClients(c), ms(c.UpstreamLatency),
			c.Direct.Rate, c.Bare.Rate, c.Through.Rate, c.Direct.Errors, c.Bare.Errors, c.Through.Errors, c.Traced, c.TraceDrops,
			us(c.BareCPUPerReq), us(c.NodusCPUPerReq), mib(c.RSSAfter), mib(c.BareRSSAfter))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nstreams: time to the first content chunk (TTFT)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tclients\tupstream\t\tdirect\tbare\tnodus\tbare adds\tnodus adds\tnodus over bare\t")
	for _, c := range r.Cells {
		if c.Mode != "stream" {
			continue
		}
		for _, p := range []struct {
			name                string
			d, b, t, ba, na, ob time.Duration
		}{
			{"TTFT p50", c.Direct.TTFTP50, c.Bare.TTFTP50, c.Through.TTFTP50, c.BareAdds.TTFTP50, c.NodusAdds.TTFTP50, c.OverBare.TTFTP50},
			{"TTFT p99", c.Direct.TTFTP99, c.Bare.TTFTP99, c.Through.TTFTP99, c.BareAdds.TTFTP99, c.NodusAdds.TTFTP99, c.OverBare.TTFTP99},
		} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Mode, cellClients(c), ms(c.UpstreamLatency), p.name,
				us(p.d), us(p.b), us(p.t), us(p.ba), us(p.na), us(p.ob))
		}
	}
	tw.Flush()

	for _, c := range r.Cells {
		for _, s := range []struct {
			name string
			Stats
		}{{"direct", c.Direct}, {"bare", c.Bare}, {"nodus", c.Through}} {
			if s.FirstErr != "" {
				fmt.Fprintf(w, "first error, %s %s %d clients: %s\n", s.name, c.Mode, c.Clients, s.FirstErr)
			}
		}
	}

	if len(r.Steps) > 0 {
		fmt.Fprintf(w, "\nopen loop (fixed arrival rate), non-streaming, no upstream latency, %s per side per rate in 2 rounds (direct, bare, nodus; then reversed);\n", o.rateDuration)
		fmt.Fprintln(w, "latency counted from when each request was due, so a stalled sender or server counts; pass: added p99 < 1 ms, no errors or drops;")
		fmt.Fprintln(w, "the highest rate is the highest pass below the lowest failure (noise can pass a rate above one that failed)")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "rate\tdirect req/s\tbare req/s\tnodus req/s\tdirect p99\tbare p99\tnodus p99\tbare adds p99\tnodus adds p99\terrors d/b/n\tdropped d/b/n\tbare\tnodus\t")
		for _, s := range r.Steps {
			fmt.Fprintf(tw, "%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d/%d/%d\t%d/%d/%d\t%s\t%s\t\n", s.Rate, s.Direct.Rate, s.Bare.Rate, s.Through.Rate,
				us(s.Direct.P99), us(s.Bare.P99), us(s.Through.P99), us(s.BareAddedP99), us(s.AddedP99),
				s.Direct.Errors, s.Bare.Errors, s.Through.Errors, s.Direct.Dropped, s.Bare.Dropped, s.Through.Dropped,
				passFail(s.BarePass), passFail(s.Pass))
		}
		tw.Flush()
		fmt.Fprintf(w, "highest rate with added p99 under 1 ms: nodus %.0f req/s, bare proxy %.0f req/s\n", r.MaxRate, r.BareMaxRate)
	}
	fmt.Fprintf(w, "highest closed-loop throughput (non-streaming): nodus %.0f req/s, bare proxy %.0f req/s, direct %.0f req/s\n",
		r.MaxThroughput, r.BareMaxThroughput, r.DirectMaxThroughput)
	fmt.Fprintf(w, "nodus RSS: idle after set-up %s (still holding the argon2id memory of two sign-ins until its first GC), peak (VmHWM) %s; bare proxy peak %s\n",
		mib(r.IdleRSS), mib(r.PeakRSS), mib(r.BarePeakRSS))

	fmt.Fprintln(w, "\ntargets (reported, not enforced: the machine is shared; met is nodus's figure alone):")
	for _, v := range r.Verdicts {
		own := ""
		if v.Own != "" {
			own = " (nodus's own: " + v.Own + ")"
		}
		verdict := "met"
		switch {
		case !v.Met && !v.BareMet:
			verdict = "not met; the floor of a separate process here is above the target"
		case !v.Met:
			verdict = "not met"
		}
		fmt.Fprintf(w, "  %s: nodus %s, a bare Go proxy %s on this machine%s — %s\n", v.Target, v.Value, v.Bare, own, verdict)
	}
}

// cellClients is the clients column: the number, "sat" for the saturation
// cell.
func cellClients(c Cell) string {
	if c.Saturation {
		return strconv.Itoa(c.Clients) + " sat"
	}
	return strconv.Itoa(c.Clients)
}

func passFail(pass bool) string {
	if pass {
		return "pass"
	}
	return "fail"
}

// us prints a duration in µs below 10 ms, in ms above; negative values
// (through faster than direct, which noise allows) keep their sign.
func us(d time.Duration) string {
	if d > 10*time.Millisecond || d < -10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
