package vector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// graphMagic opens MarshalGraph's output. Its digit is the format's
// version: any change to the layout gets a new one, so that LoadGraph
// rejects an old row and its owner rebuilds rather than misreading it.
const graphMagic = "NHG1"

// tombstoneFlag marks a deleted node in its level byte; levels need only
// the low five bits.
const tombstoneFlag = 0x80

// Limits LoadGraph puts on what it reads. They are far above any sensible
// index; they exist so that a corrupt header fails before it sizes an
// allocation.
const (
	maxGraphDim = 1 << 16
	maxGraphM   = 1 << 12
	maxGraphEf  = 1 << 20
	// minNodeBytes is the shortest node: a one-byte key, the level byte
	// and an empty layer-0 list. It caps the node count a row can claim.
	minNodeBytes = 3
	// A real graph takes a few bytes of adjacency blocks per byte of its
	// encoding (a block has room for M or 2M ids, most of them used, each
	// encoded in one to three bytes). LoadGraph refuses to allocate more
	// than graphExpansion times that, plus graphSlack for small graphs with
	// a large M, so that a row claiming a huge M over many empty nodes
	// cannot make it allocate gigabytes.
	graphExpansion = 64
	graphSlack     = 64 << 20
)

// MarshalGraph returns the structure of the index's graph, for its owner to
// persist beside the vectors it already stores and to reload with
// LoadGraph: milliseconds, where rebuilding 100,000 vectors takes a
// minute. No vector is written: LoadGraph takes the live nodes' vectors
// from the caller again, and places tombstones, whose vectors the caller
// no longer has, among their neighbours. So the bytes stay about 45 a
// node at M 16 whatever the dimension.
//
// The format; integers are unsigned varints unless marked zig-zag:
//
//	"NHG1"                          magic and format version
//	dim M EfConstruction EfSearch Seed
//	n                               nodes, tombstones included
//	entry top                       zig-zag; -1 -1 when n is 0
//	n nodes, in id order:
//	  key                           zig-zag
//	  level | 0x80 if a tombstone   one byte
//	  level+1 lists, layer 0 first: a count, then that many node ids
//
// Neighbour lists keep their order, which Search's walk depends on, so a
// loaded index without tombstones answers exactly as the marshalled one. MarshalGraph holds
// the read lock throughout: Add and Delete wait for it (1.5 ms at 20,000
// nodes), searches do not.
func (h *HNSW) MarshalGraph() []byte {
	h.mu.RLock()
	defer h.mu.RUnlock()
	g := h.g
	n := len(g.keys)

	// Size the buffer from the counts so the bytes are written in one
	// allocation: at 100,000 nodes they are several megabytes.
	idLen := uvarintLen(uint64(max(n-1, 0)))
	countLen := uvarintLen(uint64(g.stride0))
	size := len(graphMagic) + 8*binary.MaxVarintLen64
	for id := range int32(n) {
		size += binary.MaxVarintLen64 + 1
		for lc := range int(g.levels[id]) + 1 {
			size += countLen + idLen*int(g.block(id, lc)[0])
		}
	}

	b := make([]byte, 0, size)
	b = append(b, graphMagic...)
	for _, x := range []uint64{uint64(g.dim), uint64(g.p.M), uint64(g.p.EfConstruction),
		uint64(g.p.EfSearch), g.p.Seed, uint64(n)} {
		b = binary.AppendUvarint(b, x)
	}
	b = binary.AppendVarint(b, int64(g.entry))
	b = binary.AppendVarint(b, int64(g.top))
	for id := range int32(n) {
		b = binary.AppendVarint(b, g.keys[id])
		flags := g.levels[id]
		if g.deleted[id] {
			flags |= tombstoneFlag
		}
		b = append(b, flags)
		for lc := range int(g.levels[id]) + 1 {
			blk := g.block(id, lc)
			b = binary.AppendUvarint(b, uint64(blk[0]))
			for _, nb := range blk[1 : 1+blk[0]] {
				b = binary.AppendUvarint(b, uint64(nb))
			}
		}
	}
	return b
}

// ErrGraphStale is LoadGraph's error for a graph more of whose nodes are
// dead than the caller accepts: building a new index is then worth more.
var ErrGraphStale = errors.New("vector: graph: too many of its nodes are gone")

// LoadGraph rebuilds an index from MarshalGraph's bytes, taking each live
// node's vector from vec(key); the index keeps its own copy. At 20,000
// vectors of 384 dimensions it takes 15 ms, where Build takes seconds.
// The vectors must be the ones the marshalled index held for Search to
// answer as it did, but any normalised vectors give a working index.
//
// vec returns nil for a key the caller no longer has (deleted after the
// graph was saved): its node becomes a tombstone. Tombstones, these and
// those marshalled as such, are placed at the normalised mean of their
// layer-0 neighbours, which is all a tombstone needs to route searches.
// A vector of the wrong length is an error. When more than maxDead of the
// nodes (a fraction; 1 accepts any) would be tombstones, LoadGraph
// returns ErrGraphStale before it allocates the graph's vectors. dead is
// how many nodes vec had no vector for.
//
// data is checked throughout, as a row read from a database may be
// corrupt: a wrong dimension, out-of-range parameters, levels, counts or
// neighbour ids, a key live twice or trailing bytes are errors, and no
// count read from data sizes an allocation before it is checked against
// the bytes that remain. The vectors are allocated last, for nodes that
// number at most the caller's live vectors / (1 − maxDead) when maxDead
// is below 1.
func LoadGraph(dim int, data []byte, vec func(key int64) []float32, maxDead float64) (h *HNSW, dead int, err error) {
	g, err := decodeGraph(dim, data)
	if err != nil {
		return nil, 0, err
	}
	got := make([][]float32, len(g.keys))
	for id, key := range g.keys {
		if g.deleted[id] {
			continue
		}
		x := vec(key)
		switch {
		case x == nil:
			dead++
		case len(x) != dim:
			return nil, 0, fmt.Errorf("vector: graph: vector of key %d has dimension %d, want %d", key, len(x), dim)
		}
		got[id] = x
	}
	if float64(g.tombstones+dead) > maxDead*float64(len(g.keys)) {
		return nil, dead, ErrGraphStale
	}
	g.loadVectors(got)
	h = &HNSW{dim: dim, g: g}
	h.pool.New = func() any { return new(scratch) }
	return h, dead, nil
}

// Has reports whether key is live in the index: added and not deleted
// since.
func (h *HNSW) Has(key int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.g.ids[key]
	return ok
}

// decodeGraph parses and checks data, returning a graph complete but for
// its vectors, which are left to loadVectors so that the caller's vec is
// never called for a row that turns out to be corrupt.
func decodeGraph(dim int, data []byte) (*graph, error) {
	if len(data) < len(graphMagic) || string(data[:len(graphMagic)]) != graphMagic {
		return nil, fmt.Errorf("vector: graph: bad magic %q, want %q", data[:min(len(data), len(graphMagic))], graphMagic)
	}
	r := &graphReader{b: data, off: len(graphMagic)}
	storedDim := r.uvarint("dimension")
	m := r.uvarint("M")
	efc := r.uvarint("EfConstruction")
	efs := r.uvarint("EfSearch")
	seed := r.uvarint("seed")
	count := r.uvarint("node count")
	entry := r.varint("entry")
	top := r.varint("top")
	switch {
	case r.err != nil:
		return nil, r.err
	case storedDim < 1 || storedDim > maxGraphDim:
		return nil, fmt.Errorf("vector: graph: dimension %d out of [1, %d]", storedDim, maxGraphDim)
	case storedDim != uint64(dim):
		return nil, fmt.Errorf("vector: graph: dimension %d, want %d", storedDim, dim)
	case m < 2 || m > maxGraphM:
		return nil, fmt.Errorf("vector: graph: M %d out of [2, %d]", m, maxGraphM)
	case efc < 1 || efc > maxGraphEf:
		return nil, fmt.Errorf("vector: graph: EfConstruction %d out of [1, %d]", efc, maxGraphEf)
	case efs < 1 || efs > maxGraphEf:
		return nil, fmt.Errorf("vector: graph: EfSearch %d out of [1, %d]", efs, maxGraphEf)
	case count > uint64(len(data)-r.off)/minNodeBytes || count > math.MaxInt32:
		return nil, fmt.Errorf("vector: graph: %d nodes cannot fit in the %d bytes left", count, len(data)-r.off)
	case count == 0 && (entry != -1 || top != -1):
		return nil, fmt.Errorf("vector: graph: empty graph with entry %d and top %d, want -1 and -1", entry, top)
	case count > 0 && (entry < 0 || uint64(entry) >= count):
		return nil, fmt.Errorf("vector: graph: entry %d out of [0, %d)", entry, count)
	case count > 0 && (top < 0 || top > maxLevel):
		return nil, fmt.Errorf("vector: graph: top level %d out of [0, %d]", top, maxLevel)
	}

	n := int(count)
	g := newGraph(dim, Params{M: int(m), EfConstruction: int(efc), EfSearch: int(efs), Seed: seed})
	budget := graphSlack + graphExpansion*int64(len(data)) // bytes of adjacency blocks
	budget -= 4 * int64(n) * int64(g.stride0)
	if budget < 0 {
		return nil, fmt.Errorf("vector: graph: %d nodes at M %d need more memory than %d bytes of graph can justify", n, m, len(data))
	}
	g.keys = make([]int64, n)
	g.levels = make([]uint8, n)
	g.deleted = make([]bool, n)
	g.upper = make([][]int32, n)
	g.links0 = make([]int32, n*g.stride0)
	g.ids = make(map[int64]int32, n)
	g.entry, g.top = int32(entry), int(top)

	for id := range int32(n) {
		key := r.varint("key")
		flags := r.byte("level")
		level := int(flags &^ tombstoneFlag)
		deleted := flags&tombstoneFlag != 0
		switch {
		case r.err != nil:
			return nil, r.err
		case level > maxLevel:
			return nil, r.errorf("node %d: level %d above the maximum %d", id, level, maxLevel)
		case level > g.top:
			return nil, r.errorf("node %d: level %d above the top level %d", id, level, g.top)
		}
		g.keys[id], g.levels[id], g.deleted[id] = key, uint8(level), deleted
		if deleted {
			g.tombstones++
		} else if other, dup := g.ids[key]; dup {
			return nil, r.errorf("node %d: key %d is live in node %d too", id, key, other)
		} else {
			g.ids[key] = id
		}
		if level > 0 {
			size := level * g.strideU
			if budget -= 4 * int64(size); budget < 0 {
				return nil, r.errorf("node %d: upper layers need more memory than %d bytes of graph can justify", id, len(data))
			}
			g.upper[id] = make([]int32, size)
			g.upperInts += size
		}
		for lc := range level + 1 {
			r.list(g.block(id, lc), uint64(n), id, lc)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if r.off != len(data) {
		return nil, r.errorf("%d trailing bytes", len(data)-r.off)
	}

	if n > 0 && int(g.levels[g.entry]) != g.top {
		return nil, fmt.Errorf("vector: graph: entry %d has level %d, not the top level %d", g.entry, g.levels[g.entry], g.top)
	}
	// A search on layer lc reads the lc block of every node it reaches, so
	// a link on layer lc must lead to a node that has one.
	for id := range int32(n) {
		for lc := 1; lc <= int(g.levels[id]); lc++ {
			b := g.block(id, lc)
			for _, nb := range b[1 : 1+b[0]] {
				if int(g.levels[nb]) < lc {
					return nil, fmt.Errorf("vector: graph: node %d links on layer %d to node %d of level %d", id, lc, nb, g.levels[nb])
				}
			}
		}
	}
	return g, nil
}

// loadVectors fills the vector slab of a decoded graph: live nodes from
// got (by node id), and nodes got has no vector for become tombstones.
// Tombstones are then placed by placeMissing.
func (g *graph) loadVectors(got [][]float32) {
	g.vecs = make([]float32, len(g.keys)*g.dim)
	var dead []int32
	for id := range int32(len(g.keys)) {
		switch {
		case g.deleted[id]:
			dead = append(dead, id)
		case got[id] == nil:
			g.deleted[id] = true
			g.tombstones++
			delete(g.ids, g.keys[id])
			dead = append(dead, id)
		default:
			copy(g.vector(id), got[id])
		}
	}
	g.placeMissing(dead)
}

// placeMissing gives each node of missing, whose vector the caller no
// longer has, the normalised mean of the vectors of its layer-0
// neighbours. Nodes are placed outwards from those with known neighbours,
// each counting the nodes placed before it, since a deleted document's
// chunks tend to be each other's neighbours; a node with no placed
// neighbour at all keeps a zero vector, which routes no search.
func (g *graph) placeMissing(missing []int32) {
	if len(missing) == 0 {
		return
	}
	known := make([]bool, len(g.keys))
	for id := range known {
		known[id] = true
	}
	for _, id := range missing {
		known[id] = false
	}
	// waiting[v] lists the missing nodes that link to missing node v, to be
	// queued once v is placed.
	waiting := make(map[int32][]int32)
	queued := make(map[int32]bool, len(missing))
	var queue []int32
	for _, u := range missing {
		b := g.block(u, 0)
		for _, v := range b[1 : 1+b[0]] {
			if known[v] {
				if !queued[u] {
					queued[u] = true
					queue = append(queue, u)
				}
			} else if v != u {
				waiting[v] = append(waiting[v], u)
			}
		}
	}
	sum := make([]float64, g.dim)
	for i := 0; i < len(queue); i++ {
		u := queue[i]
		if !g.placeAtMean(u, known, sum) {
			continue
		}
		known[u] = true
		for _, w := range waiting[u] {
			if !queued[w] {
				queued[w] = true
				queue = append(queue, w)
			}
		}
	}
}

// placeAtMean sets node u's vector to the normalised mean of its known
// layer-0 neighbours' vectors, summing in float64 so that no stored vector
// can overflow it, and reports false, leaving the vector zero, when that
// mean has no direction. sum is scratch of length dim.
func (g *graph) placeAtMean(u int32, known []bool, sum []float64) bool {
	clear(sum)
	b := g.block(u, 0)
	for _, v := range b[1 : 1+b[0]] {
		if known[v] {
			for i, x := range g.vector(v) {
				sum[i] += float64(x)
			}
		}
	}
	var norm float64
	for _, s := range sum {
		norm += s * s
	}
	if !(norm > 0) || math.IsInf(norm, 0) {
		return false
	}
	scale := 1 / math.Sqrt(norm)
	for i, s := range sum {
		g.vecs[int(u)*g.dim+i] = float32(s * scale)
	}
	return true
}

// graphReader reads MarshalGraph's format. Its first error sticks and
// every later read returns zero, so a node is read whole and checked once.
type graphReader struct {
	b   []byte
	off int
	err error
}

func (r *graphReader) errorf(format string, args ...any) error {
	return fmt.Errorf("vector: graph: byte %d: %s", r.off, fmt.Sprintf(format, args...))
}

func (r *graphReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = r.errorf(format, args...)
	}
}

func (r *graphReader) uvarint(what string) uint64 { return readVarint(r, what, binary.Uvarint) }

func (r *graphReader) varint(what string) int64 { return readVarint(r, what, binary.Varint) }

// readVarint reads one varint with decode (binary.Uvarint or Varint).
func readVarint[T uint64 | int64](r *graphReader, what string, decode func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	x, k := decode(r.b[r.off:])
	if k <= 0 {
		r.varintFailed(k, what)
		return 0
	}
	r.off += k
	return x
}

// varintFailed records the error binary.Uvarint or Varint signalled by k.
func (r *graphReader) varintFailed(k int, what string) {
	if k == 0 {
		r.fail("truncated in %s", what)
	} else {
		r.fail("%s overflows 64 bits", what)
	}
}

func (r *graphReader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated in %s", what)
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

// list reads node id's neighbour list on layer lc into its adjacency
// block b: a count that must fit the block, then that many ids below n.
func (r *graphReader) list(b []int32, n uint64, id int32, lc int) {
	c := r.uvarint("neighbour count")
	if c > uint64(len(b)-1) {
		r.fail("node %d: %d neighbours on layer %d, at most %d", id, c, lc, len(b)-1)
		return
	}
	for i := range int(c) {
		nb := r.uvarint("neighbour id")
		if nb >= n {
			r.fail("node %d: neighbour %d on layer %d of a graph of %d nodes", id, nb, lc, n)
		}
		if r.err != nil {
			return
		}
		b[1+i] = int32(nb)
	}
	b[0] = int32(c)
}

// uvarintLen is the length of x as an unsigned varint.
func uvarintLen(x uint64) int {
	return (bits.Len64(x|1) + 6) / 7
}
