package egress_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// rawServer is an HTTP/1.1 server that writes its answers byte for byte,
// so a test can send what net/http's server never would: informational
// responses, bodies that end at the close, bytes after the answer. It
// counts the connections it accepts.
type rawServer struct {
	ln    net.Listener
	port  int
	conns atomic.Int64
	// answer returns the raw response to a request and whether to close
	// the connection after it.
	answer func(r *http.Request, body []byte) (raw string, closeAfter bool)
	wg     sync.WaitGroup
}

func newRawServer(t *testing.T, answer func(r *http.Request, body []byte) (string, bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, answer: answer}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, err := io.ReadAll(r.Body)
					if err != nil {
						return
					}
					raw, closeAfter := s.answer(r, body)
					if _, err := io.WriteString(c, raw); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func ok(body string) string {
	return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func chunked(parts ...string) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	for _, p := range parts {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// h1World is a tenant allowed to reach srv, and its client.
func h1World(t *testing.T, port int, opts ...func(*egress.Options)) (*world, *http.Client, func(path string) string) {
	w := newWorld(t, storetest.OpenSQLite(t), hosts(map[string]string{"model.test": "127.0.0.1"}), opts...)
	w.setPlatform([]egress.RuleInput{{Host: "model.test", Port: port}}, loopbackException(port))
	url := func(path string) string { return "http://model.test:" + strconv.Itoa(port) + path }
	c := w.svc.Client(w.a)
	t.Cleanup(c.CloseIdleConnections) // runs before the server's cleanup, which waits for its connections
	return w, c, url
}

func post(t *testing.T, c *http.Client, ctx context.Context, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.Do(req)
}

// Plain-HTTP calls run on the caller's goroutine over pooled connections:
// every way a body can end cleanly leaves the connection for the next
// call, and what arrives is what the server sent.
func TestPlainHTTPKeepsConnections(t *testing.T) {
	srv := newRawServer(t, func(r *http.Request, body []byte) (string, bool) {
		switch r.URL.Path {
		case "/echo":
			return ok(r.Method + " " + r.Header.Get("Content-Type") + " " + string(body)), false
		case "/chunked":
			return chunked("data: a\n\n", "data: [DONE]\n\n"), false
		case "/early-hints":
			return "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok("after hints"), false
		case "/empty":
			return "HTTP/1.1 204 No Content\r\n\r\n", false
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false
	})
	_, c, url := h1World(t, srv.port)

	read := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Status + " " + string(b)
	}
	for round := range 3 {
		if got := read(post(t, c, bg, url("/echo"), `{"n":1}`)); got != `200 OK POST application/json {"n":1}` {
			t.Errorf("echo: %q", got)
		}
		if got := read(post(t, c, bg, url("/chunked"), "")); got != "200 OK data: a\n\ndata: [DONE]\n\n" {
			t.Errorf("chunked: %q", got)
		}
		if got := read(c.Get(url("/early-hints"))); got != "200 OK after hints" {
			t.Errorf("after 103: %q", got)
		}
		if got := read(c.Get(url("/empty"))); got != "204 No Content " {
			t.Errorf("204: %q", got)
		}
		// Read to the announced length and no further, as io.ReadFull does.
		resp, err := c.Get(url("/echo"))
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(resp.Body, b); err != nil || string(b) != "GET  " {
			t.Errorf("ReadFull: %q, %v", b, err)
		}
		resp.Body.Close()
		if n := srv.conns.Load(); n != 1 {
			t.Fatalf("round %d: %d connections, want 1", round, n)
		}
	}
}

// A connection that cannot serve another request is never reused: one the
// server closed while idle, one whose answer said Connection: close or
// ended at the close, one with bytes after the answer, one whose body was
// left early. The next call gets a fresh connection and its own answer.
// Headers past 1 MiB are refused rather than buffered.
func TestPlainHTTPDropsSpentConnections(t *testing.T) {
	var calls atomic.Int64
	srv := newRawServer(t, func(r *http.Request, body []byte) (string, bool) {
		n := calls.Add(1)
		switch r.URL.Path {
		case "/close":
			return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nc", false // but keeps it open
		case "/until-close":
			return "HTTP/1.1 200 OK\r\n\r\nuntil the end", true
		case "/stray":
			return ok("s") + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale", false
		case "/big":
			return ok(strings.Repeat("b", 64<<10)), false
		case "/huge-headers":
			return "HTTP/1.1 200 OK\r\nX-Filler: " + strings.Repeat("h", 2<<20) + "\r\nContent-Length: 0\r\n\r\n", true
		case "/idle-close":
			return ok("i"), true // answers, then closes the connection while it is idle
		}
		return ok("call " + strconv.FormatInt(n, 10)), false
	})
	_, c, url := h1World(t, srv.port)
	body := func(path string) string {
		t.Helper()
		resp, err := c.Get(url(path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return string(b)
	}
	steps := []struct {
		path, want string
	}{
		{"/close", "c"},
		{"/until-close", "until the end"},
		{"/stray", "s"},
		{"/idle-close", "i"},
	}
	for _, s := range steps {
		if got := body(s.path); got != s.want {
			t.Errorf("%s: %q, want %q", s.path, got, s.want)
		}
		time.Sleep(20 * time.Millisecond) // the idle close reaches the client
		before := srv.conns.Load()
		n := calls.Load() + 1
		if got := body("/next"); got != "call "+strconv.FormatInt(n, 10) {
			t.Errorf("after %s: %q, want call %d", s.path, got, n)
		}
		if opened := srv.conns.Load() - before; opened != 1 {
			t.Errorf("the call after %s opened %d connections, want 1", s.path, opened)
		}
	}

	if _, err := c.Get(url("/huge-headers")); err == nil || !strings.Contains(err.Error(), "headers are larger than") {
		t.Errorf("2 MiB of headers: %v, want refused", err)
	}

	resp, err := c.Get(url("/big"))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 10))
	resp.Body.Close() // left early: the rest of the body is still on the wire
	before := srv.conns.Load()
	if got := body("/next"); !strings.HasPrefix(got, "call ") {
		t.Errorf("after a body left early: %q", got)
	}
	if opened := srv.conns.Load() - before; opened != 1 {
		t.Errorf("the call after a body left early opened %d connections, want 1", opened)
	}
}

// A call whose context ends while it waits for the answer returns the
// context's error at once, and its connection is not reused; the header
// timeout bounds a server that never answers.
func TestPlainHTTPCancelAndTimeout(t *testing.T) {
	release := make(chan struct{})
	hanging := make(chan struct{}, 2) // a /hang request reached the server
	srv := newRawServer(t, func(r *http.Request, body []byte) (string, bool) {
		if r.URL.Path == "/hang" {
			hanging <- struct{}{}
			<-release
			return "", true
		}
		return ok("fine"), false
	})
	t.Cleanup(func() { close(release) }) // before the server's cleanup waits for its handlers
	_, c, url := h1World(t, srv.port, func(o *egress.Options) { o.ResponseHeaderTimeout = 300 * time.Millisecond })

	// Cancelled once the server holds the request (not after a fixed
	// delay, which a busy machine can spend before the call dials).
	ctx, cancel := context.WithCancel(bg)
	cancelled := make(chan time.Time, 1)
	go func() {
		<-hanging
		cancelled <- time.Now()
		cancel()
	}()
	_, err := post(t, c, ctx, url("/hang"), "{}")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v, want context.Canceled", err)
	}
	if d := time.Since(<-cancelled); d > 200*time.Millisecond {
		t.Errorf("cancelled call returned %v after the cancel", d)
	}

	start := time.Now()
	_, err = post(t, c, bg, url("/hang"), "{}")
	if err == nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Errorf("silent server: %v, want the header timeout", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("header timeout after %v, want about 300ms", d)
	}

	resp, err := post(t, c, bg, url("/fine"), "{}")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "fine" {
		t.Errorf("after a cancelled call and a timeout: %q", b)
	}
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3: neither spent one is reused", n)
	}

	// A body being read when the context ends stops with the context's error.
	srv2 := newRawServer(t, func(r *http.Request, body []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n", false // and no more
	})
	_, c2, url2 := h1World(t, srv2.port)
	ctx, cancel = context.WithCancel(bg)
	defer cancel()
	resp, err = post(t, c2, ctx, url2("/stream"), "{}")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first chunk: %q, %v", buf, err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := resp.Body.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("read after the context ended: %v, want context.Canceled", err)
	}
}

// Many callers at once each get their own answer, on at most as many
// connections as there are callers.
func TestPlainHTTPConcurrentCallers(t *testing.T) {
	srv := newRawServer(t, func(r *http.Request, body []byte) (string, bool) {
		return ok(string(body)), false
	})
	_, c, url := h1World(t, srv.port)
	const callers, calls = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	for i := range callers {
		wg.Go(func() {
			for j := range calls {
				want := fmt.Sprintf(`{"caller":%d,"call":%d}`, i, j)
				resp, err := post(t, c, bg, url("/"), want)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != want {
					errs <- fmt.Errorf("got %q, %v, want %q", b, err, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.conns.Load(); n > callers {
		t.Errorf("%d connections for %d callers", n, callers)
	}
	c.CloseIdleConnections()
}
