package vector

import (
	"cmp"
	"fmt"
	"slices"
)

// Result is one search hit: the key the caller added and the cosine
// similarity of its vector to the query.
type Result struct {
	Key   int64
	Score float32
}

// Index is what the store needs of a per-knowledge-base vector index. Flat
// and HNSW implement it; the store picks one by the knowledge base's size.
//
// Implementations are safe for concurrent use.
type Index interface {
	// Add indexes v, a normalised vector, under key, replacing the vector
	// the key had. The index keeps its own copy of v. It panics if
	// len(v) != Dim().
	Add(key int64, v []float32)
	// Delete removes key and reports whether it was present.
	Delete(key int64) bool
	// Search returns the (at most) k keys most similar to the normalised
	// query q, best first, ties by the smaller key. It panics if
	// len(q) != Dim().
	Search(q []float32, k int) []Result
	// Len is the number of keys present (added and not deleted).
	Len() int
	// Dim is the dimension of every vector in the index.
	Dim() int
	// Bytes estimates the memory the index holds, for the caller's cache
	// budget. It counts capacity, not just length.
	Bytes() int64
}

// mapEntryBytes estimates the cost of one entry of a map[int64]int32: the
// key and value, the control byte and the slack of a partly full group.
const mapEntryBytes = 24

// compareResults orders results best first: higher score, then smaller key,
// so that equal scores rank the same way on every run and in every index.
func compareResults(a, b Result) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	return cmp.Compare(a.Key, b.Key)
}

// topK keeps the k best results seen so far in a min-heap whose root is the
// worst of them, so that a new result is compared against one value and
// the scan never holds more than k.
type topK struct {
	k    int
	heap []Result
}

// newTopK returns a topK for k results. Its slice is the one Sorted
// returns, so a search allocates its results once.
func newTopK(k int) topK {
	return topK{k: k, heap: make([]Result, 0, k)}
}

// Push offers r, keeping it if there are fewer than k results or it beats
// the worst of them.
func (t *topK) Push(r Result) {
	if len(t.heap) < t.k {
		t.heap = append(t.heap, r)
		t.up(len(t.heap) - 1)
		return
	}
	if compareResults(r, t.heap[0]) >= 0 {
		return
	}
	t.heap[0] = r
	t.down(0)
}

// Sorted returns the results best first. The topK must not be used after.
func (t *topK) Sorted() []Result {
	slices.SortFunc(t.heap, compareResults)
	return t.heap
}

// worse reports whether heap[i] ranks below heap[j]: the heap's order.
func (t *topK) worse(i, j int) bool {
	return compareResults(t.heap[i], t.heap[j]) > 0
}

func (t *topK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.worse(i, p) {
			return
		}
		t.heap[i], t.heap[p] = t.heap[p], t.heap[i]
		i = p
	}
}

func (t *topK) down(i int) {
	n := len(t.heap)
	for {
		w := i
		if l := 2*i + 1; l < n && t.worse(l, w) {
			w = l
		}
		if r := 2*i + 2; r < n && t.worse(r, w) {
			w = r
		}
		if w == i {
			return
		}
		t.heap[i], t.heap[w] = t.heap[w], t.heap[i]
		i = w
	}
}

// checkDim panics when a vector's length is not the index's dimension.
func checkDim(op string, got, want int) {
	if got != want {
		panic(fmt.Sprintf("vector: %s: vector of dimension %d in an index of dimension %d", op, got, want))
	}
}
