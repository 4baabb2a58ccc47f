package extract

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

func extractBytes(t testing.TB, data []byte, typ Type, lim Limits) (Document, error) {
	t.Helper()
	return Extract(context.Background(), bytes.NewReader(data), int64(len(data)), typ, lim)
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name  string
		typ   Type
		data  []byte
		want  []string // substrings of Text, in order
		title string
	}{
		{"text", TypeText, []byte("Hello\x00 world\r\nsecond line   \n\n\n\nthird"), []string{"Hello world\nsecond line\n\nthird"}, ""},
		{"text invalid utf-8 repaired", TypeText, []byte("caf\xe9 latte"), []string{"caf\uFFFD latte"}, ""},
		{"text utf-16le", TypeText, utf16("Grüße aus Köln 🎉", false), []string{"Grüße aus Köln 🎉"}, ""},
		{"text utf-16be", TypeText, utf16("Grüße aus Köln", true), []string{"Grüße aus Köln"}, ""},
		{"markdown", TypeMarkdown, []byte("\xef\xbb\xbf# Release notes\n\nThe magic phrase is here.\n"), []string{"# Release notes\n\nThe magic phrase"}, "Release notes"},
		{"html", TypeHTML, []byte(`<!DOCTYPE html><html><head><title>Page  Title</title><style>body{color:red}</style><script>alert("x")</script></head>
<body><nav><a href="/">Home</a> menu</nav><h1>Main heading</h1><p>The quick <a href="x">brown fox</a> &amp; friends.</p>
<ul><li>one</li><li>two</li></ul><table><tr><th>Name</th><th>Score</th></tr><tr><td>Ada</td><td>42</td></tr></table></body></html>`),
			[]string{"# Main heading\n\nThe quick brown fox & friends.\n\n- one\n- two\n\n| Name | Score |\n| Ada | 42 |"}, "Page Title"},
		{"csv", TypeCSV, []byte("name,city,note\nAda,London,\"likes, commas\"\nGrace,,admiral\n"), []string{"name: Ada\ncity: London\nnote: likes, commas\n\nname: Grace\nnote: admiral"}, ""},
		{"csv semicolon", TypeCSV, []byte("a;b\n1;2\n"), []string{"a: 1\nb: 2"}, ""},
		{"json", TypeJSON, []byte(`{"title":"Guide","tags":["a","b"],"owner":{"name":"Ada","age":36,"ok":true,"x":null}}`), []string{"title: Guide\ntags[0]: a\ntags[1]: b\nowner.name: Ada\nowner.age: 36\nowner.ok: true\nowner.x: null"}, ""},
		{"json array", TypeJSON, []byte(`[{"q":"What is Nodus?","a":"A platform"},{"q":"Why?","a":"Because"}]`), []string{"[0].q: What is Nodus?\n[0].a: A platform\n\n[1].q: Why?"}, ""},
		{"json lines", TypeJSON, []byte("{\"a\":1}\n{\"a\":2}\n"), []string{"a: 1\n\na: 2"}, ""},
		{"pdf", TypePDF, buildPDF(t, false, "Hello PDF world\nsecond line", "Page two phrase"), []string{"Hello PDF world\nsecond line", "Page two phrase"}, "Test Title"},
		{"pdf compressed", TypePDF, buildPDF(t, true, "Compressed phrase (with parens)"), []string{"Compressed phrase (with parens)"}, "Test Title"},
		{"docx", TypeDOCX, buildDOCX(t), []string{"# Quarterly Report\n\nThe quick brown fox jumps over the lazy dog.\n\n## Details\n\n- first item\n\n| Name | Score |\n| Ada | 42 |\n\nAfter the table & more."}, "Quarterly Report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := extractBytes(t, tt.data, tt.typ, Limits{})
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			rest := doc.Text
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("text does not contain %q (in order); got:\n%s", w, doc.Text)
				}
				rest = rest[i+len(w):]
			}
			if doc.Title != tt.title {
				t.Errorf("Title = %q, want %q", doc.Title, tt.title)
			}
			if doc.Type != tt.typ {
				t.Errorf("Type = %q, want %q", doc.Type, tt.typ)
			}
			checkText(t, doc.Text)
		})
	}
}

func TestExtractPDFSections(t *testing.T) {
	doc, err := extractBytes(t, buildPDF(t, false, "first page", "second page"), TypePDF, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Sections) != 2 || doc.Sections[1].Label != "page 2" || !strings.HasPrefix(doc.Text[doc.Sections[1].Offset:], "second page") {
		t.Fatalf("Sections = %+v for %q", doc.Sections, doc.Text)
	}
}

// checkText asserts the output invariants from the package doc.
func checkText(t testing.TB, s string) {
	t.Helper()
	if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\r") || strings.Contains(s, "\n\n\n") {
		t.Fatalf("text breaks an invariant: %q", s)
	}
}

// wantError asserts err is a *nodus.Error of code whose message contains
// each of parts and reads like a sentence, not a stack trace.
func wantError(t testing.TB, err error, code string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	var ne *nodus.Error
	if !errors.As(err, &ne) {
		t.Fatalf("error %v (%T) is not a *nodus.Error", err, err)
	}
	if ne.Code != code {
		t.Fatalf("code = %s (%v), want %s", ne.Code, err, code)
	}
	msg := nodus.ErrorMessage(err)
	if msg == "" || strings.Contains(msg, "runtime error") || strings.Contains(msg, "goroutine") {
		t.Fatalf("unreadable message %q", msg)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Fatalf("message %q does not contain %q", msg, p)
		}
	}
}

func TestExtractPDFMalformed(t *testing.T) {
	good := buildPDF(t, false, "some text")
	xref := bytes.LastIndex(good, []byte("xref"))
	tests := []struct {
		name string
		data []byte
	}{
		{"header only", []byte("%PDF-1.4\n")},
		{"garbage", append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("garbage "), 100)...)},
		{"truncated", good[:len(good)/2]},
		{"no EOF", good[:len(good)-7]},
		{"broken xref", append(append(append([]byte{}, good[:xref]...), []byte("xref\n0 zz\n")...), good[xref+10:]...)},
		{"wrong offsets", bytes.Replace(good, []byte(" 00000 n"), []byte("1 00000 n"), -1)},
		{"no text", assemblePDF([]string{"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 2 0 R >>"}, "/Root 1 0 R")},
		{"no pages", assemblePDF([]string{"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"}, "/Root 1 0 R")},
		{"bad content", assemblePDF([]string{"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>", "<< /Length 10 /Filter /LZWDecode >>\nstream\n0123456789\nendstream"}, "/Root 1 0 R")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := extractBytes(t, tt.data, TypePDF, Limits{})
			wantError(t, err, nodus.EINVALID, "PDF")
			t.Logf("message: %s", nodus.ErrorMessage(err))
		})
	}
}

func TestExtractPDFHostile(t *testing.T) {
	catalog := "<< /Type /Catalog /Pages 2 0 R >>"
	var zeros bytes.Buffer
	{
		var b bytes.Buffer
		zw, _ := flate.NewWriter(&b, flate.BestCompression)
		zw.Write(make([]byte, 4<<20))
		zw.Close()
		// zlib framing: header, deflate data, (checksum left out: the
		// counter stops first).
		zeros.WriteString("\x78\x9c")
		zeros.Write(b.Bytes())
	}
	tests := []struct {
		name string
		data []byte
		code string
	}{
		{"huge Size", []byte(strings.Replace(string(buildPDF(t, false, "x")), "/Size 7", "/Size 99999999999", 1)), nodus.EINVALID},
		{"huge xref subsection", []byte(strings.Replace(string(buildPDF(t, false, "x")), "xref\n0 7", "xref\n4000000000 7", 1)), nodus.EINVALID},
		{"escaped name", []byte(strings.Replace(string(buildPDF(t, false, "x")), "/Size 7", "/Si#7ae 99999999999", 1)), nodus.EINVALID},
		{"huge Columns", assemblePDF([]string{catalog, "<< /Type /Pages /Kids [] /Count 0 >>", "<< /Length 4 /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 999999999999 >> >>\nstream\nxxxx\nendstream"}, "/Root 1 0 R"), nodus.EINVALID},
		{"flate bomb", assemblePDF([]string{catalog, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>", "<< /Length " + strconv.Itoa(zeros.Len()) + " /Filter /FlateDecode >>\nstream\n" + zeros.String() + "\nendstream"}, "/Root 1 0 R"), nodus.EINVALID},
		{"cyclic page tree", assemblePDF([]string{catalog, "<< /Type /Pages /Kids [2 0 R 2 0 R] /Count 2 >>"}, "/Root 1 0 R"), nodus.EINVALID},
		{"cyclic Prev", []byte(strings.Replace(string(buildPDF(t, false, "x")), "/Size 7", "/Size 7 /Prev "+strconv.Itoa(bytes.LastIndex(buildPDF(t, false, "x"), []byte("\nxref"))+1), 1)), nodus.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := extractBytes(t, tt.data, TypePDF, Limits{MaxUncompressedBytes: 1 << 20, Timeout: 10 * time.Second})
			wantError(t, err, tt.code, "PDF")
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			t.Logf("message: %s", nodus.ErrorMessage(err))
		})
	}
}

func TestExtractDOCXRefused(t *testing.T) {
	base := []docxEntry{{"[Content_Types].xml", docxContentTypes}, {"_rels/.rels", docxRels}, {"word/document.xml", docxBody(`<w:p><w:r><w:t>hi</w:t></w:r></w:p>`)}}
	with := func(extra ...docxEntry) []byte {
		return buildZip(t, append(append([]docxEntry{}, base...), extra...)...)
	}
	many := make([]docxEntry, 1001)
	for i := range many {
		many[i] = docxEntry{"word/media/f" + strconv.Itoa(i) + ".xml", "x"}
	}
	tests := []struct {
		name  string
		data  []byte
		code  string
		parts []string
	}{
		{"zip slip dotdot", with(docxEntry{"../../etc/evil.xml", "x"}), nodus.EINVALID, []string{"unsafe path"}},
		{"zip slip nested dotdot", with(docxEntry{"word/../../evil.xml", "x"}), nodus.EINVALID, []string{"unsafe path"}},
		{"zip slip absolute", with(docxEntry{"/etc/passwd", "x"}), nodus.EINVALID, []string{"unsafe path"}},
		{"zip slip backslash", with(docxEntry{`..\evil.xml`, "x"}), nodus.EINVALID, []string{"unsafe path"}},
		{"zip slip drive", with(docxEntry{"C:/evil.xml", "x"}), nodus.EINVALID, []string{"unsafe path"}},
		{"zip bomb ratio", with(docxEntry{"word/media/zeros.bin", strings.Repeat("\x00", 8<<20)}), nodus.EINVALID, []string{"zip bomb"}},
		{"too many entries", with(many...), nodus.EINVALID, []string{"entries"}},
		{"not docx", buildZip(t, docxEntry{"hello.txt", "hi"}), nodus.EINVALID, []string{"not a Word"}},
		{"not zip", []byte("PK\x03\x04 this is not a zip"), nodus.EINVALID, []string{"ZIP"}},
		{"malformed document xml", buildZip(t, docxEntry{"word/document.xml", "<w:document><w:body><w:p>"}), nodus.EINVALID, []string{"not valid XML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := extractBytes(t, tt.data, TypeDOCX, Limits{})
			wantError(t, err, tt.code, tt.parts...)
			t.Logf("message: %s", nodus.ErrorMessage(err))
		})
	}
}

// TestExtractDOCXLyingSize stores an entry whose header claims 100 bytes
// but which inflates to 8 MiB: the declared checks pass and the counting
// reader must stop it.
func TestExtractDOCXLyingSize(t *testing.T) {
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	body := docxBody(`<w:p><w:r><w:t>` + strings.Repeat("a", 8<<20) + `</w:t></w:r></w:p>`)
	fw.Write([]byte(body))
	fw.Close()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "word/document.xml", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE([]byte(body)), CompressedSize64: uint64(comp.Len()), UncompressedSize64: 100})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	zw.Close()
	_, err = extractBytes(t, b.Bytes(), TypeDOCX, Limits{})
	wantError(t, err, nodus.EINVALID, "DOCX")
	t.Logf("message: %s", nodus.ErrorMessage(err))
}

func TestExtractLimits(t *testing.T) {
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	tests := []struct {
		name string
		typ  Type
		data []byte
		lim  Limits
		code string
	}{
		{"input too large", TypeText, []byte("hello world"), Limits{MaxInputBytes: 5}, nodus.ETOOLARGE},
		{"text too large", TypeText, []byte(strings.Repeat("word ", 100)), Limits{MaxTextBytes: 50}, nodus.ETOOLARGE},
		{"html too large", TypeHTML, []byte("<p>" + strings.Repeat("word ", 100)), Limits{MaxTextBytes: 50}, nodus.ETOOLARGE},
		{"pdf too large", TypePDF, buildPDF(t, false, strings.Repeat("word ", 100)), Limits{MaxTextBytes: 50}, nodus.ETOOLARGE},
		{"csv rows", TypeCSV, []byte("a,b\n1,2\n3,4\n5,6\n"), Limits{MaxRows: 3}, nodus.ETOOLARGE},
		{"json depth", TypeJSON, []byte(deep), Limits{}, nodus.EINVALID},
		{"json malformed", TypeJSON, []byte("{\"a\":\n1,,}"), Limits{}, nodus.EINVALID},
		{"json truncated", TypeJSON, []byte(`{"a":[1,2`), Limits{}, nodus.EINVALID},
		{"empty", TypeText, nil, Limits{}, nodus.EINVALID},
		{"only spaces", TypeText, []byte("  \n\t "), Limits{}, nodus.EINVALID},
		{"unknown type", Type("exe"), []byte("x"), Limits{}, nodus.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := extractBytes(t, tt.data, tt.typ, tt.lim)
			wantError(t, err, tt.code)
			t.Logf("message: %s", nodus.ErrorMessage(err))
		})
	}
}

func TestExtractCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := buildPDF(t, false, "text")
	_, err := Extract(ctx, bytes.NewReader(data), int64(len(data)), TypePDF, Limits{})
	wantError(t, err, nodus.ETIMEOUT)
}

// slowReader blocks reads until its context ends, standing in for an
// extraction that does not finish in time.
type slowReader struct{ ctx context.Context }

func (s slowReader) ReadAt(p []byte, off int64) (int, error) {
	<-s.ctx.Done()
	return 0, s.ctx.Err()
}

func TestExtractTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	_, err := Extract(context.Background(), slowReader{ctx}, 100, TypeText, Limits{Timeout: 50 * time.Millisecond})
	wantError(t, err, nodus.ETIMEOUT, "longer than")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
}
