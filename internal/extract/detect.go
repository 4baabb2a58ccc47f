package extract

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// HeadSize is how much of a file Detect looks at; pass the first HeadSize
// bytes, or the whole file when it is shorter.
const HeadSize = 8192

// Detect returns the type of a file from its first bytes, following the
// rules in the package doc. filename and declaredContentType are hints that
// only choose among text types. A file of no supported type is EINVALID.
func Detect(head []byte, filename, declaredContentType string) (Type, error) {
	if len(head) > HeadSize {
		head = head[:HeadSize]
	}
	if len(head) == 0 {
		return "", nodus.Errorf(nodus.EINVALID, "the file is empty")
	}
	if bytes.HasPrefix(head, []byte("%PDF-")) {
		return TypePDF, nil
	}
	if bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")) {
		if bytes.Contains(head, []byte("word/")) || bytes.Contains(head, []byte("[Content_Types].xml")) {
			return TypeDOCX, nil
		}
		return "", nodus.Errorf(nodus.EINVALID, "the file is a ZIP archive but not a Word (DOCX) document; supported types are %s", supportedList)
	}

	var text string
	if s, ok := decodeUTF16(head); ok {
		text = s
		if len(head)%2 == 1 && len(head) == HeadSize {
			text = strings.TrimSuffix(text, string(utf8.RuneError))
		}
		if !isText([]byte(text)) {
			return "", binaryError(head)
		}
	} else {
		if !isText(head) {
			return "", binaryError(head)
		}
		text = string(trimUTF8BOM(head))
	}
	return detectText(text, len(head) < HeadSize, filename, declaredContentType), nil
}

const supportedList = "text, Markdown, HTML, CSV, JSON, PDF and DOCX"

// isText reports whether b is valid UTF-8 (allowing one rune cut off at
// the end of the head) without the control bytes no text holds: those of
// the WHATWG sniffing standard, which net/http's sniffer follows. Its
// signatures are not consulted: a text may begin with "BM" or "GIF8".
func isText(b []byte) bool {
	for _, c := range b {
		if c <= 0x08 || c == 0x0B || c >= 0x0E && c <= 0x1A || c >= 0x1C && c <= 0x1F {
			return false
		}
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return len(b) < utf8.UTFMax && !utf8.FullRune(b)
		}
		b = b[n:]
	}
	return true
}

func binaryError(head []byte) error {
	ct := http.DetectContentType(head)
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		ct = mt
	}
	if strings.HasPrefix(ct, "text/") {
		return nodus.Errorf(nodus.EINVALID, "the file is not UTF-8 text; save it as UTF-8 and upload it again")
	}
	if ct == "application/octet-stream" {
		return nodus.Errorf(nodus.EINVALID, "the file is binary, not a supported document; supported types are %s", supportedList)
	}
	return nodus.Errorf(nodus.EINVALID, "the file is %s, not a supported document; supported types are %s", ct, supportedList)
}

// detectText picks a type for text. complete says whether text is the whole
// file (the last line is then whole too).
func detectText(text string, complete bool, filename, declaredContentType string) Type {
	trimmed := strings.TrimLeft(text, " \t\r\n\f")
	lower := strings.ToLower(skipPreamble(trimmed))
	if strings.HasPrefix(lower, "<!doctype html") || strings.HasPrefix(lower, "<html") {
		return TypeHTML
	}
	if (strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "[")) && jsonPrefix(trimmed) {
		return TypeJSON
	}
	ext := strings.ToLower(path.Ext(strings.ReplaceAll(filename, `\`, "/")))
	mt, _, _ := mime.ParseMediaType(declaredContentType)
	switch {
	case ext == ".md" || ext == ".markdown" || ext == ".mdown" || ext == ".mkd" || mt == "text/markdown" || mt == "text/x-markdown":
		return TypeMarkdown
	case ext == ".txt" || ext == ".text":
		return TypeText
	}
	if strings.HasPrefix(http.DetectContentType([]byte(text)), "text/html") ||
		strings.HasPrefix(lower, "<?xml") && strings.Contains(lower, "<html") {
		return TypeHTML
	}
	if _, ok := csvDelimiter(text, complete); ok {
		return TypeCSV
	}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "```") || headingLine(line) {
			return TypeMarkdown
		}
	}
	return TypeText
}

// skipPreamble drops an XML declaration and leading comments, which may
// precede <!doctype html> or <html>.
func skipPreamble(s string) string {
	for range 16 {
		s = strings.TrimLeft(s, " \t\r\n\f")
		var end string
		switch {
		case strings.HasPrefix(s, "<?"):
			end = "?>"
		case strings.HasPrefix(s, "<!--"):
			end = "-->"
		default:
			return s
		}
		i := strings.Index(s, end)
		if i < 0 {
			return s
		}
		s = s[i+len(end):]
	}
	return s
}

// headingLine reports whether line is an ATX Markdown heading ("# Title").
func headingLine(line string) bool {
	n := 0
	for n < len(line) && line[n] == '#' {
		n++
	}
	return n >= 1 && n <= 6 && n < len(line) && line[n] == ' ' && strings.TrimSpace(line[n:]) != ""
}

// jsonPrefix reports whether s is a sequence of JSON values (one value, or
// JSON Lines), possibly cut off by the end of the head.
func jsonPrefix(s string) bool {
	dec := json.NewDecoder(strings.NewReader(s))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			// io.EOF between values means complete values; ErrUnexpectedEOF
			// means the head ended inside one.
			return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) && depth == 0
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
	}
}

// csvDelimiter finds a delimiter that splits the first records of text into
// the same number (≥ 2) of fields, over at least two records. Without
// complete, the last (possibly cut) line is ignored.
func csvDelimiter(text string, complete bool) (rune, bool) {
	if !complete {
		if i := strings.LastIndexByte(text, '\n'); i >= 0 {
			text = text[:i+1]
		} else {
			return 0, false
		}
	}
	for _, d := range []rune{',', ';', '\t'} {
		if !strings.ContainsRune(text, d) {
			continue
		}
		r := csv.NewReader(strings.NewReader(text))
		r.Comma = d
		r.FieldsPerRecord = -1
		r.ReuseRecord = true
		fields, records, ok := 0, 0, true
		for records < 20 {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || len(rec) < 2 || fields != 0 && len(rec) != fields {
				ok = false
				break
			}
			fields = len(rec)
			records++
		}
		if ok && records >= 2 {
			return d, true
		}
	}
	return 0, false
}
