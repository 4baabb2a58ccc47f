package vector

import (
	"math/rand/v2"
	"testing"
	"time"
)

// recallSize is the size of the recall test: 20,000 × 128, smaller under
// -short and smaller still under the race detector.
func recallSize() (n, dim int) {
	switch {
	case raceEnabled:
		return 1500, 32
	case testing.Short():
		return 3000, 64
	}
	return 20000, 128
}

// TestHNSWRecall checks recall@10 against Flat on clustered data for a
// graph built by Build and one built by Add, that after deleting a tenth
// of the keys no deleted key comes back and recall holds, and that
// re-adding a key replaces its vector.
func TestHNSWRecall(t *testing.T) {
	n, dim := recallSize()
	const k, nq, minRecall = 10, 200, 0.95
	all := clustered(n+nq, dim, 50, 1)
	vecs, queries := all[:n*dim], all[n*dim:]
	keys := make([]int64, n)
	flat := NewFlat(dim)
	for i := range keys {
		keys[i] = int64(i) * 3 // keys are not ids
		flat.Add(keys[i], vecs[i*dim:(i+1)*dim])
	}
	check := func(name string, h Index) {
		t.Helper()
		got := meanRecall(h, flat, queries, k)
		t.Logf("%s: recall@%d %.3f", name, k, got)
		if got < minRecall {
			t.Errorf("%s: recall@%d %.3f, want ≥ %.2f", name, k, got, minRecall)
		}
	}

	start := time.Now()
	h := Build(dim, keys, vecs, DefaultParams(), 2)
	t.Logf("Build of %d×%d on 2 goroutines: %v", n, dim, time.Since(start))
	check("Build", h)
	if h.Len() != n || h.Nodes() != n {
		t.Fatalf("Len %d, Nodes %d, want %d", h.Len(), h.Nodes(), n)
	}

	if !testing.Short() {
		start = time.Now()
		added := NewHNSW(dim, DefaultParams())
		for i, key := range keys {
			added.Add(key, vecs[i*dim:(i+1)*dim])
		}
		t.Logf("Add of %d×%d: %v", n, dim, time.Since(start))
		check("Add", added)
	}

	r := rand.New(rand.NewPCG(7, 7))
	deleted := make(map[int64]bool)
	for _, i := range r.Perm(n)[:n/10] {
		deleted[keys[i]] = true
		if !h.Delete(keys[i]) || !flat.Delete(keys[i]) {
			t.Fatalf("Delete(%d) found nothing", keys[i])
		}
	}
	if h.Delete(firstKey(deleted)) {
		t.Fatal("Delete of a deleted key reported true")
	}
	if h.Len() != n-n/10 || h.Tombstones() != n/10 {
		t.Fatalf("after deletes: Len %d, Tombstones %d", h.Len(), h.Tombstones())
	}
	for i := range nq {
		for _, res := range h.SearchEf(queries[i*dim:(i+1)*dim], 50, 100) {
			if deleted[res.Key] {
				t.Fatalf("query %d returned deleted key %d", i, res.Key)
			}
		}
	}
	check("after deletes", h)

	// Re-adding a key with the query itself as its vector must make it
	// that query's best match, and leave no trace of the old vector.
	q := queries[:dim]
	key := keys[0]
	if deleted[key] {
		key = keys[1]
	}
	h.Add(key, q)
	got := h.Search(q, 3)
	if len(got) == 0 || got[0].Key != key || got[0].Score < 0.999 {
		t.Fatalf("after re-adding %d as the query: %v", key, got)
	}
	if got[1].Key == key {
		t.Fatalf("key %d returned twice: %v", key, got)
	}
	if h.Len() != n-n/10 {
		t.Fatalf("re-adding changed Len to %d", h.Len())
	}

	h.Compact(2)
	if h.Tombstones() != 0 || h.Nodes() != h.Len() || h.Len() != n-n/10 {
		t.Fatalf("after Compact: Len %d, Nodes %d, Tombstones %d", h.Len(), h.Nodes(), h.Tombstones())
	}
	flat.Add(key, q)
	check("after Compact", h)
}

func firstKey(m map[int64]bool) int64 {
	for k := range m {
		return k
	}
	return -1
}

// TestHNSWEdges covers the small cases the recall test cannot see.
func TestHNSWEdges(t *testing.T) {
	const dim = 4
	h := NewHNSW(dim, Params{}) // zero params take the defaults
	if h.Params() != DefaultParams() {
		t.Errorf("Params() = %+v, want the defaults", h.Params())
	}
	q := []float32{1, 0, 0, 0}
	if got := h.Search(q, 5); len(got) != 0 {
		t.Errorf("empty index returned %v", got)
	}
	h.Add(1, q)
	if got := h.Search(q, 5); len(got) != 1 || got[0] != (Result{1, 1}) {
		t.Errorf("one vector: %v", got)
	}
	if got := h.Search(q, 0); got != nil {
		t.Errorf("k 0: %v", got)
	}
	h.Delete(1)
	if got := h.Search(q, 5); len(got) != 0 {
		t.Errorf("all deleted: %v", got)
	}
	// An index with only tombstones still accepts new vectors.
	h.Add(2, []float32{0, 1, 0, 0})
	if got := h.Search(q, 5); len(got) != 1 || got[0].Key != 2 {
		t.Errorf("after re-filling: %v", got)
	}
	// Equal scores rank by key.
	h.Add(5, []float32{0, 0, 1, 0})
	h.Add(3, []float32{0, 0, 1, 0})
	got := h.Search([]float32{0, 0, 1, 0}, 2)
	if len(got) != 2 || got[0].Key != 3 || got[1].Key != 5 {
		t.Errorf("ties: %v, want keys 3 then 5", got)
	}
	if h.Bytes() <= 0 {
		t.Errorf("Bytes() = %d", h.Bytes())
	}
	mustPanic(t, "Add of a wrong dimension", func() { h.Add(9, []float32{1, 0}) })
	mustPanic(t, "Search of a wrong dimension", func() { h.Search([]float32{1, 0}, 1) })
}

// TestBuildDuplicateKeys: a key given twice keeps its last vector.
func TestBuildDuplicateKeys(t *testing.T) {
	keys := []int64{1, 2, 1}
	vecs := []float32{1, 0, 0, 1, -1, 0}
	for _, workers := range []int{1, 2} {
		h := Build(2, keys, vecs, DefaultParams(), workers)
		if h.Len() != 2 || h.Nodes() != 2 {
			t.Fatalf("workers %d: Len %d, Nodes %d, want 2", workers, h.Len(), h.Nodes())
		}
		got := h.Search([]float32{-1, 0}, 1)
		if len(got) != 1 || got[0].Key != 1 || got[0].Score != 1 {
			t.Errorf("workers %d: %v, want key 1 at score 1", workers, got)
		}
	}
	mustPanic(t, "Build with short vecs", func() { Build(2, keys, vecs[:5], DefaultParams(), 1) })
}

// TestBuildSequentialIsDeterministic: one worker and a seed give the same
// graph, and so the same answers, every time.
func TestBuildSequentialIsDeterministic(t *testing.T) {
	const n, dim = 2000, 16
	vecs := clustered(n, dim, 10, 3)
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = int64(i)
	}
	a := Build(dim, keys, vecs, DefaultParams(), 1)
	b := Build(dim, keys, vecs, DefaultParams(), 1)
	for i := range 20 {
		q := vecs[i*dim : (i+1)*dim]
		ra, rb := a.SearchEf(q, 10, 10), b.SearchEf(q, 10, 10)
		if len(ra) != len(rb) {
			t.Fatalf("query %d: %v and %v", i, ra, rb)
		}
		for j := range ra {
			if ra[j] != rb[j] {
				t.Fatalf("query %d: %v and %v", i, ra, rb)
			}
		}
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

// TestHNSWSearchAllocs: a search allocates its results and little else;
// the visited set and heaps come from the pool.
func TestHNSWSearchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	const n, dim = 2000, 16
	vecs := clustered(n, dim, 10, 4)
	h := NewHNSW(dim, DefaultParams())
	for i := range n {
		h.Add(int64(i), vecs[i*dim:(i+1)*dim])
	}
	h.Search(vecs[:dim], 10) // fill the pool
	if allocs := testing.AllocsPerRun(50, func() { h.Search(vecs[:dim], 10) }); allocs > 2 {
		t.Errorf("Search allocates %v times, want at most 2", allocs)
	}
}
