package main

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/extract/extracttest"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// upload posts content as the file part of a multipart upload.
func (c *client) upload(path, filename, content string) (int, []byte) {
	c.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	p, err := w.CreateFormFile("file", filename)
	if err != nil {
		c.t.Fatal(err)
	}
	p.Write([]byte(content))
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	resp, b := call(c.t, "POST", c.base+path, &buf, withBearer(c.token), withHeader("Content-Type", w.FormDataContentType()))
	return resp.StatusCode, b
}

type documentAnswer struct {
	Document struct {
		ID         string `json:"id"`
		Status     string `json:"status"`
		Stage      string `json:"stage"`
		Error      string `json:"error"`
		ChunkCount int    `json:"chunk_count"`
		FileType   string `json:"file_type"`
	} `json:"document"`
}

// TestKnowledgeUploadIngests uploads documents to a running Nodus, on both
// databases, and waits for the job queue to ingest them: a Markdown file
// is completed with chunks, a malformed PDF fails with a readable error.
func TestKnowledgeUploadIngests(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		vars["NODUS_JOB_POLL_INTERVAL"] = "100ms"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		var tenant struct{ Tenant struct{ ID string } }
		admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Readers"}, 201, &tenant)
		onA := "?tenant_id=" + tenant.Tenant.ID
		var kb struct {
			KnowledgeBase struct{ ID string } `json:"knowledge_base"`
		}
		admin.must("POST", "/api/v1/knowledge-bases"+onA, map[string]any{"name": "Handbook"}, 201, &kb)
		docs := "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID + "/documents"

		wait := func(name, content, want string) documentAnswer {
			t.Helper()
			status, body := admin.upload(docs+onA, name, content)
			var d documentAnswer
			if status != 201 || json.Unmarshal(body, &d) != nil || d.Document.Status != "pending" {
				t.Fatalf("upload %s: %d %s", name, status, body)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				admin.must("GET", docs+"/"+d.Document.ID+onA, nil, 200, &d)
				if d.Document.Status == want {
					return d
				}
				if d.Document.Status == "completed" || d.Document.Status == "failed" || time.Now().After(deadline) {
					t.Fatalf("%s: %+v, want %s\n%s", name, d.Document, want, in.logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}

		md := "# Onboarding\n\nEvery new starter receives the amber lantern handbook on day one.\n\n" +
			"## Equipment\n\nLaptops are issued by the service desk.\n"
		d := wait("onboarding.md", md, "completed")
		if d.Document.ChunkCount == 0 || d.Document.FileType != "markdown" || d.Document.Error != "" {
			t.Errorf("completed document: %+v", d.Document)
		}
		// The phrase is in the chunks the job wrote.
		url := vars["DATABASE_URL"]
		if url == "" {
			url = "sqlite:" + filepath.Join(vars["NODUS_DATA_DIR"], "main.db")
		}
		db, err := store.Open(context.Background(), storetest.Config(url))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		chunks, err := db.ListChunks(nodus.WithTenant(context.Background(), tenant.Tenant.ID), d.Document.ID)
		if err != nil || len(chunks) != d.Document.ChunkCount {
			t.Fatalf("chunks: %d, %v; want %d", len(chunks), err, d.Document.ChunkCount)
		}
		found := false
		for _, c := range chunks {
			found = found || strings.Contains(c.Text, "amber lantern handbook")
		}
		if !found {
			t.Errorf("no chunk holds the phrase: %+v", chunks)
		}

		d = wait("broken.pdf", "%PDF-1.7\nthis is not really a PDF\n", "failed")
		if d.Document.Error == "" || strings.Contains(d.Document.Error, "internal") || d.Document.ChunkCount != 0 {
			t.Errorf("failed document: %+v", d.Document)
		}
	})
}

// TestKnowledgeSearchFindsEveryType uploads one file of each supported
// type to a running Nodus, on both databases, each holding a phrase of its
// own; once the job queue has ingested them, searching for a phrase finds
// its file first, highlighted. A malformed PDF fails with a readable error
// that names no path of the server.
func TestKnowledgeSearchFindsEveryType(t *testing.T) {
	files := []struct {
		name, fileType, phrase string
		content                []byte
	}{
		{name: "notes.txt", fileType: "text", phrase: "the quartz pelican of tuesday"},
		{name: "guide.md", fileType: "markdown", phrase: "a velvet harpsichord beneath moonlight"},
		{name: "page.html", fileType: "html", phrase: "the copper walrus sings loudly"},
		{name: "table.csv", fileType: "csv", phrase: "saffron kettle migration season"},
		{name: "record.json", fileType: "json", phrase: "the indigo tortoise at midnight"},
		{name: "letter.docx", fileType: "docx", phrase: "a marble giraffe dreams sideways"},
		{name: "report.pdf", fileType: "pdf", phrase: "the crimson lighthouse hums softly"},
	}
	for i := range files {
		f := &files[i]
		switch f.fileType {
		case "text":
			f.content = []byte("Meeting notes.\n\nWe agreed that " + f.phrase + " stays on the agenda.\n")
		case "markdown":
			f.content = []byte("# Guide\n\nPlease remember " + f.phrase + " when you arrive.\n")
		case "html":
			f.content = []byte("<!DOCTYPE html>\n<html><head><title>Page</title></head><body><h1>Page</h1><p>Visitors say " +
				f.phrase + " every evening.</p></body></html>\n")
		case "csv":
			f.content = []byte("id,description,owner\n1," + f.phrase + ",Ada\n2,routine inventory check,Grace\n")
		case "json":
			f.content = mustJSON(map[string]any{"title": "Record", "body": "Witnesses reported " + f.phrase + "."})
		case "docx":
			f.content = buildTestDOCX(t, "Letter", "Dear reader, "+f.phrase+" again this year.")
		case "pdf":
			f.content = buildTestPDF(t, "Annual report", "Observers noted "+f.phrase+" in spring.")
		}
	}

	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		vars["NODUS_JOB_POLL_INTERVAL"] = "100ms"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		var tenant struct{ Tenant struct{ ID string } }
		admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Searchers"}, 201, &tenant)
		onA := "?tenant_id=" + tenant.Tenant.ID
		var kb struct {
			KnowledgeBase struct{ ID string } `json:"knowledge_base"`
		}
		admin.must("POST", "/api/v1/knowledge-bases"+onA, map[string]any{"name": "Every type"}, 201, &kb)
		base := "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID
		docs := base + "/documents"

		uploadDoc := func(name string, content []byte) string {
			t.Helper()
			status, body := admin.upload(docs+onA, name, string(content))
			var d documentAnswer
			if status != 201 || json.Unmarshal(body, &d) != nil || d.Document.ID == "" {
				t.Fatalf("upload %s: %d %s", name, status, body)
			}
			return d.Document.ID
		}
		// waitDone polls the document until the job has finished with it.
		waitDone := func(name, id string) documentAnswer {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for {
				var d documentAnswer
				admin.must("GET", docs+"/"+id+onA, nil, 200, &d)
				if d.Document.Status == "completed" || d.Document.Status == "failed" {
					return d
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: still %+v after 30s\n%s", name, d.Document, in.logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}

		ids := make([]string, len(files))
		for i, f := range files {
			ids[i] = uploadDoc(f.name, f.content)
		}
		brokenID := uploadDoc("broken.pdf", []byte("%PDF-1.4\n\x00\x17garbage \xff\xfe not an object }} trailer ]]\n"))
		for i, f := range files {
			d := waitDone(f.name, ids[i])
			if d.Document.Status != "completed" || d.Document.FileType != f.fileType || d.Document.ChunkCount == 0 ||
				d.Document.Error != "" {
				t.Errorf("%s: %+v, want completed as %s with chunks\n%s", f.name, d.Document, f.fileType, in.logs.String())
			}
		}

		for i, f := range files {
			var res struct {
				Hits []struct {
					DocumentID   string `json:"document_id"`
					DocumentName string `json:"document_name"`
					Snippet      string `json:"snippet"`
				} `json:"hits"`
			}
			admin.must("POST", base+"/search"+onA, map[string]any{"query": f.phrase}, 200, &res)
			if len(res.Hits) == 0 {
				t.Errorf("%s: no hit for %q", f.name, f.phrase)
				continue
			}
			if h := res.Hits[0]; h.DocumentID != ids[i] || h.DocumentName != f.name || !strings.Contains(h.Snippet, "<mark>") {
				t.Errorf("%s: first hit for %q is %+v, want document %s with a <mark> in the snippet", f.name, f.phrase, h, ids[i])
			}
		}

		d := waitDone("broken.pdf", brokenID)
		msg := d.Document.Error
		if d.Document.Status != "failed" || d.Document.ChunkCount != 0 || msg == "" || strings.Contains(msg, "internal") ||
			strings.Contains(msg, vars["NODUS_DATA_DIR"]) || strings.Contains(msg, os.TempDir()) ||
			regexp.MustCompile(`(^|[\s:"'(])/[A-Za-z0-9._-]+/`).MatchString(msg) || !utf8.ValidString(msg) ||
			strings.ContainsFunc(msg, unicode.IsControl) {
			t.Errorf("broken PDF: %+v, want failed with a readable error naming no path", d.Document)
		}
		t.Logf("broken PDF error: %q", msg)
	})
}

// buildTestDOCX writes a minimal Word document with one paragraph per
// element of paragraphs.
func buildTestDOCX(t *testing.T, paragraphs ...string) []byte {
	return extracttest.DOCX(t, extracttest.Paragraphs(paragraphs...))
}

// buildTestPDF writes a minimal valid PDF of one page showing each line.
func buildTestPDF(t *testing.T, lines ...string) []byte {
	return extracttest.PDF(t, false, strings.Join(lines, "\n"))
}
