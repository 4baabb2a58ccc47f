package chunk

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestSplitProperties splits random Markdown-ish documents with random
// options and checks the invariants of checkChunks on each.
func TestSplitProperties(t *testing.T) {
	counters := []struct {
		name    string
		count   func(string) int
		minSize int // the least Size at which any one character fits
	}{
		{"approx", Approx, 1},
		{"bytes", byteCount, 4},
		// The gateway's word estimate: a word is at least 2 tokens.
		{"words", func(s string) int { return (len(strings.Fields(s))*4 + 2) / 3 }, 2},
	}
	seeds := 400
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 42))
		doc := gen{rng: rng}.doc()
		c := counters[seed%len(counters)]
		opts := Options{
			Size:        c.minSize + rng.IntN(120),
			Count:       c.count,
			HeaderAware: rng.IntN(2) == 0,
		}
		if rng.IntN(3) > 0 {
			opts.Overlap = rng.IntN(opts.Size + 1)
		}
		t.Run(fmt.Sprintf("%d/%s/size=%d/overlap=%d/ha=%v", seed, c.name, opts.Size, opts.Overlap, opts.HeaderAware), func(t *testing.T) {
			chunks := Split(doc, opts)
			checkChunks(t, doc, opts, chunks)
			if opts.HeaderAware {
				checkSections(t, doc, chunks)
			}
		})
	}
}

// checkSections checks that with HeaderAware no chunk has content before a
// heading it contains.
func checkSections(t *testing.T, text string, chunks []Chunk) {
	t.Helper()
	blocks := parse(text)
	for _, c := range chunks {
		content := false
		for _, b := range blocks {
			if b.start < c.Start || b.start >= c.End {
				continue
			}
			if b.kind == kindHeading && content {
				t.Fatalf("chunk %d %q spans the heading at %d", c.Index, c.Text, b.start)
			}
			content = content || b.kind != kindHeading
		}
	}
}

var (
	words = []string{
		"the", "retrieval", "of", "knowledge", "base", "documents", "is", "fast",
		"Nodus", "tenant", "chunk", "overlap", "token", "e.g.", "U.S.", "3.14",
		"café", "naïve", "Привет", "мир", "日本語", "テキスト", "今天。明天", "🙂", "👍🏽",
		"a\u00a0b", "x\ty", "(quoted)", "\"said\"", "end.", "why?", "wow!", "1.", "C#",
		"`code`", "**bold**", "_it_", "https://example.com/a/b?c=d",
	}
	terminators = []string{".", "!", "?", "", "", "…", "。"}
)

// gen makes random documents; a plain one has no pathological words or
// lines.
type gen struct {
	rng   *rand.Rand
	plain bool
}

func (g gen) word() string {
	rng := g.rng
	if !g.plain && rng.IntN(40) == 0 { // a very long word
		return strings.Repeat(words[rng.IntN(len(words))], 5+rng.IntN(60))
	}
	return words[rng.IntN(len(words))]
}

func (g gen) sentence() string {
	rng := g.rng
	n := 1 + rng.IntN(15)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = g.word()
	}
	return strings.Join(ws, " ") + terminators[rng.IntN(len(terminators))]
}

func (g gen) doc() string {
	rng := g.rng
	var b strings.Builder
	blocks := rng.IntN(25)
	for range blocks {
		switch rng.IntN(9) {
		case 0, 1:
			b.WriteString(strings.Repeat("#", 1+rng.IntN(4)) + " " + g.sentence())
		case 2:
			for range 1 + rng.IntN(5) {
				b.WriteString([]string{"- ", "* ", "1. ", "  - "}[rng.IntN(4)] + g.sentence() + "\n")
			}
		case 3:
			cols := 1 + rng.IntN(4)
			for r := range 1 + rng.IntN(6) {
				cells := make([]string, cols)
				for i := range cells {
					cells[i] = g.word()
					if r == 1 {
						cells[i] = "---"
					}
				}
				b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
			}
		case 4:
			fence := []string{"```", "~~~", "````"}[rng.IntN(3)]
			b.WriteString(fence + "go\n")
			for range rng.IntN(8) {
				b.WriteString(strings.Repeat("\t", rng.IntN(3)) + g.sentence() + "\n")
				if rng.IntN(4) == 0 {
					b.WriteString("\n")
				}
			}
			if rng.IntN(6) > 0 { // sometimes unclosed
				b.WriteString(fence + "\n")
			}
		case 5:
			if g.plain {
				continue
			}
			b.WriteString(strings.Repeat(g.word(), 20+rng.IntN(200))) // one very long line
		default:
			for range 1 + rng.IntN(6) {
				b.WriteString(g.sentence())
				b.WriteString([]string{" ", " ", "  ", "\n"}[rng.IntN(4)])
			}
		}
		b.WriteString([]string{"\n\n", "\n", "\n\n\n", "\n \t\n"}[rng.IntN(4)])
	}
	doc := b.String()
	switch rng.IntN(4) {
	case 0:
		doc = strings.ReplaceAll(doc, "\n", "\r\n")
	case 1:
		doc = "  \n" + doc + "\u3000 \n"
	}
	return doc
}

// FuzzSplit checks the invariants on arbitrary input.
func FuzzSplit(f *testing.F) {
	f.Add("# A\n\ntext. more text\n\n```\ncode\n```\n| a | b |\n", 10, 3, true)
	f.Add("\r\n\r\n", 1, 0, false)
	f.Add(strings.Repeat("é", 50), 3, 1, false)
	f.Fuzz(func(t *testing.T, text string, size, overlap int, headerAware bool) {
		opts := Options{Size: 1 + abs(size)%300, Overlap: abs(overlap) % 300, HeaderAware: headerAware}
		checkChunks(t, text, opts, Split(text, opts))
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
