package vector

import "slices"

// Snapshot returns copies of the index's keys and vectors (vecs[i*Dim():]
// is the vector of keys[i]), for building an HNSW index from it with
// Build while the Flat goes on serving searches and taking changes.
func (f *Flat) Snapshot() (keys []int64, vecs []float32) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.keys), slices.Clone(f.vecs)
}
