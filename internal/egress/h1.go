package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// h1 sends plain-HTTP requests over pooled HTTP/1.1 connections from the
// calling goroutine. http.Transport hands every request to a write
// goroutine and every response to a read goroutine, and takes one more
// handshake between them when a body ends: on a self-hosted model server
// (vLLM, Ollama, LM Studio on the same network) those handoffs are a large
// share of the time the gateway adds. Here the caller writes the request
// and reads the response itself.
//
// It dials through the same checking dialer as the tenant's http.Transport,
// and guard checks each request before either sees it. Requests it does
// not take (TLS, upgrades, Expect: 100-continue, trailers) go to that
// transport.
type h1 struct {
	dial          func(ctx context.Context, network, address string) (net.Conn, error)
	headerTimeout time.Duration // request written to response headers; 0: none
	maxIdle       int           // idle connections kept per host
	idleTimeout   time.Duration

	mu    sync.Mutex
	idle  map[string][]*h1Conn // by host:port, most recently used last
	nIdle int
	sweep *time.Timer // closes connections idle past idleTimeout; nil when none wait
}

// h1Conn is one connection; at most one request uses it at a time.
type h1Conn struct {
	t      *h1
	key    string
	conn   net.Conn
	budget *budgetReader // bounds the bytes read for a response's headers
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time

	mu        sync.Mutex // guards cancelled against deadline changes
	cancelled bool       // the request's context ended: the deadline stays in the past
}

// takes reports whether h1 sends req: plain HTTP, an ordinary method, and
// nothing that needs a second exchange on the connection.
func (t *h1) takes(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.Method == http.MethodConnect || len(req.Trailer) > 0 {
		return false
	}
	for _, k := range []string{"Upgrade", "Expect", "Connection"} {
		if _, ok := req.Header[k]; ok {
			return false
		}
	}
	return true
}

// hostPort is the pool key of a plain-HTTP URL host.
func hostPort(req *http.Request) string {
	host, port := req.URL.Hostname(), req.URL.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(host, port)
}

func (t *h1) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	key := hostPort(req)
	trace := httptrace.ContextClientTrace(ctx)
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(key)
	}
	pc, reused, err := t.get(ctx, key)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if trace != nil && trace.GotConn != nil {
		info := httptrace.GotConnInfo{Conn: pc.conn, Reused: reused, WasIdle: reused}
		if reused {
			info.IdleTime = time.Since(pc.idleAt)
		}
		trace.GotConn(info)
	}
	stop := context.AfterFunc(ctx, pc.cancel)
	resp, err := pc.exchange(req, trace)
	if err != nil {
		stop()
		pc.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody || resp.Body == nil {
		resp.Body = http.NoBody
		pc.done(stop, keep)
		return resp, nil
	}
	resp.Body = &h1Body{rc: resp.Body, pc: pc, ctx: ctx, stop: stop, keep: keep}
	return resp, nil
}

// exchange writes req and reads the response's headers, skipping
// informational responses.
func (pc *h1Conn) exchange(req *http.Request, trace *httptrace.ClientTrace) (*http.Response, error) {
	err := req.Write(pc.bw) // closes req.Body
	if err == nil {
		err = pc.bw.Flush()
	}
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{Err: err})
	}
	if err != nil {
		return nil, fmt.Errorf("egress: write request: %w", err)
	}
	if pc.t.headerTimeout > 0 {
		pc.setReadDeadline(time.Now().Add(pc.t.headerTimeout))
	}
	// Headers stop at maxHeaderBytes (with a buffer's worth of the body
	// read ahead), as http.Transport's MaxResponseHeaderBytes does: a
	// server must not make the gateway buffer without end.
	pc.budget.left = maxHeaderBytes + h1ReadBuffer
	defer func() { pc.budget.left = -1 }()
	if trace != nil && trace.GotFirstResponseByte != nil {
		if _, err := pc.br.Peek(1); err == nil {
			trace.GotFirstResponseByte()
		}
	}
	for {
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			var ne net.Error
			if errors.Is(err, errHeaderTooLarge) {
				return nil, fmt.Errorf("egress: the response headers are larger than %d bytes", maxHeaderBytes)
			}
			if errors.As(err, &ne) && ne.Timeout() && !pc.isCancelled() {
				return nil, fmt.Errorf("egress: timeout awaiting response headers: %w", err)
			}
			return nil, fmt.Errorf("egress: read response: %w", err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			resp.Body.Close()
			return nil, errors.New("egress: the server switched protocols unasked")
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			continue // 100 Continue, 103 Early Hints: the answer follows
		}
		if pc.t.headerTimeout > 0 {
			pc.setReadDeadline(time.Time{})
		}
		return resp, nil
	}
}

// cancel runs when the request's context ends: every read and write on the
// connection fails from then on, so the caller returns.
func (pc *h1Conn) cancel() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.cancelled = true
	pc.conn.SetDeadline(longAgo)
}

var longAgo = time.Unix(1, 0)

func (pc *h1Conn) setReadDeadline(d time.Time) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.cancelled {
		pc.conn.SetReadDeadline(d)
	}
}

func (pc *h1Conn) isCancelled() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.cancelled
}

// done ends pc's request: back to the pool when keep holds, the context
// did not end, and no stray bytes wait; otherwise closed.
func (pc *h1Conn) done(stop func() bool, keep bool) {
	if !stop() || !keep || pc.br.Buffered() > 0 {
		pc.conn.Close()
		return
	}
	pc.t.put(pc)
}

// h1Body is a response body; its end decides the connection's fate.
type h1Body struct {
	rc     io.ReadCloser
	pc     *h1Conn
	ctx    context.Context
	stop   func() bool
	keep   bool
	mu     sync.Mutex
	ended  bool
	endErr error // what reads return once ended
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	ended, endErr := b.ended, b.endErr
	b.mu.Unlock()
	if ended { // the connection may already serve another request
		return 0, endErr
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF: // net/http's body gives it with the last bytes of a known length
		b.end(true, err)
	case err != nil:
		if b.ctx.Err() != nil {
			err = b.ctx.Err()
		}
		b.end(false, err)
	}
	return n, err
}

// Close closes the body. A body left before its end closes the
// connection, as http.Transport does.
func (b *h1Body) Close() error {
	b.end(false, errBodyClosed)
	return nil
}

var errBodyClosed = errors.New("egress: read on a closed response body")

// end settles the connection once; later reads return err.
func (b *h1Body) end(clean bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.ended, b.endErr = true, err
	if clean {
		b.pc.done(b.stop, b.keep)
		return
	}
	b.stop()
	b.pc.conn.Close()
}

// get returns an idle connection to key that is still open, or a new one.
func (t *h1) get(ctx context.Context, key string) (pc *h1Conn, reused bool, err error) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		t.nIdle--
		t.mu.Unlock()
		if now.Sub(pc.idleAt) < t.idleTimeout && alive(pc.conn) {
			pc.cancelled = false
			return pc, true, nil
		}
		pc.conn.Close()
	}
	conn, err := t.dial(ctx, "tcp", key)
	if err != nil {
		return nil, false, err
	}
	budget := &budgetReader{r: conn, left: -1}
	return &h1Conn{t: t, key: key, conn: conn, budget: budget,
		br: bufio.NewReaderSize(budget, h1ReadBuffer), bw: bufio.NewWriterSize(conn, 4<<10)}, false, nil
}

// put keeps pc for the next request to its host, or closes it when the
// host already has maxIdle waiting.
func (t *h1) put(pc *h1Conn) {
	// No deadline is left to clear: the header timeout's was cleared with
	// the headers, and a cancelled request's connection is never put back.
	pc.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle[pc.key]) >= t.maxIdle {
		t.mu.Unlock()
		pc.conn.Close()
		return
	}
	if t.idle == nil {
		t.idle = map[string][]*h1Conn{}
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	t.nIdle++
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout, t.closeExpired)
	}
	t.mu.Unlock()
}

// closeExpired closes the connections idle for idleTimeout, and comes back
// while any remain.
func (t *h1) closeExpired() {
	now := time.Now()
	var expired []*h1Conn
	t.mu.Lock()
	for key, list := range t.idle {
		keep := list[:0]
		for _, pc := range list {
			if now.Sub(pc.idleAt) >= t.idleTimeout {
				expired = append(expired, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = keep
		}
	}
	t.nIdle -= len(expired)
	if t.nIdle > 0 {
		t.sweep.Reset(t.idleTimeout / 2)
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, pc := range expired {
		pc.conn.Close()
	}
}

// closeIdle closes every idle connection.
func (t *h1) closeIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.nIdle = nil, 0
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.conn.Close()
		}
	}
}

const (
	h1ReadBuffer   = 8 << 10
	maxHeaderBytes = 1 << 20
)

var errHeaderTooLarge = errors.New("egress: response headers too large")

// budgetReader reads at most left bytes (no bound when left < 0), then
// fails with errHeaderTooLarge.
type budgetReader struct {
	r    io.Reader
	left int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		return b.r.Read(p)
	}
	if b.left == 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
