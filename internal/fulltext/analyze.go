package fulltext

import (
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kljensen/snowball/english"
)

// MaxTermBytes bounds a term: longer runs of letters and digits (hashes,
// base64, run-together junk) are not words anyone searches for, and the
// bound keeps every term far below PostgreSQL's 2,047-byte lexeme limit.
const MaxTermBytes = 64

// stopWords is Lucene's English stop set. On SciFact it ranks as well as
// no stop words or the Snowball list (174 words), within 0.003 nDCG@10,
// while stemming is worth 0.03 (docs/benchmarks.md, "Full-text
// analysis"); dropping the commonest words keeps their long candidate
// lists out of every search.
var stopWords = map[string]bool{
	"a": true, "an": true, "and": true, "are": true, "as": true, "at": true, "be": true, "but": true, "by": true,
	"for": true, "if": true, "in": true, "into": true, "is": true, "it": true, "no": true, "not": true, "of": true,
	"on": true, "or": true, "such": true, "that": true, "the": true, "their": true, "then": true, "there": true,
	"these": true, "they": true, "this": true, "to": true, "was": true, "will": true, "with": true,
}

// Token is one term of a text with where its word lies in the text.
type Token struct {
	Term       string // analysed: lower-cased and stemmed
	Start, End int    // byte offsets of the word in the text
}

// Tokens calls fn for each term of text in order, with its word's offsets.
// A word is a run of letters, digits and combining marks; it is
// lower-cased, dropped if it is a stop word or longer than MaxTermBytes,
// and reduced to its English (Porter2) stem. The same analysis runs on
// documents and on queries, so a query for "running" finds "runs".
func Tokens(text string, fn func(Token)) {
	tokens(text, nil, fn)
}

// tokens is Tokens, skipping the words whose lower-cased form want
// refuses before stemming them (nil wants all).
func tokens(text string, want func(lower []byte) bool, fn func(Token)) {
	var lower []byte
	start := -1
	emit := func(end int) {
		word := text[start:end]
		lower = appendLower(lower[:0], word)
		if len(lower) > MaxTermBytes || stopWords[string(lower)] || want != nil && !want(lower) {
			return
		}
		fn(Token{Term: stem(lower), Start: start, End: end})
	}
	for i, r := range text {
		if isWordRune(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			emit(i)
			start = -1
		}
	}
	if start >= 0 {
		emit(len(text))
	}
}

// Terms returns the analysed terms of text in order.
func Terms(text string) []string {
	var out []string
	Tokens(text, func(t Token) { out = append(out, t.Term) })
	return out
}

func isWordRune(r rune) bool {
	return r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') ||
		r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r))
}

func appendLower(dst []byte, word string) []byte {
	for i := 0; i < len(word); i++ {
		c := word[i]
		if c >= utf8.RuneSelf {
			return append(dst[:0], strings.ToLower(word)...)
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// stem reduces a lower-cased word to its English stem. Words with digits
// or letters outside ASCII are kept whole: the English rules would only
// mangle them.
func stem(word []byte) string {
	if len(word) <= 2 {
		return string(word)
	}
	for _, c := range word {
		if c < 'a' || c > 'z' {
			return string(word)
		}
	}
	return english.Stem(string(word), true)
}

// Vector is a text's bag of terms: each distinct term with how often it
// occurs, sorted by term, and the text's length in terms (BM25's document
// length).
type Vector struct {
	Terms  []TermFreq
	Length int
}

// TermFreq is a term and its frequency in one text.
type TermFreq struct {
	Term string
	Freq int
}

// Analyze returns the term vector of text.
func Analyze(text string) Vector {
	counts := make(map[string]int)
	n := 0
	Tokens(text, func(t Token) {
		counts[t.Term]++
		n++
	})
	v := Vector{Terms: make([]TermFreq, 0, len(counts)), Length: n}
	for t, f := range counts {
		v.Terms = append(v.Terms, TermFreq{t, f})
	}
	slices.SortFunc(v.Terms, func(a, b TermFreq) int { return strings.Compare(a.Term, b.Term) })
	return v
}

// Encode returns the vector's terms as stored: "term freq term freq …",
// sorted by term. Terms hold no spaces, so the form parses back without
// escaping.
func (v Vector) Encode() string {
	var b strings.Builder
	for i, t := range v.Terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.Term)
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(t.Freq))
	}
	return b.String()
}

// Words returns the vector's distinct terms joined by spaces: the text the
// database's own full-text index is given.
func (v Vector) Words() string {
	var b strings.Builder
	for i, t := range v.Terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.Term)
	}
	return b.String()
}

// scanEncoded calls fn for each term and frequency of an encoded vector,
// without allocating. It stops at the first malformed pair.
func scanEncoded(enc string, fn func(term string, freq int)) {
	for len(enc) > 0 {
		sp := strings.IndexByte(enc, ' ')
		if sp <= 0 {
			return
		}
		term := enc[:sp]
		enc = enc[sp+1:]
		f, end := 0, 0
		for end < len(enc) && enc[end] >= '0' && enc[end] <= '9' {
			f = f*10 + int(enc[end]-'0')
			end++
		}
		if end == 0 {
			return
		}
		fn(term, f)
		if end < len(enc) {
			end++ // the separating space
		}
		enc = enc[end:]
	}
}

// ScanVector calls fn for each term and frequency of an encoded vector,
// in term order, without allocating.
func ScanVector(enc string, fn func(term string, freq int)) { scanEncoded(enc, fn) }

// FreqIn returns how often an encoded vector holds term (0 if not at all).
func FreqIn(enc, term string) int {
	freq := 0
	scanEncoded(enc, func(t string, f int) {
		if t == term {
			freq = f
		}
	})
	return freq
}

// Decode parses an encoded vector's terms; length is stored beside it.
func Decode(enc string, length int) Vector {
	v := Vector{Length: length}
	scanEncoded(enc, func(term string, freq int) { v.Terms = append(v.Terms, TermFreq{term, freq}) })
	return v
}
