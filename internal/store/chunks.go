package store

import (
	"iter"
	"math/bits"
	"strings"
)

// chunkSizes splits n rows into statements of maxRows rows and then
// decreasing powers of two (500 with 256 → 256, 128, 64, 32, 16, 4). A
// batch of any size so takes a few statements, and there are few distinct
// statement texts: the SQLite writer's statement cache, PostgreSQL's
// prepared-statement cache and Rebind's cache keep one entry per text,
// where a text per batch size would be parsed anew each time.
func chunkSizes(n, maxRows int) []int {
	var out []int
	for n > 0 {
		size := min(n, maxRows)
		if size < maxRows {
			size = 1 << (bits.Len(uint(size)) - 1)
		}
		out = append(out, size)
		n -= size
	}
	return out
}

// shapedChunks yields s in the runs chunkSizes gives.
func shapedChunks[S ~[]E, E any](s S, maxRows int) iter.Seq[S] {
	return func(yield func(S) bool) {
		for _, n := range chunkSizes(len(s), maxRows) {
			if !yield(s[:n:n]) {
				return
			}
			s = s[n:]
		}
	}
}

// valuesSQL returns "(?, ?), (?, ?)": rows groups of cols placeholders.
func valuesSQL(rows, cols int) string {
	group := "(" + placeholders(cols) + ")"
	var b strings.Builder
	b.Grow(rows * (len(group) + 2))
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(group)
	}
	return b.String()
}
