package httpapi

import (
	"mime"
	"net/http"
	"strings"
	"time"
)

// handleDocumentFile serves the file a document was uploaded as
// (SECURITY.md check 25): always as a download (Content-Disposition:
// attachment, with the uploaded name), typed by the type detected from
// its content with sniffing off, under a sandbox CSP that gives an HTML
// file opened anyway no script, no origin and no network. Range requests
// work, so a PDF viewer can page through a large file.
func (s *Server) handleDocumentFile() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := s.knowledgeManager(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f, err := s.deps.Knowledge.OpenDocumentFile(r.Context(), m, r.PathValue("id"), r.PathValue("doc"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer f.Content.Close()
		h := w.Header()
		h.Set("Content-Type", f.ContentType)
		h.Set("Content-Disposition", attachment(f.Document.OriginalFilename))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
		h.Set("Cache-Control", "private, no-store")
		http.ServeContent(w, r, "", f.Document.UpdatedAt.Truncate(time.Second), f.Content)
	})
}

// attachment is a Content-Disposition that downloads under name, encoded
// per RFC 6266 (a name outside ASCII goes as filename*), or "document"
// when the name is empty.
func attachment(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	if name == "" {
		name = "document"
	}
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}
