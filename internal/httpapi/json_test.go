package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

type payload struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags,omitempty"`
}

// jsonRequest returns a POST whose body is body, with contentType when it
// is set and limit applied to the body when it is positive.
func jsonRequest(body io.Reader, contentType string, limit int64) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/x", body)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if limit > 0 {
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, limit)
	}
	return r
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		limit       int64
		want        payload // when wantCode is ""
		wantCode    string
		wantMessage string // a part of the message
		wantFields  map[string]string
	}{
		{name: "valid", body: `{"name":"kb","count":2,"tags":["a"]}`, contentType: "application/json",
			want: payload{Name: "kb", Count: 2, Tags: []string{"a"}}},
		{name: "valid with trailing whitespace", body: "{\"name\":\"kb\"}\n\t \n", contentType: "application/json",
			want: payload{Name: "kb"}},
		{name: "no content type", body: `{"count":1}`, want: payload{Count: 1}},
		{name: "charset parameter", body: `{"count":1}`, contentType: "application/json; charset=utf-8", want: payload{Count: 1}},
		{name: "media type in capitals", body: `{"count":1}`, contentType: "Application/JSON; charset=UTF-8", want: payload{Count: 1}},
		{name: "at the limit", body: `{"name":"abc"}`, contentType: "application/json", limit: 14, want: payload{Name: "abc"}},

		{name: "unknown field", body: `{"nmae":"kb"}`, wantCode: nodus.EINVALID, wantMessage: `"nmae"`, wantFields: map[string]string{"nmae": "unknown field"}},
		{name: "trailing second object", body: `{"name":"a"}{"name":"b"}`, wantCode: nodus.EINVALID, wantMessage: "single JSON value"},
		{name: "trailing garbage", body: `{"name":"a"} x`, wantCode: nodus.EINVALID},
		{name: "trailing brace", body: `{"name":"a"}}`, wantCode: nodus.EINVALID},
		{name: "empty body", body: "", wantCode: nodus.EINVALID, wantMessage: "empty"},
		{name: "only whitespace", body: " \n", wantCode: nodus.EINVALID, wantMessage: "empty"},
		{name: "truncated", body: `{"name":`, wantCode: nodus.EINVALID, wantMessage: "truncated"},
		{name: "syntax error", body: `{name:"a"}`, wantCode: nodus.EINVALID, wantMessage: "byte"},
		{name: "wrong field type", body: `{"count":"two"}`, wantCode: nodus.EINVALID, wantMessage: "count",
			wantFields: map[string]string{"count": "must be int"}},
		{name: "wrong element type", body: `{"tags":[1]}`, wantCode: nodus.EINVALID,
			wantFields: map[string]string{"tags": "must be string"}},
		{name: "array instead of object", body: `[1,2]`, wantCode: nodus.EINVALID},
		{name: "over the limit", body: `{"name":"` + strings.Repeat("a", 100) + `"}`, limit: 16,
			wantCode: nodus.ETOOLARGE, wantMessage: "16"},
		{name: "over the limit after the value", body: `{"name":"a"}` + strings.Repeat(" ", 100), limit: 16,
			wantCode: nodus.ETOOLARGE},
		{name: "text/plain", body: `{"count":1}`, contentType: "text/plain", wantCode: nodus.EINVALID, wantMessage: "Content-Type"},
		{name: "form", body: `{"count":1}`, contentType: "application/x-www-form-urlencoded", wantCode: nodus.EINVALID},
		{name: "json prefix", body: `{"count":1}`, contentType: "application/jsonp", wantCode: nodus.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got payload
			err := decodeJSON(jsonRequest(strings.NewReader(tt.body), tt.contentType, tt.limit), &got)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("decodeJSON: %v", err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("decoded %+v, want %+v", got, tt.want)
				}
				return
			}
			var e *nodus.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want a *nodus.Error", err, err)
			}
			if e.Code != tt.wantCode {
				t.Errorf("code %q, want %q (%v)", e.Code, tt.wantCode, err)
			}
			if !strings.Contains(e.Message, tt.wantMessage) {
				t.Errorf("message %q, want it to hold %q", e.Message, tt.wantMessage)
			}
			if fmt.Sprint(e.Fields) != fmt.Sprint(tt.wantFields) {
				t.Errorf("fields %v, want %v", e.Fields, tt.wantFields)
			}
		})
	}
}

// failingReader yields some bytes, then err.
type failingReader struct {
	data string
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// TestDecodeJSONReadError checks that a body that fails to arrive is not
// blamed on the JSON, and that the network error's text, which names
// addresses, is kept for the logs and not put in the client's message.
func TestDecodeJSONReadError(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8080}
	remote := &net.TCPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 51234}
	tests := []struct {
		name string
		err  error
	}{
		{"deadline", &net.OpError{Op: "read", Net: "tcp", Source: local, Addr: remote, Err: os.ErrDeadlineExceeded}},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Source: local, Addr: remote, Err: errors.New("connection reset by peer")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got payload
			err := decodeJSON(jsonRequest(&failingReader{data: `{"name":`, err: tt.err}, "application/json", 0), &got)
			if !errors.Is(err, tt.err) {
				t.Errorf("error %v does not keep its cause", err)
			}
			if msg := nodus.ErrorMessage(err); strings.Contains(msg, "10.0.0.5") || strings.Contains(msg, "203.0.113.9") {
				t.Errorf("client message %q shows the network error", msg)
			}
		})
	}
}

// FuzzDecodeJSON checks that any body and content type yields either a
// value or an invalid or too_large error, never a panic or another code.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []struct{ body, ct string }{
		{`{"name":"kb","count":2,"tags":["a","b"]}`, "application/json"},
		{`{"name":"kb"}{"name":"kb"}`, ""},
		{`{"count":"two"}`, "application/json; charset=utf-8"},
		{`{"nmae":1}`, "application/json"},
		{`{"name":` + strings.Repeat("[", 100), "application/json"},
		{`[]`, "text/plain"},
		{`null`, ""},
		{"", ""},
		{`{"count":1e999}`, "application/json"},
		{"{\"name\":\"\xff\"}", "application/json"},
	} {
		f.Add([]byte(seed.body), seed.ct)
	}
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		var got payload
		err := decodeJSON(jsonRequest(strings.NewReader(string(body)), ct, 256), &got)
		if err == nil {
			return
		}
		var e *nodus.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v (%T) is not a *nodus.Error", err, err)
		}
		if e.Code != nodus.EINVALID && e.Code != nodus.ETOOLARGE {
			t.Fatalf("code %q for %q: %v", e.Code, body, err)
		}
		if e.Code == nodus.ETOOLARGE && len(body) <= 256 {
			t.Fatalf("too_large for a %d-byte body", len(body))
		}
	})
}

func TestWriteErrorRetryAfter(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	for _, tt := range []struct {
		after time.Duration
		want  string
	}{{0, ""}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {14 * time.Minute, "840"}} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/x", nil)
		s.writeError(w, r, &nodus.Error{Code: nodus.ERATELIMIT, Message: "slow down", RetryAfter: tt.after})
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != tt.want {
			t.Errorf("RetryAfter %v: %d, Retry-After %q; want 429, %q", tt.after, w.Code, w.Header().Get("Retry-After"), tt.want)
		}
	}
}
