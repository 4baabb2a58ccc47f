package extract

import (
	"archive/zip"
	"compress/flate"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
)

// extractDOCX reads a Word document. The whole archive is checked before
// any entry is inflated: the entry count, every name (zip-slip), the
// declared total and each entry's declared ratio. Entries are then read
// through a counter that enforces the same limits on the bytes actually
// inflated, since declared sizes can lie.
func extractDOCX(ctx context.Context, r io.ReaderAt, size int64, lim Limits) (Document, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return Document{}, nodus.WrapError(err, nodus.EINVALID, "the DOCX file is not a valid ZIP archive")
	}
	if len(zr.File) > lim.MaxZipEntries {
		return Document{}, nodus.Errorf(nodus.EINVALID, "the DOCX file is refused: it has %d entries, more than the %d allowed", len(zr.File), lim.MaxZipEntries)
	}
	var total uint64
	files := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		if !safeZipName(f.Name) {
			return Document{}, nodus.Errorf(nodus.EINVALID, "the DOCX file is refused: entry %q has an unsafe path", cleanLine(f.Name, 100))
		}
		total += f.UncompressedSize64
		if total > uint64(lim.MaxUncompressedBytes) {
			return Document{}, nodus.Errorf(nodus.ETOOLARGE, "the DOCX file is refused: it expands to more than %s", human(lim.MaxUncompressedBytes))
		}
		if f.UncompressedSize64 > ratioFloor && f.UncompressedSize64/max(f.CompressedSize64, 1) > uint64(lim.MaxCompressionRatio) {
			return Document{}, bombError(f.Name, lim)
		}
		files[f.Name] = f
	}
	d := &docxReader{ctx: ctx, files: files, lim: lim, budget: lim.MaxUncompressedBytes}

	main := d.mainPart()
	if files[main] == nil {
		return Document{}, nodus.Errorf(nodus.EINVALID, "the file is a ZIP archive but not a Word (DOCX) document: it has no %s", main)
	}
	styles := d.headingStyles(path.Join(path.Dir(main), "styles.xml"))
	w := newWriter(ctx, lim.MaxTextBytes)
	title, err := d.body(w, main, styles)
	if err != nil {
		return Document{}, err
	}
	if t := d.coreTitle(); t != "" {
		title = t
	}
	return Document{Title: title, Text: normalize(w.String())}, nil
}

// safeZipName refuses names that could escape an extraction directory or
// mean different files on different systems: absolute paths, drive
// letters, backslashes, ".." elements and NULs.
func safeZipName(name string) bool {
	if name == "" || strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") {
		return false
	}
	if len(name) >= 2 && name[1] == ':' {
		return false
	}
	for el := range strings.SplitSeq(name, "/") {
		if el == ".." {
			return false
		}
	}
	return true
}

func bombError(name string, lim Limits) error {
	return nodus.Errorf(nodus.EINVALID, "the DOCX file is refused: entry %q expands more than %d times (a zip bomb)", cleanLine(name, 100), lim.MaxCompressionRatio)
}

type docxReader struct {
	ctx    context.Context
	files  map[string]*zip.File
	lim    Limits
	budget int64 // uncompressed bytes left to read across entries
}

// open returns a reader of an entry that fails once the entry inflates
// past its declared size, the ratio limit or the archive budget.
func (d *docxReader) open(name string) (io.ReadCloser, error) {
	f := d.files[name]
	if f == nil {
		return nil, nodus.Errorf(nodus.EINVALID, "the DOCX file has no %s", name)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, nodus.WrapError(err, nodus.EINVALID, fmt.Sprintf("the DOCX file is damaged: cannot open %s", cleanLine(name, 100)))
	}
	return &countingReader{r: rc, d: d, f: f}, nil
}

type countingReader struct {
	r io.ReadCloser
	d *docxReader
	f *zip.File
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.d.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.d.budget -= int64(n)
	switch {
	case c.d.budget < 0:
		return n, nodus.Errorf(nodus.ETOOLARGE, "the DOCX file is refused: it expands to more than %s", human(c.d.lim.MaxUncompressedBytes))
	case uint64(c.n) > c.f.UncompressedSize64:
		return n, nodus.Errorf(nodus.EINVALID, "the DOCX file is refused: entry %q is larger than it declares", cleanLine(c.f.Name, 100))
	case c.n > ratioFloor && c.n/max(int64(c.f.CompressedSize64), 1) > c.d.lim.MaxCompressionRatio:
		return n, bombError(c.f.Name, c.d.lim)
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// decoder returns an XML decoder over an entry.
func (d *docxReader) decoder(name string) (*xml.Decoder, io.Closer, error) {
	rc, err := d.open(name)
	if err != nil {
		return nil, nil, err
	}
	dec := xml.NewDecoder(rc)
	// Word writes UTF-8; anything else is read as is rather than refused.
	dec.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil }
	return dec, rc, nil
}

// mainPart finds the main document part from _rels/.rels, falling back to
// the usual word/document.xml.
func (d *docxReader) mainPart() string {
	const fallback = "word/document.xml"
	dec, c, err := d.decoder("_rels/.rels")
	if err != nil {
		return fallback
	}
	defer c.Close()
	for {
		tok, err := dec.Token()
		if err != nil {
			return fallback
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "Relationship" {
			continue
		}
		if strings.HasSuffix(attr(se, "Type"), "/officeDocument") {
			target := strings.TrimPrefix(attr(se, "Target"), "/")
			if target != "" && safeZipName(target) && d.files[path.Clean(target)] != nil {
				return path.Clean(target)
			}
			return fallback
		}
	}
}

// headingStyles maps style ids to heading levels, from the style names
// ("heading 1", "Title") and outline levels in styles.xml, so localized
// style ids ("berschrift1") are headings too.
func (d *docxReader) headingStyles(name string) map[string]int {
	levels := map[string]int{}
	dec, c, err := d.decoder(name)
	if err != nil {
		return levels
	}
	defer c.Close()
	var id string
	for {
		tok, err := dec.Token()
		if err != nil {
			return levels
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "style":
			id = attr(se, "styleId")
		case "name":
			if n := styleHeadingLevel(attr(se, "val")); n > 0 && id != "" {
				levels[id] = n
			}
		case "outlineLvl":
			if n, err := strconv.Atoi(attr(se, "val")); err == nil && n >= 0 && n < 9 && id != "" && levels[id] == 0 {
				levels[id] = n + 1
			}
		}
	}
}

// styleHeadingLevel reads a heading level from a style name or id:
// "heading 2", "Heading2" → 2, "Title" → 1.
func styleHeadingLevel(s string) int {
	s = strings.ToLower(strings.ReplaceAll(s, " ", ""))
	if s == "title" {
		return 1
	}
	if rest, ok := strings.CutPrefix(s, "heading"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 1 && n <= 9 {
			return min(n, 6)
		}
	}
	return 0
}

// body writes the paragraphs and tables of the main part and returns the
// text of the first heading.
func (d *docxReader) body(w *writer, name string, styles map[string]int) (string, error) {
	dec, c, err := d.decoder(name)
	if err != nil {
		return "", err
	}
	defer c.Close()
	var (
		para     strings.Builder // the current paragraph's text
		level    int             // its heading level
		list     bool            // it is a list item
		inText   bool            // inside <w:t>
		cells    []string        // the current table row
		tables   int             // open tables
		title    string
		depth    int
		inParaPr bool
	)
	flush := func() {
		text := strings.TrimSpace(para.String())
		para.Reset()
		defer func() { level, list = 0, false }()
		if text == "" {
			return
		}
		if tables > 0 {
			if len(cells) > 0 {
				cells[len(cells)-1] = strings.TrimSpace(cells[len(cells)-1] + " " + strings.ReplaceAll(text, "\n", " "))
			}
			return
		}
		switch {
		case level > 0:
			if title == "" {
				title = text
			}
			w.block()
			w.WriteString(strings.Repeat("#", level) + " " + strings.ReplaceAll(text, "\n", " "))
			w.block()
		case list:
			w.line()
			w.WriteString("- " + text + "\n")
		default:
			w.block()
			w.WriteString(text)
			w.block()
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			flush()
			return title, w.err
		}
		if err != nil {
			var ne *nodus.Error
			if errors.As(err, &ne) {
				return "", ne
			}
			if ctxErr := d.ctx.Err(); ctxErr != nil {
				return "", ctxErr
			}
			var corrupt flate.CorruptInputError
			if errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrChecksum) || errors.As(err, &corrupt) || errors.Is(err, io.ErrUnexpectedEOF) {
				return "", nodus.Errorf(nodus.EINVALID, "the DOCX file is damaged: %s cannot be decompressed", name)
			}
			return "", nodus.Errorf(nodus.EINVALID, "the DOCX file is damaged: %s is not valid XML (%v)", name, err)
		}
		if w.err != nil {
			return "", w.err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth++; depth > 4*d.lim.MaxDepth {
				return "", nodus.Errorf(nodus.EINVALID, "the DOCX file is nested too deeply")
			}
			switch t.Name.Local {
			case "p":
				if para.Len() > 0 {
					flush()
				}
			case "pPr":
				inParaPr = true
			case "pStyle":
				if inParaPr {
					v := attr(t, "val")
					level = styles[v]
					if level == 0 {
						level = styleHeadingLevel(v)
					}
				}
			case "numPr":
				if inParaPr {
					list = true
				}
			case "t":
				inText = true
			case "tab":
				if !inParaPr {
					para.WriteString("\t")
				}
			case "br", "cr":
				para.WriteString("\n")
			case "tbl":
				flush()
				if tables == 0 {
					w.block()
				}
				tables++
			case "tr":
				if tables == 1 {
					cells = cells[:0]
				}
			case "tc":
				if tables == 1 {
					cells = append(cells, "")
				}
			}
		case xml.EndElement:
			depth--
			switch t.Name.Local {
			case "p":
				flush()
			case "pPr":
				inParaPr = false
			case "t":
				inText = false
			case "tr":
				if tables == 1 && len(cells) > 0 {
					w.line()
					w.WriteString("| " + strings.Join(cells, " | ") + " |\n")
				}
			case "tbl":
				if tables > 0 {
					tables--
				}
				if tables == 0 {
					w.block()
				}
			}
		case xml.CharData:
			if inText && para.Len() < d.lim.MaxTextBytes {
				para.Write(t)
			}
		}
	}
}

// coreTitle returns dc:title from docProps/core.xml, if any.
func (d *docxReader) coreTitle() string {
	dec, c, err := d.decoder("docProps/core.xml")
	if err != nil {
		return ""
	}
	defer c.Close()
	in := false
	var b strings.Builder
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.StartElement:
			in = t.Name.Local == "title"
		case xml.EndElement:
			if in {
				return b.String()
			}
		case xml.CharData:
			if in && b.Len() < 1024 {
				b.Write(t)
			}
		}
	}
}

func attr(se xml.StartElement, local string) string {
	for _, a := range se.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}
