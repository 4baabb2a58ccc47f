package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	r := NewRegistry()
	r.Counter("c_total", "A counter.", "k").With("v").Add(2)
	body := text(t, r)
	h := r.Handler()

	tests := []struct {
		method     string
		wantStatus int
		wantBody   string
	}{
		{http.MethodGet, http.StatusOK, body},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "method not allowed\n"},
		{http.MethodPut, http.StatusMethodNotAllowed, "method not allowed\n"},
		{http.MethodDelete, http.StatusMethodNotAllowed, "method not allowed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			// Twice, so the second request reuses a pooled buffer.
			for range 2 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(tt.method, "/metrics", nil))
				res := rec.Result()
				got, _ := io.ReadAll(res.Body)
				if res.StatusCode != tt.wantStatus {
					t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
				}
				if string(got) != tt.wantBody {
					t.Errorf("body %q, want %q", got, tt.wantBody)
				}
				if tt.wantStatus == http.StatusMethodNotAllowed {
					if allow := res.Header.Get("Allow"); allow != "GET, HEAD" {
						t.Errorf("Allow = %q", allow)
					}
					continue
				}
				if ct := res.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
					t.Errorf("Content-Type = %q", ct)
				}
				if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
					t.Errorf("Content-Length = %q, want %d", cl, len(body))
				}
			}
		})
	}
}

func TestHandlerCollectError(t *testing.T) {
	r := NewRegistry()
	r.GaugeFunc("g", "", []string{"k"}, func() []Sample { return []Sample{{Value: 1}} })
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), "label values") {
		t.Errorf("body %q does not explain the error", rec.Body.String())
	}
}
