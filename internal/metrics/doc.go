// Package metrics is a small Prometheus instrumentation library that writes
// the text exposition format, version 0.0.4, for GET /metrics.
//
// It exists so that Nodus does not link prometheus/client_golang and its
// dependency tree: the subset used here (counters, gauges, histograms,
// scrape-time callbacks, a handful of process and Go runtime metrics) fits in
// a few hundred lines of standard-library code, keeps the binary small and
// allocates nothing on the hot path.
//
// # Usage
//
// There is no global default registry; create one and pass it to whoever
// needs to register metrics:
//
//	reg := metrics.NewRegistry()
//	reqs := reg.Counter("http_requests_total", "HTTP requests served.", "method", "code")
//	dur := reg.Histogram("http_request_duration_seconds", "Request latency.", metrics.DefBuckets, "method")
//	reg.RegisterRuntime()
//	mux.Handle("GET /metrics", reg.Handler())
//
//	// per request:
//	reqs.With(r.Method, "200").Inc()
//	dur.With(r.Method).Observe(time.Since(start).Seconds())
//
// A metric registered without label names has exactly one series, reached
// with With() (no arguments). Callers on a hot path may keep the *Counter,
// *Gauge or *Histogram returned by With for fixed label values; calling With
// again is also cheap: a lock-free map lookup that does not allocate unless
// the label values are unusually long (over about 100 bytes together).
//
// Values owned elsewhere, such as database pool statistics or a queue depth,
// are better reported with CounterFunc or GaugeFunc, which call a function at
// scrape time, than copied into a gauge on every change.
//
// # Panics
//
// Mistakes in how a metric is declared or used are programmer errors, so
// they panic at once rather than produce a broken exposition later:
// registering a name twice (including the _bucket, _sum and _count names a
// histogram implies), an invalid metric or label name, a repeated label
// name, the label "le" on a histogram, bucket bounds that are not strictly
// increasing, a wrong number of label values passed to With, and a negative
// or NaN increment of a counter. Registration normally happens once at
// startup, where such a panic is found by the first test run.
//
// Functions passed to CounterFunc and GaugeFunc run at scrape time, where a
// panic would be worse than a missing value: samples with the wrong number
// of label values or a duplicated label set are left out, the rest of the
// exposition is still written, and WriteText returns an error naming them
// (Handler answers 500, as Prometheus's own handler does by default, so the
// scrape visibly fails rather than silently losing series).
//
// # Exposition
//
// WriteText output is deterministic: metric families are sorted by name and
// series by label values, which makes golden-file tests possible. Label
// values are escaped (backslash, double quote, newline) and invalid UTF-8 in
// them is replaced by U+FFFD, since the format requires UTF-8; HELP text
// escapes backslash and newline only. A labelled metric with no series yet
// is written as just its HELP and TYPE lines.
package metrics
