package vector

import (
	"math"
	"math/rand/v2"
	"slices"
)

// clustered returns n normalised vectors of dimension dim drawn from a
// Gaussian mixture of the given number of centres: nearest-neighbour
// structure closer to real embeddings than uniform noise, where every
// point is about as far from every other.
func clustered(n, dim, centres int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	cs := make([]float32, centres*dim)
	for i := range cs {
		cs[i] = float32(r.NormFloat64())
	}
	vecs := make([]float32, n*dim)
	for i := range n {
		c := cs[r.IntN(centres)*dim:]
		v := vecs[i*dim : (i+1)*dim]
		for j := range v {
			v[j] = c[j] + clusterSpread*float32(r.NormFloat64())
		}
		if !Normalize(v) {
			panic("clustered: zero vector")
		}
	}
	return vecs
}

// clusterSpread is the standard deviation of a point about its centre,
// relative to the spread of the centres.
const clusterSpread = 0.6

// uniform returns n normalised random vectors of dimension dim.
func uniform(n, dim int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	vecs := make([]float32, n*dim)
	for i := range n {
		v := vecs[i*dim : (i+1)*dim]
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		Normalize(v)
	}
	return vecs
}

// bruteForce ranks every vector of the model by Dot with q and returns
// the best k: the definition Flat must meet exactly.
func bruteForce(model map[int64][]float32, q []float32, k int) []Result {
	all := make([]Result, 0, len(model))
	for key, v := range model {
		all = append(all, Result{Key: key, Score: Dot(q, v)})
	}
	slices.SortFunc(all, compareResults)
	return all[:min(k, len(all))]
}

// recall is the fraction of want's keys that got holds.
func recall(got, want []Result) float64 {
	if len(want) == 0 {
		return 1
	}
	keys := make(map[int64]bool, len(got))
	for _, r := range got {
		keys[r.Key] = true
	}
	hit := 0
	for _, r := range want {
		if keys[r.Key] {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}

// meanRecall searches every query in both indexes and averages recall@k.
func meanRecall(approx, exact Index, queries []float32, k int) float64 {
	dim := exact.Dim()
	n := len(queries) / dim
	var sum float64
	for i := range n {
		q := queries[i*dim : (i+1)*dim]
		sum += recall(approx.Search(q, k), exact.Search(q, k))
	}
	return sum / float64(n)
}

// finite reports whether every result score is a number.
func finite(rs []Result) bool {
	for _, r := range rs {
		if math.IsNaN(float64(r.Score)) || math.IsInf(float64(r.Score), 0) {
			return false
		}
	}
	return true
}
