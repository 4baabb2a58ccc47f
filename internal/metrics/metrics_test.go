package metrics

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
)

// text returns the registry's exposition, failing the test on error.
func text(t *testing.T, r *Registry) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatalf("WriteText: %v", err)
	}
	return b.String()
}

func TestWriteTextGolden(t *testing.T) {
	r := NewRegistry()

	r.Counter("app_starts_total", "Process starts.").With().Inc()

	reqs := r.Counter("http_requests_total", "HTTP requests served.", "method", "code")
	reqs.With("POST", "500").Inc()
	reqs.With("GET", "200").Add(3)
	reqs.With("GET", "404").Inc()
	reqs.With("GET", "200").Add(0.5)

	r.Counter("idle_total", "Never incremented, so no series.", "kind")

	q := r.Gauge("queue_depth", "Jobs waiting.").With()
	q.Set(7)
	q.Add(-2.5)
	q.Inc()
	q.Dec()

	temp := r.Gauge("temperature_celsius", "", "room")
	temp.With("lab").Set(-0.25)
	temp.With("hall").Set(math.Inf(1))

	big := r.Gauge("big_values", "Float formatting.", "kind")
	big.With("million").Set(1e6)
	big.With("huge").Set(1.5e300)
	big.With("tiny").Set(1e-7)
	big.With("nan").Set(math.NaN())

	h := r.Histogram("request_duration_seconds", "Request latency.", []float64{0.125, 1, 10}, "route")
	for _, v := range []float64{0.0625, 0.125, 0.5, 20} {
		h.With("/a").Observe(v)
	}
	h.With("/b").Observe(2)

	esc := r.Counter("escape_total", "Help with \\ backslash,\nnewline and \"quotes\".", "path")
	esc.With("a\\b\"c\nd").Inc()

	r.CounterFunc("pool_opened_total", "Connections opened.", []string{"db"}, func() []Sample {
		return []Sample{
			{LabelValues: []string{"replica"}, Value: 5},
			{LabelValues: []string{"primary"}, Value: 12},
		}
	})
	r.GaugeFunc("pool_idle", "Idle connections.", nil, func() []Sample {
		return []Sample{{Value: 3}}
	})

	const want = `# HELP app_starts_total Process starts.
# TYPE app_starts_total counter
app_starts_total 1
# HELP big_values Float formatting.
# TYPE big_values gauge
big_values{kind="huge"} 1.5e+300
big_values{kind="million"} 1000000
big_values{kind="nan"} NaN
big_values{kind="tiny"} 1e-07
# HELP escape_total Help with \\ backslash,\nnewline and "quotes".
# TYPE escape_total counter
escape_total{path="a\\b\"c\nd"} 1
# HELP http_requests_total HTTP requests served.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 3.5
http_requests_total{method="GET",code="404"} 1
http_requests_total{method="POST",code="500"} 1
# HELP idle_total Never incremented, so no series.
# TYPE idle_total counter
# HELP pool_idle Idle connections.
# TYPE pool_idle gauge
pool_idle 3
# HELP pool_opened_total Connections opened.
# TYPE pool_opened_total counter
pool_opened_total{db="primary"} 12
pool_opened_total{db="replica"} 5
# HELP queue_depth Jobs waiting.
# TYPE queue_depth gauge
queue_depth 4.5
# HELP request_duration_seconds Request latency.
# TYPE request_duration_seconds histogram
request_duration_seconds_bucket{route="/a",le="0.125"} 2
request_duration_seconds_bucket{route="/a",le="1"} 3
request_duration_seconds_bucket{route="/a",le="10"} 3
request_duration_seconds_bucket{route="/a",le="+Inf"} 4
request_duration_seconds_sum{route="/a"} 20.6875
request_duration_seconds_count{route="/a"} 4
request_duration_seconds_bucket{route="/b",le="0.125"} 0
request_duration_seconds_bucket{route="/b",le="1"} 0
request_duration_seconds_bucket{route="/b",le="10"} 1
request_duration_seconds_bucket{route="/b",le="+Inf"} 1
request_duration_seconds_sum{route="/b"} 2
request_duration_seconds_count{route="/b"} 1
# TYPE temperature_celsius gauge
temperature_celsius{room="hall"} +Inf
temperature_celsius{room="lab"} -0.25
`
	got := text(t, r)
	if got != want {
		t.Errorf("exposition mismatch\n--- got\n%s\n--- want\n%s", got, want)
	}
	// Deterministic: a second scrape is identical.
	if again := text(t, r); again != got {
		t.Errorf("second scrape differs:\n%s", again)
	}
}

func TestHistogramUnlabelledAndDefaults(t *testing.T) {
	r := NewRegistry()
	// nil buckets mean DefBuckets; a trailing +Inf is accepted and implied.
	h := r.Histogram("h_seconds", "", nil).With()
	h2 := r.Histogram("h2", "", []float64{1, math.Inf(1)}).With()
	h.Observe(0.005) // upper bounds are inclusive
	h.Observe(math.NaN())
	h2.Observe(-3)
	// The bounds were copied at registration.
	buckets := []float64{1, 2}
	h3 := r.Histogram("h3", "", buckets).With()
	buckets[0] = 5
	h3.Observe(1)

	got := text(t, r)
	for _, line := range []string{
		`h_seconds_bucket{le="0.005"} 1`,
		`h_seconds_bucket{le="10"} 1`,
		`h_seconds_bucket{le="+Inf"} 2`,
		`h_seconds_sum NaN`,
		`h_seconds_count 2`,
		`h2_bucket{le="1"} 1`,
		`h2_bucket{le="+Inf"} 1`,
		`h2_sum -3`,
		`h3_bucket{le="1"} 1`,
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in\n%s", line, got)
		}
	}
	if n := strings.Count(got, "h_seconds_bucket"); n != len(DefBuckets)+1 {
		t.Errorf("%d h_seconds buckets, want %d", n, len(DefBuckets)+1)
	}
	if strings.Count(got, `h2_bucket{le="+Inf"}`) != 1 {
		t.Errorf("+Inf bucket repeated:\n%s", got)
	}
}

func TestInvalidUTF8LabelValues(t *testing.T) {
	r := NewRegistry()
	v := r.Counter("c_total", "", "v")
	// Both print as a\uFFFDb, so they must be one series.
	c1 := v.With("a\xffb")
	c2 := v.With("a\xfeb")
	if c1 != c2 {
		t.Fatal("values differing only in invalid UTF-8 got separate series")
	}
	c1.Inc()
	c2.Inc()
	if got, want := text(t, r), "# TYPE c_total counter\nc_total{v=\"a\uFFFDb\"} 2\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLabelValuesAreNotAmbiguous(t *testing.T) {
	r := NewRegistry()
	v := r.Counter("c_total", "", "a", "b")
	if v.With("x", "yz") == v.With("xy", "z") {
		t.Error(`("x","yz") and ("xy","z") share a series`)
	}
	if v.With("", "") == v.With("", "\x00") {
		t.Error("empty and NUL values share a series")
	}
}

func TestFuncErrors(t *testing.T) {
	r := NewRegistry()
	r.GaugeFunc("g", "", []string{"k"}, func() []Sample {
		return []Sample{
			{LabelValues: []string{"b"}, Value: 2},
			{LabelValues: nil, Value: 9}, // wrong label count
			{LabelValues: []string{"a"}, Value: 1},
			{LabelValues: []string{"b"}, Value: 3},      // duplicate
			{LabelValues: []string{"c", "x"}, Value: 9}, // wrong label count
		}
	})
	r.Gauge("other", "").With().Set(1)

	var b strings.Builder
	err := r.WriteText(&b)
	if err == nil {
		t.Fatal("WriteText: no error for malformed samples")
	}
	for _, s := range []string{"0 label values", "2 label values", "duplicate"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	// The valid samples and the other families are still written; of the
	// duplicates the first one returned wins.
	want := "# TYPE g gauge\ng{k=\"a\"} 1\ng{k=\"b\"} 2\n# TYPE other gauge\nother 1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestFormatFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{-1, "-1"},
		{42, "42"},
		{1e6, "1000000"},
		{-123456789, "-123456789"},
		{1<<53 - 1, "9007199254740991"},
		{1 << 53, "9.007199254740992e+15"},
		{1e21, "1e+21"},
		{0.1, "0.1"},
		{1.5, "1.5"},
		{123456.789, "123456.789"},
		{1e-7, "1e-07"},
		{0.005, "0.005"},
		{math.Inf(1), "+Inf"},
		{math.Inf(-1), "-Inf"},
		{math.NaN(), "NaN"},
	}
	for _, tt := range tests {
		if got := formatFloat(tt.in); got != tt.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEscaping(t *testing.T) {
	tests := []struct {
		in, label, help string
	}{
		{"plain", "plain", "plain"},
		{`back\slash`, `back\\slash`, `back\\slash`},
		{"new\nline", `new\nline`, `new\nline`},
		{`"quoted"`, `\"quoted\"`, `"quoted"`},
		{"tab\tok", "tab\tok", "tab\tok"},
		{"ünïcødé", "ünïcødé", "ünïcødé"},
		{"bad\xffbyte", "bad\uFFFDbyte", "bad\uFFFDbyte"},
	}
	for _, tt := range tests {
		if got := string(appendLabelValue(nil, tt.in)); got != tt.label {
			t.Errorf("label value %q escaped to %q, want %q", tt.in, got, tt.label)
		}
		if got := escapeHelp(tt.in); got != tt.help {
			t.Errorf("help %q escaped to %q, want %q", tt.in, got, tt.help)
		}
	}
}

func TestNameValidation(t *testing.T) {
	metricNames := []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"_a", true}, {":a", true}, {"ns:sub_total9", true}, {"A_Z", true},
		{"", false}, {"9a", false}, {"a-b", false}, {"a b", false}, {"a.b", false}, {"é", false},
	}
	for _, tt := range metricNames {
		if got := validMetricName(tt.name); got != tt.ok {
			t.Errorf("validMetricName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
	labelNames := []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"_a", true}, {"a9", true}, {"le", true}, {"Method", true},
		{"", false}, {"__a", false}, {"__", false}, {"a:b", false}, {"9a", false}, {"a-b", false},
	}
	for _, tt := range labelNames {
		if got := validLabelName(tt.name); got != tt.ok {
			t.Errorf("validLabelName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// mustPanic runs f and fails unless it panics with a message containing want.
func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		p := recover()
		if p == nil {
			t.Errorf("no panic, want one mentioning %q", want)
			return
		}
		if msg := fmt.Sprint(p); !strings.Contains(msg, want) {
			t.Errorf("panic %q does not mention %q", msg, want)
		}
	}()
	f()
}

func TestRegistrationPanics(t *testing.T) {
	noop := func() []Sample { return nil }
	tests := []struct {
		name string
		want string
		f    func(r *Registry)
	}{
		{"invalid metric name", "invalid metric name", func(r *Registry) { r.Counter("bad-name", "") }},
		{"empty metric name", "invalid metric name", func(r *Registry) { r.Gauge("", "") }},
		{"invalid label name", "invalid label name", func(r *Registry) { r.Counter("c", "", "bad-label") }},
		{"reserved label prefix", "invalid label name", func(r *Registry) { r.Gauge("g", "", "__name") }},
		{"colon in label", "invalid label name", func(r *Registry) { r.Gauge("g", "", "a:b") }},
		{"duplicate label", "duplicate label name", func(r *Registry) { r.Counter("c", "", "a", "b", "a") }},
		{"le on histogram", `"le" is reserved`, func(r *Registry) { r.Histogram("h", "", nil, "le") }},
		{"duplicate name", "already registered", func(r *Registry) {
			r.Counter("x_total", "")
			r.Gauge("x_total", "")
		}},
		{"duplicate func name", "already registered", func(r *Registry) {
			r.Gauge("x", "")
			r.GaugeFunc("x", "", nil, noop)
		}},
		{"histogram claims _count", "already registered by h", func(r *Registry) {
			r.Histogram("h", "", nil)
			r.Counter("h_count", "")
		}},
		{"histogram after _sum", "already registered by h_sum", func(r *Registry) {
			r.Gauge("h_sum", "")
			r.Histogram("h", "", nil)
		}},
		{"decreasing buckets", "strictly increasing", func(r *Registry) { r.Histogram("h", "", []float64{1, 0.5}) }},
		{"equal buckets", "strictly increasing", func(r *Registry) { r.Histogram("h", "", []float64{1, 1}) }},
		{"NaN bucket", "strictly increasing", func(r *Registry) { r.Histogram("h", "", []float64{math.NaN()}) }},
		{"nil collect", "nil collect", func(r *Registry) { r.CounterFunc("f_total", "", nil, nil) }},
		{"func label name", "invalid label name", func(r *Registry) { r.CounterFunc("f_total", "", []string{"__x"}, noop) }},
		{"runtime twice", "already registered", func(r *Registry) {
			r.RegisterRuntime()
			r.RegisterRuntime()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustPanic(t, tt.want, func() { tt.f(NewRegistry()) })
		})
	}
}

func TestFailedRegistrationLeavesNoTrace(t *testing.T) {
	r := NewRegistry()
	r.Gauge("h_count", "")
	mustPanic(t, "already registered", func() { r.Histogram("h", "", nil) })
	// The failed histogram must not have claimed "h" or "h_sum".
	r.Counter("h", "")
	r.Gauge("h_sum", "")
}

func TestCounterAddPanics(t *testing.T) {
	c := NewRegistry().Counter("c_total", "").With()
	for _, d := range []float64{-1, -0.5, math.Inf(-1), math.NaN()} {
		mustPanic(t, "cannot be increased", func() { c.Add(d) })
	}
	c.Add(0)
	c.Add(2)
	c.Add(0.25)
	c.Add(1 << 63) // too big for the integer fast path
	if got, want := c.Value(), 2.25+(1<<63); got != want {
		t.Errorf("Value = %v, want %v", got, want)
	}
}

func TestWithWrongLabelCountPanics(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c_total", "", "a", "b")
	g := r.Gauge("g", "", "a")
	h := r.Histogram("h", "", nil)
	tests := []struct {
		name string
		f    func()
	}{
		{"counter too few", func() { c.With("x") }},
		{"counter too many", func() { c.With("x", "y", "z") }},
		{"counter none", func() { c.With() }},
		{"gauge none", func() { g.With() }},
		{"gauge too many", func() { g.With("x", "y") }},
		{"histogram unlabelled given one", func() { h.With("x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustPanic(t, "label values given", tt.f) })
	}
}

func TestConcurrentUpdates(t *testing.T) {
	const (
		goroutines = 16
		iterations = 5000
	)
	r := NewRegistry()
	total := r.Counter("total", "").With()
	byWorker := r.Counter("by_worker_total", "", "worker")
	inflight := r.Gauge("inflight", "").With()
	sum := r.Gauge("sum", "").With()
	hist := r.Histogram("h", "", []float64{1, 2}, "kind")

	var wg sync.WaitGroup
	stop := make(chan struct{})
	scraped := make(chan struct{})
	go func() { // scrape while series are being created and updated
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
				if err := r.WriteText(discard{}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for w := range goroutines {
		wg.Go(func() {
			for i := range iterations {
				total.Inc()
				// Looked up every time, and new series appear
				// concurrently, to exercise both paths of With.
				byWorker.With(fmt.Sprint(w % 4)).Add(0.5)
				byWorker.With(fmt.Sprint("w", w)).Inc()
				inflight.Inc()
				sum.Add(0.25)
				hist.With("k").Observe(float64(i % 3)) // 0, 1, 2: le=1 gets 2/3, le=2 the rest
				inflight.Dec()
			}
		})
	}
	wg.Wait()
	close(stop)
	<-scraped

	n := float64(goroutines * iterations)
	checks := []struct {
		name      string
		got, want float64
	}{
		{"total", total.Value(), n},
		{"inflight", inflight.Value(), 0},
		{"sum", sum.Value(), n * 0.25},
		{"by_worker 0", byWorker.With("0").Value(), goroutines / 4 * iterations * 0.5},
		{"by_worker w7", byWorker.With("w7").Value(), iterations},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Per goroutine i%3 over 5000 iterations: 1667 zeros, 1667 ones, 1666 twos.
	zeros, ones, twos := 1667*goroutines, 1667*goroutines, 1666*goroutines
	got := text(t, r)
	for _, line := range []string{
		fmt.Sprintf(`h_bucket{kind="k",le="1"} %d`, zeros+ones),
		fmt.Sprintf(`h_bucket{kind="k",le="2"} %d`, zeros+ones+twos),
		fmt.Sprintf(`h_bucket{kind="k",le="+Inf"} %d`, zeros+ones+twos),
		fmt.Sprintf(`h_sum{kind="k"} %d`, ones+2*twos),
		fmt.Sprintf(`h_count{kind="k"} %d`, zeros+ones+twos),
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in\n%s", line, got)
		}
	}
	if n := strings.Count(got, "by_worker_total{"); n != 4+goroutines {
		t.Errorf("%d by_worker_total series, want %d", n, 4+goroutines)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestWithDoesNotAllocate(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c_total", "", "method", "code")
	h := r.Histogram("h", "", DefBuckets, "method")
	g := r.Gauge("g", "")
	c.With("GET", "200")
	h.With("GET")
	tests := []struct {
		name string
		f    func()
	}{
		{"counter With+Inc", func() { c.With("GET", "200").Inc() }},
		{"counter With+Add", func() { c.With("GET", "200").Add(1.5) }},
		{"histogram With+Observe", func() { h.With("GET").Observe(0.3) }},
		{"gauge With+Set", func() { g.With().Set(3) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
	}
}
