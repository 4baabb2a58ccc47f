package fulltext

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTerms(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"empty", "", nil},
		{"only separators", "  \t\n.,;!? -- ", nil},
		{"stems and lower-cases", "Running runs RUN", []string{"run", "run", "run"}},
		{"porter2 stem", "studies", []string{"studi"}},
		{"porter2 exceptions", "skies dying", []string{"sky", "die"}},
		{"stop words dropped whatever the case", "The cat is Not on THE mat", []string{"cat", "mat"}},
		{"only stop words", "the and of it", nil},
		{"digits and mixed tokens kept whole", "p53 2017 covid19 H2O", []string{"p53", "2017", "covid19", "h2o"}},
		{"three-letter words stemmed", "its ies", []string{"it", "ie"}},
		{"short words kept whole", "ox Is ab", []string{"ox", "ab"}},
		{"non-ASCII lower-cased, not stemmed", "Ünïcode Straße", []string{"ünïcode", "straße"}},
		{"non-ASCII inflection not stemmed", "naïvely", []string{"naïvely"}},
		{"combining mark inside a word", "cafe\u0301s", []string{"cafe\u0301s"}},
		{"CJK run is one word", "日本語テキスト", []string{"日本語テキスト"}},
		{"cyrillic", "Привет Мир", []string{"привет", "мир"}},
		{"splits on punctuation", "foo-bar,baz.qux/quux", []string{"foo", "bar", "baz", "qux", "quux"}},
		{"splits on apostrophes", "don't John's", []string{"don", "t", "john", "s"}},
		{"splits on typographic apostrophe", "don’t", []string{"don", "t"}},
		{"underscore separates", "snake_case", []string{"snake", "case"}},
		{"emoji separates", "cats🙂dogs", []string{"cat", "dog"}},
		{"invalid UTF-8 separates", "cats\xffdogs", []string{"cat", "dog"}},
		{"word of MaxTermBytes kept", strings.Repeat("7", MaxTermBytes), []string{strings.Repeat("7", MaxTermBytes)}},
		{"longer word dropped", "a1 " + strings.Repeat("7", MaxTermBytes+1) + " b2", []string{"a1", "b2"}},
		{"multi-byte word of MaxTermBytes kept", strings.Repeat("é", MaxTermBytes/2), []string{strings.Repeat("é", MaxTermBytes/2)}},
		{"longer multi-byte word dropped", strings.Repeat("é", MaxTermBytes/2) + "x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Terms(tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("Terms(%q)\n got %q\nwant %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestTokensOffsets(t *testing.T) {
	tests := []struct {
		text  string
		words []string // text[Start:End] of each token
		terms []string
	}{
		{"Hello, Wörld!", []string{"Hello", "Wörld"}, []string{"hello", "wörld"}},
		{"  The Running-dogs", []string{"Running", "dogs"}, []string{"run", "dog"}},
		{"ÜBER-cool Ünïcode", []string{"ÜBER", "cool", "Ünïcode"}, []string{"über", "cool", "ünïcode"}},
		{"日本語、テキスト。", []string{"日本語", "テキスト"}, []string{"日本語", "テキスト"}},
		// Lower-casing "İ" shrinks it from 2 bytes to 1: the offsets are
		// still those of the text as written.
		{"İSTANBUL x İzmir", []string{"İSTANBUL", "x", "İzmir"}, []string{"istanbul", "x", "izmir"}},
		{"end at text end", []string{"end", "text", "end"}, []string{"end", "text", "end"}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			var words, terms []string
			Tokens(tt.text, func(tok Token) {
				words = append(words, tt.text[tok.Start:tok.End])
				terms = append(terms, tok.Term)
			})
			if !slices.Equal(words, tt.words) {
				t.Errorf("words\n got %q\nwant %q", words, tt.words)
			}
			if !slices.Equal(terms, tt.terms) {
				t.Errorf("terms\n got %q\nwant %q", terms, tt.terms)
			}
		})
	}
}

func TestAnalyze(t *testing.T) {
	tests := []struct {
		text  string
		want  Vector
		enc   string
		words string
	}{
		{"", Vector{Terms: []TermFreq{}}, "", ""},
		{"the of and", Vector{Terms: []TermFreq{}}, "", ""},
		{
			"The cat sat on the cat's mat",
			Vector{Terms: []TermFreq{{"cat", 2}, {"mat", 1}, {"s", 1}, {"sat", 1}}, Length: 5},
			"cat 2 mat 1 s 1 sat 1", "cat mat s sat",
		},
		{
			"Running runs; the runner ran. 2017 p53 p53 p53",
			Vector{Terms: []TermFreq{{"2017", 1}, {"p53", 3}, {"ran", 1}, {"run", 2}, {"runner", 1}}, Length: 8},
			"2017 1 p53 3 ran 1 run 2 runner 1", "2017 p53 ran run runner",
		},
		{
			"Zebra zebra Ärger apple",
			Vector{Terms: []TermFreq{{"appl", 1}, {"zebra", 2}, {"ärger", 1}}, Length: 4},
			"appl 1 zebra 2 ärger 1", "appl zebra ärger",
		},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			v := Analyze(tt.text)
			if !slices.Equal(v.Terms, tt.want.Terms) || v.Length != tt.want.Length {
				t.Fatalf("Analyze = %+v, want %+v", v, tt.want)
			}
			if got := v.Encode(); got != tt.enc {
				t.Errorf("Encode = %q, want %q", got, tt.enc)
			}
			if got := v.Words(); got != tt.words {
				t.Errorf("Words = %q, want %q", got, tt.words)
			}
			if d := Decode(v.Encode(), v.Length); !slices.Equal(d.Terms, v.Terms) || d.Length != v.Length {
				t.Errorf("Decode(Encode) = %+v, want %+v", d, v)
			}
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	vectors := []Vector{
		{},
		{Length: 7},
		{Terms: []TermFreq{{"a", 1}}, Length: 1},
		{Terms: []TermFreq{{"2017", 12}, {"p53", 1000000}, {"ünïcode", 3}}, Length: 1000016},
		{Terms: []TermFreq{{strings.Repeat("x", MaxTermBytes), 0}}, Length: 0},
	}
	for _, v := range vectors {
		enc := v.Encode()
		d := Decode(enc, v.Length)
		if !slices.Equal(d.Terms, v.Terms) || d.Length != v.Length {
			t.Errorf("Decode(%q, %d) = %+v, want %+v", enc, v.Length, d, v)
		}
	}
	if got := (Vector{}).Words(); got != "" {
		t.Errorf("empty Words = %q", got)
	}
}

func TestScanEncoded(t *testing.T) {
	tests := []struct {
		enc  string
		want []TermFreq
	}{
		{"", nil},
		{"a", nil},
		{"a ", nil},
		{"a x", nil},
		{" a 1", nil},
		{"a  1", nil},
		{"a -1", nil},
		{"a 1", []TermFreq{{"a", 1}}},
		{"a 1 ", []TermFreq{{"a", 1}}},
		{"a 1 b", []TermFreq{{"a", 1}}},
		{"a 1 b ", []TermFreq{{"a", 1}}},
		{"a 1 b x c 3", []TermFreq{{"a", 1}}},
		{"a 1 b 2", []TermFreq{{"a", 1}, {"b", 2}}},
		{"ab 12 cd 034 ü 0", []TermFreq{{"ab", 12}, {"cd", 34}, {"ü", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.enc, func(t *testing.T) {
			var got []TermFreq
			scanEncoded(tt.enc, func(term string, freq int) { got = append(got, TermFreq{term, freq}) })
			if !slices.Equal(got, tt.want) {
				t.Errorf("scanEncoded(%q) = %v, want %v", tt.enc, got, tt.want)
			}
		})
	}
}

// TestStemKeepsFirstByte checks the assumption Snippet relies on to skip
// stemming words: a term starts with its lower-cased word's first byte.
func TestStemKeepsFirstByte(t *testing.T) {
	words := []string{
		"yelling", "youth", "Yearly", "skies", "dying", "lying", "tying", "idly", "gently", "ugly",
		"early", "only", "singly", "news", "howe", "atlas", "cosmos", "bias", "andes", "inning",
		"outing", "canning", "herring", "earring", "proceed", "exceed", "succeed", "generously",
		"communism", "arsenal", "aaa", "ies", "sss", "eed", "ing", "ly", "yy", "yyy", "'s",
	}
	for _, w := range words {
		Tokens(w, func(tok Token) {
			if want := strings.ToLower(w[tok.Start:tok.End])[0]; tok.Term[0] != want {
				t.Errorf("%q: term %q starts with %q, want %q", w, tok.Term, tok.Term[0], want)
			}
		})
	}
}

func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		"", "The quick brown foxes jumped over the lazy dogs.",
		"p53 2017 covid19 Ünïcode Straße İSTANBUL",
		"don't stop-believing; studies, skies & yelling",
		"日本語テキスト、Привет мир", "cafe\u0301 \xff\xfe broken",
		strings.Repeat("ab", 40) + " " + strings.Repeat("é", 40),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var toks []Token
		Tokens(text, func(tok Token) { toks = append(toks, tok) })
		prevEnd := 0
		for _, tok := range toks {
			if tok.Start < prevEnd || tok.End <= tok.Start || tok.End > len(text) {
				t.Fatalf("token %+v out of order or bounds (previous end %d, text %d bytes)", tok, prevEnd, len(text))
			}
			prevEnd = tok.End
			word := text[tok.Start:tok.End]
			if !utf8.ValidString(word) {
				t.Fatalf("word %q is not valid UTF-8", word)
			}
			if tok.Term == "" || len(tok.Term) > MaxTermBytes || strings.ContainsAny(tok.Term, " \t\n") {
				t.Fatalf("bad term %q of word %q", tok.Term, word)
			}
			if tok.Term[0] != strings.ToLower(word)[0] {
				t.Fatalf("term %q does not start like word %q", tok.Term, word)
			}
			// A word analysed alone gives the same term.
			if got := Terms(word); len(got) != 1 || got[0] != tok.Term {
				t.Fatalf("Terms(%q) = %q, want [%q]", word, got, tok.Term)
			}
		}

		v := Analyze(text)
		if v.Length != len(toks) {
			t.Fatalf("Length %d, want %d tokens", v.Length, len(toks))
		}
		sum := 0
		for i, tf := range v.Terms {
			if tf.Freq <= 0 || i > 0 && v.Terms[i-1].Term >= tf.Term {
				t.Fatalf("terms not distinct, sorted and counted: %v", v.Terms)
			}
			sum += tf.Freq
		}
		if sum != v.Length {
			t.Fatalf("frequencies sum to %d, want %d", sum, v.Length)
		}
		if d := Decode(v.Encode(), v.Length); !slices.Equal(d.Terms, v.Terms) || d.Length != v.Length {
			t.Fatalf("Decode(Encode) = %+v, want %+v", d, v)
		}
		if w := v.Words(); len(strings.Fields(w)) != len(v.Terms) {
			t.Fatalf("Words %q does not hold %d terms", w, len(v.Terms))
		}
	})
}
