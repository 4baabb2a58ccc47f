package vector

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
)

// Params tunes an HNSW graph. Larger values buy recall with memory and
// time; DefaultParams gives recall@10 above 0.95 on clustered data of up
// to 100,000 vectors.
type Params struct {
	// M is the number of neighbours a node links to on each layer above
	// the first; layer 0 allows 2M, as the paper recommends, because it is
	// the layer every search ends on. It must be at least 2.
	M int
	// EfConstruction is the breadth of the search that finds a new node's
	// neighbours: a better graph for a slower Add.
	EfConstruction int
	// EfSearch is the breadth of the layer-0 search in Search: the main
	// recall/latency knob. Search never uses less than k.
	EfSearch int
	// Seed makes node levels, and so a sequentially built graph,
	// reproducible.
	Seed uint64
}

// DefaultParams returns the parameters Nodus uses: M 16, EfConstruction
// 128, EfSearch 96, seed 0. EfSearch is set by BenchmarkSearch: on
// 100,000 clustered 384-dimension vectors, recall@10 is 0.92 at 64, 0.97
// at 96 and 0.98 at 128, for 0.69, 0.80 and 0.98 ms a search on one core,
// so 96 is the smallest breadth clear of 0.95.
func DefaultParams() Params {
	return Params{M: 16, EfConstruction: 128, EfSearch: 96}
}

// maxLevel caps a node's level so it fits a uint8; with M ≥ 2 a level
// above it has a probability below 2⁻³¹ per node.
const maxLevel = 31

// HNSW is an approximate index: a hierarchical navigable small world graph
// (Malkov and Yashunin, "Efficient and robust approximate nearest neighbor
// search using Hierarchical Navigable Small World graphs", 2016). A search
// descends greedily through sparse upper layers and then explores the
// dense bottom layer breadth-first, EfSearch nodes wide.
//
// Delete only marks a node as a tombstone: it stays in the graph, so the
// searches that pass through it still find their way, but it is never
// returned. Re-adding a key tombstones its old node and inserts a new one.
// Tombstones cost memory and search time, so once Tombstones is more than
// about a quarter of Nodes the owner should call Compact (or build a fresh
// index with Build off the lock and swap it in).
type HNSW struct {
	mu   sync.RWMutex
	dim  int
	g    *graph
	pool sync.Pool // of *scratch
}

var _ Index = (*HNSW)(nil)

// graph is the state of an HNSW, apart so that Compact can replace it
// whole. Nodes are numbered by an int32 id in insertion order; every
// per-node slice is indexed by it.
type graph struct {
	dim     int
	p       Params
	mL      float64 // level multiplier, 1/ln(M)
	stride0 int     // length of a layer-0 adjacency block: count + 2M ids
	strideU int     // length of an upper-layer block: count + M ids
	rng     *rand.Rand

	vecs    []float32 // node id's vector is vecs[id*dim : (id+1)*dim]
	keys    []int64
	levels  []uint8
	links0  []int32   // layer-0 blocks, stride0 apart
	upper   [][]int32 // upper[id] holds blocks for layers 1..levels[id]
	deleted []bool
	ids     map[int64]int32 // live keys only

	entry      int32 // the node searches start from; -1 when empty
	top        int   // entry's level; -1 when empty
	tombstones int
	upperInts  int // sum of len(upper[id]), for Bytes

	// Set only while Build inserts in parallel: a lock per node guarding
	// its adjacency blocks, and one guarding entry and top.
	locks   []sync.Mutex
	entryMu *sync.Mutex
}

// NewHNSW returns an empty graph index of vectors of dimension dim.
// Zero fields of p take their DefaultParams values. It panics on a
// non-positive dimension or M below 2.
func NewHNSW(dim int, p Params) *HNSW {
	if dim <= 0 {
		panic("vector: NewHNSW: dimension must be positive")
	}
	h := &HNSW{dim: dim, g: newGraph(dim, p)}
	h.pool.New = func() any { return new(scratch) }
	return h
}

func newGraph(dim int, p Params) *graph {
	d := DefaultParams()
	if p.M == 0 {
		p.M = d.M
	}
	if p.EfConstruction <= 0 {
		p.EfConstruction = d.EfConstruction
	}
	if p.EfSearch <= 0 {
		p.EfSearch = d.EfSearch
	}
	if p.M < 2 {
		panic("vector: HNSW: M must be at least 2")
	}
	return &graph{
		dim:     dim,
		p:       p,
		mL:      1 / math.Log(float64(p.M)),
		stride0: 1 + 2*p.M,
		strideU: 1 + p.M,
		rng:     rand.New(rand.NewPCG(p.Seed, 0x9e3779b97f4a7c15)),
		ids:     make(map[int64]int32),
		entry:   -1,
		top:     -1,
	}
}

// Add indexes v under key, replacing the key's vector if it had one. It
// panics if len(v) != h.Dim().
func (h *HNSW) Add(key int64, v []float32) {
	checkDim("HNSW.Add", len(v), h.dim)
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.g
	if old, ok := g.ids[key]; ok {
		g.deleted[old] = true
		g.tombstones++
	}
	id := g.appendNode(key, v, g.randomLevel())
	s := h.pool.Get().(*scratch)
	g.insert(s, id)
	h.pool.Put(s)
}

// Delete tombstones key's node and reports whether the key was present.
func (h *HNSW) Delete(key int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.g
	id, ok := g.ids[key]
	if !ok {
		return false
	}
	delete(g.ids, key)
	g.deleted[id] = true
	g.tombstones++
	return true
}

// Search returns about the k keys most similar to q, best first, ties by
// the smaller key, exploring max(EfSearch, k) nodes wide. It panics if
// len(q) != h.Dim().
func (h *HNSW) Search(q []float32, k int) []Result {
	h.mu.RLock()
	ef := h.g.p.EfSearch
	h.mu.RUnlock()
	return h.SearchEf(q, k, ef)
}

// SearchEf is Search with the exploration breadth ef given per call (at
// least k is used), for callers that trade recall for latency per query.
func (h *HNSW) SearchEf(q []float32, k, ef int) []Result {
	checkDim("HNSW.Search", len(q), h.dim)
	if k <= 0 {
		return nil
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	g := h.g
	if len(g.ids) == 0 {
		return nil
	}
	s := h.pool.Get().(*scratch)
	defer h.pool.Put(s)

	ep := g.entry
	epSim := Dot(q, g.vector(ep))
	for lc := g.top; lc > 0; lc-- {
		ep, epSim = g.greedy(s, q, ep, epSim, lc)
	}
	g.searchLayer(s, q, ep, epSim, max(ef, k), 0, true)
	for s.results.Len() > k {
		s.results.Pop()
	}
	out := make([]Result, len(s.results.items))
	for i, c := range s.results.items {
		out[i] = Result{Key: g.keys[c.id], Score: c.sim}
	}
	slices.SortFunc(out, compareResults)
	return out
}

// Len returns the number of live keys.
func (h *HNSW) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.g.ids)
}

// Dim returns the dimension of the index's vectors.
func (h *HNSW) Dim() int { return h.dim }

// Nodes returns the number of nodes in the graph, tombstones included.
func (h *HNSW) Nodes() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.g.keys)
}

// Tombstones returns the number of deleted nodes still in the graph; see
// Compact.
func (h *HNSW) Tombstones() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.g.tombstones
}

// Params returns the parameters the index was built with, defaults filled in.
func (h *HNSW) Params() Params {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.g.p
}

// Bytes estimates the memory h holds: vectors, adjacency lists, per-node
// metadata and the key map, tombstones included.
func (h *HNSW) Bytes() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	g := h.g
	n := int64(cap(g.keys))
	return int64(4*cap(g.vecs)) + int64(4*cap(g.links0)) + int64(4*g.upperInts) +
		n*(8+1+1+24) + // key, level, tombstone flag, upper slice header
		int64(mapEntryBytes*len(g.ids))
}

// Compact rebuilds the graph from its live nodes, dropping tombstones, as
// Build does with the given number of goroutines. It holds the write lock throughout, so searches wait
// for the whole rebuild (seconds for 100,000 vectors); an owner that cannot
// pause searches builds a new index with Build from its stored vectors and
// swaps it in instead.
func (h *HNSW) Compact(workers int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.g
	keys := make([]int64, 0, len(g.ids))
	vecs := make([]float32, 0, len(g.ids)*g.dim)
	for id, key := range g.keys {
		if !g.deleted[id] {
			keys = append(keys, key)
			vecs = append(vecs, g.vector(int32(id))...)
		}
	}
	h.g = build(g.dim, keys, vecs, g.p, workers)
}

// vector returns node id's vector, aliasing the slab.
func (g *graph) vector(id int32) []float32 {
	s := int(id) * g.dim
	return g.vecs[s : s+g.dim : s+g.dim]
}

// randomLevel draws a node's level, floor(-ln(U)·mL): each layer holds
// about 1/M of the nodes of the one below.
func (g *graph) randomLevel() int {
	u := 1 - g.rng.Float64() // in (0, 1], so the log is finite
	return min(int(-math.Log(u)*g.mL), maxLevel)
}

// appendNode adds a node with no links and returns its id.
func (g *graph) appendNode(key int64, v []float32, level int) int32 {
	id := int32(len(g.keys))
	g.vecs = append(g.vecs, v...)
	g.keys = append(g.keys, key)
	g.levels = append(g.levels, uint8(level))
	n := len(g.links0)
	g.links0 = slices.Grow(g.links0, g.stride0)[:n+g.stride0]
	clear(g.links0[n:])
	var up []int32
	if level > 0 {
		up = make([]int32, level*g.strideU)
		g.upperInts += len(up)
	}
	g.upper = append(g.upper, up)
	g.deleted = append(g.deleted, false)
	g.ids[key] = id
	return id
}

// block returns node id's adjacency block on layer lc: a count followed by
// room for the layer's maximum number of neighbour ids.
func (g *graph) block(id int32, lc int) []int32 {
	if lc == 0 {
		s := int(id) * g.stride0
		return g.links0[s : s+g.stride0 : s+g.stride0]
	}
	s := (lc - 1) * g.strideU
	return g.upper[id][s : s+g.strideU : s+g.strideU]
}

// neighbors returns node id's neighbours on layer lc. During a parallel
// build it copies them into s under the node's lock, since another
// goroutine may be rewriting the list; otherwise it aliases the graph.
func (g *graph) neighbors(s *scratch, id int32, lc int) []int32 {
	b := g.block(id, lc)
	if g.locks == nil {
		return b[1 : 1+b[0]]
	}
	g.locks[id].Lock()
	s.neighbors = append(s.neighbors[:0], b[1:1+b[0]]...)
	g.locks[id].Unlock()
	return s.neighbors
}

// greedy walks layer lc from ep to a local maximum of similarity to q: the
// upper layers are sparse, so one best node is all a search carries down.
func (g *graph) greedy(s *scratch, q []float32, ep int32, epSim float32, lc int) (int32, float32) {
	for moved := true; moved; {
		moved = false
		for _, n := range g.neighbors(s, ep, lc) {
			if sim := Dot(q, g.vector(n)); sim > epSim {
				ep, epSim, moved = n, sim, true
			}
		}
	}
	return ep, epSim
}

// searchLayer is the paper's SEARCH-LAYER (Algorithm 2): a best-first
// expansion of layer lc from ep that leaves the ef nodes most similar to q
// in s.results. It stops when the most promising unexpanded node is worse
// than the worst of ef results. With liveOnly, tombstones are expanded (they
// still connect the graph) but never become results.
func (g *graph) searchLayer(s *scratch, q []float32, ep int32, epSim float32, ef, lc int, liveOnly bool) {
	s.seen.reset(len(g.keys))
	s.frontier.reset()
	s.results.reset()
	s.seen.Visit(ep)
	s.frontier.Push(cand{ep, epSim}, -epSim)
	if !liveOnly || !g.deleted[ep] {
		s.results.Push(cand{ep, epSim}, epSim)
	}
	for s.frontier.Len() > 0 {
		c := s.frontier.Pop()
		if s.results.Len() >= ef {
			if _, worst := s.results.Top(); c.sim < worst {
				break
			}
		}
		for _, n := range g.neighbors(s, c.id, lc) {
			if s.seen.Visit(n) {
				continue
			}
			sim := Dot(q, g.vector(n))
			if s.results.Len() >= ef {
				if _, worst := s.results.Top(); sim <= worst {
					continue
				}
			}
			s.frontier.Push(cand{n, sim}, -sim)
			if liveOnly && g.deleted[n] {
				continue
			}
			s.results.Push(cand{n, sim}, sim)
			if s.results.Len() > ef {
				s.results.Pop()
			}
		}
	}
}

// sortedResults empties s.results into s.sorted, best first.
func (s *scratch) sortedResults() []cand {
	s.sorted = s.sorted[:0]
	for s.results.Len() > 0 {
		s.sorted = append(s.sorted, s.results.Pop())
	}
	slices.Reverse(s.sorted)
	return s.sorted
}

// insert links node id, already appended, into the graph: the paper's
// INSERT (Algorithm 1). Above the node's level the search only descends;
// on each layer from there down it finds EfConstruction candidates,
// links the node to M of them chosen by the heuristic, and links them back.
func (g *graph) insert(s *scratch, id int32) {
	level := int(g.levels[id])
	if g.entryMu != nil {
		// A node that will become the entry keeps the lock for its whole
		// insertion, so no other insertion starts from a half-linked entry.
		g.entryMu.Lock()
	}
	ep, top := g.entry, g.top
	raise := level > top
	if g.entryMu != nil && !raise {
		g.entryMu.Unlock()
	}
	if ep >= 0 {
		g.link(s, id, ep, level, top)
	}
	if raise {
		g.entry, g.top = id, level
		if g.entryMu != nil {
			g.entryMu.Unlock()
		}
	}
}

// link connects node id, at the given level, into a graph whose entry ep
// is at level top.
func (g *graph) link(s *scratch, id, ep int32, level, top int) {
	q := g.vector(id)
	epSim := Dot(q, g.vector(ep))
	for lc := top; lc > level; lc-- {
		ep, epSim = g.greedy(s, q, ep, epSim, lc)
	}
	for lc := min(level, top); lc >= 0; lc-- {
		g.searchLayer(s, q, ep, epSim, g.p.EfConstruction, lc, false)
		found := s.sortedResults()
		s.selected = g.selectNeighbors(s.selected[:0], found, g.p.M)
		g.setNeighbors(id, lc, s.selected)
		for _, n := range s.selected {
			g.addNeighbor(s, n.id, cand{id, n.sim}, lc)
		}
		ep, epSim = found[0].id, found[0].sim
	}
}

// selectNeighbors is the paper's heuristic (Algorithm 4, without keeping
// pruned connections): walking cands best first, it keeps a candidate only
// if it is more similar to the base node than to every candidate kept so
// far. Links then point in diverse directions instead of all into the
// nearest cluster, which is what keeps clustered data navigable.
// cands must be sorted best first; the kept ones are appended to dst.
func (g *graph) selectNeighbors(dst, cands []cand, m int) []cand {
	for _, c := range cands {
		if len(dst) >= m {
			break
		}
		cv := g.vector(c.id)
		keep := true
		for _, r := range dst {
			if Dot(cv, g.vector(r.id)) > c.sim {
				keep = false
				break
			}
		}
		if keep {
			dst = append(dst, c)
		}
	}
	return dst
}

// setNeighbors sets node id's neighbours on layer lc.
func (g *graph) setNeighbors(id int32, lc int, ns []cand) {
	g.lockNode(id)
	defer g.unlockNode(id)
	b := g.block(id, lc)
	b[0] = int32(len(ns))
	for i, n := range ns {
		b[1+i] = n.id
	}
}

// addNeighbor adds c to node id's neighbours on layer lc; c.sim is its
// similarity to id. A full list is re-chosen by the heuristic from its
// members and c, so it keeps the most useful links rather than the first.
func (g *graph) addNeighbor(s *scratch, id int32, c cand, lc int) {
	g.lockNode(id)
	defer g.unlockNode(id)
	b := g.block(id, lc)
	n := int(b[0])
	if n < len(b)-1 {
		b[1+n] = c.id
		b[0]++
		return
	}
	v := g.vector(id)
	s.pruned = append(s.pruned[:0], c)
	for _, x := range b[1 : 1+n] {
		s.pruned = append(s.pruned, cand{x, Dot(v, g.vector(x))})
	}
	slices.SortFunc(s.pruned, func(a, b cand) int { return compareSim(b.sim, a.sim) })
	s.kept = g.selectNeighbors(s.kept[:0], s.pruned, len(b)-1)
	b[0] = int32(len(s.kept))
	for i, k := range s.kept {
		b[1+i] = k.id
	}
}

// compareSim orders similarities ascending.
func compareSim(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (g *graph) lockNode(id int32) {
	if g.locks != nil {
		g.locks[id].Lock()
	}
}

func (g *graph) unlockNode(id int32) {
	if g.locks != nil {
		g.locks[id].Unlock()
	}
}
