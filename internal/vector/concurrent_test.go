package vector

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// TestConcurrentUse searches each kind of index from several goroutines
// while another adds, replaces and deletes keys; run it with -race. Every
// result must be well formed: at most k, sorted, no key twice.
func TestConcurrentUse(t *testing.T) {
	const dim, n = 32, 1500
	vecs := clustered(2*n, dim, 10, 11)
	for _, tc := range []struct {
		name string
		idx  Index
	}{
		{"Flat", NewFlat(dim)},
		{"HNSW", NewHNSW(dim, Params{M: 8, EfConstruction: 64, EfSearch: 32})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx := tc.idx
			for i := range n / 2 {
				idx.Add(int64(i), vecs[i*dim:(i+1)*dim])
			}
			var wg sync.WaitGroup
			done := make(chan struct{})
			wg.Go(func() {
				defer close(done)
				r := rand.New(rand.NewPCG(1, 2))
				for i := n / 2; i < n; i++ {
					idx.Add(int64(i), vecs[i*dim:(i+1)*dim])
					if r.IntN(3) == 0 {
						idx.Delete(r.Int64N(int64(i)))
					}
					if r.IntN(5) == 0 {
						j := n + r.IntN(n)
						idx.Add(r.Int64N(int64(i)), vecs[j*dim:(j+1)*dim])
					}
				}
			})
			for g := range 3 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-done:
							return
						default:
						}
						q := vecs[(i*7+g)%n*dim:][:dim]
						checkWellFormed(t, idx.Search(q, 10), 10)
						_ = idx.Len() + int(idx.Bytes())
					}
				})
			}
			wg.Wait()
		})
	}
}

func checkWellFormed(t *testing.T, rs []Result, k int) {
	t.Helper()
	if len(rs) > k || !finite(rs) {
		t.Errorf("bad results: %v", rs)
		return
	}
	seen := make(map[int64]bool, len(rs))
	for i, r := range rs {
		if seen[r.Key] || i > 0 && compareResults(rs[i-1], r) > 0 {
			t.Errorf("results not sorted or not unique: %v", rs)
			return
		}
		seen[r.Key] = true
	}
}
