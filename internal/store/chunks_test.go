package store

import "testing"

// TestChunkSizes: the statements hold every row, largest first, and
// the statements come in few sizes: the largest, then powers of two.
func TestChunkSizes(t *testing.T) {
	for _, max := range []int{1, 2, 128, 200, 256, 500} {
		shapes := map[int]bool{}
		for n := range 1200 {
			got, prev := 0, max
			for _, size := range chunkSizes(n, max) {
				if size <= 0 || size > prev {
					t.Fatalf("max %d, %d rows: a chunk of %d after one of %d", max, n, size, prev)
				}
				if size != max && size&(size-1) != 0 {
					t.Fatalf("max %d, %d rows: a chunk of %d, neither the max nor a power of two", max, n, size)
				}
				shapes[size], got, prev = true, got+size, size
			}
			if got != n {
				t.Fatalf("max %d, %d rows: the chunks hold %d rows", max, n, got)
			}
		}
		if len(shapes) > 10 {
			t.Errorf("max %d: %d distinct statement sizes", max, len(shapes))
		}
	}
}
