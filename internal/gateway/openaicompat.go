package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Limits of the OpenAI-compatible provider.
const (
	openAIDefaultBaseURL   = "https://api.openai.com/v1"
	openAIDefaultTimeout   = 60 * time.Second
	azureDefaultAPIVersion = "2024-10-21" // Azure OpenAI's latest GA data-plane version
	openAIMaxBody          = 16 << 20     // a chat answer or a transcription
	openAIMaxEmbedBody     = 64 << 20     // 2,048 vectors of 3,072 floats as JSON text
	openAIMaxErrorBody     = 64 << 10     // an error answer; more is not an error message
	openAIMaxStream        = 256 << 20    // a whole stream, every event included
	openAIMaxEvent         = 4 << 20      // one event of a stream
	openAIMaxErrorMessage  = 1000         // bytes of an upstream's error message passed on
	// streamDrainTimeout bounds reading what follows [DONE] (the end of
	// the chunked body), which lets the connection be reused; a server
	// that keeps the response open after [DONE] costs a connection, not
	// the client's time.
	streamDrainTimeout = 100 * time.Millisecond
	streamDrainMax     = 64 << 10
)

// errOpenAITimeout is the cause of a call cut by the deployment's
// timeout, told apart from the caller's own cancellation.
var errOpenAITimeout = errors.New("openai: the upstream was silent for longer than the deployment's timeout")

// OpenAIProvider speaks OpenAI's API to any server that implements it
// (OpenAI, vLLM, Ollama, LM Studio, Together, Groq, Mistral, DeepSeek,
// OpenRouter) and to Azure OpenAI. The deployment's Provider picks the
// shape: ProviderAzure puts the deployment in the path, adds api-version
// and sends the key in an api-key header; anything else sends
// BaseURL/<endpoint> with a bearer token. It holds no per-call state and
// is safe for concurrent use; one value serves both kinds.
//
// Only the deployment chooses where a request goes and with which key:
// the model is replaced by the deployment's upstream model, and request
// fields that name an upstream (SECURITY.md check 22) are dropped even if
// the handler let them through.
type OpenAIProvider struct{}

var _ Provider = (*OpenAIProvider)(nil)

// Chat makes a non-streaming call; the deployment's timeout bounds it from
// the request to the last byte of the answer.
func (p *OpenAIProvider) Chat(ctx context.Context, up *Upstream, req *ChatRequest) (*ChatResponse, error) {
	body, err := openAIChatBody(up, req, false)
	if err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, openAITimeout(up), errOpenAITimeout)
	defer cancel()
	resp, err := openAIPost(callCtx, up, openAIEndpoint(up.Deployment, "chat/completions"),
		"application/json", "application/json", bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return nil, openAITransportError(ctx, callCtx, 0, err)
	}
	if !is2xx(resp.StatusCode) {
		return nil, openAIStatusError(up, resp, time.Now())
	}
	b, err := readUpstreamBody(resp, openAIMaxBody)
	if err != nil {
		return nil, openAITransportError(ctx, callCtx, resp.StatusCode, err)
	}
	var out struct {
		ChatResponse
		Error json.RawMessage `json:"error"`
	}
	if err := jsonv1.Unmarshal(b, &out); err != nil {
		return nil, badUpstreamResponse(resp.StatusCode, fmt.Errorf("openai: decode chat completion: %w", err))
	}
	if isJSONValue(out.Error) {
		return nil, openAIBodyError(up, resp.StatusCode, b)
	}
	if utf8.Valid(b) {
		out.raw = b // passed on as it came: fields the gateway does not model survive
	}
	return &out.ChatResponse, nil
}

// ChatStream makes a streaming call, always asking for the usage chunk.
// The deployment's timeout bounds the wait for the response's headers and
// every gap between two events: a stall ends the call with ErrClassTimeout
// however long the stream has run.
func (p *OpenAIProvider) ChatStream(ctx context.Context, up *Upstream, req *ChatRequest, emit func(*ChatChunk) error) error {
	body, err := openAIChatBody(up, req, true)
	if err != nil {
		return err
	}
	timeout := openAITimeout(up)
	callCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// One timer, re-armed around each wait on the upstream, so a stall
	// cancels the request (and its body read) without a goroutine of ours.
	watchdog := time.AfterFunc(timeout, func() { cancel(errOpenAITimeout) })
	defer watchdog.Stop()
	resp, err := openAIPost(callCtx, up, openAIEndpoint(up.Deployment, "chat/completions"),
		"application/json", "text/event-stream", bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return openAITransportError(ctx, callCtx, 0, err)
	}
	defer resp.Body.Close()
	if !is2xx(resp.StatusCode) {
		return openAIStatusError(up, resp, time.Now()) // the watchdog still bounds the error body
	}
	watchdog.Stop()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		return badUpstreamResponse(resp.StatusCode, errors.New("openai: the upstream answered a stream request with a JSON body"))
	}
	egress.LimitBody(resp, openAIMaxStream)
	s := openAIStream{up: up, resp: resp, parent: ctx, call: callCtx, watchdog: watchdog, timeout: timeout}
	return s.run(emit)
}

// openAIStream is one streamed answer being read.
type openAIStream struct {
	up       *Upstream
	resp     *http.Response
	parent   context.Context // the caller's
	call     context.Context // the request's, cancelled by the watchdog
	watchdog *time.Timer
	timeout  time.Duration

	started  uint64 // choices (by index, below 64) that have sent a delta
	finished uint64 // choices that have sent a finish_reason
	usage    bool   // the usage chunk came
}

// run passes each chunk to emit until [DONE].
func (s *openAIStream) run(emit func(*ChatChunk) error) error {
	events := NewSSEReader(s.resp.Body, openAIMaxEvent)
	if b := streamBatchFrom(s.parent); b != nil {
		// Flush what is held before waiting on the upstream; a slow client
		// there is not the upstream stalling.
		events.BeforeWait = func() {
			s.watchdog.Stop()
			b.flush()
			s.watchdog.Reset(s.timeout)
		}
		b.held = true
		defer func() { b.held = false }()
	}
	for {
		s.watchdog.Reset(s.timeout)
		ev, err := events.Next()
		s.watchdog.Stop()
		if err != nil {
			return s.endError(err)
		}
		if ev.Done {
			if events.BeforeWait != nil {
				events.BeforeWait() // the drain may wait on the upstream
			}
			s.drain()
			return nil
		}
		chunk, err := s.decode(ev.Data)
		if err != nil {
			return err
		}
		if chunk == nil {
			continue
		}
		err = emit(chunk)
		chunk.raw = nil // the reader reuses the bytes
		if err != nil {
			return err
		}
	}
}

// decode reads one event: a chunk, an error the upstream sent in place of
// one, or nil for a chunk with nothing to pass on (Azure's
// prompt_filter_results chunk, with no choices and no usage).
func (s *openAIStream) decode(data []byte) (*ChatChunk, error) {
	var ev struct {
		ChatChunk
		Error json.RawMessage `json:"error"`
	}
	if err := jsonv1.Unmarshal(data, &ev); err != nil {
		return nil, badUpstreamResponse(s.resp.StatusCode, fmt.Errorf("openai: decode stream chunk: %w", err))
	}
	if isJSONValue(ev.Error) {
		return nil, openAIBodyError(s.up, s.resp.StatusCode, data)
	}
	if len(ev.Choices) == 0 && ev.Usage == nil {
		return nil, nil
	}
	for _, c := range ev.Choices {
		if c.Index >= 0 && c.Index < 64 {
			s.started |= 1 << c.Index
			if c.FinishReason != nil {
				s.finished |= 1 << c.Index
			}
		}
	}
	if ev.Usage != nil {
		s.usage = true
	}
	if passableChunk(data) {
		ev.raw = data
	}
	return &ev.ChatChunk, nil
}

// passableChunk tells whether an upstream chunk's JSON, which decoded,
// can go to the client as it came: on one line and valid UTF-8. Passing it
// on spares an encoding per chunk and keeps the fields the gateway does
// not model (logprobs, a provider's additions).
func passableChunk(data []byte) bool {
	return bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 && utf8.Valid(data)
}

// endError turns a read that ended the stream before [DONE] into an
// error. A server that closes the stream cleanly after every choice
// finished (some omit [DONE]) has sent a whole answer, and that is not an
// error; one that stops mid-answer is.
func (s *openAIStream) endError(err error) error {
	if !errors.Is(err, io.EOF) || s.call.Err() != nil {
		return openAITransportError(s.parent, s.call, s.resp.StatusCode, err)
	}
	if s.usage || s.started != 0 && s.started == s.finished {
		return nil
	}
	return &UpstreamError{Status: s.resp.StatusCode, Class: ErrClassConnection,
		Cause: errors.New("openai: the stream ended before [DONE]")}
}

// drain reads the little that follows [DONE], briefly, so the transport
// can reuse the connection.
func (s *openAIStream) drain() {
	s.watchdog.Reset(min(s.timeout, streamDrainTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(s.resp.Body, streamDrainMax))
	s.watchdog.Stop()
}

// Embed makes an embeddings call. encoding_format goes upstream as the
// client sent it, and the vectors come back in the format the client
// asked for whatever the upstream returned: some OpenAI-compatible servers
// ignore base64, and the official Python SDK asks for it by default.
func (p *OpenAIProvider) Embed(ctx context.Context, up *Upstream, req *EmbeddingRequest) (*EmbeddingResponse, error) {
	r := *req // the router may send req to another deployment
	r.Model = up.Deployment.UpstreamModel
	body, err := jsonv1.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("openai: encode embeddings request: %w", err)
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, openAITimeout(up), errOpenAITimeout)
	defer cancel()
	resp, err := openAIPost(callCtx, up, openAIEndpoint(up.Deployment, "embeddings"),
		"application/json", "application/json", bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return nil, openAITransportError(ctx, callCtx, 0, err)
	}
	if !is2xx(resp.StatusCode) {
		return nil, openAIStatusError(up, resp, time.Now())
	}
	b, err := readUpstreamBody(resp, openAIMaxEmbedBody)
	if err != nil {
		return nil, openAITransportError(ctx, callCtx, resp.StatusCode, err)
	}
	var out struct {
		EmbeddingResponse
		Error json.RawMessage `json:"error"`
	}
	if err := jsonv1.Unmarshal(b, &out); err != nil {
		return nil, badUpstreamResponse(resp.StatusCode, fmt.Errorf("openai: decode embeddings: %w", err))
	}
	if isJSONValue(out.Error) {
		return nil, openAIBodyError(up, resp.StatusCode, b)
	}
	convert := embeddingAsFloats
	if req.EncodingFormat == "base64" {
		convert = embeddingAsBase64
	}
	for i := range out.Data {
		v, err := convert(out.Data[i].Embedding)
		if err != nil {
			return nil, badUpstreamResponse(resp.StatusCode, fmt.Errorf("openai: embedding %d: %w", i, err))
		}
		out.Data[i].Embedding = v
	}
	return &out.EmbeddingResponse, nil
}

// embeddingAsBase64 returns a vector as base64 little-endian float32
// values, converting a JSON array of floats.
func embeddingAsBase64(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		return raw, nil
	}
	var v []float32
	if err := jsonv1.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("neither a base64 string nor a list of floats: %w", err)
	}
	bin := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(bin[4*i:], math.Float32bits(f))
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(bin))+2)
	out[0], out[len(out)-1] = '"', '"'
	base64.StdEncoding.Encode(out[1:len(out)-1], bin)
	return out, nil
}

// embeddingAsFloats returns a vector as a JSON array of floats, decoding a
// base64 string of little-endian float32 values.
func embeddingAsFloats(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		return raw, nil
	}
	var s string
	if err := jsonv1.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("neither a base64 string nor a list of floats: %w", err)
	}
	bin, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode base64 vector: %w", err)
	}
	if len(bin)%4 != 0 {
		return nil, fmt.Errorf("base64 vector of %d bytes is not a list of float32", len(bin))
	}
	out := make([]byte, 0, 2+len(bin)/4*12)
	out = append(out, '[')
	for i := 0; i < len(bin); i += 4 {
		f := math.Float32frombits(binary.LittleEndian.Uint32(bin[i:]))
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, errors.New("base64 vector holds a NaN or an infinity")
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendFloat(out, float64(f), 'g', -1, 32)
	}
	return append(out, ']'), nil
}

// Transcribe sends the audio as a new multipart form, streaming the file
// rather than holding it in memory. The answer is kept as the upstream
// sent it (Body and ContentType, for text, srt and vtt), and its text,
// language, duration and usage are read from json and verbose_json.
func (p *OpenAIProvider) Transcribe(ctx context.Context, up *Upstream, req *TranscriptionRequest) (*TranscriptionResponse, error) {
	if req.File == nil {
		return nil, &UpstreamError{Status: http.StatusBadRequest, Class: ErrClassBadRequest, Err: &Error{
			Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: "file", Message: "a transcription needs an audio file"}}
	}
	body, contentType, length := transcriptionBody(up.Deployment.UpstreamModel, req)
	callCtx, cancel := context.WithTimeoutCause(ctx, openAITimeout(up), errOpenAITimeout)
	defer cancel()
	resp, err := openAIPost(callCtx, up, openAIEndpoint(up.Deployment, "audio/transcriptions"),
		contentType, "application/json, text/plain, */*", body, length)
	if err != nil {
		return nil, openAITransportError(ctx, callCtx, 0, err)
	}
	if !is2xx(resp.StatusCode) {
		return nil, openAIStatusError(up, resp, time.Now())
	}
	b, err := readUpstreamBody(resp, openAIMaxBody)
	if err != nil {
		return nil, openAITransportError(ctx, callCtx, resp.StatusCode, err)
	}
	out := &TranscriptionResponse{ContentType: resp.Header.Get("Content-Type"), Body: b}
	switch req.ResponseFormat {
	case "", "json", "verbose_json":
		if err := readTranscription(out, b); err != nil {
			return nil, badUpstreamResponse(resp.StatusCode, err)
		}
	case "text":
		out.Text = strings.TrimSpace(string(b))
	}
	return out, nil
}

// readTranscription reads the fields of a json or verbose_json answer.
// Usage is {"type":"tokens",...} for the gpt-4o transcription models and
// {"type":"duration","seconds":...} for whisper.
func readTranscription(out *TranscriptionResponse, b []byte) error {
	var t struct {
		Text     string  `json:"text"`
		Language string  `json:"language"`
		Duration float64 `json:"duration"`
		Usage    *struct {
			Type         string  `json:"type"`
			InputTokens  int64   `json:"input_tokens"`
			OutputTokens int64   `json:"output_tokens"`
			TotalTokens  int64   `json:"total_tokens"`
			Seconds      float64 `json:"seconds"`
		} `json:"usage"`
	}
	if err := jsonv1.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("openai: decode transcription: %w", err)
	}
	out.Text, out.Language, out.Duration = t.Text, t.Language, t.Duration
	if u := t.Usage; u != nil {
		switch u.Type {
		case "tokens":
			out.Usage = &Usage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, TotalTokens: u.TotalTokens}
		case "duration":
			if out.Duration == 0 {
				out.Duration = u.Seconds
			}
		}
	}
	return nil
}

// transcriptionBody builds the multipart form: the fields, then the file,
// streamed between a prefix and a suffix held in memory. The length is
// known (and sent as Content-Length) when the file's size is; otherwise
// the body goes chunked.
func transcriptionBody(model string, req *TranscriptionRequest) (body io.Reader, contentType string, length int64) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	// A bytes.Buffer does not fail, so neither do these writes.
	field := func(name, value string) {
		if value != "" {
			_ = mw.WriteField(name, value)
		}
	}
	field("model", model)
	field("language", req.Language)
	field("prompt", req.Prompt)
	field("response_format", req.ResponseFormat)
	field("temperature", req.Temperature)
	for _, g := range req.TimestampGranularities {
		field("timestamp_granularities[]", g)
	}
	h := make(textproto.MIMEHeader, 2)
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+partFileName(req.FileName)+`"`)
	h.Set("Content-Type", partContentType(req.ContentType))
	_, _ = mw.CreatePart(h)
	prefixLen := buf.Len()
	_ = mw.Close()
	prefix, suffix := buf.Bytes()[:prefixLen], buf.Bytes()[prefixLen:]

	length = -1
	if size := readerSize(req.File); size >= 0 {
		length = int64(len(prefix)) + size + int64(len(suffix))
	}
	return io.MultiReader(bytes.NewReader(prefix), req.File, bytes.NewReader(suffix)), mw.FormDataContentType(), length
}

// partFileName makes the client's file name safe inside a quoted header
// parameter: its last path element, control characters replaced, quotes
// and backslashes escaped. The upstream reads the audio format from its
// extension, so the name is kept rather than replaced.
func partFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		return "audio"
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			b.WriteByte('_')
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// partContentType is the client's audio media type if it parses, so it
// cannot inject a header line, and application/octet-stream otherwise.
func partContentType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "application/octet-stream"
	}
	return mime.FormatMediaType(mt, params)
}

// readerSize returns the bytes left in r when r can tell without being
// read, -1 otherwise.
func readerSize(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case io.Seeker:
		cur, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		end, err := v.Seek(0, io.SeekEnd)
		if _, err2 := v.Seek(cur, io.SeekStart); err != nil || err2 != nil {
			return -1
		}
		return end - cur
	}
	return -1
}

// openAITimeout is the deployment's timeout, or the default when unset.
func openAITimeout(up *Upstream) time.Duration {
	if up.Deployment.Timeout > 0 {
		return up.Deployment.Timeout
	}
	return openAIDefaultTimeout
}

// openAIEndpoint is the URL of an endpoint ("chat/completions") of a
// deployment, built from its configuration alone. Azure puts the
// deployment (the upstream model) in the path and the API version in the
// query.
func openAIEndpoint(d *Deployment, endpoint string) string {
	base := strings.TrimRight(d.BaseURL, "/")
	if d.Provider != ProviderAzure {
		if base == "" {
			base = openAIDefaultBaseURL
		}
		return base + "/" + endpoint
	}
	version := d.APIVersion
	if version == "" {
		version = azureDefaultAPIVersion
	}
	return base + "/openai/deployments/" + url.PathEscape(d.UpstreamModel) + "/" + endpoint +
		"?api-version=" + url.QueryEscape(version)
}

// openAIChatBody encodes req for the deployment: its upstream model,
// stream as asked with the usage chunk always requested, and no field that
// names an upstream. req itself is left untouched: the router may retry
// it on another deployment.
func openAIChatBody(up *Upstream, req *ChatRequest, stream bool) ([]byte, error) {
	r := *req
	r.Model = up.Deployment.UpstreamModel
	r.Extra = withoutUpstreamFields(req.Extra)
	r.Metadata = withoutUpstreamFields(req.Metadata)
	r.Stream = stream
	r.StreamOptions = nil // valid only with stream
	if stream {
		r.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	body, err := r.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("openai: encode chat request: %w", err)
	}
	return body, nil
}

// withoutUpstreamFields returns m without the entries in which
// UpstreamOverrides would find a field naming an upstream, at any depth.
// It returns m itself, not a copy, when there are none: the common case
// costs nothing.
func withoutUpstreamFields(m map[string]json.RawMessage) map[string]json.RawMessage {
	var drop []string
	for k, v := range m {
		var found []string
		if findUpstreamFields(k, v, &found); len(found) > 0 {
			drop = append(drop, k)
		}
	}
	if len(drop) == 0 {
		return m
	}
	out := make(map[string]json.RawMessage, len(m)-len(drop))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range drop {
		delete(out, k)
	}
	return out
}

// openAIPost sends body with up's client. The key goes only in its header
// and only with a context bound to the key's hosts, so the egress client
// refuses it anywhere else, redirects included. length is -1 when unknown.
func openAIPost(ctx context.Context, up *Upstream, endpoint, contentType, accept string, body io.Reader, length int64) (*http.Response, error) {
	if up.Client == nil {
		return nil, errors.New("openai: the upstream has no HTTP client")
	}
	if up.APIKey != "" {
		ctx = egress.WithCredentialHosts(ctx, up.AllowedHosts...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, body)
	if err != nil {
		return nil, fmt.Errorf("openai: build request: %w", err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", accept)
	if up.APIKey != "" {
		if up.Deployment.Provider == ProviderAzure {
			req.Header.Set("Api-Key", up.APIKey)
		} else {
			req.Header.Set("Authorization", "Bearer "+up.APIKey)
		}
	}
	resp, err := up.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("openai: post: %w", err)
	}
	return resp, nil
}

func is2xx(status int) bool { return status >= 200 && status < 300 }

// readUpstreamBody reads and closes a response body of at most max bytes. A body
// of announced length is read into one buffer of that size; reading it to
// its end lets the transport reuse the connection.
func readUpstreamBody(resp *http.Response, max int64) ([]byte, error) {
	if resp.ContentLength < 0 || resp.ContentLength > max {
		return egress.ReadBody(resp, max)
	}
	defer resp.Body.Close()
	// The announced length sizes the buffer only up to upstreamPrealloc: an
	// upstream announcing 64 MiB and then stalling, on many calls at once,
	// would otherwise hold that much memory for nothing. Past it the buffer
	// at most doubles what has arrived.
	n := resp.ContentLength
	b := make([]byte, min(n, upstreamPrealloc))
	for read := 0; ; {
		if _, err := io.ReadFull(resp.Body, b[read:]); err != nil {
			return nil, fmt.Errorf("openai: read body: %w", err)
		}
		if read = len(b); int64(read) == n {
			return b, nil
		}
		next := int(min(n, 2*int64(read)))
		b = slices.Grow(b, next-read)[:next]
	}
}

// upstreamPrealloc is the most an upstream's Content-Length reserves
// before its bytes arrive; a larger body grows as it is read.
const upstreamPrealloc = 256 << 10

// openAITransportError classifies a failure without a usable answer: the
// caller going away, the deployment's timeout, an oversized or unreadable
// body, or the connection (an egress refusal included). parent is the
// caller's context, call the one the request ran under.
func openAITransportError(parent, call context.Context, status int, err error) *UpstreamError {
	var netErr net.Error
	class := ErrClassConnection
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		class = ErrClassCancelled
	case parent.Err() != nil, errors.Is(context.Cause(call), errOpenAITimeout):
		class = ErrClassTimeout
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		class = ErrClassTimeout
	case errors.Is(err, ErrSSETooLarge), nodus.ErrorCode(err) == nodus.ETOOLARGE:
		class = ErrClassBadResponse
	}
	if errors.Is(context.Cause(call), errOpenAITimeout) && !errors.Is(err, errOpenAITimeout) {
		err = fmt.Errorf("%w: %w", errOpenAITimeout, err) // say why the transport gave up
	}
	return &UpstreamError{Status: status, Class: class, Cause: err}
}

func badUpstreamResponse(status int, err error) *UpstreamError {
	return &UpstreamError{Status: status, Class: ErrClassBadResponse, Cause: err}
}

// openAIStatusError turns a non-2xx answer into an UpstreamError: its
// class, its Retry-After, and its error body in OpenAI's shape (a message
// naming the status when the body is in no shape we know).
func openAIStatusError(up *Upstream, resp *http.Response, now time.Time) *UpstreamError {
	ue := &UpstreamError{
		Status:     resp.StatusCode,
		Class:      ClassifyStatus(resp.StatusCode),
		RetryAfter: upstreamRetryAfter(resp.Header, now),
	}
	b, err := readErrorBody(resp)
	if err != nil {
		ue.Cause = fmt.Errorf("openai: read %d error body: %w", resp.StatusCode, err)
	}
	ue.Err = decodeOpenAIError(up, b, fmt.Sprintf("the upstream answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	ue.Err.Status = resp.StatusCode
	if ue.Err.Type == "" {
		ue.Err.Type = openAIErrorType(resp.StatusCode)
	}
	return ue
}

// readErrorBody reads up to openAIMaxErrorBody bytes and closes the body;
// a longer body is cut, not an error: only the message is wanted.
func readErrorBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, openAIMaxErrorBody))
}

// openAIBodyError is the error an upstream sent inside a 2xx answer or a
// stream event. With no status of its own, it is classified by its type
// and code, and given the status a client should see for that class.
func openAIBodyError(up *Upstream, status int, b []byte) *UpstreamError {
	e := decodeOpenAIError(up, b, "the upstream sent an error in a shape the gateway does not know")
	class := classifyOpenAIError(e)
	e.Status = openAIStatusForClass(class)
	if e.Type == "" {
		e.Type = openAIErrorType(e.Status)
	}
	return &UpstreamError{Status: status, Class: class, Err: e}
}

// decodeOpenAIError reads an error body: OpenAI's {"error":{...}}, or the
// {"error":"..."}, {"message":"..."} and {"detail":"..."} some compatible
// servers send, or else says fallback; the caller sets Status, and Type
// when the body had none. The message is cut to a sane length and never
// holds the deployment's key (SECURITY.md check 33).
func decodeOpenAIError(up *Upstream, b []byte, fallback string) *Error {
	e := &Error{}
	if jsonv1.Unmarshal(b, e) != nil || e.Message == "" {
		var alt struct {
			Error   json.RawMessage `json:"error"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		}
		_ = jsonv1.Unmarshal(b, &alt)
		var s string
		switch {
		case jsonv1.Unmarshal(alt.Error, &s) == nil && s != "":
		case alt.Message != "":
			s = alt.Message
		case jsonv1.Unmarshal(alt.Detail, &s) == nil && s != "":
		default:
			s = fallback
		}
		*e = Error{Message: s}
	}
	e.Message = safeUpstreamMessage(e.Message, up.APIKey)
	return e
}

// safeUpstreamMessage cuts msg to openAIMaxErrorMessage bytes on a character
// boundary and removes key from it.
func safeUpstreamMessage(msg, key string) string {
	if key != "" && strings.Contains(msg, key) {
		msg = strings.ReplaceAll(msg, key, "[redacted]")
	}
	if len(msg) > openAIMaxErrorMessage {
		cut := openAIMaxErrorMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// openAIErrorType is the OpenAI error type that goes with a status.
func openAIErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return ErrorTypeAuthentication
	case status == http.StatusForbidden:
		return ErrorTypePermission
	case status == http.StatusNotFound:
		return ErrorTypeNotFound
	case status == http.StatusTooManyRequests:
		return ErrorTypeRateLimit
	case status >= 500:
		return ErrorTypeServer
	default:
		return ErrorTypeInvalidRequest
	}
}

// classifyOpenAIError classifies an error that came without a status of its
// own (inside a stream) by its type and code.
func classifyOpenAIError(e *Error) string {
	switch {
	case e.Type == ErrorTypeRateLimit || e.Code == "rate_limit_exceeded":
		return ErrClassRateLimit
	case e.Type == ErrorTypeInvalidRequest:
		return ErrClassBadRequest
	case e.Type == ErrorTypeAuthentication || e.Type == ErrorTypePermission:
		return ErrClassAuth
	default:
		return ErrClassServer
	}
}

// openAIStatusForClass is the status a client is shown for an error of a class
// that came without one.
func openAIStatusForClass(class string) int {
	switch class {
	case ErrClassRateLimit:
		return http.StatusTooManyRequests
	case ErrClassBadRequest:
		return http.StatusBadRequest
	case ErrClassAuth:
		return http.StatusUnauthorized
	default:
		return http.StatusBadGateway
	}
}

// upstreamRetryAfter reads retry-after-ms (OpenAI's SDKs honour it first),
// then Retry-After as delta-seconds or an HTTP date; 0 when absent,
// unreadable or past.
func upstreamRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms > 0 && ms < math.MaxInt64/float64(time.Millisecond) {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 || s >= math.MaxInt64/float64(time.Second) {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// isJSONValue reports a field that was present and not null.
func isJSONValue(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}
