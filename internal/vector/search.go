package vector

// cand is a graph node met during a search, with its similarity to the
// vector being searched for or inserted.
type cand struct {
	id  int32
	sim float32
}

// candHeap is a binary min-heap of cands by key. A search keeps two: the
// results, keyed by similarity so the root is the worst result, and the
// frontier, keyed by negated similarity so the root is the most promising
// node to expand. One concrete type for both avoids container/heap's
// interface calls on the hottest path of the index.
type candHeap struct {
	items []cand
	keys  []float32
}

func (h *candHeap) Len() int { return len(h.items) }

func (h *candHeap) reset() {
	h.items = h.items[:0]
	h.keys = h.keys[:0]
}

// Top returns the item with the smallest key and that key.
func (h *candHeap) Top() (cand, float32) { return h.items[0], h.keys[0] }

// Push adds c under key.
func (h *candHeap) Push(c cand, key float32) {
	h.items = append(h.items, c)
	h.keys = append(h.keys, key)
	i := len(h.keys) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h.keys[p] <= h.keys[i] {
			break
		}
		h.swap(i, p)
		i = p
	}
}

// Pop removes and returns the item with the smallest key.
func (h *candHeap) Pop() cand {
	top := h.items[0]
	last := len(h.keys) - 1
	h.swap(0, last)
	h.items = h.items[:last]
	h.keys = h.keys[:last]
	i := 0
	for {
		m := i
		if l := 2*i + 1; l < last && h.keys[l] < h.keys[m] {
			m = l
		}
		if r := 2*i + 2; r < last && h.keys[r] < h.keys[m] {
			m = r
		}
		if m == i {
			return top
		}
		h.swap(i, m)
		i = m
	}
}

func (h *candHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.keys[i], h.keys[j] = h.keys[j], h.keys[i]
}

// visited marks the nodes a search has met. Rather than clearing a slice
// per search, each search takes a new generation number and a node is
// visited when its mark equals it; the slice is cleared only when the
// counter wraps, once every four billion searches.
type visited struct {
	marks []uint32
	gen   uint32
}

// reset starts a new search over n nodes.
func (v *visited) reset(n int) {
	if len(v.marks) < n {
		v.marks = make([]uint32, n+n/4)
		v.gen = 0
	}
	v.gen++
	if v.gen == 0 {
		clear(v.marks)
		v.gen = 1
	}
}

// Visit marks id and reports whether it had been marked already.
func (v *visited) Visit(id int32) bool {
	if v.marks[id] == v.gen {
		return true
	}
	v.marks[id] = v.gen
	return false
}

// scratch is the working memory of one search or insertion, pooled so
// that a search allocates little beyond its results.
type scratch struct {
	seen      visited
	frontier  candHeap
	results   candHeap
	sorted    []cand  // results best first
	selected  []cand  // neighbours chosen for a new node
	pruned    []cand  // a full neighbour list and its newcomer
	kept      []cand  // what the heuristic keeps of pruned
	neighbors []int32 // a copy of one adjacency list, during a parallel build
}
