package chunk

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// byteCount counts one token per byte, so expectations are easy to work
// out by hand.
func byteCount(s string) int { return len(s) }

func TestSplit(t *testing.T) {
	fence := "```go\nfunc main() {\n\tfmt.Println(1)\n}\n```"
	tests := []struct {
		name string
		text string
		opts Options
		want []string // each chunk's Text
	}{
		{"empty", "", Options{}, nil},
		{"white space only", " \n\t\r\n\u00a0\u3000\n", Options{}, nil},
		{"CRLF blank lines only", "\r\n\r\n", Options{}, nil},
		{"fits in one", "\n\n  Hello, world.  \n\n", Options{}, []string{"Hello, world."}},
		{
			"paragraph break before sentence",
			"One two three. Four five.\n\nSix seven eight.",
			Options{Size: 30, Count: byteCount},
			[]string{"One two three. Four five.", "Six seven eight."},
		},
		{
			"sentence before word",
			"Alpha beta gamma. Delta epsilon zeta eta theta.",
			Options{Size: 30, Count: byteCount},
			[]string{"Alpha beta gamma.", "Delta epsilon zeta eta theta."},
		},
		{
			"abbreviations and list numbers are not sentence ends",
			"See e.g. the docs. Then go.",
			Options{Size: 22, Count: byteCount},
			[]string{"See e.g. the docs.", "Then go."},
		},
		{
			"heading before paragraph break",
			"Intro text here.\n\nMore intro.\n\n# Next\n\nBody of next.",
			Options{Size: 40, Count: byteCount},
			[]string{"Intro text here.\n\nMore intro.", "# Next\n\nBody of next."},
		},
		{
			"a heading stays with what follows",
			"Some words here.\n\n# Head\n\nText.",
			Options{Size: 26, Count: byteCount},
			[]string{"Some words here.", "# Head\n\nText."},
		},
		{
			"fence kept whole when it fits",
			"Before the code.\n\n" + fence + "\n\nAfter.",
			Options{Size: len(fence) + 5, Count: byteCount},
			[]string{"Before the code.", fence, "After."},
		},
		{
			"fence split at lines when too big",
			fence,
			Options{Size: 20, Count: byteCount},
			[]string{"```go\nfunc main() {", "fmt.Println(1)\n}\n```"},
		},
		{
			"table rows kept whole",
			"| name | value |\n|------|-------|\n| a    | 1     |\n| b    | 2     |",
			Options{Size: 40, Count: byteCount},
			[]string{"| name | value |\n|------|-------|", "| a    | 1     |\n| b    | 2     |"},
		},
		{
			"list items before words",
			"- first item here\n- second item\n- third",
			Options{Size: 33, Count: byteCount},
			[]string{"- first item here\n- second item", "- third"},
		},
		{
			"a long word is cut inside",
			"tiny " + strings.Repeat("x", 25) + " end",
			Options{Size: 10, Count: byteCount},
			[]string{"tiny", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx end"},
		},
		{
			"a long word is cut between characters",
			strings.Repeat("é", 7),
			Options{Size: 5, Count: byteCount},
			[]string{"éé", "éé", "éé", "é"},
		},
		{
			"CRLF",
			"First line.\r\nSecond line.\r\n\r\nNext paragraph.\r\n",
			Options{Size: 30, Count: byteCount},
			[]string{"First line.\r\nSecond line.", "Next paragraph."},
		},
		{
			"CJK sentences without spaces",
			"今天天气很好。我们去公园吧。好的！",
			Options{Size: 45, Count: byteCount},
			[]string{"今天天气很好。我们去公园吧。", "好的！"},
		},
		{
			"overlap repeats the tail at a clean boundary",
			"Aa bb cc. Dd ee ff. Gg hh ii. Jj kk ll.",
			Options{Size: 20, Overlap: 10, Count: byteCount},
			[]string{"Aa bb cc. Dd ee ff.", "Dd ee ff. Gg hh ii.", "Gg hh ii. Jj kk ll."},
		},
		{
			"overlap dropped when the next block leaves no room",
			"Aa bb cc dd.\n\n" + strings.Repeat("z", 19),
			Options{Size: 20, Overlap: 10, Count: byteCount},
			[]string{"Aa bb cc dd.", strings.Repeat("z", 19)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := Split(tt.text, tt.opts)
			var got []string
			for _, c := range chunks {
				got = append(got, c.Text)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Split:\n got %q\nwant %q", got, tt.want)
			}
			checkChunks(t, tt.text, tt.opts, chunks)
		})
	}
}

func TestHeaderAware(t *testing.T) {
	doc := "Preamble.\n\n# Install\n## Linux\n\nRun the installer. Then reboot.\n\n## macOS\n\nDrag the app.\n\n# Use\n\nStart it.\n"
	opts := Options{Size: 40, Count: byteCount, HeaderAware: true}
	type want struct {
		text     string
		headings []string
		prefix   string
	}
	wants := []want{
		{"Preamble.", nil, ""},
		{"# Install\n## Linux\n\nRun the installer.", []string{"Install", "Linux"}, ""},
		{"Then reboot.", []string{"Install", "Linux"}, "Install > Linux\n\n"},
		{"## macOS\n\nDrag the app.", []string{"Install", "macOS"}, "Install\n\n"},
		{"# Use\n\nStart it.", []string{"Use"}, ""},
	}
	chunks := Split(doc, opts)
	var got []want
	for _, c := range chunks {
		got = append(got, want{c.Text, c.Headings, c.Prefix})
	}
	if !reflect.DeepEqual(got, wants) {
		t.Errorf("Split:\n got %q\nwant %q", got, wants)
	}
	checkChunks(t, doc, opts, chunks)
	if c := chunks[2]; c.SearchText() != "Install > Linux\n\nThen reboot." || c.Tokens != len(c.SearchText()) {
		t.Errorf("chunk 2: SearchText %q, Tokens %d", c.SearchText(), c.Tokens)
	}

	// Without HeaderAware the same text packs across sections, and
	// Headings is the path at each chunk's first line of content.
	opts.HeaderAware = false
	chunks = Split(doc, opts)
	checkChunks(t, doc, opts, chunks)
	if c := chunks[0]; c.Text != "Preamble.\n\n# Install\n## Linux" && c.Headings != nil {
		t.Errorf("chunk 0: %q %q", c.Text, c.Headings)
	}
	for _, c := range chunks {
		if c.Prefix != "" {
			t.Errorf("chunk %d has prefix %q without HeaderAware", c.Index, c.Prefix)
		}
	}
}

func TestHeaderAwareLongPrefix(t *testing.T) {
	doc := "# " + strings.Repeat("Long ", 10) + "\n## Short\n\n" + strings.Repeat("word ", 20)
	chunks := Split(doc, Options{Size: 60, Count: byteCount, HeaderAware: true})
	checkChunks(t, doc, Options{Size: 60, Count: byteCount, HeaderAware: true}, chunks)
	last := chunks[len(chunks)-1]
	if last.Prefix != "Short\n\n" {
		t.Errorf("prefix %q, want the outermost heading dropped", last.Prefix)
	}
	if want := []string{strings.TrimSpace(strings.Repeat("Long ", 10)), "Short"}; !reflect.DeepEqual(last.Headings, want) {
		t.Errorf("headings %q, want %q", last.Headings, want)
	}
}

func TestHeadings(t *testing.T) {
	tests := []struct {
		line  string
		level int
		title string
		ok    bool
	}{
		{"# Title", 1, "Title", true},
		{"### Title ###", 3, "Title", true},
		{"## C# in depth", 2, "C# in depth", true},
		{"#", 1, "", true},
		{"   ## Indented\r", 2, "Indented", true},
		{"    # code", 0, "", false},
		{"#hashtag", 0, "", false},
		{"####### seven", 0, "", false},
	}
	for _, tt := range tests {
		level, title, ok := atxHeading(tt.line)
		if level != tt.level || title != tt.title || ok != tt.ok {
			t.Errorf("atxHeading(%q) = %d, %q, %v; want %d, %q, %v", tt.line, level, title, ok, tt.level, tt.title, tt.ok)
		}
	}
}

func TestApprox(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{"", 0},
		{" \n\t", 0},
		{"a", 1},
		{"word", 1},
		{"words", 2},
		{"The quick brown fox.", 1 + 2 + 2 + 1},
		{"é", 1},
		{"Привет", 3},
		{"今天天气", 4},
		{"ab今天", 3},
		{"🙂", 1},
	}
	for _, tt := range tests {
		if got := Approx(tt.text); got != tt.want {
			t.Errorf("Approx(%q) = %d, want %d", tt.text, got, tt.want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	doc := benchDoc(50_000)
	for _, opts := range []Options{{Size: 100, Overlap: 20}, {Size: 100, Overlap: 20, HeaderAware: true}} {
		a, b := Split(doc, opts), Split(doc, opts)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("two splits of the same input differ (%+v)", opts)
		}
		checkChunks(t, doc, opts, a)
	}
}

// checkChunks checks the package's invariants: every chunk is its span of
// the input, trimmed and within Size; spans move forward and together
// cover every non-space character; overlaps are within Overlap.
func checkChunks(t *testing.T, text string, opts Options, chunks []Chunk) {
	t.Helper()
	if opts.Size <= 0 {
		opts.Size = DefaultSize
	}
	if opts.Count == nil {
		opts.Count = Approx
	}
	next := skipSpaceIn(text, 0) // the first non-space byte no chunk has covered yet
	for i, c := range chunks {
		switch {
		case c.Index != i:
			t.Fatalf("chunk %d has Index %d", i, c.Index)
		case c.Start < 0 || c.End > len(text) || c.Start >= c.End:
			t.Fatalf("chunk %d: bad span [%d:%d] of %d bytes", i, c.Start, c.End, len(text))
		case text[c.Start:c.End] != c.Text:
			t.Fatalf("chunk %d: Text %q is not input[%d:%d] %q", i, c.Text, c.Start, c.End, text[c.Start:c.End])
		case strings.TrimSpace(c.Text) != c.Text:
			t.Fatalf("chunk %d: untrimmed %q", i, c.Text)
		case utf8.ValidString(text) && !utf8.ValidString(c.Text):
			t.Fatalf("chunk %d: cut inside a character: %q", i, c.Text)
		case c.Tokens != opts.Count(c.Prefix+c.Text):
			t.Fatalf("chunk %d: Tokens %d, counted %d", i, c.Tokens, opts.Count(c.Prefix+c.Text))
		case c.Tokens > opts.Size && utf8.RuneCountInString(c.Text) > 1:
			t.Fatalf("chunk %d: %d tokens > Size %d: %q", i, c.Tokens, opts.Size, c.Prefix+c.Text)
		case c.Start > next:
			t.Fatalf("chunk %d starts at %d, leaving %q uncovered", i, c.Start, text[next:c.Start])
		}
		if i > 0 {
			p := chunks[i-1]
			if c.Start <= p.Start || c.End <= p.End {
				t.Fatalf("chunk %d [%d:%d] does not move forward from [%d:%d]", i, c.Start, c.End, p.Start, p.End)
			}
			if c.Start < p.End {
				if opts.Overlap <= 0 {
					t.Fatalf("chunk %d overlaps chunk %d without Overlap", i, i-1)
				}
				if n := opts.Count(text[c.Start:p.End]); n > min(opts.Overlap, opts.Size/2) {
					t.Fatalf("chunk %d repeats %d tokens, Overlap %d", i, n, opts.Overlap)
				}
			}
		}
		next = max(next, skipSpaceIn(text, c.End))
	}
	if next != len(text) {
		t.Fatalf("input from %d not covered: %q", next, text[next:])
	}
}

func skipSpaceIn(text string, pos int) int {
	s := &splitter{text: text}
	return s.skipSpace(pos, len(text))
}
