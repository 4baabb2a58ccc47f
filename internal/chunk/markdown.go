package chunk

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file reads the Markdown structure Split needs: blocks (headings,
// fences, tables, paragraphs), the heading path of each, and the places a
// chunk may end (cuts), each with how good a place it is.

type blockKind uint8

const (
	kindText blockKind = iota // paragraph and list lines
	kindHeading
	kindFence
	kindTable
)

// span is a byte range of the input.
type span struct{ start, end int }

// block is a run of lines of one kind. Its start is its first non-space
// byte and its end follows its last non-space byte; lines holds each
// non-blank line the same way.
type block struct {
	kind  blockKind
	start int
	end   int
	lines []span
	// path is the heading path in effect in the block: for a heading, the
	// path it opens.
	path []heading
}

// heading is one entry of a heading path.
type heading struct {
	level int
	title string
	start int // where the heading line starts
}

// level is how good a place to cut is: the higher, the better.
type level uint8

const (
	lvWord level = iota + 1
	lvSentence
	lvLine
	lvParagraph
	lvHeading
	lvEnd // the end of a section
)

// cut is a place a chunk may end and the next may start: a non-space byte
// (or the end of a section), with the space before it trimmed away.
type cut struct {
	pos int
	lv  level
}

// parse splits text into blocks.
func parse(text string) []block {
	var (
		blocks []block
		cur    *block // the open text or table block
		fence  *block // the open fence
		fChar  byte
		fLen   int
		stack  []heading
	)
	closeCur := func() {
		if cur != nil {
			blocks = append(blocks, *cur)
			cur = nil
		}
	}
	for ls := 0; ls < len(text); {
		le := strings.IndexByte(text[ls:], '\n')
		next := len(text)
		if le < 0 {
			le = len(text)
		} else {
			le += ls
			next = le + 1
		}
		line := trimSpan(text, ls, le)
		raw := text[ls:le]
		ls = next

		if fence != nil {
			if line.end > line.start {
				fence.lines = append(fence.lines, line)
				fence.end = line.end
			}
			if c, n := fenceMarker(raw); c == fChar && n >= fLen && strings.TrimFunc(strings.TrimLeft(raw, " ")[n:], unicode.IsSpace) == "" {
				blocks = append(blocks, *fence)
				fence = nil
			}
			continue
		}
		if line.end == line.start {
			closeCur()
			continue
		}
		if c, n := fenceMarker(raw); n > 0 {
			closeCur()
			fChar, fLen = c, n
			fence = &block{kind: kindFence, start: line.start, end: line.end, lines: []span{line}, path: stack}
			continue
		}
		if lvl, title, ok := atxHeading(raw); ok {
			closeCur()
			for len(stack) > 0 && stack[len(stack)-1].level >= lvl {
				stack = stack[:len(stack)-1]
			}
			// A new array: paths already handed out keep their entries.
			stack = append(stack[:len(stack):len(stack)], heading{level: lvl, title: title, start: line.start})
			blocks = append(blocks, block{kind: kindHeading, start: line.start, end: line.end, lines: []span{line}, path: stack})
			continue
		}
		kind := kindText
		if text[line.start] == '|' {
			kind = kindTable
		}
		if cur != nil && cur.kind != kind {
			closeCur()
		}
		if cur == nil {
			cur = &block{kind: kind, start: line.start, path: stack}
		}
		cur.lines = append(cur.lines, line)
		cur.end = line.end
	}
	closeCur()
	if fence != nil { // an unclosed fence runs to the end
		blocks = append(blocks, *fence)
	}
	return blocks
}

// trimSpan is [start, end) without its leading and trailing white space;
// an all-space range comes back empty, at end.
func trimSpan(text string, start, end int) span {
	s := text[start:end]
	t := strings.TrimLeftFunc(s, unicode.IsSpace)
	start += len(s) - len(t)
	t = strings.TrimRightFunc(t, unicode.IsSpace)
	return span{start, start + len(t)}
}

// fenceMarker reports the fence character and its run length if line
// opens or closes a code fence (at most three spaces of indentation, then
// three or more backticks or tildes).
func fenceMarker(line string) (byte, int) {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 || len(t) < 3 || (t[0] != '`' && t[0] != '~') {
		return 0, 0
	}
	n := 0
	for n < len(t) && t[n] == t[0] {
		n++
	}
	if n < 3 {
		return 0, 0
	}
	return t[0], n
}

// atxHeading parses "## Title ##": at most three spaces of indentation,
// one to six #, then a space or the end of the line.
func atxHeading(line string) (int, string, bool) {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 {
		return 0, "", false
	}
	n := 0
	for n < len(t) && t[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || (n < len(t) && t[n] != ' ' && t[n] != '\t' && t[n] != '\r') {
		return 0, "", false
	}
	title := strings.TrimSpace(t[n:])
	// A closing run of # preceded by a space is not part of the title.
	if c := strings.TrimRight(title, "#"); c != title && (c == "" || c[len(c)-1] == ' ' || c[len(c)-1] == '\t') {
		title = strings.TrimSpace(c)
	}
	return n, title, true
}

// isListItem reports whether line (starting at its first non-space byte)
// starts a list item: "- ", "* ", "+ ", "1. " or "1) ".
func isListItem(line string) bool {
	if len(line) >= 2 && (line[0] == '-' || line[0] == '*' || line[0] == '+') && (line[1] == ' ' || line[1] == '\t') {
		return true
	}
	n := 0
	for n < len(line) && n < 9 && line[n] >= '0' && line[n] <= '9' {
		n++
	}
	return n > 0 && n+1 < len(line) && (line[n] == '.' || line[n] == ')') && (line[n+1] == ' ' || line[n+1] == '\t')
}

// endsSentence reports whether word (a run of non-space characters) ends a
// sentence: it ends with . ! ? or … before any closing quotes, brackets or
// emphasis. A word with another dot inside ("e.g.", "U.S.", "3.2.") or of
// one letter or digits only ("J.", "12.") is taken for an abbreviation or
// a list number.
func endsSentence(word string) bool {
	w := strings.TrimRight(word, `)]}"'*_`+"`\u201d\u2019\u00bb")
	if w == "" {
		return false
	}
	r, n := utf8.DecodeLastRuneInString(w)
	switch r {
	case '!', '?', '\u2026', '\u3002', '\uff01', '\uff1f':
		return true
	case '.':
		body := w[:len(w)-n]
		if strings.ContainsRune(body, '.') || utf8.RuneCountInString(body) < 2 {
			return false
		}
		return strings.IndexFunc(body, func(r rune) bool { return !unicode.IsDigit(r) }) >= 0
	}
	return false
}

// isCJKStop reports a full stop that needs no space after it.
func isCJKStop(r rune) bool { return r == '\u3002' || r == '\uff01' || r == '\uff1f' }

// wordCuts appends the cuts inside [start, end): before every word that
// follows white space (lvSentence after a sentence end when sentences is
// set, else lvWord), and after a CJK full stop that is followed directly
// by text.
func wordCuts(text string, start, end int, sentences bool, out []cut) []cut {
	wordStart := start
	inSpace := false
	for i := start; i < end; {
		c := text[i]
		var r rune = rune(c)
		w := 1
		if c >= utf8.RuneSelf {
			r, w = utf8.DecodeRuneInString(text[i:end])
		}
		space := c == ' ' || c == '\t' || c == '\n' || c == '\r' || (c >= utf8.RuneSelf && unicode.IsSpace(r)) || c == '\v' || c == '\f'
		switch {
		case space && !inSpace:
			inSpace = true
		case !space && inSpace:
			lv := lvWord
			if sentences && i > start {
				word := strings.TrimRightFunc(text[wordStart:i], unicode.IsSpace)
				if endsSentence(word) {
					lv = lvSentence
				}
			}
			out = append(out, cut{i, lv})
			inSpace = false
			wordStart = i
		case !space && sentences && isCJKStop(r) && i+w < end:
			if nr, _ := utf8.DecodeRuneInString(text[i+w : end]); !unicode.IsSpace(nr) && !unicode.In(nr, unicode.Pe, unicode.Pf) {
				out = append(out, cut{i + w, lvSentence})
			}
		}
		i += w
	}
	return out
}

// blockCuts appends the cuts at the start of b and inside it. afterHeading
// says b follows a heading directly; fits says whether a span fits in one
// chunk, which keeps fences, table rows and headings whole.
func blockCuts(text string, b *block, afterHeading bool, fits func(start, end int) bool, out []cut) []cut {
	lv := lvParagraph
	switch {
	case afterHeading:
		lv = lvWord
	case b.kind == kindHeading:
		lv = lvHeading
	}
	out = append(out, cut{b.start, lv})
	switch b.kind {
	case kindHeading:
		if !fits(b.start, b.end) {
			out = wordCuts(text, b.start, b.end, false, out)
		}
	case kindFence:
		if !fits(b.start, b.end) {
			for i, l := range b.lines {
				if i > 0 {
					out = append(out, cut{l.start, lvLine})
				}
				out = wordCuts(text, l.start, l.end, false, out)
			}
		}
	case kindTable:
		for i, l := range b.lines {
			if i > 0 {
				out = append(out, cut{l.start, lvLine})
			}
			if !fits(l.start, l.end) {
				out = wordCuts(text, l.start, l.end, false, out)
			}
		}
	case kindText:
		for i, l := range b.lines {
			if i > 0 {
				// A soft line break inside a paragraph is only as good
				// as the sentence or word boundary it also is.
				lv := lvWord
				prev := text[b.lines[i-1].start:b.lines[i-1].end]
				if isListItem(text[l.start:l.end]) {
					lv = lvLine
				} else if endsSentence(lastWord(prev)) {
					lv = lvSentence
				}
				out = append(out, cut{l.start, lv})
			}
			out = wordCuts(text, l.start, l.end, true, out)
		}
	}
	return out
}

// lastWord is the last run of non-space characters of s.
func lastWord(s string) string {
	s = strings.TrimRightFunc(s, unicode.IsSpace)
	if j := strings.LastIndexFunc(s, unicode.IsSpace); j >= 0 {
		_, w := utf8.DecodeRuneInString(s[j:])
		return s[j+w:]
	}
	return s
}
