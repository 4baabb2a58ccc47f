package fulltext

import (
	"html"
	"strings"
	"unicode/utf8"
)

// Snippet returns the passage of text, about width bytes long, that holds
// the most distinct terms of query, as HTML: the text escaped, each
// matching word inside <mark>…</mark>, and "…" where the passage cuts the
// text. With no matching word it is the start of the text.
func Snippet(text, query string, width int) string {
	width = max(width, 0)
	want := make(map[string]bool)
	starts := make(map[[2]byte]bool)
	var short [256]bool // one-byte terms: "oed" stems to "o"
	for _, t := range ParseQuery(query) {
		want[t.Term] = true
		starts[start(t.Term)] = true
		short[t.Term[0]] = short[t.Term[0]] || len(t.Term) == 1
		if len(t.Term) > 1 && t.Term[1] == 'i' {
			starts[[2]byte{t.Term[0], 'y'}] = true // dying → die, lying → lie
		}
	}
	// An English stem keeps its word's first two bytes (but for the
	// -ying words above), so only words starting like a query term are
	// worth stemming.
	var marks []Token
	tokens(text, func(lower []byte) bool { return short[lower[0]] || starts[start(string(lower))] }, func(t Token) {
		if want[t.Term] {
			marks = append(marks, t)
		}
	})

	// The window starting at a match that covers the most distinct terms.
	from, to := 0, min(len(text), width)
	bestDistinct, bestCount := 0, 0
	for i := range marks {
		distinct := make(map[string]bool)
		j := i
		for ; j < len(marks) && marks[j].End-marks[i].Start <= width; j++ {
			distinct[marks[j].Term] = true
		}
		if len(distinct) > bestDistinct || len(distinct) == bestDistinct && j-i > bestCount {
			bestDistinct, bestCount = len(distinct), j-i
			// Centre the matches in the window.
			span := marks[j-1].End - marks[i].Start
			from = max(0, marks[i].Start-(width-span)/2)
			to = min(len(text), from+width)
			from = max(0, min(from, to-width))
		}
	}
	from, to = wordStart(text, from), wordEnd(text, to)
	if from > to {
		from = to
	}

	var b strings.Builder
	if from > 0 {
		b.WriteString("…")
	}
	at := from
	for _, m := range marks {
		if m.Start < from || m.End > to {
			continue
		}
		b.WriteString(html.EscapeString(text[at:m.Start]))
		b.WriteString("<mark>")
		b.WriteString(html.EscapeString(text[m.Start:m.End]))
		b.WriteString("</mark>")
		at = m.End
	}
	b.WriteString(html.EscapeString(text[at:to]))
	if to < len(text) {
		b.WriteString("…")
	}
	return b.String()
}

// wordStart moves i forward to the start of a word (or of the text), so a
// snippet does not begin mid-word or mid-rune.
func wordStart(text string, i int) int {
	if i <= 0 {
		return 0
	}
	for i < len(text) && !utf8.RuneStart(text[i]) {
		i++
	}
	r, _ := utf8.DecodeLastRuneInString(text[:i])
	if !isWordRune(r) {
		return i
	}
	for i < len(text) {
		r, n := utf8.DecodeRuneInString(text[i:])
		if !isWordRune(r) {
			return i + n
		}
		i += n
	}
	return i
}

// wordEnd moves i back to the end of a word (or of the text).
func wordEnd(text string, i int) int {
	if i >= len(text) {
		return len(text)
	}
	for i > 0 && !utf8.RuneStart(text[i]) {
		i--
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	if !isWordRune(r) {
		return i
	}
	for i > 0 {
		r, n := utf8.DecodeLastRuneInString(text[:i])
		if !isWordRune(r) {
			return i - n
		}
		i -= n
	}
	return i
}

// start is a term's first two bytes (one, and a zero, for a short term).
func start(term string) [2]byte {
	var b [2]byte
	copy(b[:], term)
	return b
}
