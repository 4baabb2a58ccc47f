package store

import (
	"encoding/json"
	"math"
	"testing"
)

// TestAppendFast: what appendFast encodes is byte for byte what
// encoding/json makes of the same value, and it declines what it would
// get wrong.
func TestAppendFast(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.000103, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, 1.2e21,
		-3.5e-8, 123456789.125, 1e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 2.5e-5}
	var values []any
	for _, f := range floats {
		values = append(values, map[string]float64{"total": f}, map[string]float64{"input": f, "output": -f, "a b": 1})
	}
	values = append(values,
		map[string]float64{}, map[string]int64{}, []string{},
		map[string]int64{"input": 9, "output": 8, "total": 17, "input_cached_tokens": math.MinInt64, "z": math.MaxInt64},
		[]string{"nodus", "gateway", "", "with space", "dash-and_under.score"},
		// Escaped by encoding/json: declined.
		map[string]int64{"<b>": 1}, map[string]int64{"a\"b": 1}, map[string]float64{"é": 1}, []string{"a&b"},
		[]string{"tab\t"}, map[string]int64{"back\\slash": 2},
	)
	for _, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendFast(nil, v)
		if ok && string(got) != string(want) {
			t.Errorf("%#v: %s, encoding/json %s", v, got, want)
		}
		s, err := encodeJSON(v, "-", false)
		if err != nil || s != string(want) {
			t.Errorf("encodeJSON(%#v) = %s, %v; want %s", v, s, err, want)
		}
	}
	for _, v := range []any{map[string]float64{"x": math.NaN()}, map[string]float64{"x": math.Inf(1)}, 3, map[string]string{}} {
		if _, ok := appendFast(nil, v); ok {
			t.Errorf("appendFast took %#v", v)
		}
	}
	if _, ok := appendFast(nil, map[string]int64{"input": 1}); !ok {
		t.Error("appendFast declined a plain usage map")
	}
}
