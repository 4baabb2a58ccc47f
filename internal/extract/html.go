package extract

import (
	"errors"
	"io"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/nodus-os/nodus/internal/nodus"
)

// htmlSkip reports whether a's content is never document text.
func htmlSkip(a atom.Atom) bool {
	switch a {
	case atom.Script, atom.Style, atom.Nav, atom.Noscript, atom.Template,
		atom.Svg, atom.Math, atom.Iframe, atom.Object, atom.Canvas,
		atom.Select, atom.Button, atom.Textarea:
		return true
	}
	return false
}

// htmlBlock reports whether a starts and ends a paragraph.
func htmlBlock(a atom.Atom) bool {
	switch a {
	case atom.P, atom.Div, atom.Section, atom.Article, atom.Main, atom.Header,
		atom.Footer, atom.Aside, atom.Blockquote, atom.Pre, atom.Dl, atom.Table,
		atom.Figure, atom.Figcaption, atom.Form, atom.Fieldset, atom.Address,
		atom.Hr, atom.Details, atom.Summary, atom.Body, atom.Html:
		return true
	}
	return false
}

// writeHTML writes the text of an HTML document with a streaming
// tokenizer (no tree, so no recursion and no nesting limit to hit) and
// returns its <title>.
func writeHTML(w *writer, src string, lim Limits) (string, error) {
	z := html.NewTokenizer(strings.NewReader(src))
	var (
		title     strings.Builder
		inTitle   bool
		skip      []atom.Atom // open skipped elements
		pre       int
		inCell    bool
		rowCells  int
		listDepth int
	)
	for {
		tt := z.Next()
		if w.err != nil {
			return "", w.err
		}
		switch tt {
		case html.ErrorToken:
			if err := z.Err(); err != nil && !errors.Is(err, io.EOF) {
				return "", nodus.Errorf(nodus.EINVALID, "the HTML file could not be read: %v", err)
			}
			return title.String(), nil
		case html.TextToken:
			if inTitle {
				if title.Len() < 1024 {
					title.Write(z.Text())
				}
				continue
			}
			if len(skip) > 0 {
				continue
			}
			text := string(z.Text())
			if pre == 0 {
				text = collapseSpace(text)
				if w.last == '\n' || w.b.Len() == 0 || w.last == ' ' {
					text = strings.TrimLeft(text, " ")
				}
			}
			w.WriteString(text)
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if a == atom.Title {
				inTitle = tt == html.StartTagToken
				continue
			}
			if htmlSkip(a) {
				if tt == html.StartTagToken && len(skip) < lim.MaxDepth {
					skip = append(skip, a)
				}
				continue
			}
			if len(skip) > 0 {
				continue
			}
			switch {
			case headingLevel(a) > 0:
				w.block()
				w.WriteString(strings.Repeat("#", headingLevel(a)) + " ")
			case a == atom.Li:
				w.line()
				w.WriteString(strings.Repeat("  ", max(0, min(listDepth, 8)-1)) + "- ")
			case a == atom.Ul || a == atom.Ol:
				listDepth++
				if listDepth == 1 {
					w.block()
				}
			case a == atom.Tr:
				w.line()
				w.WriteString("|")
				rowCells = 0
			case a == atom.Td || a == atom.Th:
				if rowCells == 0 && w.last != '|' {
					w.line()
					w.WriteString("|")
				}
				inCell = true
				rowCells++
				w.WriteString(" ")
			case a == atom.Br:
				if inCell {
					w.WriteString(" ")
				} else {
					w.WriteString("\n")
				}
			case a == atom.Dt || a == atom.Dd:
				w.line()
			case htmlBlock(a):
				if a == atom.Pre {
					pre++
				}
				w.block()
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if a == atom.Title {
				inTitle = false
				continue
			}
			if htmlSkip(a) {
				if n := len(skip); n > 0 && skip[n-1] == a {
					skip = skip[:n-1]
				}
				continue
			}
			if len(skip) > 0 {
				continue
			}
			switch {
			case headingLevel(a) > 0:
				w.block()
			case a == atom.Td || a == atom.Th:
				inCell = false
				w.WriteString(" |")
			case a == atom.Tr:
				w.line()
			case a == atom.Ul || a == atom.Ol:
				if listDepth > 0 {
					listDepth--
				}
				if listDepth == 0 {
					w.block()
				}
			case htmlBlock(a):
				if a == atom.Pre && pre > 0 {
					pre--
				}
				w.block()
			}
		}
	}
}

func headingLevel(a atom.Atom) int {
	switch a {
	case atom.H1:
		return 1
	case atom.H2:
		return 2
	case atom.H3:
		return 3
	case atom.H4:
		return 4
	case atom.H5:
		return 5
	case atom.H6:
		return 6
	}
	return 0
}

// collapseSpace turns every run of white space into one space.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\r', '\f', '\u00a0':
			if !space {
				b.WriteByte(' ')
			}
			space = true
		default:
			b.WriteRune(r)
			space = false
		}
	}
	return b.String()
}
