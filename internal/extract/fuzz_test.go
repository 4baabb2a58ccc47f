package extract

import (
	"errors"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// The fuzz targets check the error contract: no panic escapes, every error
// is a *nodus.Error with a readable message and a known code, and only the
// PDF library (not this package) may have panicked. Seeds are committed
// under testdata/fuzz/<Name>/ and run with every `go test`.

var fuzzLimits = Limits{
	MaxInputBytes:        1 << 20,
	MaxTextBytes:         1 << 20,
	MaxRows:              1000,
	MaxZipEntries:        50,
	MaxUncompressedBytes: 4 << 20,
	Timeout:              5 * time.Second,
}

func fuzzExtract(t *testing.T, data []byte, typ Type) {
	doc, err := extractBytes(t, data, typ, fuzzLimits)
	if err == nil {
		checkText(t, doc.Text)
		return
	}
	var ne *nodus.Error
	if !errors.As(err, &ne) {
		t.Fatalf("error %v (%T) is not a *nodus.Error", err, err)
	}
	switch ne.Code {
	case nodus.EINVALID, nodus.ETOOLARGE:
	case nodus.ETIMEOUT:
		t.Fatalf("timed out on %d bytes", len(data))
	default:
		t.Fatalf("unexpected code %s: %v", ne.Code, err)
	}
	if ne.Message == "" {
		t.Fatal("empty message")
	}
	var rp *recoveredPanic
	if errors.As(err, &rp) && typ != TypePDF {
		t.Fatalf("extractor panicked: %v", rp)
	}
}

func FuzzDetect(f *testing.F) {
	for _, s := range []string{"%PDF-1.4\n", "<!doctype html><p>x", `{"a":1}`, "a,b\n1,2\n", "# T\n", "plain", "\xff\xfeh\x00i\x00"} {
		f.Add([]byte(s), "a.txt")
	}
	f.Add(buildDOCX(f), "a.docx")
	f.Add(pngHeader, "a.txt")
	f.Fuzz(func(t *testing.T, head []byte, name string) {
		typ, err := Detect(head, name, "")
		if err != nil {
			if nodus.ErrorCode(err) != nodus.EINVALID || nodus.ErrorMessage(err) == "" {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if !typ.Valid() {
			t.Fatalf("invalid type %q", typ)
		}
		if typ != TypePDF && typ != TypeDOCX && !isText(head[:min(len(head), HeadSize)]) {
			if _, ok := decodeUTF16(head); !ok {
				t.Fatalf("binary head detected as %s", typ)
			}
		}
	})
}

func FuzzExtractText(f *testing.F) {
	f.Add([]byte("hello\x00world\r\n"))
	f.Add(utf16("grüße", false))
	f.Add([]byte("\xfe\xff\xd8\x00"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, data, TypeText) })
}

func FuzzExtractHTML(f *testing.F) {
	f.Add([]byte("<html><title>t</title><h2>x</h2><p>a<br>b<table><tr><td>1<td>2</table><ul><li>x<ul><li>y</ul></ul>"))
	f.Add([]byte("<script>never</script><nav>no</nav><pre>  keep\n  this</pre>"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, data, TypeHTML) })
}

func FuzzExtractCSV(f *testing.F) {
	f.Add([]byte("a,b\n1,2\n"))
	f.Add([]byte("a;b;c\n\"x;\"\"y\";2\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, data, TypeCSV) })
}

func FuzzExtractJSON(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,2,{"c":null}]},"d":"e\nf"}`))
	f.Add([]byte("[1]\n[2]"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, data, TypeJSON) })
}

func FuzzExtractDOCX(f *testing.F) {
	f.Add(buildDOCX(f))
	f.Add(buildZip(f, docxEntry{"word/document.xml", docxBody(`<w:tbl><w:tr><w:tc><w:tbl><w:tr><w:tc><w:p><w:r><w:t>n</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:tc></w:tr></w:tbl>`)}))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, data, TypeDOCX) })
}

func FuzzExtractPDF(f *testing.F) {
	f.Add(buildPDF(f, false, "hello", "world"))
	f.Add(buildPDF(f, true, "compressed"))
	f.Add([]byte("%PDF-1.4\n%%EOF\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, data, TypePDF) })
}
