package httpapi

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// importFixture is the knowledge fixture with a blob store whose files a
// test can count, and, when origin is set, an egress service whose
// platform allows the origin's loopback port (egress refuses loopback
// otherwise) and nothing else.
type importFixture struct {
	*knowledgeFixture
	blobRoot string
}

func newImportFixture(t *testing.T, db *store.DB, origin *httptest.Server) *importFixture {
	t.Helper()
	root := t.TempDir()
	blobs, err := blob.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	f := newKnowledgeFixture(t, db, func(cfg *knowledge.Config) {
		cfg.Blobs = blobs
		if origin == nil {
			return
		}
		u, _ := url.Parse(origin.URL)
		port, _ := strconv.Atoi(u.Port())
		eg, err := egress.NewService(db, egress.Options{Audit: audit.NewService(db, nodus.SystemClock{})})
		if err != nil {
			t.Fatal(err)
		}
		_, err = eg.UpdatePlatform(nodus.WithAllTenants(context.Background()),
			[]egress.RuleInput{{Host: "127.0.0.1", Port: port, Comment: "the test's origin"}},
			[]egress.ExceptionInput{{IP: "127.0.0.1", Port: port, Comment: "the test's origin"}}, audit.Entry{ActorKind: "system"})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Egress = eg
	})
	return &importFixture{knowledgeFixture: f, blobRoot: root}
}

func (f *importFixture) countBlobs(t *testing.T) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(f.blobRoot, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const importGuide = "# Lighthouses\n\nA lighthouse keeper trims the wick of the lantern each evening.\n"

// origin serves the files URL imports fetch: a Markdown guide (named
// .bin and typed as octet-stream, for the type comes from the content), a
// file one byte over the upload limit without a Content-Length, a redirect
// to the guide and one to a port egress does not allow.
func origin(t *testing.T, deniedPort int) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /docs/guide.md", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, importGuide)
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		line := []byte(strings.Repeat("big file ", 1023) + "\n")
		for left := uploadLimit + 1; left > 0; left -= len(line) {
			if _, err := w.Write(line[:min(left, len(line))]); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/docs/guide.md", http.StatusFound)
	})
	mux.HandleFunc("GET /away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://127.0.0.1:%d/x.md", deniedPort), http.StatusFound)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func TestKnowledgeImportURLRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		// A listener egress never allows: nothing may ever reach it.
		trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("the trap was reached: %s", r.URL)
		}))
		defer trap.Close()
		trapPort := trap.Listener.Addr().(*net.TCPAddr).Port
		src := origin(t, trapPort)
		f := newImportFixture(t, db, src)
		const base = "/api/v1/knowledge-bases"
		var a, b kbAnswer
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "A docs"}, 201, &a)
		f.must(t, f.bAdmin, "POST", base, "", map[string]any{"name": "B docs"}, 201, &b)
		path := base + "/" + a.KnowledgeBase.ID + "/documents/import-url"

		// A Markdown file ends completed and searchable, named after the
		// URL's last segment, its source recorded.
		var up struct{ Document map[string]any }
		f.must(t, f.admin, "POST", path, "", map[string]any{"url": src.URL + "/docs/guide.md#intro",
			"metadata": map[string]any{"team": "ops"}}, 201, &up)
		d := up.Document
		if d["status"] != "pending" || d["file_type"] != "markdown" || d["original_filename"] != "guide.md" ||
			d["source_url"] != src.URL+"/docs/guide.md" || d["file_size"] != float64(len(importGuide)) {
			t.Fatalf("imported: %+v", d)
		}
		if m, _ := d["metadata"].(map[string]any); m["team"] != "ops" {
			t.Errorf("metadata: %+v", d["metadata"])
		}
		id := d["id"].(string)
		if err := f.kn.Ingest(context.Background(), f.a, id, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		var got struct{ Document map[string]any }
		f.must(t, f.viewer, "GET", base+"/"+a.KnowledgeBase.ID+"/documents/"+id, "", nil, 200, &got)
		if got.Document["status"] != "completed" {
			t.Fatalf("after ingestion: %+v", got.Document)
		}
		var res searchAnswer
		f.must(t, f.viewer, "POST", base+"/"+a.KnowledgeBase.ID+"/search", "", map[string]any{"query": "lighthouse lantern"}, 200, &res)
		if len(res.Hits) != 1 || res.Hits[0].DocumentID != id {
			t.Fatalf("search: %+v", res)
		}
		blobs := f.countBlobs(t)

		// The same content through a redirect (followed through egress):
		// a duplicate, and no file left.
		status, raw := f.call(t, f.admin, "POST", path, "", map[string]any{"url": src.URL + "/moved"})
		if status != 409 || !strings.Contains(string(raw), id) {
			t.Errorf("duplicate through a redirect: %d %s", status, raw)
		}

		for name, tc := range map[string]struct {
			token, path string
			body        any
			want        int
			message     string
		}{
			"too large":          {f.admin, path, map[string]any{"url": src.URL + "/big"}, 413, "limit"},
			"host denied":        {f.admin, path, map[string]any{"url": "http://denied.example.test/a.md"}, 403, "egress policy refused"},
			"loopback denied":    {f.admin, path, map[string]any{"url": trap.URL + "/a.md"}, 403, "egress policy refused"},
			"redirect denied":    {f.admin, path, map[string]any{"url": src.URL + "/away"}, 403, "egress policy refused"},
			"not found upstream": {f.admin, path, map[string]any{"url": src.URL + "/nothing.md"}, 400, "404"},
			"ftp":                {f.admin, path, map[string]any{"url": "ftp://example.test/a.md"}, 400, "http or https"},
			"file":               {f.admin, path, map[string]any{"url": "file:///etc/passwd"}, 400, "http or https"},
			"credentials":        {f.admin, path, map[string]any{"url": "https://user:pass@example.test/a.md"}, 400, "credentials"},
			"malformed":          {f.admin, path, map[string]any{"url": "http://[::1"}, 400, "not a valid URL"},
			"relative":           {f.admin, path, map[string]any{"url": "/docs/guide.md"}, 400, "http or https"},
			"no url":             {f.admin, path, map[string]any{}, 400, "required"},
			"unknown field":      {f.admin, path, map[string]any{"url": src.URL + "/docs/guide.md", "x": 1}, 400, ""},
			"viewer":             {f.viewer, path, map[string]any{"url": src.URL + "/docs/guide.md"}, 403, ""},
			"user":               {f.user, path, map[string]any{"url": src.URL + "/docs/guide.md"}, 403, ""},
			"another tenant":     {f.bAdmin, path, map[string]any{"url": src.URL + "/docs/guide.md"}, 404, ""},
			"unknown kb": {f.admin, base + "/" + nodus.NewID() + "/documents/import-url",
				map[string]any{"url": src.URL + "/docs/guide.md"}, 404, ""},
		} {
			status, raw := f.call(t, tc.token, "POST", tc.path, "", tc.body)
			if status != tc.want || !strings.Contains(string(raw), tc.message) {
				t.Errorf("%s: %d %s, want %d and %q", name, status, raw, tc.want, tc.message)
			}
		}
		if n := f.countBlobs(t); n != blobs {
			t.Errorf("%d files in the blob store after refused imports, want %d", n, blobs)
		}
		var list struct{ Documents []map[string]any }
		f.must(t, f.admin, "GET", base+"/"+a.KnowledgeBase.ID+"/documents", "", nil, 200, &list)
		if len(list.Documents) != 1 {
			t.Errorf("documents after refused imports: %d", len(list.Documents))
		}

		// The import is audited without the URL's query.
		f.must(t, f.admin, "POST", path, "", map[string]any{"url": src.URL + "/docs/guide.md?sig=canary-signature"}, 409, nil)
		entries, _, err := f.audit.List(nodus.WithAllTenants(context.Background()), audit.Filter{Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		imports := 0
		for _, e := range entries {
			j, _ := json.Marshal(e)
			if strings.Contains(string(j), "canary-signature") {
				t.Errorf("an audit entry holds the URL's query: %s", j)
			}
			if e.Action == "knowledge.document_import" {
				imports++
			}
		}
		if imports != 1 {
			t.Errorf("%d import audit entries, want 1", imports)
		}
	})
}

// TestKnowledgeImportURLWithoutEgress: a server without an egress service
// refuses imports from a URL, saying why.
func TestKnowledgeImportURLWithoutEgress(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newImportFixture(t, db, nil)
		var a kbAnswer
		f.must(t, f.admin, "POST", "/api/v1/knowledge-bases", "", map[string]any{"name": "A docs"}, 201, &a)
		status, raw := f.call(t, f.admin, "POST", "/api/v1/knowledge-bases/"+a.KnowledgeBase.ID+"/documents/import-url", "",
			map[string]any{"url": "https://example.test/a.md"})
		if status != 503 || !strings.Contains(string(raw), "egress") {
			t.Errorf("without egress: %d %s", status, raw)
		}
	})
}

type bulkAnswer struct {
	Documents []struct {
		Line     int
		Document *struct {
			ID               string
			Status           string
			FileType         string `json:"file_type"`
			OriginalFilename string `json:"original_filename"`
			Metadata         map[string]any
		}
		Error *struct {
			Code        string
			Message     string
			Fields      map[string]string
			DuplicateOf string `json:"duplicate_of"`
		}
	}
	Created int
	Failed  int
}

func jsonLine(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestKnowledgeBulkRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newImportFixture(t, db, nil)
		const base = "/api/v1/knowledge-bases"
		var a, b kbAnswer
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "A docs"}, 201, &a)
		f.must(t, f.bAdmin, "POST", base, "", map[string]any{"name": "B docs"}, 201, &b)
		path := base + "/" + a.KnowledgeBase.ID + "/documents/bulk"
		const nd = "application/x-ndjson"

		guide := "# Tides\n\nThe moon pulls the tides twice a day.\n"
		body := jsonLine(t, map[string]any{"filename": "tides.md", "text": guide, "metadata": map[string]any{"n": 1}}) +
			jsonLine(t, map[string]any{"filename": "notes.txt", "content_base64": base64.StdEncoding.EncodeToString([]byte("plain notes\n"))}) +
			"\n" + // blank lines are skipped
			jsonLine(t, map[string]any{"filename": "again.md", "text": guide}) + // a duplicate of line 1
			`{"filename": "broken.md", "text": ` + "\n" +
			jsonLine(t, map[string]any{"filename": "image.png", "content_base64": base64.StdEncoding.EncodeToString(
				[]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"))}) +
			jsonLine(t, map[string]any{"filename": "x.md"}) +
			jsonLine(t, map[string]any{"filename": "y.md", "content_base64": "!!not base64!!"}) +
			jsonLine(t, map[string]any{"filename": "z.md", "text": "z", "extra": true}) +
			`{"filename": "last.md", "text": "# Last\n\nNo newline at the end.\n"}`
		var res bulkAnswer
		f.must(t, f.admin, "POST", path, nd, body, 200, &res)
		if res.Created != 3 || res.Failed != 6 || len(res.Documents) != 9 {
			t.Fatalf("bulk: %+v", res)
		}
		want := []struct {
			line int
			code string
		}{{1, ""}, {2, ""}, {4, "conflict"}, {5, "invalid"}, {6, "invalid"}, {7, "invalid"}, {8, "invalid"}, {9, "invalid"}, {10, ""}}
		for i, w := range want {
			r := res.Documents[i]
			if r.Line != w.line || (w.code == "") != (r.Document != nil) || (r.Error != nil && r.Error.Code != w.code) {
				t.Errorf("line %d: %+v document=%+v error=%+v", w.line, r, r.Document, r.Error)
			}
		}
		first := res.Documents[0].Document
		if first.FileType != "markdown" || first.Status != "pending" || first.OriginalFilename != "tides.md" || first.Metadata["n"] != float64(1) {
			t.Errorf("line 1: %+v", first)
		}
		if res.Documents[1].Document.FileType != "text" {
			t.Errorf("line 2: %+v", res.Documents[1].Document)
		}
		if e := res.Documents[2].Error; e.DuplicateOf != first.ID {
			t.Errorf("duplicate: %+v, want duplicate_of %s", e, first.ID)
		}
		if e := res.Documents[5].Error; e.Fields["text"] == "" {
			t.Errorf("no content: %+v", e)
		}
		if e := res.Documents[6].Error; e.Fields["content_base64"] == "" {
			t.Errorf("bad base64: %+v", e)
		}
		// Only the created documents' files are kept, and each was queued.
		if n := f.countBlobs(t); n != 3 {
			t.Errorf("%d files in the blob store, want 3", n)
		}
		f.mu.Lock()
		queued := len(f.queued)
		f.mu.Unlock()
		if queued != 3 {
			t.Errorf("%d queued, want 3", queued)
		}
		if err := f.kn.Ingest(context.Background(), f.a, first.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		var sr searchAnswer
		f.must(t, f.viewer, "POST", base+"/"+a.KnowledgeBase.ID+"/search", "", map[string]any{"query": "moon tides"}, 200, &sr)
		if len(sr.Hits) != 1 || sr.Hits[0].DocumentID != first.ID {
			t.Errorf("search: %+v", sr)
		}

		// A line over the line limit fails alone.
		long := jsonLine(t, map[string]any{"filename": "long.txt", "text": strings.Repeat("a", bulkLineLimit)}) +
			jsonLine(t, map[string]any{"filename": "short.txt", "text": "short and fine"})
		f.must(t, f.admin, "POST", path, "application/jsonl", long, 200, &res)
		if res.Created != 1 || res.Failed != 1 || res.Documents[0].Error == nil || res.Documents[0].Error.Code != "too_large" ||
			res.Documents[1].Line != 2 || res.Documents[1].Document == nil {
			t.Errorf("long line: %+v", res)
		}

		// Too many lines: 400, past the limit.
		status, raw := f.call(t, f.admin, "POST", path, nd, strings.Repeat("\n", bulkMaxLines)+`{"filename":"a.txt","text":"a"}`)
		if status != 400 || !strings.Contains(string(raw), strconv.Itoa(bulkMaxLines)) {
			t.Errorf("too many lines: %d %s", status, raw)
		}

		for name, tc := range map[string]struct {
			token, path, ct string
			want            int
		}{
			"json, not lines": {f.admin, path, "application/json", 400},
			"no type":         {f.admin, path, "", 400},
			"viewer":          {f.viewer, path, nd, 403},
			"user":            {f.user, path, nd, 403},
			"another tenant":  {f.bAdmin, path, nd, 404},
			"unknown kb":      {f.admin, base + "/" + nodus.NewID() + "/documents/bulk", nd, 404},
		} {
			if status, raw := f.call(t, tc.token, "POST", tc.path, tc.ct, jsonLine(t, map[string]any{"filename": "q.txt", "text": name})); status != tc.want {
				t.Errorf("%s: %d %s, want %d", name, status, raw, tc.want)
			}
		}
		var list struct{ Documents []map[string]any }
		f.must(t, f.bAdmin, "GET", base+"/"+b.KnowledgeBase.ID+"/documents", "", nil, 200, &list)
		if len(list.Documents) != 0 {
			t.Errorf("B's knowledge base got documents: %+v", list.Documents)
		}

		// A body declared over the limit is 413 before it is read.
		u, _ := url.Parse(f.ts.URL)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
			path, u.Host, f.admin, nd, bulkMaxBody+1)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("declared over the limit: %d", resp.StatusCode)
		}
	})
}
