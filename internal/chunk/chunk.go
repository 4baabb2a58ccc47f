package chunk

import (
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Defaults, Dify's automatic rules (500 tokens, 50 of overlap).
const (
	DefaultSize    = 500
	DefaultOverlap = 50
)

// Options are a knowledge base's chunking settings.
type Options struct {
	// Size is the most tokens a chunk may have (Prefix included);
	// DefaultSize if zero or less.
	Size int
	// Overlap is about how many tokens of a chunk the next one repeats;
	// none if zero or less, at most Size/2.
	Overlap int
	// Count counts tokens; Approx if nil. It must be deterministic.
	Count func(string) int
	// HeaderAware starts a chunk at every heading and gives each chunk the
	// path of headings above it as a Prefix (see the package doc).
	HeaderAware bool
}

// Chunk is one piece of a document.
type Chunk struct {
	Index int    // 0, 1, 2, … in document order
	Text  string // the input from Start to End, verbatim
	Start int    // byte offset of Text in the input
	End   int    // byte offset just past Text
	// Headings is the heading path the chunk is under, outermost first
	// (["Install", "Linux"]): the path in effect at its first line that is
	// not a heading.
	Headings []string
	// Prefix is the headings above the chunk that its Text does not
	// contain, as "Install > Linux\n\n"; empty without HeaderAware.
	Prefix string
	// Tokens is Count(Prefix + Text).
	Tokens int
}

// SearchText is the text to embed and index for c: its Prefix and Text.
func (c Chunk) SearchText() string { return c.Prefix + c.Text }

// Split splits text into chunks as opts say. Empty or all-space text has
// none.
func Split(text string, opts Options) []Chunk {
	if opts.Size <= 0 {
		opts.Size = DefaultSize
	}
	opts.Overlap = max(0, min(opts.Overlap, opts.Size/2))
	if opts.Count == nil {
		opts.Count = Approx
	}
	s := &splitter{text: text, opts: opts, blocks: parse(text)}
	if len(s.blocks) == 0 {
		return nil
	}
	if !opts.HeaderAware {
		s.section(0, len(s.blocks), nil)
		return s.chunks
	}
	// A section starts at a heading that follows content (or at the first
	// block) and runs to the next such heading.
	first := 0
	for i := 1; i <= len(s.blocks); i++ {
		if i == len(s.blocks) || (s.blocks[i].kind == kindHeading && s.blocks[i-1].kind != kindHeading) {
			s.section(first, i, s.sectionPath(first, i))
			first = i
		}
	}
	return s.chunks
}

type splitter struct {
	text   string
	opts   Options
	blocks []block
	chunks []Chunk
}

// sectionPath is the heading path of the content of blocks[first:end]:
// that of its first block that is not a heading, or of its last heading.
func (s *splitter) sectionPath(first, end int) []heading {
	for i := first; i < end; i++ {
		if s.blocks[i].kind != kindHeading {
			return s.blocks[i].path
		}
	}
	return s.blocks[end-1].path
}

// section chunks blocks[first:last]. path, with HeaderAware, is their
// heading path, which prefixes the chunks.
func (s *splitter) section(first, last int, path []heading) {
	a := s.blocks[first].start
	b := len(s.text)
	if last < len(s.blocks) {
		b = s.blocks[last].start
	}
	// Whether a fence, row or heading fits is judged with the longest
	// prefix this section can have.
	full := s.prefix(path, b)
	fits := func(start, end int) bool { return s.count(full, start, end) <= s.opts.Size }
	var cuts []cut
	for i := first; i < last; i++ {
		cuts = blockCuts(s.text, &s.blocks[i], i > first && s.blocks[i-1].kind == kindHeading, fits, cuts)
	}
	cuts = append(cuts, cut{b, lvEnd})
	// est[i] estimates the tokens from the section start to cuts[i] as the
	// sum over the pieces between cuts: a guess of where a chunk ends that
	// is usually right to a cut or two, so that few counts of whole
	// chunks are needed to find that end.
	est := make([]int, len(cuts))
	for i := 1; i < len(cuts); i++ {
		est[i] = est[i-1] + s.opts.Count(s.text[cuts[i-1].pos:cuts[i].pos])
	}

	pos := a
	prevEnd := a // chunks in a section end ever later
	for pos < b {
		prefix := s.prefix(path, pos)
		i0 := sort.Search(len(cuts), func(i int) bool { return cuts[i].pos > pos })
		// The first cut that adds text beyond the previous chunk.
		iMin := i0 + sort.Search(len(cuts)-i0, func(i int) bool { return s.trimEnd(pos, cuts[i0+i].pos) > prevEnd })
		fitsAt := func(i int) bool { return s.count(prefix, pos, s.trimEnd(pos, cuts[i].pos)) <= s.opts.Size }
		if !fitsAt(iMin) {
			if pos < prevEnd { // no room for the overlap and what follows it
				pos = s.skipSpace(prevEnd, b)
				continue
			}
			// Trimmed: when a counter that is not monotonic makes a fence
			// judged whole not fit here, the split may fall on a space.
			end := s.trimEnd(pos, s.splitWord(prefix, pos, s.trimEnd(pos, cuts[iMin].pos)))
			s.emit(prefix, pos, end)
			prevEnd, pos = end, s.skipSpace(end, b)
			continue
		}
		// The farthest cut that fits: guess, gallop, then bisect.
		lo, hi := iMin, len(cuts)
		budget := est[max(i0-1, 0)] + s.opts.Size - s.opts.Count(prefix)
		if g := sort.SearchInts(est, budget+1) - 1; g > lo {
			if g = min(g, len(cuts)-1); fitsAt(g) {
				lo = g
			} else {
				hi = g
				for step := 1; hi-step > lo; step *= 2 {
					if fitsAt(hi - step) {
						lo = hi - step
						break
					}
					hi -= step
				}
			}
		}
		for step := 1; lo+step < hi; step *= 2 {
			if !fitsAt(lo + step) {
				hi = lo + step
				break
			}
			lo += step
		}
		for hi-lo > 1 {
			mid := int(uint(lo+hi) >> 1)
			if fitsAt(mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		// The best cut in the second half of the window, the farthest of
		// equals.
		best := lo
		half := pos + (cuts[lo].pos-pos)/2
		for k := lo - 1; k >= iMin && cuts[k].pos >= half; k-- {
			if cuts[k].lv > cuts[best].lv {
				best = k
			}
		}
		end := s.trimEnd(pos, cuts[best].pos)
		if s.count(prefix, pos, end) > s.opts.Size { // a counter that is not monotonic
			end = s.trimEnd(pos, cuts[lo].pos)
		}
		s.emit(prefix, pos, end)
		start := pos
		prevEnd = end
		pos = s.skipSpace(end, b)
		if pos < b && s.opts.Overlap > 0 {
			pos = s.overlapStart(cuts, start, end, pos)
		}
	}
}

// overlapStart is where the chunk after text[start:end] starts so that it
// repeats about Overlap tokens: the best cut in the first half of the
// longest tail that fits, the earliest of equals; or next if none fits.
func (s *splitter) overlapStart(cuts []cut, start, end, next int) int {
	i0 := sort.Search(len(cuts), func(i int) bool { return cuts[i].pos > start })
	i1 := sort.Search(len(cuts), func(i int) bool { return cuts[i].pos >= end })
	if i0 >= i1 {
		return next
	}
	iMin := i0 + sort.Search(i1-i0, func(i int) bool { return s.count("", cuts[i0+i].pos, end) <= s.opts.Overlap })
	if iMin == i1 {
		return next
	}
	best := iMin
	half := cuts[iMin].pos + (end-cuts[iMin].pos)/2
	for k := iMin + 1; k < i1 && cuts[k].pos <= half; k++ {
		if cuts[k].lv > cuts[best].lv {
			best = k
		}
	}
	return cuts[best].pos
}

// splitWord is where a chunk starting at pos ends when even the text up to
// the first cut, which ends at lim, is too big: the farthest character
// boundary that fits, or one character if none does.
func (s *splitter) splitWord(prefix string, pos, lim int) int {
	_, w := utf8.DecodeRuneInString(s.text[pos:])
	lo, hi := pos+w, lim
	if lo >= hi || s.count(prefix, pos, lo) > s.opts.Size {
		return lo
	}
	// Gallop first: the word may be far longer than a chunk.
	for step := w; ; step *= 2 {
		next := lo + step
		for next < hi && !utf8.RuneStart(s.text[next]) {
			next++
		}
		if next >= hi {
			break
		}
		if s.count(prefix, pos, next) > s.opts.Size {
			hi = next
			break
		}
		lo = next
	}
	for {
		mid := lo + (hi-lo)/2
		for mid > lo && !utf8.RuneStart(s.text[mid]) {
			mid--
		}
		if mid == lo {
			_, w := utf8.DecodeRuneInString(s.text[lo:])
			if mid = lo + w; mid >= hi {
				return lo
			}
		}
		if s.count(prefix, pos, mid) <= s.opts.Size {
			lo = mid
		} else {
			hi = mid
		}
	}
}

func (s *splitter) emit(prefix string, start, end int) {
	s.chunks = append(s.chunks, Chunk{
		Index:    len(s.chunks),
		Text:     s.text[start:end],
		Start:    start,
		End:      end,
		Headings: titles(s.headingsAt(start, end)),
		Prefix:   prefix,
		Tokens:   s.count(prefix, start, end),
	})
}

// headingsAt is the heading path of the chunk text[start:end]: that of its
// first block that is not a heading, else of its last heading.
func (s *splitter) headingsAt(start, end int) []heading {
	i := sort.Search(len(s.blocks), func(i int) bool { return s.blocks[i].end > start })
	var path []heading
	for ; i < len(s.blocks) && s.blocks[i].start < end; i++ {
		path = s.blocks[i].path
		if s.blocks[i].kind != kindHeading {
			break
		}
	}
	return path
}

// prefix is the Prefix of a chunk of a section with path that starts at
// pos: the headings that start before pos, outermost dropped first while
// it counts more than half of Size.
func (s *splitter) prefix(path []heading, pos int) string {
	n := 0
	for n < len(path) && path[n].start < pos {
		n++
	}
	for from := 0; from < n; from++ {
		p := strings.Join(titles(path[from:n]), " > ") + "\n\n"
		if s.opts.Count(p) <= s.opts.Size/2 {
			return p
		}
	}
	return ""
}

func (s *splitter) count(prefix string, start, end int) int {
	if prefix == "" {
		return s.opts.Count(s.text[start:end])
	}
	return s.opts.Count(prefix + s.text[start:end])
}

// trimEnd is the end of text[start:end] without trailing white space.
func (s *splitter) trimEnd(start, end int) int {
	return start + len(strings.TrimRightFunc(s.text[start:end], unicode.IsSpace))
}

// skipSpace is the first non-space byte in text[pos:end], or end.
func (s *splitter) skipSpace(pos, end int) int {
	if i := strings.IndexFunc(s.text[pos:end], func(r rune) bool { return !unicode.IsSpace(r) }); i >= 0 {
		return pos + i
	}
	return end
}

func titles(path []heading) []string {
	if len(path) == 0 {
		return nil
	}
	out := make([]string, len(path))
	for i, h := range path {
		out[i] = h.title
	}
	return slices.Clip(out)
}
