package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandlesAgreesWithTheMux: the first-segment shortcut in Handles never
// turns away a request the UI's mux would take, nor takes one it would not.
func TestHandlesAgreesWithTheMux(t *testing.T) {
	s := newTestServer(t)
	s.firsts = routeFirsts(s.routes())
	if s.firsts == nil {
		t.Fatal("a UI route starts with a wildcard: Handles would ask the mux about every request")
	}
	paths := []string{
		"/", "", "/v1/chat/completions", "/v1/models", "/api/v1/me", "/api/v1/spend", "/metrics", "/ready",
		"//admin", "/v1/../admin", "/v1/./chat", "/admin/", "/ADMIN", "/%61dmin", "/static", "/static/",
		"/v1%2Fadmin", "/admin%2Fx", "/v1//chat", "/login/", "/login/x", "/api", "/api/", "/nope",
	}
	for _, rt := range s.routes() {
		p := rt.pattern
		if _, after, ok := strings.Cut(p, " "); ok {
			p = after
		}
		p = strings.NewReplacer("{$}", "", "...}", "}").Replace(p)
		for strings.Contains(p, "{") {
			i, j := strings.Index(p, "{"), strings.Index(p, "}")
			p = p[:i] + "x1" + p[j+1:]
		}
		paths = append(paths, p, p+"/", strings.TrimSuffix(p, "/"), p+"/extra")
	}
	for _, method := range []string{"GET", "POST", "DELETE", "HEAD"} {
		for _, p := range paths {
			r := httptest.NewRequest(method, "http://nodus.test/", nil)
			r.URL.Path, r.URL.RawPath = p, ""
			if strings.Contains(p, "%") {
				r = httptest.NewRequest(method, "http://nodus.test"+p, nil)
			}
			_, pattern := s.mux.Handler(r)
			if got, want := s.Handles(r), pattern != ""; got != want {
				t.Errorf("%s %q: Handles %v, the mux matches %q", method, p, got, pattern)
			}
		}
	}
}

func TestPatternFirstSegment(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /static/{file}": "static", "POST /login": "login", "/{$}": "", "GET /{$}": "",
		"GET  /admin/users/": "admin", "/brand.css": "brand.css",
	} {
		if got, ok := patternFirstSegment(pattern); !ok || got != want {
			t.Errorf("%q: %q %v, want %q", pattern, got, ok, want)
		}
	}
	for _, pattern := range []string{"/", "GET /", "/{tenant}/x", "GET /{a...}", "example.com/x", "GET /x{y}/z"} {
		if got, ok := patternFirstSegment(pattern); ok {
			t.Errorf("%q: literal %q, want none", pattern, got)
		}
	}
}

// BenchmarkHandlesAPIPath is what an API request pays to learn it is not
// the UI's.
func BenchmarkHandlesAPIPath(b *testing.B) {
	s := newTestServer(b)
	s.firsts = routeFirsts(s.routes())
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	b.Run("mux", func(b *testing.B) {
		for b.Loop() {
			s.mux.Handler(r)
		}
	})
	b.Run("firsts", func(b *testing.B) {
		for b.Loop() {
			s.Handles(r)
		}
	})
}
