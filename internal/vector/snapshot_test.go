package vector

import (
	"slices"
	"testing"
)

func TestFlatSnapshot(t *testing.T) {
	f := NewFlat(2)
	f.Add(7, []float32{1, 0})
	f.Add(9, []float32{0, 1})
	keys, vecs := f.Snapshot()
	// The copy does not follow later changes.
	f.Delete(7)
	f.Add(11, []float32{1, 1})
	if !slices.Equal(keys, []int64{7, 9}) || !slices.Equal(vecs, []float32{1, 0, 0, 1}) {
		t.Fatalf("snapshot = %v %v", keys, vecs)
	}
	h := Build(2, keys, vecs, DefaultParams(), 1)
	if r := h.Search([]float32{1, 0}, 1); len(r) != 1 || r[0].Key != 7 {
		t.Fatalf("built from the snapshot: %v", r)
	}
}
