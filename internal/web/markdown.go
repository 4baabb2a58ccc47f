package web

import (
	"html"
	"html/template"
	"net/url"
	"regexp"
	"strings"
)

// This file renders chat messages' Markdown. It is a small, strict subset
// written here rather than a library: every character of the input is
// escaped, and the only markup that comes out is the fixed set below,
// built by this code, so there is no HTML pass-through to sanitise and no
// sanitiser to keep configured (goldmark with raw HTML off, plus
// bluemonday, would be two modules and ~30k lines for the same result on
// what models write: paragraphs, emphasis, code, lists, headings, quotes
// and links).
//
// Blocks: paragraphs (lines joined by <br>), ``` fenced code, # headings
// (as h3-h6: they sit inside a message), - * + and 1. lists, > quotes.
// Inline: `code`, **strong**, *em* and _em_, [text](url) for http, https
// and mailto URLs only (anything else keeps its text, unlinked), and \
// escapes.

// maxInlineDepth bounds emphasis nesting, so crafted input cannot recurse
// deeply.
const maxInlineDepth = 8

var (
	headingLine = regexp.MustCompile(`^(#{1,6})\s+(.*)$`)
	bulletLine  = regexp.MustCompile(`^\s{0,3}[-*+]\s+(.*)$`)
	orderedLine = regexp.MustCompile(`^\s{0,3}\d{1,9}[.)]\s+(.*)$`)
	quoteLine   = regexp.MustCompile(`^\s{0,3}>\s?(.*)$`)
)

// renderMarkdown renders src as safe HTML.
func renderMarkdown(src string) template.HTML {
	var b strings.Builder
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var para []string
	flush := func() {
		if len(para) == 0 {
			return
		}
		b.WriteString("<p>")
		for i, l := range para {
			if i > 0 {
				b.WriteString("<br>")
			}
			b.WriteString(inline(strings.TrimSpace(l), 0))
		}
		b.WriteString("</p>")
		para = para[:0]
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			flush()
			var code []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				code = append(code, lines[i])
			}
			b.WriteString("<pre><code>")
			b.WriteString(template.HTMLEscapeString(strings.Join(code, "\n")))
			b.WriteString("</code></pre>")
		case trimmed == "":
			flush()
		case headingLine.MatchString(trimmed):
			flush()
			m := headingLine.FindStringSubmatch(trimmed)
			tag := "h" + string(rune('0'+min(len(m[1])+2, 6)))
			b.WriteString("<" + tag + ">" + inline(m[2], 0) + "</" + tag + ">")
		case bulletLine.MatchString(line), orderedLine.MatchString(line):
			flush()
			re, tag := bulletLine, "ul"
			if !bulletLine.MatchString(line) {
				re, tag = orderedLine, "ol"
			}
			b.WriteString("<" + tag + ">")
			for ; i < len(lines) && re.MatchString(lines[i]); i++ {
				b.WriteString("<li>" + inline(re.FindStringSubmatch(lines[i])[1], 0) + "</li>")
			}
			i--
			b.WriteString("</" + tag + ">")
		case quoteLine.MatchString(line):
			flush()
			b.WriteString("<blockquote><p>")
			for first := true; i < len(lines) && quoteLine.MatchString(lines[i]); i++ {
				if !first {
					b.WriteString("<br>")
				}
				first = false
				b.WriteString(inline(strings.TrimSpace(quoteLine.FindStringSubmatch(lines[i])[1]), 0))
			}
			i--
			b.WriteString("</p></blockquote>")
		default:
			para = append(para, line)
		}
	}
	flush()
	return template.HTML(b.String())
}

// inline renders one line's inline markup. Each search for a closing
// marker that fails is remembered, so unmatched markers cost one scan in
// all rather than one each.
func inline(s string, depth int) string {
	var b strings.Builder
	noClose := map[string]bool{}
	closer := func(marker string, from int) int {
		if noClose[marker] {
			return -1
		}
		j := strings.Index(s[from:], marker)
		if j < 0 {
			noClose[marker] = true
			return -1
		}
		return from + j
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && strings.IndexByte("\\`*_[]()#+-.!>", s[i+1]) >= 0:
			b.WriteString(template.HTMLEscapeString(s[i+1 : i+2]))
			i += 2
			continue
		case c == '`':
			if j := closer("`", i+1); j > i+1 {
				b.WriteString("<code>" + template.HTMLEscapeString(s[i+1:j]) + "</code>")
				i = j + 1
				continue
			}
		case c == '*' && strings.HasPrefix(s[i:], "**") && depth < maxInlineDepth:
			if j := closer("**", i+2); j > i+2 {
				b.WriteString("<strong>" + inline(s[i+2:j], depth+1) + "</strong>")
				i = j + 2
				continue
			}
		case (c == '*' || c == '_') && depth < maxInlineDepth && i+1 < len(s) && s[i+1] != ' ' && s[i+1] != c &&
			(i == 0 || !isWordByte(s[i-1])):
			if j := closer(string(c), i+1); j > i+1 && s[j-1] != ' ' && (j+1 == len(s) || !isWordByte(s[j+1])) {
				b.WriteString("<em>" + inline(s[i+1:j], depth+1) + "</em>")
				i = j + 1
				continue
			}
		case c == '[':
			if mid := closer("](", i+1); mid > i {
				if end := closingParen(s[mid+2:]); end >= 0 {
					text, target := s[i+1:mid], strings.TrimSpace(s[mid+2:mid+2+end])
					if href, ok := safeLink(target); ok {
						b.WriteString(`<a href="` + template.HTMLEscapeString(href) + `" rel="noopener noreferrer nofollow">` +
							inline(text, depth+1) + "</a>")
					} else {
						b.WriteString(inline(text, depth+1))
					}
					i = mid + 2 + end + 1
					continue
				}
			}
		}
		// One UTF-8 sequence is escaped whole: HTMLEscapeString leaves
		// multi-byte runes alone, and escaping byte by byte would not.
		n := 1
		for n < 4 && i+n < len(s) && s[i+n]&0xC0 == 0x80 {
			n++
		}
		b.WriteString(template.HTMLEscapeString(s[i : i+n]))
		i += n
	}
	return b.String()
}

// closingParen is the index of the ')' that closes a link target, after
// any balanced pairs inside it (URLs such as Wikipedia's hold some), or -1.
func closingParen(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth == 0 {
				return i
			}
			depth--
		case '\n':
			return -1
		}
	}
	return -1
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// safeLink accepts absolute http, https and mailto URLs only: javascript:,
// data:, vbscript: and relative or scheme-relative URLs stay text.
func safeLink(raw string) (string, bool) {
	if raw == "" || strings.ContainsAny(raw, " \t\n\r\"'<>`\\") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if u.Host == "" {
			return "", false
		}
	case "mailto":
	default:
		return "", false
	}
	return u.String(), true
}

// snippetHTML renders a search or citation snippet: the services give it
// as escaped text with the matches in <mark> elements. Rather than trust
// that, it is split on the <mark> tags, every piece unescaped and escaped
// again, and only balanced <mark> elements put back: whatever else the
// text holds comes out as text.
func snippetHTML(s string) template.HTML {
	var b strings.Builder
	open := false
	for len(s) > 0 {
		tag := "<mark>"
		if open {
			tag = "</mark>"
		}
		j := strings.Index(s, tag)
		if j < 0 {
			b.WriteString(template.HTMLEscapeString(html.UnescapeString(s)))
			break
		}
		b.WriteString(template.HTMLEscapeString(html.UnescapeString(s[:j])))
		b.WriteString(tag)
		open = !open
		s = s[j+len(tag):]
	}
	if open {
		b.WriteString("</mark>")
	}
	return template.HTML(b.String())
}
