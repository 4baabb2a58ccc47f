package chunk

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// benchDoc is a deterministic Markdown document of at least n bytes,
// without the pathological words and lines of the property test.
func benchDoc(n int) string {
	g := gen{rng: rand.New(rand.NewPCG(1, 2)), plain: true}
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(g.doc())
		b.WriteString("\n\n")
	}
	return b.String()
}

// BenchmarkSplit reports MB/s over a 1 MB document with the approximate
// counter: go test -bench Split ./internal/chunk
func BenchmarkSplit(b *testing.B) {
	doc := benchDoc(1 << 20)
	for _, bm := range []struct {
		name string
		opts Options
	}{
		{"size=500", Options{Size: 500}},
		{"size=500,overlap=50", Options{Size: 500, Overlap: 50}},
		{"size=500,overlap=50,header", Options{Size: 500, Overlap: 50, HeaderAware: true}},
		{"size=100,overlap=20,header", Options{Size: 100, Overlap: 20, HeaderAware: true}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			// counted/byte, the bytes passed to the counter per input byte,
			// is the figure that does not depend on the machine.
			counted := 0
			bm.opts.Count = func(s string) int { counted += len(s); return Approx(s) }
			var n int
			for b.Loop() {
				counted = 0
				n = len(Split(doc, bm.opts))
			}
			b.ReportMetric(float64(n), "chunks")
			b.ReportMetric(float64(counted)/float64(len(doc)), "counted/byte")
		})
	}
}
