package metrics

import (
	"errors"
	"fmt"
	"slices"
)

// Sample is one series reported by a CounterFunc or GaugeFunc callback:
// label values, one per label name in registration order, and the value.
type Sample struct {
	LabelValues []string
	Value       float64
}

// CounterFunc registers a counter whose series are produced by collect at
// each scrape, for counts kept elsewhere (for example the number of
// connections a database pool has opened). collect may be called from
// several goroutines at once and should be quick; it must not register
// metrics on the same Registry. Labels are validated as for Counter.
func (r *Registry) CounterFunc(name, help string, labelNames []string, collect func() []Sample) {
	r.registerFunc(name, help, "counter", labelNames, collect)
}

// GaugeFunc registers a gauge whose series are produced by collect at each
// scrape, for values owned elsewhere (pool sizes, queue depth). The same
// rules as for CounterFunc apply.
func (r *Registry) GaugeFunc(name, help string, labelNames []string, collect func() []Sample) {
	r.registerFunc(name, help, "gauge", labelNames, collect)
}

func (r *Registry) registerFunc(name, help, typ string, labelNames []string, collect func() []Sample) {
	if collect == nil {
		panic(fmt.Sprintf("metrics: %s: nil collect function", name))
	}
	labelNames = checkLabelNames(name, labelNames, false)
	r.register(name, help, typ, &funcCollector{labelNames: labelNames, collect: collect})
}

type funcCollector struct {
	labelNames []string
	collect    func() []Sample
}

func (f *funcCollector) appendSamples(b []byte, name string) ([]byte, error) {
	samples := f.collect()
	// Sort a private copy: the callback's slice is its own business, and
	// it may hand out the same slice on every call.
	type row struct {
		values []string
		value  float64
	}
	rows := make([]row, 0, len(samples))
	var errs []error
	for _, s := range samples {
		if len(s.LabelValues) != len(f.labelNames) {
			errs = append(errs, fmt.Errorf("metrics: %s: sample has %d label values for %d label names",
				name, len(s.LabelValues), len(f.labelNames)))
			continue
		}
		rows = append(rows, row{sanitize(s.LabelValues), s.Value})
	}
	slices.SortStableFunc(rows, func(a, b row) int { return slices.Compare(a.values, b.values) })
	for i, r := range rows {
		if i > 0 && slices.Equal(r.values, rows[i-1].values) {
			errs = append(errs, fmt.Errorf("metrics: %s: duplicate sample for label values %q", name, r.values))
			continue
		}
		b = append(b, name...)
		if len(f.labelNames) > 0 {
			b = append(b, '{')
			b = appendLabelPairs(b, f.labelNames, r.values)
			b = append(b, '}')
		}
		b = append(b, ' ')
		b = appendFloat(b, r.value)
		b = append(b, '\n')
	}
	return b, errors.Join(errs...)
}
