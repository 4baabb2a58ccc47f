package memory

import (
	"cmp"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/nodus-os/nodus/internal/vector"
)

// TestTopVectorHits: the heap keeps what a stable sort of every hit would
// put first, ties (many, from coarse vectors) by position, and skips
// memories of another model, another size, or no positive cosine.
func TestTopVectorHits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := rng.IntN(300)
		mems := make([]Memory, n)
		for i := range mems {
			dims := 4
			if rng.IntN(20) == 0 {
				dims = 3
			}
			v := make([]float32, dims)
			for j := range v {
				v[j] = float32(rng.IntN(5) - 1) // coarse: many equal cosines, some negative
			}
			mems[i].Embedding, mems[i].EmbeddingModel = v, "m"
			if rng.IntN(10) == 0 {
				mems[i].EmbeddingModel = "other"
			}
		}
		q := []float32{1, float32(rng.IntN(3)), 0, 1}
		var want []vecHit
		for i, m := range mems {
			if m.EmbeddingModel != "m" || len(m.Embedding) != len(q) {
				continue
			}
			if c := float64(vector.Dot(q, m.Embedding)); c > 0 {
				want = append(want, vecHit{i, c})
			}
		}
		slices.SortStableFunc(want, func(a, b vecHit) int { return cmp.Compare(b.score, a.score) })
		for _, depth := range []int{1, 5, 50, 1000} {
			got := topVectorHits(mems, "m", q, depth)
			w := want[:min(len(want), depth)]
			if len(got) != len(w) || len(w) > 0 && !reflect.DeepEqual([]vecHit(got), w) {
				t.Fatalf("round %d, depth %d: %v, want %v", round, depth, got, w)
			}
		}
	}
}
