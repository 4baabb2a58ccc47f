package vector

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFlatMatchesBruteForce runs random adds, replacements and deletes
// against Flat and a plain map, and after each round checks that Search
// gives exactly the brute-force ranking for many k.
func TestFlatMatchesBruteForce(t *testing.T) {
	const dim, rounds = 24, 30
	r := rand.New(rand.NewPCG(5, 5))
	pool := clustered(2000, dim, 8, 5)
	vec := func() []float32 { i := r.IntN(2000); return pool[i*dim : (i+1)*dim] }
	f := NewFlat(dim)
	model := make(map[int64][]float32)
	for round := range rounds {
		for range 60 {
			key := r.Int64N(300) // a small key space makes replacements common
			switch r.IntN(3) {
			case 0, 1:
				v := vec()
				f.Add(key, v)
				model[key] = v
			case 2:
				_, had := model[key]
				if got := f.Delete(key); got != had {
					t.Fatalf("round %d: Delete(%d) = %v, want %v", round, key, got, had)
				}
				delete(model, key)
			}
		}
		if f.Len() != len(model) {
			t.Fatalf("round %d: Len %d, want %d", round, f.Len(), len(model))
		}
		q := vec()
		for _, k := range []int{1, 2, 5, 10, 50, len(model), len(model) + 7} {
			got, want := f.Search(q, k), bruteForce(model, q, k)
			if !slices.Equal(got, want) {
				t.Fatalf("round %d, k %d:\n got %v\nwant %v", round, k, got, want)
			}
		}
	}
}

// TestFlatTies: equal scores rank by key, whatever the insertion order.
func TestFlatTies(t *testing.T) {
	f := NewFlat(2)
	for _, key := range []int64{9, 4, 7, 1} {
		f.Add(key, []float32{0, 1})
	}
	f.Add(3, []float32{1, 0})
	got := f.Search([]float32{0, 1}, 3)
	want := []Result{{1, 1}, {4, 1}, {7, 1}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := f.Search([]float32{0, 1}, 0); got != nil {
		t.Errorf("k 0: %v", got)
	}
	if got := NewFlat(2).Search([]float32{0, 1}, 3); len(got) != 0 {
		t.Errorf("empty: %v", got)
	}
	if f.Bytes() <= 0 {
		t.Errorf("Bytes() = %d", f.Bytes())
	}
	mustPanic(t, "Add of a wrong dimension", func() { f.Add(1, []float32{1}) })
	mustPanic(t, "Search of a wrong dimension", func() { f.Search([]float32{1, 0, 0}, 1) })
}

// TestFlatSearchAllocs: a search allocates its results and nothing else.
func TestFlatSearchAllocs(t *testing.T) {
	const n, dim = 500, 16
	f := NewFlat(dim)
	vecs := uniform(n, dim, 9)
	for i := range n {
		f.Add(int64(i), vecs[i*dim:(i+1)*dim])
	}
	if allocs := testing.AllocsPerRun(20, func() { f.Search(vecs[:dim], 10) }); allocs > 1 {
		t.Errorf("Search allocates %v times, want 1", allocs)
	}
}

// TestNewFlatFrom: an index made from a slab searches as one made by
// Add, and a repeated key keeps its last vector.
func TestNewFlatFrom(t *testing.T) {
	const n, dim = 300, 8
	vecs := uniform(n, dim, 11)
	keys := make([]int64, n)
	added := NewFlat(dim)
	for i := range keys {
		keys[i] = int64(i % 250) // keys 0..49 twice
		added.Add(keys[i], vecs[i*dim:(i+1)*dim])
	}
	from := NewFlatFrom(dim, slices.Clone(keys), slices.Clone(vecs))
	if from.Len() != 250 || added.Len() != 250 {
		t.Fatalf("Len %d and %d, want 250", from.Len(), added.Len())
	}
	queries := uniform(20, dim, 12)
	for i := range 20 {
		q := queries[i*dim : (i+1)*dim]
		if got, want := from.Search(q, 5), added.Search(q, 5); !slices.Equal(got, want) {
			t.Fatalf("query %d: %v, want %v", i, got, want)
		}
	}
	if got := from.Search(vecs[260*dim:261*dim], 1); got[0].Key != 10 {
		t.Fatalf("key 10's last vector finds %v", got)
	}
}
