package fusion

import (
	"slices"
	"testing"
)

func TestMinMax(t *testing.T) {
	for _, tt := range []struct{ in, want []float64 }{
		{nil, []float64{}},
		{[]float64{7}, []float64{1}},
		{[]float64{3, 3}, []float64{1, 1}},
		{[]float64{10, 5, 0}, []float64{1, 0.5, 0}},
		{[]float64{0.9, 0.4, -0.1}, []float64{1, 0.5, 0}},
	} {
		got := MinMax(tt.in)
		if len(got) != len(tt.want) {
			t.Fatalf("MinMax(%v) = %v", tt.in, got)
		}
		for i := range got {
			if d := got[i] - tt.want[i]; d > 1e-9 || d < -1e-9 {
				t.Fatalf("MinMax(%v) = %v, want %v", tt.in, got, tt.want)
			}
		}
		if !slices.IsSortedFunc(got, func(a, b float64) int {
			switch {
			case a > b:
				return -1
			case a < b:
				return 1
			}
			return 0
		}) {
			t.Fatalf("MinMax(%v) = %v: order changed", tt.in, got)
		}
	}
}
