package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Type is a supported document type. The string is stored with the
// document (file_type), so it never changes once released.
type Type string

const (
	TypeText     Type = "text"
	TypeMarkdown Type = "markdown"
	TypeHTML     Type = "html"
	TypeCSV      Type = "csv"
	TypeJSON     Type = "json"
	TypePDF      Type = "pdf"
	TypeDOCX     Type = "docx"
)

// Valid reports whether t is a supported type.
func (t Type) Valid() bool {
	switch t {
	case TypeText, TypeMarkdown, TypeHTML, TypeCSV, TypeJSON, TypePDF, TypeDOCX:
		return true
	}
	return false
}

// MIME returns the media type to serve a file of type t with.
func (t Type) MIME() string {
	switch t {
	case TypeText:
		return "text/plain; charset=utf-8"
	case TypeMarkdown:
		return "text/markdown; charset=utf-8"
	case TypeHTML:
		return "text/html; charset=utf-8"
	case TypeCSV:
		return "text/csv; charset=utf-8"
	case TypeJSON:
		return "application/json"
	case TypePDF:
		return "application/pdf"
	case TypeDOCX:
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	}
	return "application/octet-stream"
}

// label names t in error messages.
func (t Type) label() string {
	switch t {
	case TypeText:
		return "text"
	case TypeMarkdown:
		return "Markdown"
	case TypeDOCX:
		return "DOCX"
	}
	return strings.ToUpper(string(t))
}

// Limits bounds one extraction. A zero field takes its DefaultLimits value.
type Limits struct {
	// MaxInputBytes is the largest file accepted (ETOOLARGE beyond).
	MaxInputBytes int64
	// MaxTextBytes is the largest extracted text (ETOOLARGE beyond); the
	// text is never truncated silently.
	MaxTextBytes int
	// MaxRows caps CSV records, the header included.
	MaxRows int
	// MaxDepth caps JSON and HTML nesting and the PDF page tree.
	MaxDepth int
	// MaxZipEntries caps the entries of a DOCX archive.
	MaxZipEntries int
	// MaxUncompressedBytes caps the declared total of a DOCX archive, the
	// bytes actually inflated from it, and each inflated PDF stream.
	MaxUncompressedBytes int64
	// MaxCompressionRatio caps uncompressed/compressed for any DOCX entry
	// larger than 1 MiB uncompressed (smaller ones may legitimately
	// compress better, and cannot hurt). PDF streams have no ratio cap
	// (blank page images compress 1000×), only MaxUncompressedBytes each.
	MaxCompressionRatio int64
	// Timeout bounds the wall time of one Extract call.
	Timeout time.Duration
}

// DefaultLimits returns the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		MaxInputBytes:        50 << 20,
		MaxTextBytes:         20 << 20,
		MaxRows:              100_000,
		MaxDepth:             64,
		MaxZipEntries:        1000,
		MaxUncompressedBytes: 256 << 20,
		MaxCompressionRatio:  100,
		Timeout:              60 * time.Second,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxInputBytes <= 0 {
		l.MaxInputBytes = d.MaxInputBytes
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = d.MaxTextBytes
	}
	if l.MaxRows <= 0 {
		l.MaxRows = d.MaxRows
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxZipEntries <= 0 {
		l.MaxZipEntries = d.MaxZipEntries
	}
	if l.MaxUncompressedBytes <= 0 {
		l.MaxUncompressedBytes = d.MaxUncompressedBytes
	}
	if l.MaxCompressionRatio <= 0 {
		l.MaxCompressionRatio = d.MaxCompressionRatio
	}
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	return l
}

// ratioFloor is the uncompressed size below which compression ratios are
// not checked.
const ratioFloor = 1 << 20

// Document is the text of one file.
type Document struct {
	Type  Type
	Title string // from the format's metadata or first heading; may be empty
	Text  string
	// Sections marks where parts of Text begin (PDF: one per page); nil
	// for formats without such parts.
	Sections []Section
	// Warnings lists parts that were skipped (a PDF page that could not
	// be read), for showing next to a completed document.
	Warnings []string
}

// Section is a labelled part of Document.Text.
type Section struct {
	Label  string // "page 3"
	Offset int    // byte offset of the part in Document.Text
}

// Extract reads the document of type t from r (size bytes) and returns its
// text. Errors are *nodus.Error as described in the package doc. The
// extraction runs in its own goroutine and Extract returns when it ends,
// when ctx ends or when limits.Timeout passes, whichever comes first.
func Extract(ctx context.Context, r io.ReaderAt, size int64, t Type, limits Limits) (Document, error) {
	lim := limits.withDefaults()
	if !t.Valid() {
		return Document{}, nodus.Errorf(nodus.EINVALID, "unsupported document type %q", t)
	}
	if size <= 0 {
		return Document{}, nodus.Errorf(nodus.EINVALID, "the file is empty")
	}
	if size > lim.MaxInputBytes {
		return Document{}, nodus.Errorf(nodus.ETOOLARGE, "the file is %s, larger than the %s limit", human(size), human(lim.MaxInputBytes))
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()

	type result struct {
		doc Document
		err error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			if p := recover(); p != nil {
				res = result{err: panicError(t, p)}
			}
			done <- res
		}()
		res.doc, res.err = extract(ctx, r, size, t, lim)
	}()
	select {
	case res := <-done:
		if res.err != nil {
			return Document{}, finishError(ctx, t, res.err, lim)
		}
		doc := res.doc
		doc.Type = t
		doc.Title = cleanLine(doc.Title, 300)
		if strings.TrimSpace(doc.Text) == "" {
			return Document{}, nodus.Errorf(nodus.EINVALID, "the %s file contains no text", t.label())
		}
		if len(doc.Text) > lim.MaxTextBytes {
			return Document{}, textTooLarge(lim)
		}
		return doc, nil
	case <-ctx.Done():
		return Document{}, timeoutError(ctx, t, lim)
	}
}

func extract(ctx context.Context, r io.ReaderAt, size int64, t Type, lim Limits) (Document, error) {
	switch t {
	case TypePDF:
		return extractPDF(ctx, r, size, lim)
	case TypeDOCX:
		return extractDOCX(ctx, r, size, lim)
	}
	data := make([]byte, size)
	if n, err := r.ReadAt(data, 0); n < len(data) {
		return Document{}, fmt.Errorf("extract: read input: %w", err)
	}
	text, err := decodeText(data)
	if err != nil {
		return Document{}, err
	}
	w := newWriter(ctx, lim.MaxTextBytes)
	var title string
	switch t {
	case TypeText, TypeMarkdown:
		w.WriteString(text)
		if t == TypeMarkdown {
			title = markdownTitle(text)
		}
	case TypeHTML:
		title, err = writeHTML(w, text, lim)
	case TypeCSV:
		err = writeCSV(w, text, lim)
	case TypeJSON:
		err = writeJSON(w, text, lim)
	}
	if err == nil {
		err = w.err
	}
	if err != nil {
		return Document{}, err
	}
	return Document{Title: title, Text: normalize(w.String())}, nil
}

// finishError turns what an extractor returned into the error contract.
func finishError(ctx context.Context, t Type, err error, lim Limits) error {
	var stop *stopError
	if errors.As(err, &stop) {
		err = stop.err
	}
	if errors.Is(err, errTextTooLarge) {
		return textTooLarge(lim)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return timeoutError(ctx, t, lim)
	}
	var ne *nodus.Error
	if errors.As(err, &ne) {
		return err
	}
	return nodus.WrapError(err, nodus.EINVALID, fmt.Sprintf("the %s file could not be read", t.label()))
}

func timeoutError(ctx context.Context, t Type, lim Limits) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nodus.WrapError(ctx.Err(), nodus.ETIMEOUT, fmt.Sprintf("reading the %s file took longer than %s", t.label(), lim.Timeout))
	}
	return nodus.WrapError(ctx.Err(), nodus.ETIMEOUT, fmt.Sprintf("reading the %s file was cancelled", t.label()))
}

func textTooLarge(lim Limits) error {
	return nodus.Errorf(nodus.ETOOLARGE, "the extracted text is larger than the %s limit", human(int64(lim.MaxTextBytes)))
}

// panicError converts a recovered panic into EINVALID, keeping the value
// and stack as the cause for logs.
func panicError(t Type, p any) error {
	if stop, ok := p.(*stopError); ok {
		return stop
	}
	buf := make([]byte, 4096)
	buf = buf[:runtime.Stack(buf, false)]
	return &nodus.Error{
		Code:    nodus.EINVALID,
		Message: fmt.Sprintf("the %s file is damaged or uses features that are not supported", t.label()),
		Err:     &recoveredPanic{value: p, stack: string(buf)},
	}
}

// recoveredPanic is the cause of an error made from a panic; tests use it
// to tell a bug in this package from a clean refusal.
type recoveredPanic struct {
	value any
	stack string
}

func (p *recoveredPanic) Error() string { return fmt.Sprintf("panic: %v\n%s", p.value, p.stack) }

// stopError is panicked through third-party code (the PDF library) to stop
// it: the context ended, a budget ran out or the output is full.
type stopError struct{ err error }

func (s *stopError) Error() string { return s.err.Error() }
func (s *stopError) Unwrap() error { return s.err }

var errTextTooLarge = errors.New("extracted text too large")

// writer collects output up to a byte limit. After the first error every
// write is dropped and err says why; extractors check it in their loops.
type writer struct {
	ctx  context.Context
	b    strings.Builder
	max  int
	err  error
	ops  int
	last byte // last byte written, to place blank lines
}

func newWriter(ctx context.Context, max int) *writer {
	return &writer{ctx: ctx, max: max}
}

func (w *writer) WriteString(s string) {
	if w.err != nil || s == "" {
		return
	}
	if w.b.Len()+len(s) > w.max {
		w.err = errTextTooLarge
		return
	}
	if w.ops++; w.ops%1024 == 0 {
		if err := w.ctx.Err(); err != nil {
			w.err = err
			return
		}
	}
	w.b.WriteString(s)
	w.last = s[len(s)-1]
}

// block ends the current line and leaves one blank line.
func (w *writer) block() {
	if w.b.Len() == 0 {
		return
	}
	if w.last != '\n' {
		w.WriteString("\n")
	}
	w.WriteString("\n")
}

// line ends the current line.
func (w *writer) line() {
	if w.b.Len() > 0 && w.last != '\n' {
		w.WriteString("\n")
	}
}

func (w *writer) String() string { return w.b.String() }

// normalize makes text valid UTF-8 without NULs or CRs, trims trailing
// spaces and collapses runs of blank lines into one.
func normalize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var b strings.Builder
	b.Grow(len(s))
	blank := 0
	started := false
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimRight(line, " \t\u00a0\f\v")
		if line == "" {
			blank++
			continue
		}
		if started {
			b.WriteString("\n")
			if blank > 0 {
				b.WriteString("\n")
			}
		}
		b.WriteString(line)
		started = true
		blank = 0
	}
	return b.String()
}

// decodeText returns data as UTF-8: a UTF-8 BOM is dropped, UTF-16 with a
// BOM is converted, invalid UTF-8 becomes U+FFFD and NULs are dropped.
func decodeText(data []byte) (string, error) {
	if s, ok := decodeUTF16(data); ok {
		return s, nil
	}
	data = trimUTF8BOM(data)
	s := strings.ToValidUTF8(string(data), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", ""), nil
}

func trimUTF8BOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return b[3:]
	}
	return b
}

// decodeUTF16 converts data that starts with a UTF-16 BOM; ok is false
// without one. An odd last byte and unpaired surrogates become U+FFFD.
func decodeUTF16(data []byte) (string, bool) {
	if len(data) < 2 {
		return "", false
	}
	var be bool
	switch {
	case data[0] == 0xFE && data[1] == 0xFF:
		be = true
	case data[0] == 0xFF && data[1] == 0xFE:
	default:
		return "", false
	}
	data = data[2:]
	var b strings.Builder
	b.Grow(len(data))
	for i := 0; i+1 < len(data); i += 2 {
		u := uint16(data[i])<<8 | uint16(data[i+1])
		if !be {
			u = uint16(data[i+1])<<8 | uint16(data[i])
		}
		r := rune(u)
		if u >= 0xD800 && u < 0xDC00 && i+3 < len(data) {
			u2 := uint16(data[i+2])<<8 | uint16(data[i+3])
			if !be {
				u2 = uint16(data[i+3])<<8 | uint16(data[i+2])
			}
			if u2 >= 0xDC00 && u2 < 0xE000 {
				r = (rune(u)-0xD800)<<10 | (rune(u2) - 0xDC00) + 0x10000
				i += 2
			}
		}
		if r >= 0xD800 && r < 0xE000 {
			r = utf8.RuneError
		}
		if r != 0 {
			b.WriteRune(r)
		}
	}
	if len(data)%2 == 1 {
		b.WriteRune(utf8.RuneError)
	}
	return b.String(), true
}

// markdownTitle returns the text of the first "# " heading.
func markdownTitle(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "# "); ok {
			return rest
		}
	}
	return ""
}

// cleanLine collapses whitespace and cuts s to at most max bytes.
func cleanLine(s string, max int) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "\uFFFD")), " ")
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// human formats a byte count for messages.
func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
