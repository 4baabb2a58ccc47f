package extract

import (
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
)

func TestDetect(t *testing.T) {
	long := strings.Repeat("x", HeadSize)
	tests := []struct {
		name, file, ct string
		head           []byte
		want           Type // "" means an EINVALID error
	}{
		{"pdf", "a.bin", "", []byte("%PDF-1.7\n..."), TypePDF},
		{"pdf named txt", "a.txt", "text/plain", []byte("%PDF-1.4\n"), TypePDF},
		{"docx", "a.zip", "", buildDOCX(t), TypeDOCX},
		{"other zip", "a.docx", "", buildZip(t, docxEntry{"readme.txt", "hi"}), ""},
		{"png named txt", "photo.txt", "text/plain", pngHeader, ""},
		{"elf", "run.md", "", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00>\x00"), ""},
		{"gzip", "a.csv", "", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"), ""},
		{"latin-1", "a.txt", "", []byte("caf\xe9 au lait"), ""},
		{"nul bytes", "a.txt", "", []byte("abc\x00def"), ""},
		{"empty", "a.txt", "", nil, ""},
		{"html doctype", "a.txt", "", []byte("  <!DOCTYPE html><html><body>x</body></html>"), TypeHTML},
		{"html after comment", "", "", []byte("<!-- generated --><html lang=en>"), TypeHTML},
		{"xhtml", "", "", []byte(`<?xml version="1.0"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml">`), TypeHTML},
		{"html fragment", "page", "", []byte("<p>Hello <b>there</b></p>"), TypeHTML},
		{"html fragment named md", "notes.md", "", []byte("<!-- toc -->\n# Notes\n"), TypeMarkdown},
		{"json", "data.txt", "", []byte(`  {"a": [1, 2, {"b": null}]}`), TypeJSON},
		{"json cut off", "", "", []byte(`[{"a": "long str`), TypeJSON},
		{"json lines", "", "", []byte("{\"a\":1}\n{\"a\":2}\n"), TypeJSON},
		{"not json", "", "", []byte("[link](http://x) and {braces}"), TypeText},
		{"markdown link not json", "x.md", "", []byte("[link](http://x)\n"), TypeMarkdown},
		{"markdown by ext", "README.MD", "", []byte("hello\n"), TypeMarkdown},
		{"markdown by content type", "", "text/markdown; charset=utf-8", []byte("hello\n"), TypeMarkdown},
		{"markdown by heading", "", "", []byte("intro\n## Setup\nrun it\n"), TypeMarkdown},
		{"csv", "", "", []byte("name,age\nAda,36\nGrace,45\n"), TypeCSV},
		{"tsv", "data", "", []byte("name\tage\nAda\t36\n"), TypeCSV},
		{"csv named txt", "a.txt", "", []byte("name,age\nAda,36\n"), TypeText},
		{"ragged commas", "", "", []byte("Hello, world.\nNo commas here\n"), TypeText},
		{"text", "", "", []byte("just some words\n"), TypeText},
		{"text starting like a bitmap", "", "", []byte("BMP-2 promotes bone growth in rats.\n"), TypeText},
		{"text starting like a gif", "", "", []byte("GIF89a is an image format\n"), TypeText},
		{"utf-16 text", "", "", utf16("hello there", false), TypeText},
		{"utf-16 html", "", "", utf16("<!doctype html><p>x", true), TypeHTML},
		{"long text cut mid-rune", "", "", []byte(long[:HeadSize-1] + "é"), TypeText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(tt.head, tt.file, tt.ct)
			if tt.want == "" {
				wantError(t, err, nodus.EINVALID)
				t.Logf("message: %s", nodus.ErrorMessage(err))
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Detect = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
