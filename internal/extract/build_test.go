package extract

import (
	"testing"

	"github.com/nodus-os/nodus/internal/extract/extracttest"
)

// The builders live in extracttest, shared with the knowledge tests.
var (
	buildPDF    = extracttest.PDF
	assemblePDF = extracttest.AssemblePDF
	docxBody    = extracttest.DOCXDocument
)

// docxEntry is one file of a test archive; raw entries are stored as given.
type docxEntry struct{ name, body string }

// buildZip writes entries with Deflate.
func buildZip(t testing.TB, entries ...docxEntry) []byte {
	t.Helper()
	zs := make([]extracttest.ZipEntry, len(entries))
	for i, e := range entries {
		zs[i] = extracttest.ZipEntry{Name: e.name, Body: e.body}
	}
	return extracttest.Zip(t, zs...)
}

const (
	docxContentTypes = extracttest.DOCXContentTypes
	docxRels         = extracttest.DOCXRels
)

const docxStyles = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style><w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style></w:styles>`

// buildDOCX writes a Word document with a heading (a localized style id),
// paragraphs, a list item and a table.
func buildDOCX(t testing.TB) []byte {
	t.Helper()
	body := `<w:p><w:pPr><w:pStyle w:val="berschrift1"/></w:pPr><w:r><w:t>Quarterly Report</w:t></w:r></w:p>` +
		`<w:p><w:r><w:t xml:space="preserve">The quick brown fox </w:t></w:r><w:r><w:t>jumps over the lazy dog.</w:t></w:r></w:p>` +
		`<w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Details</w:t></w:r></w:p>` +
		`<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/></w:numPr></w:pPr><w:r><w:t>first item</w:t></w:r></w:p>` +
		`<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Name</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Score</w:t></w:r></w:p></w:tc></w:tr>` +
		`<w:tr><w:tc><w:p><w:r><w:t>Ada</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>42</w:t></w:r></w:p></w:tc></w:tr></w:tbl>` +
		`<w:p><w:r><w:t>After the table &amp; more.</w:t></w:r></w:p>`
	return buildZip(t,
		docxEntry{"[Content_Types].xml", docxContentTypes},
		docxEntry{"_rels/.rels", docxRels},
		docxEntry{"word/document.xml", docxBody(body)},
		docxEntry{"word/styles.xml", docxStyles},
	)
}

// pngHeader is the start of a PNG file.
var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde")

// utf16 encodes s with a BOM.
func utf16(s string, bigEndian bool) []byte {
	var b []byte
	if bigEndian {
		b = append(b, 0xFE, 0xFF)
	} else {
		b = append(b, 0xFF, 0xFE)
	}
	for _, r := range s {
		var units []rune
		if r >= 0x10000 {
			r -= 0x10000
			units = []rune{0xD800 + r>>10, 0xDC00 + r&0x3FF}
		} else {
			units = []rune{r}
		}
		for _, u := range units {
			if bigEndian {
				b = append(b, byte(u>>8), byte(u))
			} else {
				b = append(b, byte(u), byte(u>>8))
			}
		}
	}
	return b
}
