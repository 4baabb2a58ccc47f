package memory

import (
	"cmp"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/fulltext"
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

// TestCorpusPutKeepsStoreOrder: a memory written here takes its place in
// the store's order (newest update first, then the larger id), not the
// front: writes commit in another order than their update times.
func TestCorpusPutKeepsStoreOrder(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	mem := func(id string, at int, text string) Memory {
		return Memory{ID: id, Text: text, UpdatedAt: t0.Add(time.Duration(at) * time.Second)}
	}
	ids := func(c *corpus) string {
		var out []string
		for i, m := range c.mems {
			if got := fulltext.Analyze(m.Text); !reflect.DeepEqual(got, c.terms[i]) {
				t.Errorf("%s: terms out of step with the memories", m.ID)
			}
			out = append(out, m.ID)
		}
		return strings.Join(out, " ")
	}
	c := newCorpus(1, []Memory{mem("c", 3, "three"), mem("a", 1, "one")})
	c = c.put(mem("b", 2, "two"))
	if got := ids(c); got != "c b a" {
		t.Errorf("an older write committed later: %s, want c b a", got)
	}
	c = c.put(mem("a", 4, "one again"))
	if got := ids(c); got != "a c b" {
		t.Errorf("an update: %s, want a c b", got)
	}
	c = c.put(mem("d", 4, "four")) // the same time as a: the larger id first
	if got := ids(c); got != "d a c b" {
		t.Errorf("a tie on time: %s, want d a c b", got)
	}
	c = c.remove("c")
	if got := ids(c); got != "d a b" {
		t.Errorf("a removal: %s, want d a b", got)
	}
}
