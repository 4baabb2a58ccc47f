package vector

import "sync"

// Flat is an exact index: Search compares the query with every vector. It
// needs no build and no tuning, its results are the true top k, and below
// some tens of thousands of vectors a scan is fast enough; it is also the
// reference HNSW's recall is measured against.
//
// Vectors sit in one contiguous slab, so a scan walks memory in order, and
// Delete moves the last vector into the freed slot, so the slab never has
// holes and deleting is O(1).
type Flat struct {
	mu   sync.RWMutex
	dim  int
	vecs []float32       // slot i is vecs[i*dim : (i+1)*dim]
	keys []int64         // keys[i] is the key of slot i
	slot map[int64]int32 // key to slot
}

var _ Index = (*Flat)(nil)

// NewFlat returns an empty exact index of vectors of dimension dim.
func NewFlat(dim int) *Flat {
	if dim <= 0 {
		panic("vector: NewFlat: dimension must be positive")
	}
	return &Flat{dim: dim, slot: make(map[int64]int32)}
}

// NewFlatFrom returns an exact index of keys, keys[i] having the vector
// vecs[i*dim : (i+1)*dim]. It takes both slices, without copying them: a
// caller that has read the vectors into one slab loads them at no extra
// memory. A key given twice keeps its last vector. It panics on a
// non-positive dimension or if len(vecs) != len(keys)*dim.
func NewFlatFrom(dim int, keys []int64, vecs []float32) *Flat {
	if dim <= 0 {
		panic("vector: NewFlatFrom: dimension must be positive")
	}
	if len(vecs) != len(keys)*dim {
		panic("vector: NewFlatFrom: len(vecs) is not len(keys)*dim")
	}
	f := &Flat{dim: dim, slot: make(map[int64]int32, len(keys))}
	n := 0 // slots kept; a repeated key's later vector overwrites its slot
	for i, key := range keys {
		v := vecs[i*dim : (i+1)*dim]
		if j, ok := f.slot[key]; ok {
			copy(vecs[int(j)*dim:], v)
			continue
		}
		f.slot[key] = int32(n)
		if n != i { // moved down over a repeated key's place
			keys[n] = key
			copy(vecs[n*dim:], v)
		}
		n++
	}
	f.keys, f.vecs = keys[:n], vecs[:n*dim]
	return f
}

// Add indexes v under key, replacing the key's vector if it had one. It
// panics if len(v) != f.Dim().
func (f *Flat) Add(key int64, v []float32) {
	checkDim("Flat.Add", len(v), f.dim)
	f.mu.Lock()
	defer f.mu.Unlock()
	if i, ok := f.slot[key]; ok {
		copy(f.vector(i), v)
		return
	}
	f.slot[key] = int32(len(f.keys))
	f.keys = append(f.keys, key)
	f.vecs = append(f.vecs, v...)
}

// Delete removes key, moving the last slot into its place, and reports
// whether it was present.
func (f *Flat) Delete(key int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.slot[key]
	if !ok {
		return false
	}
	delete(f.slot, key)
	last := int32(len(f.keys) - 1)
	if i != last {
		copy(f.vector(i), f.vector(last))
		f.keys[i] = f.keys[last]
		f.slot[f.keys[i]] = i
	}
	f.keys = f.keys[:last]
	f.vecs = f.vecs[:int(last)*f.dim]
	return true
}

// Search returns the k keys whose vectors are most similar to q, best
// first, ties by the smaller key. It panics if len(q) != f.Dim().
func (f *Flat) Search(q []float32, k int) []Result {
	checkDim("Flat.Search", len(q), f.dim)
	if k <= 0 {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	top := newTopK(min(k, len(f.keys)))
	for i, key := range f.keys {
		top.Push(Result{Key: key, Score: Dot(q, f.vecs[i*f.dim:])})
	}
	return top.Sorted()
}

// Len returns the number of keys in the index.
func (f *Flat) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.keys)
}

// Dim returns the dimension of the index's vectors.
func (f *Flat) Dim() int { return f.dim }

// Bytes estimates the memory f holds: the slab and key slice at their
// capacity and the key map.
func (f *Flat) Bytes() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return int64(4*cap(f.vecs)) + int64(8*cap(f.keys)) + int64(mapEntryBytes*len(f.slot))
}

// vector returns slot i's vector, aliasing the slab.
func (f *Flat) vector(i int32) []float32 {
	s := int(i) * f.dim
	return f.vecs[s : s+f.dim : s+f.dim]
}
