package metrics

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// vec holds the series of one labelled metric, one *M per distinct set of
// label values.
//
// Lookups happen on every request, new label sets are rare and bounded (a
// metric with unbounded label values is a bug anyway), so the series live in
// an immutable snapshot that writers copy and replace. Readers only load a
// pointer: no lock, no shared cache line written, and no allocation when the
// key fits the stack buffer in with. The price is an O(n) copy per new
// series, paid once per label set.
type vec[M any] struct {
	labelNames []string
	newMetric  func() *M

	mu   sync.Mutex // serializes writers of snap
	snap atomic.Pointer[vecSnapshot[M]]
}

type vecSnapshot[M any] struct {
	// byKey maps the encoded label values passed to With to their series.
	// A series may appear under two keys when its raw values contained
	// invalid UTF-8 (see add).
	byKey map[string]*series[M]
	// sorted lists every series once, ordered by label values, so that a
	// scrape needs neither a lock nor a sort.
	sorted []*series[M]
}

type series[M any] struct {
	labelValues []string // as exposed, i.e. valid UTF-8
	labels      string   // pre-rendered `a="x",b="y"`, escaped
	metric      *M
}

func newVec[M any](labelNames []string, newMetric func() *M) *vec[M] {
	v := &vec[M]{labelNames: labelNames, newMetric: newMetric}
	v.snap.Store(&vecSnapshot[M]{byKey: map[string]*series[M]{}})
	return v
}

// appendKey encodes label values unambiguously: each value is prefixed with
// its length, so no choice of separator can make two label sets collide.
func appendKey(b []byte, values []string) []byte {
	for _, s := range values {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// with returns the metric for values, creating it on first use.
func (v *vec[M]) with(values []string) *M {
	if len(values) != len(v.labelNames) {
		panic(fmt.Sprintf("metrics: %d label values given for %d label names %q",
			len(values), len(v.labelNames), v.labelNames))
	}
	var buf [128]byte
	key := appendKey(buf[:0], values)
	// The compiler does not allocate for a string(bytes) map index.
	if s, ok := v.snap.Load().byKey[string(key)]; ok {
		return s.metric
	}
	return v.add(string(key), values)
}

// add is the slow path of with: it copies the snapshot with a new series.
func (v *vec[M]) add(key string, values []string) *M {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.snap.Load()
	if s, ok := old.byKey[key]; ok { // another goroutine got here first
		return s.metric
	}

	next := &vecSnapshot[M]{byKey: make(map[string]*series[M], len(old.byKey)+1), sorted: old.sorted}
	maps.Copy(next.byKey, old.byKey)

	// Label values are exposed as UTF-8, so distinct raw values that differ
	// only in invalid bytes would print as the same series. Key the series
	// by its exposed values and let the raw key alias it.
	clean := sanitize(values)
	cleanKey := key
	if !slices.Equal(clean, values) {
		cleanKey = string(appendKey(nil, clean))
	}
	s, ok := next.byKey[cleanKey]
	if !ok {
		s = &series[M]{
			labelValues: slices.Clone(clean),
			labels:      string(appendLabelPairs(nil, v.labelNames, clean)),
			metric:      v.newMetric(),
		}
		i, _ := slices.BinarySearchFunc(old.sorted, s.labelValues, func(e *series[M], t []string) int {
			return slices.Compare(e.labelValues, t)
		})
		// Build a new slice: readers may be iterating the old one.
		next.sorted = slices.Concat(old.sorted[:i], []*series[M]{s}, old.sorted[i:])
		next.byKey[cleanKey] = s
	}
	next.byKey[key] = s
	v.snap.Store(next)
	return s.metric
}

// sanitize returns values with invalid UTF-8 replaced by U+FFFD, or values
// itself when there is nothing to replace.
func sanitize(values []string) []string {
	var out []string // allocated on the first invalid value
	for i, s := range values {
		if utf8.ValidString(s) {
			continue
		}
		if out == nil {
			out = slices.Clone(values)
		}
		out[i] = strings.ToValidUTF8(s, string(utf8.RuneError))
	}
	if out == nil {
		return values
	}
	return out
}

// each calls f for every series in label-value order.
func (v *vec[M]) each(f func(s *series[M])) {
	for _, s := range v.snap.Load().sorted {
		f(s)
	}
}
