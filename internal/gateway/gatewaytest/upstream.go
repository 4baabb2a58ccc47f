// Package gatewaytest runs a fake LLM provider on loopback: OpenAI's
// chat-completions, embeddings, models and transcription endpoints (with
// Azure's deployment paths), and Anthropic's Messages API, each answering
// with one choice. A test scripts
// it (latency, chunking, tool calls, failures, stalls, mid-stream errors)
// and reads back what it was sent; the bench command drives it at
// thousands of requests a second, so its answers are built by appending
// to pooled buffers and it never logs.
//
// It imports nothing from Nodus, so the gateway's own tests, other
// packages' tests and the bench command can all use it.
package gatewaytest

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Hang makes the fake stop answering a request, until the client goes
// away or the fake is closed.
type Hang int

const (
	HangNone          Hang = iota
	HangBeforeHeaders      // read the request, never answer
	HangAfterHeaders       // send 200 and the headers, then nothing
)

// Break cuts a stream short, after Script.BreakAfter content (or tool
// argument) chunks.
type Break int

const (
	BreakNone  Break = iota
	BreakStall       // stop sending and keep the response open
	BreakError       // send an error event and end the response
	BreakClose       // end the response without [DONE] (OpenAI) or message_stop (Anthropic)
)

// Failure is an error answer: the Nth request the fake receives gets
// Script.Failures[N] while there are any left.
type Failure struct {
	Status     int
	RetryAfter string // the Retry-After header, "" for none
	Message    string // "" for the status text
	// EchoHeader names a request header whose value is appended to
	// Message, as some providers quote the key they were sent ("Incorrect
	// API key provided: sk-…"); a test checks the gateway does not pass
	// it on.
	EchoHeader string
	// Body, when set, is the whole error body, sent as is with every
	// "{echo}" in it replaced by the EchoHeader's value: for error shapes
	// other than the API's own.
	Body string
}

// ToolCall is the tool call the fake answers with when the request
// offers tools.
type ToolCall struct {
	Name      string // "" calls the request's first tool
	Arguments string // JSON text, streamed in Script.Chunks pieces
}

// Script is how the fake behaves. Its zero value answers every request at
// once with a short text in three chunks, accepts any key, and records
// every request.
type Script struct {
	// APIKey is the key expected in Authorization: Bearer or api-key
	// (OpenAI and Azure) or x-api-key (Anthropic); "" accepts any.
	APIKey        string
	Latency       time.Duration // before the response's headers
	ChunkInterval time.Duration // between two stream chunks
	Chunks        int           // content (or tool argument) chunks of an answer; 0 means 3
	Text          string        // the answer; "" means DefaultText
	ToolCall      *ToolCall     // answer requests that offer tools with this call
	// PromptTokens and CompletionTokens are the usage reported; 0 means a
	// quarter of the request's messages JSON (rounded up) and the number
	// of chunks the answer was cut into.
	PromptTokens     int64
	CompletionTokens int64
	OmitUsage        bool // OpenAI: no usage, in the answer or the stream
	Hang             Hang
	Break            Break
	BreakAfter       int
	// BreakEchoHeader names a request header whose value BreakError's
	// error event quotes in its message (OpenAI streams only).
	BreakEchoHeader  string
	Failures         []Failure
	EmbeddingDims    int    // 0 means 8
	EmbeddingFormat  string // "float" or "base64" whatever the request asks; "" answers as asked
	Transcript       string // "" means DefaultTranscript
	AudioSeconds     float64
	Models           []string // GET /v1/models; nil means DefaultModel
	DisableRecording bool     // keep no copy of the requests (the bench)
	// Hold, when not nil, keeps every request waiting after Latency, before
	// its headers, until it is closed (or the client goes away): a test
	// holds calls in flight for as long as it needs, with no sleep.
	Hold <-chan struct{}
}

// Defaults of a zero Script.
const (
	DefaultText       = "Hello from the fake upstream."
	DefaultTranscript = "The quick brown fox jumps over the lazy dog."
	DefaultModel      = "fake-model"
	defaultChunks     = 3
	defaultDims       = 8
	maxRequestBody    = 64 << 20
)

// Request is what the fake received.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	// Form and File are the fields and the file of a multipart request.
	Form map[string][]string
	File *File
}

// File is the file part of a multipart request.
type File struct {
	Name        string
	ContentType string
	Size        int64
}

// Upstream is a running fake provider. It is safe for concurrent use.
type Upstream struct {
	// URL is the server's root, http://127.0.0.1:port; an OpenAI
	// deployment's base URL is URL+"/v1", an Anthropic or Azure one URL.
	URL string

	srv    *http.Server
	closed chan struct{}
	script atomic.Pointer[compiled]

	// handlers counts running handlers; closeMu keeps one from starting
	// while Close waits for them.
	closeMu  sync.RWMutex
	isClosed bool
	handlers sync.WaitGroup

	mu       sync.Mutex
	requests []Request

	served    atomic.Int64
	inFlight  atomic.Int64
	cancelled atomic.Int64
}

// NewUpstream starts a fake on 127.0.0.1 with script s. Like
// httptest.NewServer it panics if it cannot listen, which only a broken
// machine does.
func NewUpstream(s Script) *Upstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("gatewaytest: listen on loopback: " + err.Error())
	}
	u := &Upstream{URL: "http://" + ln.Addr().String(), closed: make(chan struct{})}
	u.SetScript(s)
	u.srv = &http.Server{
		Handler:           u.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go u.srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed on Close
	return u
}

// Close stops the server, ends every hanging answer and waits for the
// handlers to return.
func (u *Upstream) Close() {
	u.closeMu.Lock()
	if u.isClosed {
		u.closeMu.Unlock()
		return
	}
	u.isClosed = true
	u.closeMu.Unlock()
	close(u.closed)
	u.srv.Close()
	u.handlers.Wait()
}

// SetScript replaces the script. Requests already being answered finish
// with the script they started with; the count of Failures starts over.
func (u *Upstream) SetScript(s Script) { u.script.Store(compile(s)) }

// Requests returns a copy of the requests received, oldest first.
func (u *Upstream) Requests() []Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Request(nil), u.requests...)
}

// LastRequest returns the latest request received.
func (u *Upstream) LastRequest() (Request, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.requests) == 0 {
		return Request{}, false
	}
	return u.requests[len(u.requests)-1], true
}

// Served is the number of requests received.
func (u *Upstream) Served() int64 { return u.served.Load() }

// InFlight is the number of requests being answered.
func (u *Upstream) InFlight() int64 { return u.inFlight.Load() }

// Cancelled is the number of requests whose client went away before the
// fake had finished answering.
func (u *Upstream) Cancelled() int64 { return u.cancelled.Load() }

// WaitCancelled waits up to timeout for Cancelled to reach n and reports
// whether it did.
func (u *Upstream) WaitCancelled(n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for u.cancelled.Load() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func (u *Upstream) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/chat/completions", u.handle(apiOpenAI, u.chat))
	mux.Handle("POST /v1/embeddings", u.handle(apiOpenAI, u.embeddings))
	mux.Handle("GET /v1/models", u.handle(apiOpenAI, u.models))
	mux.Handle("POST /v1/audio/transcriptions", u.handle(apiOpenAI, u.transcription))
	mux.Handle("POST /openai/deployments/{deployment}/chat/completions", u.handle(apiAzure, u.chat))
	mux.Handle("POST /openai/deployments/{deployment}/embeddings", u.handle(apiAzure, u.embeddings))
	mux.Handle("POST /openai/deployments/{deployment}/audio/transcriptions", u.handle(apiAzure, u.transcription))
	mux.Handle("POST /v1/messages", u.handle(apiAnthropic, u.messages))
	return mux
}

// compiled is a script with its answers cut and encoded ahead of time.
type compiled struct {
	Script
	failed       atomic.Int64 // requests that have consumed a Failure
	pieces       [][]byte     // the text's chunks, each a JSON string
	textJSON     []byte
	argPieces    [][]byte // the tool call's argument chunks, each a JSON string
	argsJSON     []byte   // the whole arguments, a JSON string
	argsRaw      string
	transcript   string
	modelsBody   []byte
	embedDims    int
	completion   int64 // completion tokens of a text answer
	completionTC int64 // of a tool-call answer
}

func compile(s Script) *compiled {
	c := &compiled{Script: s}
	text := s.Text
	if text == "" {
		text = DefaultText
	}
	chunks := s.Chunks
	if chunks <= 0 {
		chunks = defaultChunks
	}
	c.textJSON = appendString(nil, text)
	for _, p := range split(text, chunks) {
		c.pieces = append(c.pieces, appendString(nil, p))
	}
	c.completion = int64(len(c.pieces))
	if s.ToolCall != nil {
		c.argsRaw = s.ToolCall.Arguments
		c.argsJSON = appendString(nil, c.argsRaw)
		for _, p := range split(c.argsRaw, chunks) {
			c.argPieces = append(c.argPieces, appendString(nil, p))
		}
		c.completionTC = int64(len(c.argPieces)) + 1
	}
	if s.CompletionTokens > 0 {
		c.completion, c.completionTC = s.CompletionTokens, s.CompletionTokens
	}
	c.transcript = s.Transcript
	if c.transcript == "" {
		c.transcript = DefaultTranscript
	}
	c.embedDims = s.EmbeddingDims
	if c.embedDims <= 0 {
		c.embedDims = defaultDims
	}
	models := s.Models
	if models == nil {
		models = []string{DefaultModel}
	}
	b := []byte(`{"object":"list","data":[`)
	for i, m := range models {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendString(b, m)
		b = append(b, `,"object":"model","created":1700000000,"owned_by":"gatewaytest"}`...)
	}
	c.modelsBody = append(b, "]}"...)
	return c
}

// split cuts s into n pieces of about the same number of characters;
// fewer when s is shorter, none when it is empty.
func split(s string, n int) []string {
	count := utf8.RuneCountInString(s)
	if count == 0 {
		return nil
	}
	n = min(n, count)
	out := make([]string, 0, n)
	for i := range n {
		size := count / n
		if i < count%n {
			size++
		}
		end := 0
		for range size {
			_, w := utf8.DecodeRuneInString(s[end:])
			end += w
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

// api is the family of an endpoint: how it authenticates and how its
// errors look.
type api int

const (
	apiOpenAI api = iota
	apiAzure
	apiAnthropic
)

// request is the part of a JSON request body the fake reads.
type request struct {
	Model         string          `json:"model"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
	Messages      json.RawMessage `json:"messages"`
	System        json.RawMessage `json:"system"`
	Tools         []tool          `json:"tools"`
	Input         json.RawMessage `json:"input"`
	Format        string          `json:"encoding_format"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// tool is an OpenAI ({"function":{"name"}}) or Anthropic ({"name"}) tool.
type tool struct {
	Name     string `json:"name"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// call is one request being answered.
type call struct {
	u    *Upstream
	w    http.ResponseWriter
	r    *http.Request
	rc   *http.ResponseController
	s    *compiled
	api  api
	body []byte
	req  request
	out  []byte // the answer being built, from bufPool
	gone bool

	// form and file are a multipart request's fields and file.
	form    map[string][]string
	file    *File
	formErr error
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// handle wraps an endpoint: it counts and records the request, checks the
// key, serves scripted failures, latency and hangs, then calls h.
func (u *Upstream) handle(a api, h func(*call)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.closeMu.RLock()
		if u.isClosed {
			u.closeMu.RUnlock()
			return
		}
		u.handlers.Add(1)
		u.closeMu.RUnlock()
		defer u.handlers.Done()
		u.served.Add(1)
		u.inFlight.Add(1)
		defer u.inFlight.Add(-1)

		in := bufPool.Get().(*[]byte)
		out := bufPool.Get().(*[]byte)
		defer func() { bufPool.Put(in); bufPool.Put(out) }()
		c := &call{u: u, w: w, r: r, rc: http.NewResponseController(w), s: u.script.Load(), api: a, out: (*out)[:0]}
		body, err := readAll((*in)[:0], http.MaxBytesReader(w, r.Body, maxRequestBody))
		*in = body
		if err != nil {
			c.fail(http.StatusBadRequest, "the request body could not be read")
			return
		}
		c.body = body
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			c.form, c.file, c.formErr = multipartForm(r.Header.Get("Content-Type"), body)
		}
		if !c.s.DisableRecording {
			u.keep(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
				Header: r.Header.Clone(), Body: bytes.Clone(body), Form: c.form, File: c.file})
		}
		defer func() { *out = c.out }()
		if c.serveScript() {
			h(c)
		}
	})
}

func (u *Upstream) keep(r Request) {
	u.mu.Lock()
	u.requests = append(u.requests, r)
	u.mu.Unlock()
}

// serveScript applies what comes before an answer and reports whether
// the endpoint should answer.
func (c *call) serveScript() bool {
	if !c.authorized() {
		return false
	}
	if c.api == apiAzure && c.r.URL.Query().Get("api-version") == "" {
		c.fail(http.StatusNotFound, "Resource not found: api-version is missing")
		return false
	}
	if n := c.s.failed.Add(1) - 1; n < int64(len(c.s.Failures)) {
		f := c.s.Failures[n]
		if f.RetryAfter != "" {
			c.w.Header().Set("Retry-After", f.RetryAfter)
		}
		msg := f.Message
		if msg == "" {
			msg = http.StatusText(f.Status)
		}
		echo := ""
		if f.EchoHeader != "" {
			echo = c.r.Header.Get(f.EchoHeader)
			msg += echo
		}
		if f.Body != "" {
			c.out = append(c.out[:0], strings.ReplaceAll(f.Body, "{echo}", echo)...)
			c.writeBody(f.Status, "application/json", c.out)
			return false
		}
		c.fail(f.Status, msg)
		return false
	}
	if c.r.Header.Get("Content-Type") == "application/json" || bytes.HasPrefix(c.body, []byte("{")) {
		if err := json.Unmarshal(c.body, &c.req); err != nil {
			c.fail(http.StatusBadRequest, "the request body is not valid JSON")
			return false
		}
	}
	if !c.wait(c.s.Latency) || !c.hold() {
		return false
	}
	switch c.s.Hang {
	case HangBeforeHeaders:
		c.block()
		return false
	case HangAfterHeaders:
		ct := "application/json"
		if c.req.Stream {
			ct = "text/event-stream"
		}
		c.w.Header().Set("Content-Type", ct)
		c.w.WriteHeader(http.StatusOK)
		_ = c.rc.Flush()
		c.block()
		return false
	}
	return true
}

// authorized checks the key the way the endpoint's API sends it, and
// Anthropic's required version header.
func (c *call) authorized() bool {
	h := c.r.Header
	if c.api == apiAnthropic {
		if h.Get("anthropic-version") == "" {
			c.fail(http.StatusBadRequest, "anthropic-version: header is required")
			return false
		}
		if c.s.APIKey != "" && h.Get("x-api-key") != c.s.APIKey {
			c.fail(http.StatusUnauthorized, "invalid x-api-key")
			return false
		}
		return true
	}
	if c.s.APIKey == "" || h.Get("Authorization") == "Bearer "+c.s.APIKey || h.Get("api-key") == c.s.APIKey {
		return true
	}
	c.fail(http.StatusUnauthorized, "Incorrect API key provided.")
	return false
}

// fail answers an error in the endpoint's API's shape.
func (c *call) fail(status int, msg string) {
	b := c.out[:0]
	if c.api == apiAnthropic {
		b = append(b, `{"type":"error","error":{"type":`...)
		b = appendString(b, anthropicErrorType(status))
		b = append(b, `,"message":`...)
		b = appendString(b, msg)
		b = append(b, "}}"...)
	} else {
		b = append(b, `{"error":{"message":`...)
		b = appendString(b, msg)
		b = append(b, `,"type":`...)
		b = appendString(b, openAIErrorType(status))
		b = append(b, `,"param":null,"code":`...)
		if status == http.StatusUnauthorized {
			b = append(b, `"invalid_api_key"`...)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, "}}"...)
	}
	c.out = b
	c.writeBody(status, "application/json", b)
}

func openAIErrorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	default:
		return "invalid_request_error"
	}
}

func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// Shared header values; the server only reads them.
var (
	jsonType = []string{"application/json"}
	sseType  = []string{"text/event-stream"}
	textType = []string{"text/plain; charset=utf-8"}
	noCache  = []string{"no-cache"}
)

func (c *call) writeBody(status int, contentType string, b []byte) {
	h := c.w.Header()
	switch contentType {
	case "application/json":
		h["Content-Type"] = jsonType
	default:
		h["Content-Type"] = textType
	}
	c.w.WriteHeader(status)
	if _, err := c.w.Write(b); err != nil {
		c.markGone()
	}
}

// startStream sends a stream's status and headers.
func (c *call) startStream() {
	h := c.w.Header()
	h["Content-Type"] = sseType
	h["Cache-Control"] = noCache
	c.w.WriteHeader(http.StatusOK)
}

// send writes and flushes one piece of a stream, and reports whether the
// client is still there.
func (c *call) send(b []byte) bool {
	if _, err := c.w.Write(b); err != nil {
		c.markGone()
		return false
	}
	if err := c.rc.Flush(); err != nil {
		c.markGone()
		return false
	}
	return true
}

// wait sleeps d unless the client goes away or the fake closes first, and
// reports whether to go on.
func (c *call) wait(d time.Duration) bool {
	ctx := c.r.Context()
	if d <= 0 {
		if ctx.Err() != nil {
			c.markGone()
			return false
		}
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		c.markGone()
	case <-c.u.closed:
	}
	return false
}

// hold waits for the script's Hold to close, unless the client goes away
// or the fake closes first, and reports whether to go on.
func (c *call) hold() bool {
	if c.s.Hold == nil {
		return true
	}
	select {
	case <-c.s.Hold:
		return true
	case <-c.r.Context().Done():
		c.markGone()
	case <-c.u.closed:
	}
	return false
}

// block waits until the client goes away or the fake closes.
func (c *call) block() {
	select {
	case <-c.r.Context().Done():
		c.markGone()
	case <-c.u.closed:
	}
}

func (c *call) markGone() {
	if !c.gone {
		c.gone = true
		c.u.cancelled.Add(1)
	}
}

// promptTokens is the scripted prompt usage, or a quarter of the
// request's messages (and Anthropic system) JSON, rounded up.
func (c *call) promptTokens() int64 {
	if c.s.PromptTokens > 0 {
		return c.s.PromptTokens
	}
	return int64(len(c.req.Messages)+len(c.req.System)+3) / 4
}

// toolName is the tool the answer calls, or "" for a text answer.
func (c *call) toolName() string {
	if c.s.ToolCall == nil || len(c.req.Tools) == 0 {
		return ""
	}
	if c.s.ToolCall.Name != "" {
		return c.s.ToolCall.Name
	}
	if t := c.req.Tools[0]; t.Name != "" {
		return t.Name
	}
	return c.req.Tools[0].Function.Name
}

// models answers GET /v1/models.
func (u *Upstream) models(c *call) { c.writeBody(http.StatusOK, "application/json", c.s.modelsBody) }

// readAll reads r to its end, appending to b.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			j, _ := json.Marshal(s)
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// multipartForm reads the fields and the file of a multipart body.
func multipartForm(contentType string, body []byte) (map[string][]string, *File, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, nil, err
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	form := map[string][]string{}
	var file *File
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return form, file, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if p.FileName() != "" || p.FormName() == "file" {
			n, err := io.Copy(io.Discard, p)
			if err != nil {
				return nil, nil, err
			}
			file = &File{Name: p.FileName(), ContentType: p.Header.Get("Content-Type"), Size: n}
			continue
		}
		var v strings.Builder
		if _, err := io.Copy(&v, p); err != nil {
			return nil, nil, err
		}
		form[p.FormName()] = append(form[p.FormName()], v.String())
	}
}
