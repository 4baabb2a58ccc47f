package httpapi

import (
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// getFile fetches a document's file as token, with extra request headers.
func (f *knowledgeFixture) getFile(t *testing.T, token, kbID, docID string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", f.ts.URL+"/api/v1/knowledge-bases/"+kbID+"/documents/"+docID+"/file", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// TestDocumentFileRoute: a document's file comes back as uploaded, as a
// download with nosniff and a sandbox CSP (SECURITY.md check 25), typed
// by its content, to every member of the tenant and to no one else.
func TestDocumentFileRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		const base = "/api/v1/knowledge-bases"
		var a, b kbAnswer
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "A docs"}, 201, &a)
		f.must(t, f.bAdmin, "POST", base, "", map[string]any{"name": "B docs"}, 201, &b)
		aKB, bKB := a.KnowledgeBase.ID, b.KnowledgeBase.ID

		// HTML named .txt, with a name that needs encoding: served as the
		// HTML it is, but only ever as a download that runs nothing.
		const page = "<!doctype html><html><body><script>alert(document.cookie)</script><p>Hi</p></body></html>\n"
		doc := f.ingestUpload(t, f.admin, f.a, aKB, "r\u00e9sum\u00e9 final.txt", page)
		bDoc := f.ingestUpload(t, f.bAdmin, f.b, bKB, "b.txt", "tenant B's file\n")

		for name, token := range map[string]string{"admin": f.admin, "user": f.user, "viewer": f.viewer} {
			res, body := f.getFile(t, token, aKB, doc, nil)
			if res.StatusCode != 200 || body != page {
				t.Fatalf("%s: %d %q", name, res.StatusCode, body)
			}
			h := res.Header
			disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
			if err != nil || disp != "attachment" || params["filename"] != "r\u00e9sum\u00e9 final.txt" {
				t.Errorf("%s: Content-Disposition %q (%v, %v)", name, h.Get("Content-Disposition"), params, err)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(h.Get("Content-Security-Policy"), "sandbox") ||
				h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Cache-Control") != "private, no-store" {
				t.Errorf("%s: headers %v", name, h)
			}
		}

		// Ranges work, for viewers that page through a file.
		res, body := f.getFile(t, f.viewer, aKB, doc, map[string]string{"Range": "bytes=0-8"})
		if res.StatusCode != http.StatusPartialContent || body != page[:9] ||
			res.Header.Get("Content-Disposition") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("range: %d %q %v", res.StatusCode, body, res.Header)
		}

		// Another tenant's file, a document under another knowledge base,
		// or an unknown id: 404, never the bytes.
		for _, tt := range []struct {
			name, token, kb, doc string
		}{
			{"B's document by A", f.viewer, bKB, bDoc},
			{"A's document by B", f.bAdmin, aKB, doc},
			{"B's document under A's base", f.admin, aKB, bDoc},
			{"unknown document", f.admin, aKB, "0190a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"},
			{"malformed id", f.admin, aKB, "..%2f..%2fetc"},
		} {
			res, body := f.getFile(t, tt.token, tt.kb, tt.doc, nil)
			if res.StatusCode != http.StatusNotFound || strings.Contains(body, "tenant B's file") ||
				strings.Contains(body, "alert") {
				t.Errorf("%s: %d %q", tt.name, res.StatusCode, body)
			}
		}
	})
}

func TestAttachment(t *testing.T) {
	for name, want := range map[string]string{
		"notes.md":             `attachment; filename=notes.md`,
		"two words.pdf":        `attachment; filename="two words.pdf"`,
		"say \"hi\"\\now.txt":  `attachment; filename="say _hi__now.txt"`,
		"line\nbreak\x7f.txt":  `attachment; filename=line_break_.txt`,
		"":                     `attachment; filename=document`,
		"r\u00e9sum\u00e9.txt": `attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt`,
	} {
		got := attachment(name)
		if got != want {
			t.Errorf("attachment(%q) = %s, want %s", name, got, want)
		}
		if _, params, err := mime.ParseMediaType(got); err != nil || params["filename"] == "" {
			t.Errorf("attachment(%q) = %s does not parse: %v", name, got, err)
		}
	}
}
