package store

import (
	"runtime"
	"sync"

	"github.com/nodus-os/nodus/internal/vector"
)

// DefaultVectorCache is how many bytes of vectors search keeps in memory
// by default: 1 GiB, a knowledge base of about 170,000 chunks embedded in
// 1,536 dimensions, or 650,000 in 384.
const DefaultVectorCache = 1 << 30

// DefaultExactVectors is how many vectors a knowledge base may hold and
// still be searched exactly; past it an approximate (HNSW) index is built
// in the background and used once ready. Exact search of 20,000 vectors
// of 1,536 dimensions is about 30,000,000 multiply-adds, some 10 ms.
const DefaultExactVectors = 20000

// vectorCache keeps knowledge bases' vectors in memory for search, per
// knowledge base, model and dimension: a vectorSet. A set is loaded from
// kb_chunk_vectors by the first search that needs it and then follows
// the knowledge base's index_version as catchUp does for posting lists:
// the rows removed and written since its version are applied to it,
// unless there are too many, when it is loaded again. When the cache is
// over its limit the sets least recently searched go; a knowledge base
// whose vectors alone exceed the limit is searched from the database
// (scanVectors), exact and slow. Safe for concurrent use.
type vectorCache struct {
	mu       sync.Mutex
	limit    int64 // bytes
	exactMax int   // vectors searched exactly; more get an HNSW index
	params   vector.Params
	clock    uint64
	sets     map[vectorKey]*vectorSet
}

type vectorKey struct {
	kb, model string
	dim       int
}

// vectorSet is one knowledge base's vectors by one model. Its lock is
// held for reading by searches and for writing while it is loaded or
// catches up, so concurrent searches of a set being loaded wait for that
// one load.
type vectorSet struct {
	mu      sync.RWMutex
	loaded  bool
	version int64 // the index_version it holds
	index   vector.Index
	chunks  map[int64]string // seq → chunk id

	// While an HNSW index is built from a copy of the exact one, the
	// changes the set takes are recorded, to be applied to it once built.
	building bool
	pending  []vectorChange
	gen      int // bumped by each load, which abandons a build under way

	used  uint64 // the cache's clock when last searched
	bytes int64  // as last accounted
}

// vectorChange is a vector added (vec non-nil) or removed.
type vectorChange struct {
	key int64
	vec []float32
}

func newVectorCache(limit int64, exactMax int) *vectorCache {
	if limit == 0 {
		limit = DefaultVectorCache
	}
	if exactMax <= 0 {
		exactMax = DefaultExactVectors
	}
	return &vectorCache{limit: max(limit, 0), exactMax: exactMax, params: vector.DefaultParams(),
		sets: make(map[vectorKey]*vectorSet)}
}

// set returns the set of key, a new unloaded one if there is none, and
// marks it used.
func (c *vectorCache) set(key vectorKey) *vectorSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	s := c.sets[key]
	if s == nil {
		s = &vectorSet{}
		c.sets[key] = s
	}
	s.used = c.clock
	return s
}

// fits reports whether n vectors of dim would fit in the cache at all.
func (c *vectorCache) fits(n int64, dim int) bool {
	return n*int64(dim)*4 <= c.limit
}

// account records a set's size after it changed, and drops the sets least
// recently used until the cache is within its limit again. keep is never
// dropped.
func (c *vectorCache) account(keep *vectorSet, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep.bytes = bytes
	for {
		var total int64
		var oldest vectorKey
		var oldestSet *vectorSet
		for k, s := range c.sets {
			total += s.bytes
			if s != keep && s.bytes > 0 && (oldestSet == nil || s.used < oldestSet.used) {
				oldest, oldestSet = k, s
			}
		}
		if total <= c.limit || oldestSet == nil {
			return
		}
		delete(c.sets, oldest)
	}
}

// full reports whether the sets held use more than fraction of the limit.
func (c *vectorCache) full(fraction float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var total int64
	for _, s := range c.sets {
		total += s.bytes
	}
	return float64(total) >= fraction*float64(c.limit)
}

// drop forgets a set, as when it turned out too big to keep.
func (c *vectorCache) drop(key vectorKey, s *vectorSet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sets[key] == s {
		delete(c.sets, key)
	}
}

// apply changes the set's index: removals first (a seq is never reused,
// so a chunk written again has a new one), then additions. The set's
// write lock is held.
func (c *vectorCache) apply(s *vectorSet, removed []int64, added []vectorChange, ids map[int64]string) {
	for _, key := range removed {
		if s.index.Delete(key) {
			delete(s.chunks, key)
			if s.building {
				s.pending = append(s.pending, vectorChange{key: key})
			}
		}
	}
	for _, a := range added {
		s.index.Add(a.key, a.vec)
		s.chunks[a.key] = ids[a.key]
		if s.building {
			s.pending = append(s.pending, a)
		}
	}
}

// maybeBuild starts building an approximate index for a set whose exact
// one outgrew exactMax (the set's write lock is held). Searches go on
// exactly meanwhile; the built index takes the changes made since its
// copy and then replaces the exact one.
func (c *vectorCache) maybeBuild(s *vectorSet) {
	flat, ok := s.index.(*vector.Flat)
	if !ok || s.building || flat.Len() <= c.exactMax {
		return
	}
	keys, vecs := flat.Snapshot()
	s.building = true
	dim, gen := flat.Dim(), s.gen
	go func() {
		h := vector.Build(dim, keys, vecs, c.params, max(1, runtime.GOMAXPROCS(0)-1))
		s.mu.Lock()
		if s.gen != gen {
			s.mu.Unlock()
			return // the set was loaded again meanwhile
		}
		for _, ch := range s.pending {
			if ch.vec == nil {
				h.Delete(ch.key)
			} else {
				h.Add(ch.key, ch.vec)
			}
		}
		s.index, s.pending, s.building = h, nil, false
		bytes := h.Bytes()
		s.mu.Unlock()
		c.account(s, bytes)
	}()
}

// VectorSetStats describes one knowledge base's vectors by one model held
// in memory.
type VectorSetStats struct {
	KnowledgeBaseID string
	Model           string
	Dim             int
	Vectors         int   // live vectors
	Bytes           int64 // memory held, estimated
	Approximate     bool  // searched through an HNSW index
	Building        bool  // an HNSW index is being built for it
}

// VectorCacheStats describes the vectors the database's search keeps in
// memory, set by set, for operators and benchmarks.
func (db *DB) VectorCacheStats() []VectorSetStats {
	c := db.vectors
	c.mu.Lock()
	sets := make(map[vectorKey]*vectorSet, len(c.sets))
	for k, s := range c.sets {
		sets[k] = s
	}
	c.mu.Unlock()
	var out []VectorSetStats
	for k, s := range sets {
		s.mu.RLock()
		if s.loaded {
			_, approx := s.index.(*vector.HNSW)
			out = append(out, VectorSetStats{KnowledgeBaseID: k.kb, Model: k.model, Dim: k.dim, Vectors: s.index.Len(),
				Bytes: s.index.Bytes(), Approximate: approx, Building: s.building})
		}
		s.mu.RUnlock()
	}
	return out
}
