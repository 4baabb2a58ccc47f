package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Registry holds a set of metric families and writes them in the text
// exposition format. Its methods are safe for concurrent use, but metrics
// are normally registered once at startup.
type Registry struct {
	mu       sync.Mutex
	families []*family         // sorted by name; replaced, never modified in place
	names    map[string]string // every sample name exposed -> family that owns it

	bufs sync.Pool // *[]byte scratch buffers for WriteText and Handler
}

// family is one registered metric: its header and what produces its samples.
type family struct {
	name string
	help string // escaped
	typ  string // counter, gauge or histogram
	c    collector
}

// collector appends a family's sample lines (not the HELP and TYPE lines).
// An error reports samples that had to be left out; what was appended is
// still valid.
type collector interface {
	appendSamples(b []byte, name string) ([]byte, error)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{names: map[string]string{}}
}

// Counter registers a counter family and returns it. With no label names the
// family has a single series, reached with With(). It panics if name or a
// label name is invalid, a label name repeats, or name is already taken.
func (r *Registry) Counter(name, help string, labelNames ...string) *CounterVec {
	labelNames = checkLabelNames(name, labelNames, false)
	v := &CounterVec{v: newVec(labelNames, func() *Counter { return new(Counter) })}
	r.register(name, help, "counter", v)
	return v
}

// Gauge registers a gauge family and returns it. It panics as Counter does.
func (r *Registry) Gauge(name, help string, labelNames ...string) *GaugeVec {
	labelNames = checkLabelNames(name, labelNames, false)
	v := &GaugeVec{v: newVec(labelNames, func() *Gauge { return new(Gauge) })}
	r.register(name, help, "gauge", v)
	return v
}

// Histogram registers a histogram family with the given bucket upper bounds
// (nil means DefBuckets; a trailing +Inf may be given and is always
// implied). It panics as Counter does, and also if the bounds are not
// strictly increasing, if a label is named "le", or if name_bucket,
// name_sum or name_count is already taken.
func (r *Registry) Histogram(name, help string, buckets []float64, labelNames ...string) *HistogramVec {
	labelNames = checkLabelNames(name, labelNames, true)
	v := newHistogramVec(buckets, labelNames)
	r.register(name, help, "histogram", v)
	return v
}

// checkLabelNames validates label names and returns a private copy, so the
// caller's slice may be reused.
func checkLabelNames(metric string, labelNames []string, histogram bool) []string {
	for i, n := range labelNames {
		switch {
		case !validLabelName(n):
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", metric, n))
		case histogram && n == "le":
			panic(fmt.Sprintf("metrics: %s: label name \"le\" is reserved for histogram buckets", metric))
		case slices.Contains(labelNames[:i], n):
			panic(fmt.Sprintf("metrics: %s: duplicate label name %q", metric, n))
		}
	}
	return slices.Clone(labelNames)
}

// register adds a family after checking that none of the sample names it
// exposes is taken: a histogram "x" claims x_bucket, x_sum and x_count
// besides x, so a later counter "x_count" would produce a broken scrape.
func (r *Registry) register(name, help, typ string, c collector) {
	if !validMetricName(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	claims := []string{name}
	if typ == "histogram" {
		claims = append(claims, name+"_bucket", name+"_sum", name+"_count")
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil { // a zero Registry is usable too
		r.names = map[string]string{}
	}
	for _, n := range claims {
		if owner, ok := r.names[n]; ok {
			panic(fmt.Sprintf("metrics: %s: name %q already registered by %s", name, n, owner))
		}
	}
	for _, n := range claims {
		r.names[n] = name
	}
	f := &family{name: name, help: escapeHelp(help), typ: typ, c: c}
	i, _ := slices.BinarySearchFunc(r.families, name, func(f *family, n string) int {
		return strings.Compare(f.name, n)
	})
	r.families = slices.Concat(r.families[:i], []*family{f}, r.families[i:])
}

// appendText appends the whole exposition to b. Families are sorted by name
// and series by label values. Callbacks run without the registry lock held.
func (r *Registry) appendText(b []byte) ([]byte, error) {
	r.mu.Lock()
	families := r.families
	r.mu.Unlock()

	var errs []error
	for _, f := range families {
		b = appendHeader(b, f.name, f.help, f.typ)
		var err error
		if b, err = f.c.appendSamples(b, f.name); err != nil {
			errs = append(errs, err)
		}
	}
	return b, errors.Join(errs...)
}

// WriteText writes the whole exposition to w. If a CounterFunc or GaugeFunc
// callback returned malformed samples, those are left out, everything else
// is written, and the error describes what was dropped.
func (r *Registry) WriteText(w io.Writer) error {
	bp := r.getBuf()
	defer r.bufs.Put(bp)
	b, err := r.appendText((*bp)[:0])
	*bp = b
	if _, werr := w.Write(b); werr != nil {
		return werr
	}
	return err
}

// getBuf returns a scratch buffer from the pool. Reusing buffers across
// scrapes matters because the exposition is rebuilt every few seconds and
// would otherwise be a steady source of garbage.
func (r *Registry) getBuf() *[]byte {
	if bp, ok := r.bufs.Get().(*[]byte); ok {
		return bp
	}
	return new([]byte)
}

// Handler returns an http.Handler that serves the exposition for GET and
// HEAD and answers 405 to other methods. If WriteText would report an
// error, it answers 500 with the error instead, so the failing scrape shows
// up in Prometheus (as up == 0) rather than series quietly vanishing.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		bp := r.getBuf()
		defer r.bufs.Put(bp)

		b, err := r.appendText((*bp)[:0])
		*bp = b
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Set("Content-Length", strconv.Itoa(len(b)))
		h.Set("Cache-Control", "no-store")
		if req.Method == http.MethodHead {
			return
		}
		w.Write(b) // an error here means the scraper went away; nothing to do
	})
}
