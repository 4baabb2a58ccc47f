package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
)

// syncBuffer is the log output the server writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the JSON log records written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// find returns the first log record with msg and every attribute of attrs.
func (s *syncBuffer) find(t *testing.T, msg string, attrs map[string]string) map[string]any {
	t.Helper()
next:
	for _, m := range s.lines(t) {
		if m["msg"] != msg {
			continue
		}
		for k, v := range attrs {
			if fmt.Sprint(m[k]) != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// newTestServer returns a Server logging JSON at debug level to a buffer,
// whose /ready answers ready.
func newTestServer(t *testing.T, cfg Config, ready Readiness) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	s := NewServer(Deps{
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: metrics.NewRegistry(),
		Ready:   func(context.Context) Readiness { return ready },
		Version: "test",
	}, cfg)
	return s, logs
}

// serve runs h on a loopback listener for the length of the test.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

// addRoute registers rt on the server's mux with the middleware every
// route of routes.go gets, as NewServer would.
// addRoute registers a test route; these test the HTTP machinery, so they
// are public unless they name an action.
func addRoute(s *Server, rt route) {
	rt.public = rt.action == ""
	s.mux.Handle(rt.pattern, s.wrap(rt))
	s.limits[rt.pattern] = s.bodyLimit(rt)
}

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

// do sends one request and returns the response with its body read.
func do(t *testing.T, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return res, body
}

// dial opens a raw connection to ts, closed before ts is.
func dial(t *testing.T, ts *httptest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawRequest writes req as is on a new connection and reads one response,
// so the request line reaches the server exactly as written.
func rawRequest(t *testing.T, ts *httptest.Server, req string) (*http.Response, []byte) {
	t.Helper()
	c := dial(t, ts)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, body
}

type envelope struct {
	Error struct {
		Code      string            `json:"code"`
		Message   string            `json:"message"`
		Fields    map[string]string `json:"fields"`
		RequestID string            `json:"request_id"`
	} `json:"error"`
}

// checkEnvelope fails unless body is the error envelope with code, carrying
// the request id the response header names.
func checkEnvelope(t *testing.T, res *http.Response, body []byte, code string) envelope {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("body %q is not the error envelope: %v", body, err)
	}
	if env.Error.Code != code {
		t.Errorf("code = %q, want %q (body %s)", env.Error.Code, code, body)
	}
	if env.Error.Message == "" {
		t.Errorf("empty message (body %s)", body)
	}
	if id := res.Header.Get("X-Request-Id"); id == "" || env.Error.RequestID != id {
		t.Errorf("request_id = %q, X-Request-Id = %q; want equal and set", env.Error.RequestID, id)
	}
	return env
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{24}$`)

func TestHealth(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	ts := serve(t, s)

	tests := []struct {
		name   string
		sent   string // X-Request-Id sent; "" sends none
		echoed bool   // whether the server keeps it
	}{
		{"no id", "", false},
		{"plain id", "abc-123", true},
		{"every allowed character", "AZaz09-_.", true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"65 characters", strings.Repeat("a", 65), false},
		{"markup", "<script>", false},
		{"space", "abc 123", false},
		{"slash", "../etc/passwd", false},
		{"quote", `a"b`, false},
		{"non-ASCII", "abcé", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.sent != "" {
				hdr["X-Request-Id"] = tt.sent
			}
			res, body := do(t, http.MethodGet, ts.URL+"/health", hdr)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200 (body %s)", res.StatusCode, body)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if want := map[string]any{"status": "ok", "version": "test"}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("body %v, want %v", got, want)
			}
			id := res.Header.Get("X-Request-Id")
			switch {
			case tt.echoed && id != tt.sent:
				t.Errorf("X-Request-Id = %q, want %q echoed", id, tt.sent)
			case !tt.echoed && !generatedID.MatchString(id):
				t.Errorf("X-Request-Id = %q, want a generated hex id", id)
			}
		})
	}

	t.Run("generated ids differ", func(t *testing.T) {
		a, _ := do(t, http.MethodGet, ts.URL+"/health", nil)
		b, _ := do(t, http.MethodGet, ts.URL+"/health", nil)
		if a.Header.Get("X-Request-Id") == b.Header.Get("X-Request-Id") {
			t.Errorf("two requests got the same id %q", a.Header.Get("X-Request-Id"))
		}
	})
}

func TestReady(t *testing.T) {
	tests := []struct {
		name       string
		ready      Readiness
		wantStatus int
	}{
		{"ready", Readiness{Ready: true, Checks: []Check{{Name: "main", Status: "ok"}}}, http.StatusOK},
		{"not ready", Readiness{Ready: false, Checks: []Check{
			{Name: "main", Status: "ok"},
			{Name: "vault", Status: "failed", Detail: "2 migrations pending"},
		}}, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, Config{}, tt.ready)
			ts := serve(t, s)
			res, body := do(t, http.MethodGet, ts.URL+"/ready", nil)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			var got Readiness
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.ready) {
				t.Errorf("body %+v, want %+v", got, tt.ready)
			}
		})
	}
}

func TestUnmatched(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	ts := serve(t, s)

	tests := []struct {
		method, path string
		wantStatus   int
		wantCode     string
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, nodus.ENOTFOUND},
		{http.MethodPost, "/nope", http.StatusNotFound, nodus.ENOTFOUND},
		{http.MethodGet, "/", http.StatusNotFound, nodus.ENOTFOUND},
		{http.MethodPost, "/health", http.StatusMethodNotAllowed, nodus.EMETHOD},
		{http.MethodDelete, "/health", http.StatusMethodNotAllowed, nodus.EMETHOD},
		{http.MethodPut, "/ready", http.StatusMethodNotAllowed, nodus.EMETHOD},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed, nodus.EMETHOD},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res, body := do(t, tt.method, ts.URL+tt.path, nil)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", res.StatusCode, tt.wantStatus, body)
			}
			checkEnvelope(t, res, body, tt.wantCode)
			allow := res.Header.Get("Allow")
			if tt.wantStatus == http.StatusMethodNotAllowed && !strings.Contains(allow, http.MethodGet) {
				t.Errorf("Allow = %q, want it to list GET", allow)
			}
			if tt.wantStatus != http.StatusMethodNotAllowed && allow != "" {
				t.Errorf("Allow = %q on a %d", allow, res.StatusCode)
			}
		})
	}

	t.Run("HEAD /health", func(t *testing.T) {
		res, _ := do(t, http.MethodHead, ts.URL+"/health", nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("status %d, want 200", res.StatusCode)
		}
	})
}

// TestPathConfusion sends paths that a router might clean, decode or fold,
// exactly as written on the request line. None may fail the server; a path
// that is cleaned is redirected (by the mux, 307) to the clean path,
// anything else is a 404 in the error envelope.
func TestPathConfusion(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	ts := serve(t, s)

	tests := []struct {
		path         string
		wantStatus   int
		wantLocation string
	}{
		{"//health", http.StatusTemporaryRedirect, "/health"},
		{"/./health", http.StatusTemporaryRedirect, "/health"},
		{"/nope/../health", http.StatusTemporaryRedirect, "/health"},
		{"/%2e%2e/health", http.StatusNotFound, ""}, // escaped dots are not cleaned
		{"/health/", http.StatusNotFound, ""},
		{"/HEALTH", http.StatusNotFound, ""},
		{"/health%00", http.StatusNotFound, ""},
		{"/%68ealth", http.StatusOK, ""}, // %68 is "h": the same path
		{"/health?x=1", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := rawRequest(t, ts, "GET "+tt.path+" HTTP/1.1\r\nHost: nodus.test\r\nConnection: close\r\n\r\n")
			if res.StatusCode >= 500 {
				t.Fatalf("status %d (body %s)", res.StatusCode, body)
			}
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d (body %s)", res.StatusCode, tt.wantStatus, body)
			}
			if loc := res.Header.Get("Location"); loc != tt.wantLocation {
				t.Errorf("Location = %q, want %q", loc, tt.wantLocation)
			}
			if res.StatusCode == http.StatusNotFound {
				checkEnvelope(t, res, body, nodus.ENOTFOUND)
			}
		})
	}
}

// TestBodyTooLarge checks that a declared body over the limit is refused
// from its headers alone: the test never sends the body, so the 413 can
// only arrive if the server does not wait for it, and the connection must
// then be closed rather than kept waiting for the body.
func TestBodyTooLarge(t *testing.T) {
	const limit = 1024
	s, logs := newTestServer(t, Config{MaxBodyBytes: limit, RequestTimeout: 500 * time.Millisecond}, Readiness{Ready: true})
	ts := serve(t, s)

	tests := []struct {
		name          string
		method, path  string
		contentLength int64
		wantStatus    int
		wantRoute     string // of the access log line
	}{
		{"10 GB to an unknown path", "POST", "/upload", 10 << 30, http.StatusRequestEntityTooLarge, "unmatched"},
		{"10 GB to a route", "GET", "/health", 10 << 30, http.StatusRequestEntityTooLarge, "unmatched"},
		{"one byte over", "POST", "/upload", limit + 1, http.StatusRequestEntityTooLarge, "unmatched"},
		{"at the limit", "GET", "/health", limit, http.StatusOK, "GET /health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			id := fmt.Sprintf("too-large-%d", tt.contentLength)
			req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: nodus.test\r\nX-Request-Id: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				tt.method, tt.path, id, tt.contentLength)
			if tt.wantStatus == http.StatusOK {
				req += strings.Repeat(" ", int(tt.contentLength))
			}
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response before the body was sent: %v", err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", res.StatusCode, tt.wantStatus, body)
			}
			if logs.find(t, "request", map[string]string{"request_id": id, "status": fmt.Sprint(tt.wantStatus), "route": tt.wantRoute}) == nil {
				t.Errorf("no access log line for the %d on route %q:\n%s", tt.wantStatus, tt.wantRoute, logs)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			env := checkEnvelope(t, res, body, nodus.ETOOLARGE)
			if !strings.Contains(env.Error.Message, "1024") {
				t.Errorf("message %q does not name the limit", env.Error.Message)
			}
			if !res.Close {
				t.Errorf("response does not say Connection: close (header %v)", res.Header)
			}
			// The server must hang up rather than wait for the body.
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := br.Read(make([]byte, 1)); err == nil {
				t.Errorf("connection still open after the 413: read %d bytes", n)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("connection still open 2s after the 413, waiting for the body: %v", err)
			}
		})
	}
}

// metricsText scrapes ts's /metrics.
func metricsText(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	res, body := do(t, http.MethodGet, ts.URL+"/metrics", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", res.StatusCode)
	}
	return string(body)
}

func TestMetrics(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	ts := serve(t, s)

	for range 3 {
		do(t, http.MethodGet, ts.URL+"/health", nil)
	}
	do(t, http.MethodGet, ts.URL+"/random-123", nil)
	do(t, http.MethodGet, ts.URL+"/random-456/x?q=random-789", nil)
	do(t, http.MethodPost, ts.URL+"/health", nil)
	text := metricsText(t, ts)

	for _, want := range []string{
		`nodus_http_requests_total{method="GET",route="GET /health",status="200"} 3` + "\n",
		`nodus_http_requests_total{method="GET",route="unmatched",status="404"} 2` + "\n",
		`nodus_http_requests_total{method="POST",route="unmatched",status="405"} 1` + "\n",
		`nodus_http_request_duration_seconds_count{method="GET",route="GET /health"} 3` + "\n",
		"nodus_http_requests_in_flight 1\n", // the scrape itself
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, leak := range []string{"random-123", "random-456", "random-789"} {
		if strings.Contains(text, leak) {
			t.Errorf("/metrics contains the raw path %q", leak)
		}
	}
}

// TestMetricsLabelsAreBounded checks that nothing a client chooses becomes
// a label value: each distinct value would be a new series held forever.
func TestMetricsLabelsAreBounded(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	ts := serve(t, s)

	tests := []struct {
		method, path string
		chosen       string // what must not appear in /metrics
	}{
		{"GET", "/random-path-1", "random-path-1"},
		{"RANDOM-METHOD-1", "/health", "RANDOM-METHOD-1"},
		{"RANDOM-METHOD-2", "/random-path-2", "RANDOM-METHOD-2"},
	}
	for _, tt := range tests {
		do(t, tt.method, ts.URL+tt.path, nil)
	}
	text := metricsText(t, ts)
	for _, tt := range tests {
		if strings.Contains(text, tt.chosen) {
			t.Errorf("%s %s: /metrics contains the client-chosen %q", tt.method, tt.path, tt.chosen)
		}
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		code string
		want int
	}{
		{nodus.EINVALID, 400},
		{nodus.EUNAUTHORIZED, 401},
		{nodus.EFORBIDDEN, 403},
		{nodus.ENOTFOUND, 404},
		{nodus.EMETHOD, 405},
		{nodus.ECONFLICT, 409},
		{nodus.ETOOLARGE, 413},
		{nodus.ERATELIMIT, 429},
		{nodus.EINTERNAL, 500},
		{nodus.EUNAVAILABLE, 503},
		{nodus.ETIMEOUT, 504},
		{"", 500},
		{"no_such_code", 500},
	}
	for _, tt := range tests {
		if got := StatusOf(tt.code); got != tt.want {
			t.Errorf("StatusOf(%q) = %d, want %d", tt.code, got, tt.want)
		}
	}
}

// requestWithID returns a request whose context carries id, as ServeHTTP
// would set it.
func requestWithID(ctx context.Context, id string) *http.Request {
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/x", nil)
	return r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, &requestInfo{id: id, route: "GET /x"}))
}

func TestWriteError(t *testing.T) {
	const secret = "pq: password authentication failed for user nodus_admin"
	tests := []struct {
		name        string
		err         error
		wantStatus  int
		wantCode    string
		wantMessage string
		wantFields  map[string]string
		wantLogged  bool // at error level, with the request id
	}{
		{"invalid", nodus.Errorf(nodus.EINVALID, "bad"), 400, nodus.EINVALID, "bad", nil, false},
		{"unauthorized", nodus.Errorf(nodus.EUNAUTHORIZED, "who"), 401, nodus.EUNAUTHORIZED, "who", nil, false},
		{"forbidden", nodus.Errorf(nodus.EFORBIDDEN, "no"), 403, nodus.EFORBIDDEN, "no", nil, false},
		{"not found", nodus.Errorf(nodus.ENOTFOUND, "kb 1 not found"), 404, nodus.ENOTFOUND, "kb 1 not found", nil, false},
		{"method", nodus.Errorf(nodus.EMETHOD, "nope"), 405, nodus.EMETHOD, "nope", nil, false},
		{"conflict", nodus.Errorf(nodus.ECONFLICT, "taken"), 409, nodus.ECONFLICT, "taken", nil, false},
		{"too large", nodus.Errorf(nodus.ETOOLARGE, "big"), 413, nodus.ETOOLARGE, "big", nil, false},
		{"rate limited", nodus.Errorf(nodus.ERATELIMIT, "slow down"), 429, nodus.ERATELIMIT, "slow down", nil, false},
		{"internal", nodus.Errorf(nodus.EINTERNAL, "broke"), 500, nodus.EINTERNAL, "broke", nil, true},
		{"unavailable", nodus.Errorf(nodus.EUNAVAILABLE, "sealed"), 503, nodus.EUNAVAILABLE, "sealed", nil, true},
		{"timeout", nodus.Errorf(nodus.ETIMEOUT, "late"), 504, nodus.ETIMEOUT, "late", nil, true},
		{"unknown code", nodus.Errorf("weird", "odd"), 500, "weird", "odd", nil, true},
		{"wrapped", fmt.Errorf("chat: find: %w", nodus.Errorf(nodus.ENOTFOUND, "chat 7 not found")),
			404, nodus.ENOTFOUND, "chat 7 not found", nil, false},
		{"validation fields", &nodus.Error{Code: nodus.EINVALID, Message: "invalid input",
			Fields: map[string]string{"name": "is required", "size": "must be positive"}},
			400, nodus.EINVALID, "invalid input", map[string]string{"name": "is required", "size": "must be positive"}, false},
		{"plain error", errors.New(secret), 500, nodus.EINTERNAL, "internal error", nil, true},
		{"wrapped plain error", fmt.Errorf("store: %w", errors.New(secret)), 500, nodus.EINTERNAL, "internal error", nil, true},
		{"internal with cause", nodus.WrapError(errors.New(secret), nodus.EINTERNAL, "save failed"),
			500, nodus.EINTERNAL, "save failed", nil, true},
		{"deadline", context.DeadlineExceeded, 504, nodus.ETIMEOUT, "the request took too long", nil, true},
		{"wrapped deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), 504, nodus.ETIMEOUT, "the request took too long", nil, true},
		{"deadline under a code", nodus.WrapError(context.DeadlineExceeded, nodus.EUNAVAILABLE, "database busy"),
			503, nodus.EUNAVAILABLE, "database busy", nil, true},
		{"canceled while the client waits", context.Canceled, 500, nodus.EINTERNAL, "internal error", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, logs := newTestServer(t, Config{}, Readiness{Ready: true})
			rec := httptest.NewRecorder()
			s.writeError(rec, requestWithID(context.Background(), "req-unit-1"), tt.err)
			res := rec.Result()
			body := rec.Body.Bytes()

			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			res.Header.Set("X-Request-Id", "req-unit-1") // set by ServeHTTP, not writeError
			env := checkEnvelope(t, res, body, tt.wantCode)
			if env.Error.Message != tt.wantMessage {
				t.Errorf("message %q, want %q", env.Error.Message, tt.wantMessage)
			}
			if fmt.Sprint(env.Error.Fields) != fmt.Sprint(tt.wantFields) {
				t.Errorf("fields %v, want %v", env.Error.Fields, tt.wantFields)
			}
			if tt.wantFields == nil && bytes.Contains(body, []byte(`"fields"`)) {
				t.Errorf("body has fields: %s", body)
			}
			if bytes.Contains(body, []byte("password")) || bytes.Contains(body, []byte("nodus_admin")) {
				t.Errorf("body leaks the cause: %s", body)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q", got)
			}

			line := logs.find(t, "request failed", map[string]string{"request_id": "req-unit-1", "level": "ERROR"})
			if (line != nil) != tt.wantLogged {
				t.Fatalf("logged = %v, want %v; logs:\n%s", line != nil, tt.wantLogged, logs)
			}
			if line != nil && !strings.Contains(fmt.Sprint(line["err"]), tt.err.Error()) {
				t.Errorf("log err = %q, want it to hold %q", line["err"], tt.err.Error())
			}
		})
	}
}

// TestWriteErrorClientGone checks that nothing is written for a client
// that has left.
func TestWriteErrorClientGone(t *testing.T) {
	s, logs := newTestServer(t, Config{}, Readiness{Ready: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	s.writeError(rec, requestWithID(ctx, "req-gone"), fmt.Errorf("read: %w", context.Canceled))
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
		t.Errorf("wrote %q to a client that left", rec.Body)
	}
	if strings.Contains(logs.String(), "req-gone") {
		t.Errorf("logged a client that left as a failure:\n%s", logs)
	}
}

func TestPanicRecovery(t *testing.T) {
	s, logs := newTestServer(t, Config{}, Readiness{Ready: true})
	addRoute(s, route{pattern: "GET /boom", handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("kaboom: secret detail")
	})})
	ts := serve(t, s)

	for i := range 2 { // twice: the server must survive the first
		res, body := do(t, http.MethodGet, ts.URL+"/boom", map[string]string{"X-Request-Id": fmt.Sprintf("boom-%d", i)})
		if res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500 (body %s)", res.StatusCode, body)
		}
		env := checkEnvelope(t, res, body, nodus.EINTERNAL)
		if env.Error.Message != "internal error" || bytes.Contains(body, []byte("kaboom")) {
			t.Errorf("body %s, want a generic message", body)
		}
		line := logs.find(t, "panic", map[string]string{"request_id": fmt.Sprintf("boom-%d", i)})
		if line == nil {
			t.Fatalf("panic not logged with its request id:\n%s", logs)
		}
		if fmt.Sprint(line["panic"]) != "kaboom: secret detail" || !strings.Contains(fmt.Sprint(line["stack"]), "server_test.go") {
			t.Errorf("panic log lacks the value or the stack: %v", line)
		}
	}
	if res, _ := do(t, http.MethodGet, ts.URL+"/health", nil); res.StatusCode != http.StatusOK {
		t.Errorf("after a panic, /health answers %d", res.StatusCode)
	}
	if want := `nodus_http_requests_total{method="GET",route="GET /boom",status="500"} 2`; !strings.Contains(metricsText(t, ts), want) {
		t.Errorf("/metrics lacks %q", want)
	}
}

// TestPanicAfterHeader checks that a handler panicking midway through its
// answer does not leave the client with a truncated body that looks
// complete: the response must be aborted so the client sees an error.
func TestPanicAfterHeader(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	addRoute(s, route{pattern: "GET /half", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"items":[1,2,`)
		panic("midway")
	})})
	ts := serve(t, s)

	res, err := noRedirect.Get(ts.URL + "/half")
	if err != nil {
		return // aborted before the header: also acceptable
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err == nil {
		t.Errorf("client read a truncated body %q with no error: the panic was hidden", body)
	}
}

// TestRouteTimeout checks that a handler running out of time answers 504.
// Each case runs several times: the failure it guards against, the
// handler's context ending as canceled rather than timed out, is a race.
func TestRouteTimeout(t *testing.T) {
	const timeout = 20 * time.Millisecond
	tests := []struct {
		name         string
		cfgTimeout   time.Duration
		routeTimeout time.Duration
	}{
		{"route timeout", 10 * time.Second, timeout},
		{"default timeout", timeout, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, Config{RequestTimeout: tt.cfgTimeout}, Readiness{Ready: true})
			addRoute(s, route{pattern: "GET /wait", timeout: tt.routeTimeout, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
				s.writeError(w, r, r.Context().Err())
			})})
			ts := serve(t, s)

			for i := range 20 {
				start := time.Now()
				res, body := do(t, http.MethodGet, ts.URL+"/wait", nil)
				elapsed := time.Since(start)
				if res.StatusCode != http.StatusGatewayTimeout {
					t.Fatalf("request %d: status %d, want 504 (body %q)", i, res.StatusCode, body)
				}
				checkEnvelope(t, res, body, nodus.ETIMEOUT)
				if elapsed < timeout || elapsed > timeout+2*time.Second {
					t.Errorf("request %d answered after %v, want about %v", i, elapsed, timeout)
				}
			}
		})
	}
}

// TestSlowBody checks that a client trickling its body is cut off at the
// deadline, whether or not a route reads the body, and that it holds up
// nobody else meanwhile.
func TestSlowBody(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s, _ := newTestServer(t, Config{RequestTimeout: timeout}, Readiness{Ready: true})
	addRoute(s, route{pattern: "POST /upload", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, map[string]int{"bytes": len(b)})
	})})
	ts := serve(t, s)

	tests := []struct {
		name, path string
	}{
		{"route reads the body", "/upload"},
		{"no route", "/nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts)
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			start := time.Now()
			req := "POST " + tt.path + " HTTP/1.1\r\nHost: nodus.test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n0123456789"
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}

			// Others are served while the slow client holds its connection.
			for range 3 {
				t0 := time.Now()
				if res, _ := do(t, http.MethodGet, ts.URL+"/health", nil); res.StatusCode != http.StatusOK {
					t.Errorf("/health answered %d during a slow upload", res.StatusCode)
				}
				if d := time.Since(t0); d > 150*time.Millisecond {
					t.Errorf("/health took %v during a slow upload", d)
				}
			}

			// The slow client gets an error status, if anything, and then
			// a closed connection within about a second.
			br := bufio.NewReader(c)
			if res, err := http.ReadResponse(br, nil); err == nil {
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode < 400 {
					t.Errorf("slow upload answered %d %s", res.StatusCode, body)
				}
			}
			_, err := br.ReadByte()
			elapsed := time.Since(start)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open after %v: the slow client was not cut", elapsed)
			}
			if err == nil {
				t.Errorf("server sent more after its answer")
			}
			if elapsed > timeout+1500*time.Millisecond {
				t.Errorf("slow client cut after %v, want about %v", elapsed, timeout)
			}
		})
	}
}

// TestTimeoutLeavesConnectionUsable checks that a request that ran out of
// time does not affect the next request on the same keep-alive connection:
// its context must start live.
func TestTimeoutLeavesConnectionUsable(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	addRoute(s, route{pattern: "GET /wait", timeout: 20 * time.Millisecond, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		s.writeError(w, r, r.Context().Err())
	})})
	addRoute(s, route{pattern: "GET /ctx", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, r, http.StatusOK, map[string]string{"ctx_err": fmt.Sprint(r.Context().Err())})
	})})
	ts := serve(t, s)

	c := dial(t, ts)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: nodus.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return res, body
	}

	get("/wait")
	time.Sleep(10 * time.Millisecond) // past the read deadline /wait set
	for i := range 3 {
		res, body := get("/ctx")
		var got struct {
			CtxErr string `json:"ctx_err"`
		}
		if err := json.Unmarshal(body, &got); err != nil || res.StatusCode != http.StatusOK || got.CtxErr != "<nil>" {
			t.Errorf("request %d after a timeout on the same connection: %d %s, want a live context", i, res.StatusCode, body)
		}
	}
}

// TestRouteBodyLimit checks a route's own body limit, whether the client
// declares the length or streams the body chunked.
func TestRouteBodyLimit(t *testing.T) {
	s, _ := newTestServer(t, Config{MaxBodyBytes: 1 << 20}, Readiness{Ready: true})
	addRoute(s, route{pattern: "POST /echo", maxBody: 64, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p payload
		if err := decodeJSON(r, &p); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, p)
	})})
	ts := serve(t, s)

	big := `{"name":"` + strings.Repeat("a", 100) + `"}`
	tests := []struct {
		name       string
		body       string
		chunked    bool
		wantStatus int
	}{
		{"small", `{"name":"a"}`, false, http.StatusOK},
		{"small chunked", `{"name":"a"}`, true, http.StatusOK},
		{"declared over the route limit", big, false, http.StatusRequestEntityTooLarge},
		{"chunked over the route limit", big, true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/echo", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			res, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", res.StatusCode, tt.wantStatus, got)
			}
			if tt.wantStatus == http.StatusOK {
				if string(got) != `{"name":"a","count":0}`+"\n" {
					t.Errorf("body %s", got)
				}
				return
			}
			env := checkEnvelope(t, res, got, nodus.ETOOLARGE)
			if !strings.Contains(env.Error.Message, "64 bytes") {
				t.Errorf("message %q does not name the route's limit", env.Error.Message)
			}
		})
	}
}

// TestEveryRouteIsClassified walks the route table (SECURITY.md check 2):
// every route is public or names an action, and the public ones are
// exactly this list.
func TestEveryRouteIsClassified(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Readiness{Ready: true})
	public := map[string]bool{"GET /health": true, "GET /ready": true, "GET /metrics": true, "POST /api/v1/auth/login": true,
		"POST /api/v1/vault/auth/machine": true, "POST /api/public/ingestion": true, "POST /api/public/otel/v1/traces": true,
		"GET /api/public/health": true, "GET /api/public/projects": true, "GET /api/public/traces": true,
		"GET /api/public/traces/{traceId}": true, "DELETE /api/public/traces/{traceId}": true,
		"GET /api/public/observations": true, "GET /api/public/observations/{observationId}": true,
		"GET /api/public/sessions": true, "GET /api/public/sessions/{sessionId}": true, "GET /api/public/scores": true,
		"GET /api/public/v2/scores": true, "GET /api/public/scores/{scoreId}": true, "POST /api/public/scores": true,
		"DELETE /api/public/scores/{scoreId}": true}
	for _, rt := range s.routes() {
		switch {
		case rt.public && rt.action != "", !rt.public && rt.action == "":
			t.Errorf("route %s: public=%v action=%q, want exactly one", rt.pattern, rt.public, rt.action)
		case rt.public && !public[rt.pattern]:
			t.Errorf("route %s is public but not on the list of public routes", rt.pattern)
		case !rt.public && !s.perms.Allows(identity.RoleSuperAdmin, rt.action):
			t.Errorf("route %s needs %q, which no role holds", rt.pattern, rt.action)
		}
	}
}
