// Package extracttest builds, in code, the document files that tests of
// extraction and ingestion need (PDF, DOCX), so no binary fixture is kept
// in the repository and each test states what its file holds.
package extracttest

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
)

// PDF writes a minimal valid PDF with one page per element of pages, each
// line of a page shown with Tj in Helvetica. With compress, content
// streams are FlateDecode. The xref table has the offsets as written.
func PDF(t testing.TB, compress bool, pages ...string) []byte {
	t.Helper()
	var objs []string // objs[i] is object i+1
	add := func(s string) int {
		objs = append(objs, s)
		return len(objs)
	}
	catalog := add("") // filled in below
	pagesObj := add("")
	font := add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	var kids []string
	for _, text := range pages {
		var content strings.Builder
		content.WriteString("BT /F1 12 Tf 72 720 Td 14 TL\n")
		for i, line := range strings.Split(text, "\n") {
			if i > 0 {
				content.WriteString("T*\n")
			}
			fmt.Fprintf(&content, "(%s) Tj\n", pdfEscape(line))
		}
		content.WriteString("ET\n")
		data := content.String()
		dict := fmt.Sprintf("<< /Length %d >>", len(data))
		if compress {
			var b bytes.Buffer
			zw := zlib.NewWriter(&b)
			if _, err := zw.Write([]byte(data)); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			data = b.String()
			dict = fmt.Sprintf("<< /Length %d /Filter /FlateDecode >>", len(data))
		}
		c := add(dict + "\nstream\n" + data + "\nendstream")
		p := add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>", pagesObj, font, c))
		kids = append(kids, fmt.Sprintf("%d 0 R", p))
	}
	objs[catalog-1] = fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pagesObj)
	objs[pagesObj-1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(kids))
	info := add("<< /Title (Test Title) >>")
	return AssemblePDF(objs, fmt.Sprintf("/Root %d 0 R /Info %d 0 R", catalog, info))
}

// AssemblePDF writes objects 1..n, an xref table and a trailer with the
// extra entries given.
func AssemblePDF(objs []string, trailer string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, trailer, xref)
	return b.Bytes()
}

func pdfEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`).Replace(s)
}

// ZipEntry is one file of a test archive, stored as given.
type ZipEntry struct {
	Name string
	Body string
}

// Zip writes entries with Deflate.
func Zip(t testing.TB, entries ...ZipEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.Name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The parts every Word document has besides its body.
const (
	DOCXContentTypes = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`
	DOCXRels = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`
)

// DOCXDocument wraps body XML in a w:document.
func DOCXDocument(body string) string {
	return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` + body + `</w:body></w:document>`
}

// DOCX writes a Word document whose body is body (XML), with extra parts
// such as word/styles.xml.
func DOCX(t testing.TB, body string, extra ...ZipEntry) []byte {
	t.Helper()
	entries := []ZipEntry{{"[Content_Types].xml", DOCXContentTypes}, {"_rels/.rels", DOCXRels},
		{"word/document.xml", DOCXDocument(body)}}
	return Zip(t, append(entries, extra...)...)
}

// Paragraphs is body XML of one plain paragraph per text, escaped.
func Paragraphs(texts ...string) string {
	var b strings.Builder
	for _, p := range texts {
		b.WriteString(`<w:p><w:r><w:t xml:space="preserve">`)
		xml.EscapeText(&b, []byte(p)) // a strings.Builder does not fail
		b.WriteString("</w:t></w:r></w:p>")
	}
	return b.String()
}
