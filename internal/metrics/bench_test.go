package metrics

import (
	"io"
	"strconv"
	"testing"
)

// BenchmarkCounterWithInc is the per-request pattern: look the series up by
// label values, then increment it.
func BenchmarkCounterWithInc(b *testing.B) {
	v := NewRegistry().Counter("http_requests_total", "", "method", "code")
	v.With("GET", "200")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v.With("GET", "200").Inc()
		}
	})
}

// BenchmarkHistogramObserve observes into a histogram with the default
// buckets, looking the series up each time as a handler would.
func BenchmarkHistogramObserve(b *testing.B) {
	v := NewRegistry().Histogram("http_request_duration_seconds", "", DefBuckets, "method")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		x := 0.0
		for pb.Next() {
			v.With("GET").Observe(x)
			x += 0.001
			if x > 12 {
				x = 0
			}
		}
	})
}

// BenchmarkWriteText renders a registry of realistic size: 100 counter
// series, 20 histograms with default buckets, and the runtime metrics.
func BenchmarkWriteText(b *testing.B) {
	r := NewRegistry()
	c := r.Counter("http_requests_total", "Requests.", "route", "code")
	h := r.Histogram("http_request_duration_seconds", "Latency.", DefBuckets, "route")
	for i := range 20 {
		route := "/api/v1/thing" + strconv.Itoa(i)
		for _, code := range []string{"200", "201", "400", "404", "500"} {
			c.With(route, code).Add(float64(i))
		}
		h.With(route).Observe(0.1)
	}
	r.RegisterRuntime()
	b.ReportAllocs()
	for b.Loop() {
		if err := r.WriteText(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
