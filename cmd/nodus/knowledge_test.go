package main

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
