package vector

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Build returns an HNSW index of the given keys, keys[i] having the
// normalised vector vecs[i*dim : (i+1)*dim]; a key given twice keeps its
// last vector. It inserts with the given number of goroutines (all CPUs
// when workers ≤ 0), which is how a knowledge base's index is loaded at
// start or rebuilt: on two cores it is about twice as fast as calling Add
// for each key. It panics if len(vecs) != len(keys)*dim.
//
// Node levels come from p.Seed, but with more than one worker the order in
// which nodes link up varies, so two parallel builds of the same input give
// slightly different graphs (and recall).
func Build(dim int, keys []int64, vecs []float32, p Params, workers int) *HNSW {
	if dim <= 0 {
		panic("vector: Build: dimension must be positive")
	}
	if len(vecs) != len(keys)*dim {
		panic("vector: Build: len(vecs) is not len(keys)*dim")
	}
	h := &HNSW{dim: dim, g: build(dim, keys, vecs, p, workers)}
	h.pool.New = func() any { return new(scratch) }
	return h
}

// build makes the graph of Build. Every node is appended before any is
// linked, so the slabs never move while goroutines read them; the
// goroutines then take node ids from a shared counter and insert them,
// each adjacency list guarded by its node's lock (the usual scheme, as in
// hnswlib).
func build(dim int, keys []int64, vecs []float32, p Params, workers int) *graph {
	g := newGraph(dim, p)
	last := make(map[int64]int, len(keys))
	for i, key := range keys {
		last[key] = i
	}
	n := len(last)
	g.vecs = make([]float32, 0, n*dim)
	g.keys = make([]int64, 0, n)
	g.levels = make([]uint8, 0, n)
	g.links0 = make([]int32, 0, n*g.stride0)
	g.upper = make([][]int32, 0, n)
	g.deleted = make([]bool, 0, n)
	g.ids = make(map[int64]int32, n)
	for i, key := range keys {
		if last[key] == i {
			g.appendNode(key, vecs[i*dim:(i+1)*dim], g.randomLevel())
		}
	}
	if n == 0 {
		return g
	}

	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	s := new(scratch)
	if workers == 1 {
		for id := range int32(n) {
			g.insert(s, id)
		}
		return g
	}

	g.locks = make([]sync.Mutex, n)
	g.entryMu = new(sync.Mutex)
	g.insert(s, 0)
	var next atomic.Int32
	next.Store(1)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			s := new(scratch)
			for id := next.Add(1) - 1; id < int32(n); id = next.Add(1) - 1 {
				g.insert(s, id)
			}
		})
	}
	wg.Wait()
	g.locks, g.entryMu = nil, nil
	return g
}
