package store

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
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
//
// An HNSW graph, once built, is saved in kb_vector_graphs (save), and
// saved again once a tenth of it has changed since; a set loaded later,
// by this process after a restart or by another one, starts from the
// saved graph instead of building one (loadGraph).
type vectorCache struct {
	mu       sync.Mutex
	limit    int64 // bytes
	exactMax int   // vectors searched exactly; more get an HNSW index
	params   vector.Params
	clock    uint64
	sets     map[vectorKey]*vectorSet

	// save writes a graph to the database and read reads one (nil
	// bytes when there is none); nil, graphs are neither saved nor read.
	save func(savedGraph) error
	read func(ctx context.Context, kbID string, key vectorKey) ([]byte, error)
	log  *slog.Logger
	// saves counts the saves under way; closed, set when the database
	// closes, starts no more.
	saves  sync.WaitGroup
	closed atomic.Bool

	// Graph saves and loads by result, for the metrics.
	graphSaved, graphSaveFailed                       atomic.Int64
	graphLoaded, graphStale, graphUnusable, graphNone atomic.Int64
}

// savedGraph is a set's HNSW graph to keep, as of the set's version.
type savedGraph struct {
	key     vectorKey
	tenant  string
	version int64
	nodes   int
	data    []byte
}

// resaveFraction: a graph is saved again once the changes it took since
// it was saved or loaded reach this fraction of its nodes (and at least
// resaveMin), so that a load takes in a bounded number of changes.
const (
	resaveFraction = 0.1
	resaveMin      = 100
)

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
	tenant  string // the knowledge base's
	loaded  bool
	version int64 // the index_version it holds
	index   vector.Index
	chunks  map[int64]string // seq → chunk id

	// While an HNSW index is built from a copy of the exact one, the
	// changes the set takes are recorded, to be applied to it once built.
	building bool
	pending  []vectorChange
	gen      int // bumped by each load, which abandons a build under way

	// changes counts the vectors added and removed since the HNSW graph
	// was saved or loaded; saving is set while a save is under way, again
	// when another was asked for meanwhile, and unsaved when the last
	// save failed (the next change saves it).
	changes int
	saving  bool
	again   bool
	unsaved bool
	// fromSaved: the HNSW graph was loaded from the saved one, not built.
	fromSaved bool

	used  uint64 // the cache's clock when last searched
	bytes int64  // as last accounted
}

// vectorChange is a vector added (vec non-nil) or removed.
type vectorChange struct {
	key int64
	vec []float32
}

func newVectorCache(limit int64, exactMax int, log *slog.Logger) *vectorCache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if limit == 0 {
		limit = DefaultVectorCache
	}
	if exactMax <= 0 {
		exactMax = DefaultExactVectors
	}
	return &vectorCache{limit: max(limit, 0), exactMax: exactMax, params: vector.DefaultParams(),
		sets: make(map[vectorKey]*vectorSet), log: log}
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
	s.changes += len(removed) + len(added)
}

// maybeBuild starts building an approximate index for a set whose exact
// one outgrew exactMax (the set's write lock is held). Searches go on
// exactly meanwhile; the built index takes the changes made since its
// copy, replaces the exact one and is saved.
func (c *vectorCache) maybeBuild(key vectorKey, s *vectorSet) {
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
		s.index, s.pending, s.building, s.fromSaved = h, nil, false, false
		bytes := h.Bytes()
		c.startSave(key, s)
		s.mu.Unlock()
		c.account(s, bytes)
	}()
}

// maybeSave saves a set's graph again once it has taken enough changes
// since it was saved or loaded, or when its last save failed (the set's
// write lock is held).
func (c *vectorCache) maybeSave(key vectorKey, s *vectorSet) {
	h, ok := s.index.(*vector.HNSW)
	if ok && (s.unsaved || float64(s.changes) >= max(resaveMin, resaveFraction*float64(h.Nodes()))) {
		c.startSave(key, s)
	}
}

// startSave saves the set's HNSW graph in the background; if a save is
// under way, once more after it (the set's write lock is held). The graph
// and the version are read together under the set's read lock, so the
// saved graph has taken in exactly the changes up to that version.
func (c *vectorCache) startSave(key vectorKey, s *vectorSet) {
	if c.save == nil || c.closed.Load() {
		return
	}
	if _, ok := s.index.(*vector.HNSW); !ok {
		return
	}
	if s.saving {
		s.again = true
		return
	}
	s.saving, s.again = true, false
	taken := s.changes
	s.changes = 0
	c.saves.Add(1)
	go func() {
		defer c.saves.Done()
		s.mu.RLock()
		h, ok := s.index.(*vector.HNSW)
		g := savedGraph{key: key, tenant: s.tenant, version: s.version}
		if ok {
			g.data, g.nodes = h.MarshalGraph(), h.Nodes()
		}
		s.mu.RUnlock()
		var err error
		if ok {
			if err = c.save(g); err != nil {
				c.graphSaveFailed.Add(1)
				c.log.Warn("store: saving a knowledge base's vector graph", "knowledge_base", key.kb, "model", key.model,
					"error", err)
			} else {
				c.graphSaved.Add(1)
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.saving, s.unsaved = false, err != nil
		if err != nil {
			s.changes += taken
		}
		if s.again && err == nil {
			c.startSave(key, s)
		}
	}()
}

// stopSaving starts no more saves of graphs and waits for those under way
// (a few milliseconds each), so that none writes to a closed database.
func (c *vectorCache) stopSaving() {
	c.closed.Store(true)
	c.saves.Wait()
}

// readVectorGraph reads the graph saved for a knowledge base's vectors by
// a model of a dimension, in scope; nil when there is none.
func (db *DB) readVectorGraph(ctx context.Context, kbID string, key vectorKey) ([]byte, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var data []byte
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT graph FROM kb_vector_graphs WHERE knowledge_base_id = ? AND model = ? AND dim = ?
			AND `+cond, append([]any{kbID, key.model, key.dim}, args...)...).Scan(&data)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return data, err
}

// saveVectorGraph writes a graph in place of the one saved for its
// knowledge base, model and dimension, unless that one is newer. A graph
// of a knowledge base deleted meanwhile is not written.
func (db *DB) saveVectorGraph(g savedGraph) error {
	ctx, cancel := context.WithTimeout(nodus.WithTenant(context.Background(), g.tenant), time.Minute)
	defer cancel()
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO kb_vector_graphs (knowledge_base_id, model, dim, tenant_id, version, nodes,
			graph, saved_at) SELECT id, ?, ?, tenant_id, ?, ?, ?, ? FROM knowledge_bases WHERE id = ? AND tenant_id = ?
			ON CONFLICT (knowledge_base_id, model, dim) DO UPDATE SET version = excluded.version,
			nodes = excluded.nodes, graph = excluded.graph, saved_at = excluded.saved_at
			WHERE kb_vector_graphs.version <= excluded.version`,
			g.key.model, g.key.dim, g.version, g.nodes, g.data, time.Now().UTC(), g.key.kb, g.tenant)
		return err
	})
}

// VectorGraphStats counts the HNSW graphs saved, and the loads of sets
// past the exact limit by what became of their saved graph.
type VectorGraphStats struct {
	Saved, SaveFailed int64
	Loaded            int64 // a saved graph was loaded
	Stale             int64 // too far behind the rows: built again
	Unusable          int64 // unreadable: built again
	None              int64 // no saved graph: built
}

// VectorGraphStats reports the graphs saved and loaded since the database
// was opened.
func (db *DB) VectorGraphStats() VectorGraphStats {
	c := db.vectors
	return VectorGraphStats{Saved: c.graphSaved.Load(), SaveFailed: c.graphSaveFailed.Load(), Loaded: c.graphLoaded.Load(),
		Stale: c.graphStale.Load(), Unusable: c.graphUnusable.Load(), None: c.graphNone.Load()}
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
	SavedGraph      bool  // its HNSW index was loaded from the saved graph
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
				Bytes: s.index.Bytes(), Approximate: approx, Building: s.building, SavedGraph: s.fromSaved})
		}
		s.mu.RUnlock()
	}
	return out
}
