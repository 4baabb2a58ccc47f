package knowledge_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// plainEgress hands out an unchecked client: these tests are about the
// import, egress's own checks are tested over the API.
type plainEgress struct{}

func (plainEgress) Client(string) *http.Client { return &http.Client{} }

func TestImportURL(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("# Home\n\nThe home page of the site.\n"))
		})
		mux.HandleFunc("GET /files/report%20final.md", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("# Report\n\nThe final report.\n"))
		})
		mux.HandleFunc("GET /declared-big", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(2<<20))
			w.WriteHeader(200)
		})
		mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
			for range 3 {
				w.Write([]byte(strings.Repeat("a", 1<<19)))
			}
		})
		mux.HandleFunc("GET /cut", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte("# Cut\n\nshort"))
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		})
		mux.HandleFunc("GET /gone", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", http.StatusGone) })
		src := httptest.NewServer(mux)
		defer src.Close()

		s := e.service(t, nil, func(c *knowledge.Config) { c.Egress = plainEgress{} })
		admin := knowledge.Manager{TenantID: e.a.id, UserID: "u1", Admin: true}
		ctx := context.Background()
		in := func(u string) knowledge.URLImportInput { return knowledge.URLImportInput{URL: u, Limit: 1 << 20} }

		d, err := s.ImportURL(ctx, admin, e.kb.ID, in(src.URL+"/"))
		if err != nil {
			t.Fatal(err)
		}
		host := strings.TrimPrefix(src.URL, "http://")
		if d.OriginalFilename != host[:strings.LastIndex(host, ":")] || d.SourceURL != src.URL+"/" || d.FileType != "markdown" ||
			d.Status != knowledge.StatusPending {
			t.Errorf("from the site's root: %+v", d)
		}
		d, err = s.ImportURL(ctx, admin, e.kb.ID, in(src.URL+"/files/report%20final.md?X-Amz-Signature=s3cret"))
		if err != nil || d.OriginalFilename != "report final.md" {
			t.Fatalf("a named file: %+v %v", d, err)
		}
		// A pre-signed link's signature is not kept for every member to see.
		if d.SourceURL != src.URL+"/files/report%20final.md" {
			t.Errorf("source_url %q keeps the query", d.SourceURL)
		}
		files := e.countFiles(t)

		for name, tc := range map[string]struct {
			m    knowledge.Manager
			kb   string
			url  string
			code string
		}{
			"declared too large": {admin, e.kb.ID, src.URL + "/declared-big", nodus.ETOOLARGE},
			"too large":          {admin, e.kb.ID, src.URL + "/big", nodus.ETOOLARGE},
			"cut short":          {admin, e.kb.ID, src.URL + "/cut", nodus.EUNAVAILABLE},
			"gone":               {admin, e.kb.ID, src.URL + "/gone", nodus.EINVALID},
			"unreachable":        {admin, e.kb.ID, "http://127.0.0.1:1/a.md", nodus.EUNAVAILABLE},
			"mailto":             {admin, e.kb.ID, "mailto:a@example.test", nodus.EINVALID},
			"no host":            {admin, e.kb.ID, "http:///a.md", nodus.EINVALID},
			"credentials":        {admin, e.kb.ID, "https://u:p@example.test/", nodus.EINVALID},
			"too long":           {admin, e.kb.ID, "https://example.test/" + strings.Repeat("a", 2048), nodus.EINVALID},
			"member":             {knowledge.Manager{TenantID: e.a.id, UserID: "u2"}, e.kb.ID, src.URL + "/", nodus.EFORBIDDEN},
			"another tenant":     {knowledge.Manager{TenantID: e.b.id, UserID: "u3", Admin: true}, e.kb.ID, src.URL + "/", nodus.ENOTFOUND},
		} {
			_, err := s.ImportURL(ctx, tc.m, tc.kb, in(tc.url))
			wantCode(t, name, err, tc.code)
		}
		if n := e.countFiles(t); n != files {
			t.Errorf("%d files after refused imports, want %d", n, files)
		}

		// Without egress: unavailable, and says why.
		_, err = e.service(t, nil, nil).ImportURL(ctx, admin, e.kb.ID, in(src.URL+"/"))
		wantCode(t, "no egress", err, nodus.EUNAVAILABLE)
		if !strings.Contains(nodus.ErrorMessage(err), "egress") {
			t.Errorf("no egress: %v", err)
		}
	})
}
