package metrics

import (
	"fmt"
	"math"
	"sync/atomic"
)

// Counter is a monotonically increasing value, such as requests served.
// Its methods are safe for concurrent use.
type Counter struct {
	// Whole increments, by far the common case, go to ints with a single
	// atomic add; only fractional deltas pay for the compare-and-swap loop
	// on bits. The value is their sum.
	ints atomic.Uint64
	bits atomic.Uint64 // float64 bits
}

// Inc adds 1.
func (c *Counter) Inc() { c.ints.Add(1) }

// Add adds delta. It panics if delta is negative or NaN: a counter only goes
// up, and Prometheus treats a decrease as a restart of the process.
func (c *Counter) Add(delta float64) {
	if delta < 0 || math.IsNaN(delta) {
		panic(fmt.Sprintf("metrics: counter cannot be increased by %v", delta))
	}
	if delta < 1<<63 {
		if u := uint64(delta); float64(u) == delta {
			c.ints.Add(u)
			return
		}
	}
	addFloat(&c.bits, delta)
}

// Value returns the current value.
func (c *Counter) Value() float64 {
	return float64(c.ints.Load()) + math.Float64frombits(c.bits.Load())
}

// addFloat atomically adds delta to the float64 stored as bits in u.
func addFloat(u *atomic.Uint64, delta float64) {
	for {
		old := u.Load()
		if u.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+delta)) {
			return
		}
	}
}

// CounterVec is a counter family partitioned by label values.
type CounterVec struct {
	v *vec[Counter]
}

// With returns the counter for the given label values, one per label name
// in registration order, creating it on first use. It panics if the number
// of values is wrong.
func (v *CounterVec) With(labelValues ...string) *Counter { return v.v.with(labelValues) }

func (v *CounterVec) appendSamples(b []byte, name string) ([]byte, error) {
	v.v.each(func(s *series[Counter]) {
		b = appendSample(b, name, "", s.labels, "", s.metric.Value())
	})
	return b, nil
}
