package extract

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/ascii85"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/ledongthuc/pdf"

	"github.com/nodus-os/nodus/internal/nodus"
)

// pdfMaxObjects caps the object numbers a PDF may declare; the library
// allocates its cross-reference table from them up front.
const pdfMaxObjects = 1 << 20

// extractPDF reads a PDF's text with github.com/ledongthuc/pdf. The library
// panics on malformed input and trusts sizes written in the file, so:
// the raw bytes are checked first (prescanPDF); the library reads the file
// through a ReaderAt that stops it when ctx ends or after a read budget; the
// page tree is walked here with depth and node caps rather than by the
// library (which loops on cyclic trees); and page content is interpreted
// here, writing into the bounded writer.
func extractPDF(ctx context.Context, r io.ReaderAt, size int64, lim Limits) (Document, error) {
	data := make([]byte, size)
	if n, err := r.ReadAt(data, 0); n < len(data) {
		return Document{}, fmt.Errorf("extract: read input: %w", err)
	}
	if err := prescanPDF(ctx, data, lim); err != nil {
		return Document{}, err
	}
	g := &guardedReaderAt{ctx: ctx, r: bytes.NewReader(data), budget: 64*size + pdfReadSlack}
	pr, err := pdf.NewReader(g, size)
	if err != nil {
		var stop *stopError
		switch {
		case errors.As(err, &stop):
			return Document{}, stop
		case errors.Is(err, pdf.ErrInvalidPassword):
			return Document{}, nodus.Errorf(nodus.EINVALID, "the PDF file is password-protected; upload a copy without a password")
		}
		return Document{}, nodus.WrapError(err, nodus.EINVALID, "the PDF file is damaged or not a PDF: "+pdfDetail(err))
	}

	var doc Document
	w := newWriter(ctx, lim.MaxTextBytes)
	var firstErr error
	pageNum := 0
	err = walkPages(pr, lim, func(page pdf.Value) error {
		pageNum++
		text, err := pageText(ctx, page, w.max-w.b.Len(), lim)
		if err != nil {
			var stop *stopError
			if errors.As(err, &stop) {
				return stop
			}
			if firstErr == nil {
				firstErr = err
			}
			doc.Warnings = append(doc.Warnings, fmt.Sprintf("page %d could not be read", pageNum))
			return nil
		}
		text = normalize(text)
		if text == "" {
			return nil
		}
		w.block()
		doc.Sections = append(doc.Sections, Section{Label: "page " + strconv.Itoa(pageNum), Offset: w.b.Len()})
		w.WriteString(text)
		return w.err
	})
	if err != nil {
		return Document{}, err
	}
	doc.Text = w.String()
	if strings.TrimSpace(doc.Text) == "" {
		if firstErr != nil {
			return Document{}, nodus.WrapError(firstErr, nodus.EINVALID, "the PDF file is damaged: its pages could not be read ("+pdfDetail(firstErr)+")")
		}
		if pageNum == 0 {
			return Document{}, nodus.Errorf(nodus.EINVALID, "the PDF file is damaged: it has no pages")
		}
		return Document{}, nodus.Errorf(nodus.EINVALID, "the PDF file has no text to extract (scanned pages need OCR, which is not supported)")
	}
	doc.Title = pdfTitle(pr)
	return doc, nil
}

// pdfDetail shortens a library error for a user-facing message.
func pdfDetail(err error) string {
	s := err.Error()
	var rp *recoveredPanic
	if errors.As(err, &rp) {
		s = fmt.Sprint(rp.value)
	}
	if strings.HasPrefix(s, "runtime error") {
		return "unexpected structure"
	}
	s = strings.ReplaceAll(s, "%%EOF", "%EOF")
	for _, p := range []string{"malformed PDF: ", "malformed PDF file: ", "not a PDF file: "} {
		s = strings.TrimPrefix(s, p)
	}
	return cleanLine(s, 160)
}

func pdfTitle(pr *pdf.Reader) (title string) {
	defer func() {
		if recover() != nil {
			title = ""
		}
	}()
	return pr.Trailer().Key("Info").Key("Title").Text()
}

// walkPages calls fn for each page in document order. The tree is walked
// with an explicit stack, at most lim.MaxDepth deep and visiting at most
// pdfMaxObjects nodes, so a cyclic tree is an error rather than a hang.
func walkPages(pr *pdf.Reader, lim Limits, fn func(pdf.Value) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if stop, ok := p.(*stopError); ok {
				err = stop
				return
			}
			err = nodus.WrapError(&recoveredPanic{value: p}, nodus.EINVALID, "the PDF file is damaged: its page tree could not be read")
		}
	}()
	type node struct {
		v     pdf.Value
		depth int
	}
	stack := []node{{pr.Trailer().Key("Root").Key("Pages"), 0}}
	visited := 0
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited++; visited > pdfMaxObjects {
			return nodus.Errorf(nodus.EINVALID, "the PDF file is damaged: its page tree does not end")
		}
		kids := n.v.Key("Kids")
		if n.v.Key("Type").Name() == "Page" || kids.Kind() != pdf.Array {
			if n.v.Kind() == pdf.Dict {
				if err := fn(n.v); err != nil {
					return err
				}
			}
			continue
		}
		if n.depth >= lim.MaxDepth {
			return nodus.Errorf(nodus.EINVALID, "the PDF file is damaged: its page tree is nested deeper than %d levels", lim.MaxDepth)
		}
		k := kids.Len()
		if len(stack)+k > pdfMaxObjects {
			return nodus.Errorf(nodus.EINVALID, "the PDF file is damaged: its page tree is too large")
		}
		for i := k - 1; i >= 0; i-- {
			stack = append(stack, node{kids.Index(i), n.depth + 1})
		}
	}
	return nil
}

// pageText interprets one page's content stream and returns its text, at
// most max bytes. Library panics are returned as errors; a stop (context,
// budget, output full) is returned as *stopError.
func pageText(ctx context.Context, v pdf.Value, max int, lim Limits) (text string, err error) {
	defer func() {
		if p := recover(); p != nil {
			if stop, ok := p.(*stopError); ok {
				err = stop
				return
			}
			err = &recoveredPanic{value: p}
		}
	}()
	contents := v.Key("Contents")
	if contents.Kind() == pdf.Null {
		return "", nil
	}
	// Count what the content inflates to before interpreting it, so the
	// interpreter never sees more than the limit.
	var streams []pdf.Value
	if contents.Kind() == pdf.Array {
		for i := range min(contents.Len(), 10_000) {
			streams = append(streams, contents.Index(i))
		}
	} else {
		streams = append(streams, contents)
	}
	var total int64
	for _, s := range streams {
		n, err := countStream(ctx, s.Reader(), lim.MaxUncompressedBytes-total)
		if err != nil {
			return "", err
		}
		total += n
	}

	page := pdf.Page{V: v}
	var b strings.Builder
	fonts := map[string]pdf.TextEncoding{}
	var enc pdf.TextEncoding
	ops := 0
	write := func(s string) {
		if b.Len()+len(s) > max {
			panic(&stopError{errTextTooLarge})
		}
		b.WriteString(s)
	}
	show := func(raw string) {
		if enc == nil {
			write(raw)
			return
		}
		write(enc.Decode(raw))
	}
	newline := func() {
		if s := b.String(); s != "" && s[len(s)-1] != '\n' {
			write("\n")
		}
	}
	space := func() {
		if s := b.String(); s != "" && s[len(s)-1] != '\n' && s[len(s)-1] != ' ' {
			write(" ")
		}
	}
	pdf.Interpret(contents, func(stk *pdf.Stack, op string) {
		if ops++; ops%256 == 0 {
			if err := ctx.Err(); err != nil {
				panic(&stopError{err})
			}
		}
		args := make([]pdf.Value, stk.Len())
		for i := len(args) - 1; i >= 0; i-- {
			args[i] = stk.Pop()
		}
		switch op {
		case "BT", "ET", "T*":
			newline()
		case "Td", "TD":
			if len(args) == 2 && args[1].Float64() != 0 {
				newline()
			} else {
				space()
			}
		case "Tf":
			if len(args) != 2 {
				return
			}
			name := args[0].Name()
			e, ok := fonts[name]
			if !ok {
				f := page.Font(name)
				e = f.Encoder()
				fonts[name] = e
			}
			enc = e
		case "Tj":
			if len(args) == 1 {
				show(args[0].RawString())
			}
		case "'", "\"":
			newline()
			if len(args) >= 1 {
				show(args[len(args)-1].RawString())
			}
		case "TJ":
			if len(args) != 1 {
				return
			}
			a := args[0]
			for i := range a.Len() {
				x := a.Index(i)
				switch x.Kind() {
				case pdf.String:
					show(x.RawString())
				case pdf.Integer, pdf.Real:
					// A large negative adjustment is how many PDFs write a
					// space between words.
					if x.Float64() < -180 {
						space()
					}
				}
			}
		}
	})
	return b.String(), nil
}

// countStream reads a stream to its end without keeping it and returns its
// length, failing beyond limit bytes.
func countStream(ctx context.Context, rc io.ReadCloser, limit int64) (int64, error) {
	defer rc.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, &stopError{err}
		}
		m, err := rc.Read(buf)
		n += int64(m)
		if n > limit {
			return n, nodus.Errorf(nodus.EINVALID, "the PDF file is refused: a compressed stream expands beyond %s", human(limit))
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// pdfReadSlack is what the library may read on top of 64 times the file
// before reading is taken to loop. A valid file is read a few times over;
// a cyclic /Prev chain is read in small pieces until the budget is spent,
// which at 16 MiB took seconds under the race detector on a loaded
// machine, so the slack is kept small.
const pdfReadSlack = 2 << 20

// guardedReaderAt is the file as the PDF library sees it. Each read checks
// ctx and a total read budget and panics with *stopError when either is
// spent: the library has loops (a cyclic /Prev chain) that only reading
// can interrupt.
type guardedReaderAt struct {
	ctx    context.Context
	r      io.ReaderAt
	budget int64
}

func (g *guardedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := g.ctx.Err(); err != nil {
		panic(&stopError{err})
	}
	if g.budget -= int64(len(p)); g.budget < 0 {
		panic(&stopError{nodus.Errorf(nodus.EINVALID, "the PDF file is damaged: reading it does not end")})
	}
	return g.r.ReadAt(p, off)
}

// prescanPDF refuses, before the library sees them, the raw values that
// would make it allocate without bound or inflate without bound:
// object counts (/Size, /Index, xref subsections) above pdfMaxObjects,
// /W widths above 8, /Columns above 65536 or indirect /DecodeParms and
// /Columns (which could hide such values in compressed objects), and
// FlateDecode streams inflating beyond lim.MaxUncompressedBytes.
func prescanPDF(ctx context.Context, data []byte, lim Limits) error {
	refuse := func(format string, args ...any) error {
		return nodus.Errorf(nodus.EINVALID, "the PDF file is refused: "+format, args...)
	}
	for i := 0; i < len(data); i++ {
		if i%(1<<20) == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch data[i] {
		case '/':
			name, j := pdfName(data, i+1)
			i = j - 1
			switch name {
			case "Size":
				if v, _, ok := pdfInt(data, j); ok && (v < 0 || v > pdfMaxObjects) {
					return refuse("it declares %d objects, more than %d", v, pdfMaxObjects)
				}
			case "W", "Index":
				nums, ok := pdfIntArray(data, j)
				if !ok {
					continue
				}
				for k, v := range nums {
					if name == "W" && (v < 0 || v > 8) {
						return refuse("a cross-reference stream has field width %d", v)
					}
					if name == "Index" && (v < 0 || v > pdfMaxObjects || k%2 == 1 && nums[k-1]+v > pdfMaxObjects) {
						return refuse("it declares objects beyond %d", pdfMaxObjects)
					}
				}
			case "Columns":
				v, k, ok := pdfInt(data, j)
				if ok && pdfIsRef(data, k) {
					return refuse("indirect /Columns are not supported")
				}
				if ok && (v < 0 || v > 1<<16) {
					return refuse("a stream has %d columns", v)
				}
			case "DecodeParms":
				k := pdfSkipSpace(data, j)
				if k < len(data) && data[k] >= '0' && data[k] <= '9' {
					return refuse("indirect /DecodeParms are not supported")
				}
				if k < len(data) && data[k] == '[' {
					end := bytes.IndexByte(data[k:min(len(data), k+4096)], ']')
					if end < 0 || bytes.Contains(data[k:k+end], []byte("R")) {
						return refuse("indirect /DecodeParms are not supported")
					}
				}
			}
		case 'x':
			if pdfKeyword(data, i, "xref") {
				if err := checkXrefTable(data, i+4); err != nil {
					return err
				}
			}
		case 's':
			if pdfKeyword(data, i, "stream") {
				end, err := checkStream(ctx, data, i+len("stream"), lim)
				if err != nil {
					return err
				}
				i = end - 1
			}
		}
	}
	return nil
}

// checkXrefTable walks the subsection headers of a classic xref table the
// way the library does and refuses object numbers beyond pdfMaxObjects.
func checkXrefTable(data []byte, i int) error {
	for {
		i = pdfSkipSpace(data, i)
		if bytes.HasPrefix(data[i:], []byte("trailer")) || i >= len(data) {
			return nil
		}
		start, j, ok1 := pdfInt(data, i)
		n, k, ok2 := pdfInt(data, j)
		if !ok1 || !ok2 {
			return nil // the library refuses it as malformed
		}
		if start < 0 || n < 0 || start > pdfMaxObjects || n > pdfMaxObjects || start+n > pdfMaxObjects {
			return nodus.Errorf(nodus.EINVALID, "the PDF file is refused: its cross-reference table declares objects beyond %d", pdfMaxObjects)
		}
		i = k
		for range 3 * n {
			i = pdfSkipSpace(data, i)
			for i < len(data) && !pdfSpace(data[i]) {
				i++
			}
			if i >= len(data) {
				return nil
			}
		}
	}
}

// checkStream inflates the stream whose data follows the "stream" keyword
// at i, when it is zlib (possibly inside ASCII85), counting bytes against
// lim.MaxUncompressedBytes. It returns where scanning may resume.
func checkStream(ctx context.Context, data []byte, i int, lim Limits) (int, error) {
	if i < len(data) && data[i] == '\r' {
		i++
	}
	if i < len(data) && data[i] == '\n' {
		i++
	}
	end := bytes.Index(data[i:], []byte("endstream"))
	if end < 0 {
		end = len(data)
	} else {
		end += i
	}
	try := func(r io.Reader) error {
		zr, err := zlib.NewReader(r)
		if err != nil {
			return nil // not zlib: nothing to inflate
		}
		_, err = countStream(ctx, zr, lim.MaxUncompressedBytes)
		var ne *nodus.Error
		var stop *stopError
		if errors.As(err, &ne) || errors.As(err, &stop) {
			return err
		}
		return nil // corrupt data is the library's to report
	}
	// The library reads /Length bytes, which may run past "endstream";
	// inflating to the end of the file covers either.
	if err := try(bytes.NewReader(data[i:])); err != nil {
		return 0, err
	}
	head := data[i:min(end, i+64)]
	if len(bytes.TrimSpace(head)) > 0 && bytes.IndexFunc(bytes.TrimSpace(head), func(r rune) bool { return r < '!' && !pdfSpace(byte(r)) || r > 'u' && r != '~' && r != 'z' }) < 0 {
		if err := try(ascii85.NewDecoder(&spaceFree{r: bytes.NewReader(data[i:])})); err != nil {
			return 0, err
		}
	}
	return max(end, i), nil
}

// spaceFree drops white space, which ASCII85 data may contain but
// encoding/ascii85 rejects, and ends at "~>".
type spaceFree struct {
	r    io.ByteReader
	done bool
}

func (s *spaceFree) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && !s.done {
		c, err := s.r.ReadByte()
		if err != nil {
			if n == 0 {
				return 0, err
			}
			break
		}
		if c == '~' {
			s.done = true
			break
		}
		if !pdfSpace(c) {
			p[n] = c
			n++
		}
	}
	if n == 0 && s.done {
		return 0, io.EOF
	}
	return n, nil
}

func pdfSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == 0
}

func pdfDelim(c byte) bool {
	return strings.IndexByte("()<>[]{}/%", c) >= 0
}

// pdfKeyword reports whether kw stands alone at data[i:].
func pdfKeyword(data []byte, i int, kw string) bool {
	if !bytes.HasPrefix(data[i:], []byte(kw)) {
		return false
	}
	if i > 0 && !pdfSpace(data[i-1]) && !pdfDelim(data[i-1]) {
		return false
	}
	j := i + len(kw)
	return j >= len(data) || pdfSpace(data[j]) || pdfDelim(data[j])
}

// pdfName reads a name starting at i (after the slash), decoding #xx
// escapes as the library does, and returns it with the index after it.
func pdfName(data []byte, i int) (string, int) {
	var b []byte
	for i < len(data) && !pdfSpace(data[i]) && !pdfDelim(data[i]) && len(b) < 128 {
		c := data[i]
		if c == '#' && i+2 < len(data) {
			if v, err := strconv.ParseUint(string(data[i+1:i+3]), 16, 8); err == nil {
				c = byte(v)
				i += 2
			}
		}
		b = append(b, c)
		i++
	}
	return string(b), i
}

func pdfSkipSpace(data []byte, i int) int {
	for i < len(data) {
		switch {
		case pdfSpace(data[i]):
			i++
		case data[i] == '%':
			for i < len(data) && data[i] != '\n' && data[i] != '\r' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// pdfInt reads an integer after optional space; values too large for
// int64 read as math.MaxInt64.
func pdfInt(data []byte, i int) (int64, int, bool) {
	i = pdfSkipSpace(data, i)
	j := i
	if j < len(data) && (data[j] == '+' || data[j] == '-') {
		j++
	}
	k := j
	for k < len(data) && data[k] >= '0' && data[k] <= '9' {
		k++
	}
	if k == j || k < len(data) && data[k] == '.' {
		return 0, i, false
	}
	v, err := strconv.ParseInt(string(data[i:k]), 10, 64)
	if err != nil {
		v = math.MaxInt64
		if data[i] == '-' {
			v = math.MinInt64
		}
	}
	return v, k, true
}

// pdfIsRef reports whether "G R" follows at i (an indirect reference).
func pdfIsRef(data []byte, i int) bool {
	_, j, ok := pdfInt(data, i)
	if !ok {
		return false
	}
	j = pdfSkipSpace(data, j)
	return j < len(data) && data[j] == 'R'
}

// pdfIntArray reads "[n n …]" of integers at i; ok is false for anything
// else.
func pdfIntArray(data []byte, i int) ([]int64, bool) {
	i = pdfSkipSpace(data, i)
	if i >= len(data) || data[i] != '[' {
		return nil, false
	}
	i++
	var nums []int64
	for len(nums) < 4096 {
		i = pdfSkipSpace(data, i)
		if i < len(data) && data[i] == ']' {
			return nums, true
		}
		v, j, ok := pdfInt(data, i)
		if !ok {
			return nums, true
		}
		nums = append(nums, v)
		i = j
	}
	return nums, true
}
