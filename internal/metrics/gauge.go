package metrics

import (
	"math"
	"sync/atomic"
)

// Gauge is a value that can go up and down, such as requests in flight.
// Its methods are safe for concurrent use.
type Gauge struct {
	bits atomic.Uint64 // float64 bits
}

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds delta, which may be negative.
func (g *Gauge) Add(delta float64) { addFloat(&g.bits, delta) }

// Inc adds 1.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.Add(-1) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// GaugeVec is a gauge family partitioned by label values.
type GaugeVec struct {
	v *vec[Gauge]
}

// With returns the gauge for the given label values, one per label name in
// registration order, creating it on first use. It panics if the number of
// values is wrong.
func (v *GaugeVec) With(labelValues ...string) *Gauge { return v.v.with(labelValues) }

func (v *GaugeVec) appendSamples(b []byte, name string) ([]byte, error) {
	v.v.each(func(s *series[Gauge]) {
		b = appendSample(b, name, "", s.labels, "", s.metric.Value())
	})
	return b, nil
}
