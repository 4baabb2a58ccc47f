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
}

func parseGatewayFlags(args []string, stderr io.Writer) (gatewayOptions, error) {
	var o gatewayOptions
	fs := flag.NewFlagSet("bench gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./bench gateway [flags]\n\nMeasures the latency the gateway adds: the same load straight to a fake upstream and through nodus, side by side.")
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.duration, "duration", 6*time.Second, "measuring time per side of each cell (direct and through each get this, split into rounds)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per cell; direct and through alternate, so noise hits both")
	clients := fs.String("clients", "1,100,1000", "closed-loop concurrencies, comma-separated")
	fs.Float64Var(&o.offered, "offered-rate", 5000, "req/s each loaded cell offers: the fake upstream answers after clients/rate (1,000 clients: 200 ms); one client gets no upstream latency")
	fs.DurationVar(&o.latency, "upstream-latency", 0, "fixed fake upstream latency for cells of more than one client (0: derived from -offered-rate)")
	fs.IntVar(&o.saturate, "saturate-clients", 32, "clients of the saturation cell (no upstream latency, non-streaming): the highest closed-loop throughput; 0 skips it")
	fs.IntVar(&o.chunks, "chunks", 3, "content chunks of a streamed answer")
	fs.DurationVar(&o.chunkInterval, "chunk-interval", time.Millisecond, "fake upstream's pause between two stream chunks")
	fs.DurationVar(&o.rateDuration, "rate-duration", 2*time.Second, "measuring time per side of each step of the max-rate search, in two alternating rounds")
	fs.Float64Var(&o.rateStart, "rate-start", 1000, "max-rate search: first rate (req/s)")
	fs.Float64Var(&o.rateMax, "rate-max", 50000, "max-rate search: highest rate tried")
	fs.IntVar(&o.rateSteps, "rate-bisect", 4, "max-rate search: bisection steps after the first failing rate")
	fs.BoolVar(&o.noRate, "no-rate", false, "skip the max-rate search")
	fs.BoolVar(&o.jsonOut, "json", false, "print the results as JSON instead of tables")
	fs.BoolVar(&o.quick, "quick", false, "a short run: 1.2 s cells in 2 rounds, 0.5 s rate steps, 2 bisection steps")
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

// Cell is one measured configuration: direct and through Nodus.
type Cell struct {
	Mode            string        `json:"mode"` // "chat" or "stream"
	Clients         int           `json:"clients"`
	UpstreamLatency time.Duration `json:"upstream_latency_ns"`
	Saturation      bool          `json:"saturation,omitempty"`
	Direct          Stats         `json:"direct"`
	Through         Stats         `json:"through"`
	AddedP50        time.Duration `json:"added_p50_ns"`
	AddedP99        time.Duration `json:"added_p99_ns"`
	AddedTTFTP50    time.Duration `json:"added_ttft_p50_ns,omitempty"`
	AddedTTFTP99    time.Duration `json:"added_ttft_p99_ns,omitempty"`
	RSSAfter        int64         `json:"rss_after_bytes"`
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

// Step is one rate of the open-loop search.
type Step struct {
	Rate     float64       `json:"rate"`
	Direct   Stats         `json:"direct"`
	Through  Stats         `json:"through"`
	AddedP99 time.Duration `json:"added_p99_ns"`
	Pass     bool          `json:"pass"`
}

// Report is everything `bench gateway` measured.
type Report struct {
	Command       string    `json:"command"`
	Date          string    `json:"date"`
	CPU           string    `json:"cpu"`
	Cores         int       `json:"cores"`
	GoVersion     string    `json:"go_version"`
	Cells         []Cell    `json:"cells"`
	Steps         []Step    `json:"rate_steps,omitempty"`
	MaxRate       float64   `json:"max_rate_under_1ms_added_p99"`
	MaxThroughput float64   `json:"max_closed_loop_throughput"`
	IdleRSS       int64     `json:"idle_rss_bytes"`
	PeakRSS       int64     `json:"peak_rss_bytes"`
	Options       string    `json:"options"`
	Verdicts      []Verdict `json:"targets"`
}

// Verdict is one of the targets and whether this run met it.
type Verdict struct {
	Target string `json:"target"`
	Value  string `json:"measured"`
	Met    bool   `json:"met"`
}

// runGateway is `bench gateway`: it starts the fake upstream in this
// process and nodus as a child, sets nodus up over its API, measures, and
// prints a report.
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
	fmt.Fprintln(stderr, "starting nodus…")
	nodus, err := startChild(ctx, bin, filepath.Join(tmp, "data"), benchAdminPass)
	if err != nil {
		return err
	}
	defer nodus.stop()
	key, err := setupGateway(nodus.base, up.URL)
	if err != nil {
		return fmt.Errorf("set up the gateway over the API: %w\nnodus log:\n%s", err, nodus.tail())
	}

	conns := maxClients + 64
	direct := newTarget("direct", up.URL+"/v1/chat/completions", benchUpstreamKey, conns)
	through := newTarget("through", nodus.base+"/v1/chat/completions", key, conns)
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
	// of measuring errors; then a short warm-up of both sides.
	for _, mode := range []string{"chat", "stream"} {
		for _, t := range []*target{direct, through} {
			if _, err := newCaller(ctx, t, loads[mode]).do(); err != nil {
				return fmt.Errorf("first %s request %s: %w\nnodus log:\n%s", mode, t.name, err, nodus.tail())
			}
		}
	}
	idle, _ := nodus.rss()
	for _, t := range []*target{direct, through} {
		closedLoop(ctx, t, loads["chat"], 4, 300*time.Millisecond, 0)
	}

	r := &Report{Command: "go run ./bench gateway " + strings.Join(args, " "), Date: time.Now().UTC().Format("2006-01-02"),
		CPU: cpuModel(), Cores: runtime.NumCPU(), GoVersion: runtime.Version(), IdleRSS: idle,
		Options: fmt.Sprintf("cells %s per side in %d alternating rounds; stream %d chunks %s apart; offered rate %.0f/s",
			o.duration, o.rounds, o.chunks, o.chunkInterval, o.offered)}
	type spec struct {
		mode       string
		clients    int
		latency    time.Duration
		saturation bool
	}
	var specs []spec
	for _, mode := range []string{"chat", "stream"} {
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
		var d, t side
		per := o.duration / time.Duration(o.rounds)
		for i := range o.rounds {
			// Alternate which side goes first, so a drift in the
			// machine's load favours neither.
			first, second := direct, through
			if i%2 == 1 {
				first, second = through, direct
			}
			a := closedLoop(ctx, first, loads[sp.mode], sp.clients, per, sp.latency)
			b := closedLoop(ctx, second, loads[sp.mode], sp.clients, per, sp.latency)
			if first == through {
				a, b = b, a
			}
			d.add(a)
			t.add(b)
		}
		c := Cell{Mode: sp.mode, Clients: sp.clients, UpstreamLatency: sp.latency, Saturation: sp.saturation,
			Direct: summarise(d), Through: summarise(t)}
		c.AddedP50, c.AddedP99 = c.Through.P50-c.Direct.P50, c.Through.P99-c.Direct.P99
		if sp.mode == "stream" {
			c.AddedTTFTP50, c.AddedTTFTP99 = c.Through.TTFTP50-c.Direct.TTFTP50, c.Through.TTFTP99-c.Direct.TTFTP99
		}
		c.RSSAfter, _ = nodus.rss()
		r.Cells = append(r.Cells, c)
		if sp.saturation || sp.mode == "chat" {
			r.MaxThroughput = max(r.MaxThroughput, c.Through.Rate)
		}
	}

	if !o.noRate {
		script(0)
		r.Steps, r.MaxRate = searchRate(ctx, o, direct, through, loads["chat"], stderr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	_, r.PeakRSS = nodus.rss()
	r.Verdicts = verdicts(r)

	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(stdout, r, o)
	return nil
}

// searchRate finds the highest open-loop rate of non-streaming requests at
// which the added p99 (through − direct at the same rate) stays under
// 1 ms: it steps up by 1.5× from -rate-start until a rate fails, then
// bisects between the last pass and the first failure.
func searchRate(ctx context.Context, o gatewayOptions, direct, through *target, l load, stderr io.Writer) ([]Step, float64) {
	var steps []Step
	try := func(rate float64) bool {
		fmt.Fprintf(stderr, "open loop at %.0f req/s…\n", rate)
		workers := 256 + int(rate/20) // 50 ms of arrivals in flight before dropping
		// Two rounds, alternating which side goes first.
		var d, t side
		d.add(openLoop(ctx, direct, l, rate, o.rateDuration/2, workers))
		t.add(openLoop(ctx, through, l, rate, o.rateDuration/2, workers))
		t.add(openLoop(ctx, through, l, rate, o.rateDuration/2, workers))
		d.add(openLoop(ctx, direct, l, rate, o.rateDuration/2, workers))
		s := Step{Rate: rate, Direct: summarise(d), Through: summarise(t)}
		s.AddedP99 = s.Through.P99 - s.Direct.P99
		s.Pass = s.AddedP99 < maxRateBound && s.Through.Errors == 0 && s.Through.Dropped == 0 && s.Direct.Dropped == 0 &&
			s.Through.Rate >= 0.95*rate && s.Through.Requests > 0
		steps = append(steps, s)
		return s.Pass
	}
	lo, hi := 0.0, 0.0
	for rate := o.rateStart; rate <= o.rateMax && ctx.Err() == nil; rate = float64(int(rate * 1.5)) {
		if !try(rate) {
			hi = rate
			break
		}
		lo = rate
	}
	for i := 0; hi > 0 && i < o.rateSteps && ctx.Err() == nil; i++ {
		mid := float64(int((lo + hi) / 2))
		if lo == 0 {
			mid = float64(int(hi / 2))
		}
		if try(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return steps, lo
}

func verdicts(r *Report) []Verdict {
	var out []Verdict
	for _, c := range r.Cells {
		switch {
		case c.Mode == "chat" && c.Clients == 1:
			out = append(out, Verdict{"added p50 under 100 µs sequentially (non-streaming, 1 client)", us(c.AddedP50), c.AddedP50 < targetAddedSeq})
		case c.Mode == "chat" && c.Clients == 1000 && !c.Saturation:
			out = append(out, Verdict{"added p50 under 1 ms at 1,000 concurrent (non-streaming)", us(c.AddedP50), c.AddedP50 < targetAdded1000})
		}
	}
	out = append(out, Verdict{"at least 5,000 req/s through the gateway (highest closed-loop non-streaming throughput)",
		fmt.Sprintf("%.0f req/s", r.MaxThroughput), r.MaxThroughput >= targetGatewayRP})
	return out
}

func printReport(w io.Writer, r *Report, o gatewayOptions) {
	fmt.Fprintf(w, "nodus gateway: latency added to /v1/chat/completions (fake upstream in this process, nodus as a child on loopback, SQLite)\n")
	fmt.Fprintf(w, "command: %s\n", r.Command)
	fmt.Fprintf(w, "machine: %s, %d cores, %s/%s, %s; %s\n", r.CPU, r.Cores, runtime.GOOS, runtime.GOARCH, r.GoVersion, r.Date)
	fmt.Fprintf(w, "%s\n", r.Options)
	fmt.Fprintln(w, "The load generator, the fake upstream and nodus share the machine's cores; direct and through runs alternate, so compare them, not runs.")
	fmt.Fprintln(w, "Closed loop: each client sends its next request when the last is answered, on its own keep-alive connection.")
	fmt.Fprintln(w, "Above one client the fake upstream waits (upstream column) so that the clients offer about the -offered-rate; sat = no latency, as fast as it goes.")
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tclients\tupstream\tdirect p50\tdirect p99\tthrough p50\tthrough p99\tadded p50\tadded p99\tdirect req/s\tthrough req/s\terrors\tRSS after\t")
	for _, c := range r.Cells {
		clients := strconv.Itoa(c.Clients)
		if c.Saturation {
			clients += " sat"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%d/%d\t%s\t\n", c.Mode, clients, ms(c.UpstreamLatency),
			us(c.Direct.P50), us(c.Direct.P99), us(c.Through.P50), us(c.Through.P99), us(c.AddedP50), us(c.AddedP99),
			c.Direct.Rate, c.Through.Rate, c.Direct.Errors, c.Through.Errors, mib(c.RSSAfter))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nstreams: time to the first content chunk (TTFT)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tupstream\tdirect TTFT p50\tdirect TTFT p99\tthrough TTFT p50\tthrough TTFT p99\tadded TTFT p50\tadded TTFT p99\t")
	for _, c := range r.Cells {
		if c.Mode != "stream" {
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Clients, ms(c.UpstreamLatency),
			us(c.Direct.TTFTP50), us(c.Direct.TTFTP99), us(c.Through.TTFTP50), us(c.Through.TTFTP99), us(c.AddedTTFTP50), us(c.AddedTTFTP99))
	}
	tw.Flush()

	for _, c := range r.Cells {
		for _, s := range []Stats{c.Direct, c.Through} {
			if s.FirstErr != "" {
				fmt.Fprintf(w, "first error, %s %d clients: %s\n", c.Mode, c.Clients, s.FirstErr)
			}
		}
	}

	if len(r.Steps) > 0 {
		fmt.Fprintf(w, "\nopen loop (fixed arrival rate), non-streaming, no upstream latency, %s per side per rate in 2 alternating rounds;\n", o.rateDuration)
		fmt.Fprintln(w, "latency counted from when each request was due, so a stalled sender or server counts; pass: added p99 < 1 ms, no errors or drops")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "rate\tdirect req/s\tthrough req/s\tdirect p99\tthrough p99\tadded p99\terrors\tdropped\tverdict\t")
		for _, s := range r.Steps {
			v := "fail"
			if s.Pass {
				v = "pass"
			}
			fmt.Fprintf(tw, "%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%d/%d\t%d/%d\t%s\t\n", s.Rate, s.Direct.Rate, s.Through.Rate,
				us(s.Direct.P99), us(s.Through.P99), us(s.AddedP99), s.Direct.Errors, s.Through.Errors, s.Direct.Dropped, s.Through.Dropped, v)
		}
		tw.Flush()
		fmt.Fprintf(w, "highest rate with added p99 under 1 ms: %.0f req/s\n", r.MaxRate)
	}
	fmt.Fprintf(w, "highest closed-loop throughput through nodus: %.0f req/s\n", r.MaxThroughput)
	fmt.Fprintf(w, "nodus RSS: idle after set-up %s (still holding the argon2id memory of two sign-ins until its first GC), peak (VmHWM) %s\n",
		mib(r.IdleRSS), mib(r.PeakRSS))

	fmt.Fprintln(w, "\ntargets (reported, not enforced: the machine is shared):")
	for _, v := range r.Verdicts {
		verdict := "not met"
		if v.Met {
			verdict = "met"
		}
		fmt.Fprintf(w, "  %s: %s, %s\n", v.Target, v.Value, verdict)
	}
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
