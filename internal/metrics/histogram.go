package metrics

import (
	"fmt"
	"math"
	"sync/atomic"
)

// DefBuckets are default histogram buckets for latencies in seconds, from
// 5ms to 10s, the same as Prometheus's. Treat it as read-only; Histogram
// copies the bounds it is given, so a later change would not take effect.
var DefBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram counts observations, such as request durations, in buckets.
// Observe is safe for concurrent use.
type Histogram struct {
	upper []float64 // bucket upper bounds, shared by the family, without +Inf
	// counts[i] holds observations in (upper[i-1], upper[i]]; the last
	// element is the +Inf bucket. Counts are per bucket rather than
	// cumulative so that Observe touches one counter; the scrape adds them
	// up. The total count is the sum of the buckets, which keeps _count and
	// the +Inf bucket equal even while observations are in flight.
	counts  []atomic.Uint64
	sumBits atomic.Uint64 // float64 bits
}

// Observe records v. NaN is counted in the +Inf bucket and makes the sum
// NaN, as in Prometheus's client.
func (h *Histogram) Observe(v float64) {
	// Binary search for the first bound >= v; written out rather than
	// sort.SearchFloat64s to avoid the closure call. A NaN compares false
	// and so ends past the last bound, in +Inf.
	lo, hi := 0, len(h.upper)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if v <= h.upper[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	h.counts[lo].Add(1)
	addFloat(&h.sumBits, v)
}

// HistogramVec is a histogram family partitioned by label values.
type HistogramVec struct {
	v     *vec[Histogram]
	upper []float64
	le    []string // formatted upper bounds, computed once
}

// With returns the histogram for the given label values, one per label name
// in registration order, creating it on first use. It panics if the number
// of values is wrong.
func (v *HistogramVec) With(labelValues ...string) *Histogram { return v.v.with(labelValues) }

func newHistogramVec(buckets []float64, labelNames []string) *HistogramVec {
	upper := checkBuckets(buckets)
	le := make([]string, len(upper)+1)
	for i, u := range upper {
		le[i] = formatFloat(u)
	}
	le[len(upper)] = "+Inf"
	hv := &HistogramVec{upper: upper, le: le}
	hv.v = newVec(labelNames, func() *Histogram {
		return &Histogram{upper: upper, counts: make([]atomic.Uint64, len(upper)+1)}
	})
	return hv
}

// checkBuckets validates bucket bounds and returns a private copy without a
// trailing +Inf, which is always implied. Nil means DefBuckets.
func checkBuckets(buckets []float64) []float64 {
	if buckets == nil {
		buckets = DefBuckets
	}
	upper := append([]float64(nil), buckets...)
	if n := len(upper); n > 0 && math.IsInf(upper[n-1], +1) {
		upper = upper[:n-1]
	}
	for i, u := range upper {
		if math.IsNaN(u) || i > 0 && u <= upper[i-1] {
			panic(fmt.Sprintf("metrics: histogram buckets must be strictly increasing, got %v", buckets))
		}
	}
	return upper
}

func (v *HistogramVec) appendSamples(b []byte, name string) ([]byte, error) {
	v.v.each(func(s *series[Histogram]) {
		h := s.metric
		var cum uint64
		for i := range h.counts {
			cum += h.counts[i].Load()
			b = appendSample(b, name, "_bucket", s.labels, v.le[i], float64(cum))
		}
		// The sum may lag the counts by observations in flight; Prometheus
		// tolerates that, and avoiding it would need a lock on Observe.
		b = appendSample(b, name, "_sum", s.labels, "", math.Float64frombits(h.sumBits.Load()))
		b = appendSample(b, name, "_count", s.labels, "", float64(cum))
	})
	return b, nil
}
