// Package fusion holds what hybrid rankings share: the scaling that lets a
// full-text score (BM25, unbounded) and a vector score (cosine) be mixed.
// Knowledge-base search and memory search fuse their two sides with it.
package fusion

import "math"

// MinMax scales scores, given best first, to 0..1 by their best and worst
// (relative score fusion, as Weaviate's): the best becomes 1 and the worst
// 0. A single score, or all equal, scale to 1.
func MinMax(scores []float64) []float64 {
	out := make([]float64, len(scores))
	if len(scores) == 0 {
		return out
	}
	hi, lo := scores[0], scores[len(scores)-1]
	for i, s := range scores {
		if hi-lo <= 1e-12 {
			out[i] = 1
		} else {
			out[i] = math.Max(0, math.Min(1, (s-lo)/(hi-lo)))
		}
	}
	return out
}
