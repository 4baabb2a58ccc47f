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
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
)

// These tests run OpenAIProvider against the fake upstream of package
// gatewaytest through a real egress client, whose platform policy allows
// the fake's loopback port as an address exception, as an operator would
// allow a local Ollama.

const compatKey = "sk-upstream-canary-0123456789"

// compatEgressStore is an egress store whose platform allows one
// loopback port and nothing else.
type compatEgressStore struct{ port int }

func (compatEgressStore) FindEgressPolicy(_ context.Context, tenantID string) (*egress.Policy, error) {
	return &egress.Policy{TenantID: tenantID, Mode: egress.ModeEnforce}, nil
}

func (s compatEgressStore) FindEgressPlatform(context.Context) (*egress.Platform, error) {
	return &egress.Platform{
		Rules:      []egress.Rule{{Host: "127.0.0.1", Port: s.port}},
		Exceptions: []egress.AddressException{{IP: "127.0.0.1", Port: s.port, Comment: "the fake upstream"}},
	}, nil
}

func (compatEgressStore) UpdateEgressPolicy(context.Context, string, func(*egress.Policy) error) (*egress.Policy, *egress.Policy, error) {
	return nil, nil, errors.New("read-only")
}

func (compatEgressStore) DeleteEgressTenant(context.Context, string) (int64, error) {
	return 0, errors.New("read-only")
}

func (compatEgressStore) UpdateEgressPlatform(context.Context, func(*egress.Platform) error) (*egress.Platform, *egress.Platform, error) {
	return nil, nil, errors.New("read-only")
}

type compatAuditLog struct{}

func (compatAuditLog) Record(context.Context, audit.Entry) error { return nil }

// compatFake starts a fake upstream with script s, closed with the test.
func compatFake(t testing.TB, s gatewaytest.Script) *gatewaytest.Upstream {
	t.Helper()
	u := gatewaytest.NewUpstream(s)
	t.Cleanup(u.Close)
	return u
}

// compatUpstream is an OpenAI deployment of the fake reached through the
// egress client of a tenant.
func compatUpstream(t testing.TB, u *gatewaytest.Upstream, timeout time.Duration) *Upstream {
	t.Helper()
	parsed, err := url.Parse(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(parsed.Port())
	svc, err := egress.NewService(compatEgressStore{port: port}, egress.Options{Audit: compatAuditLog{}})
	if err != nil {
		t.Fatal(err)
	}
	client := svc.Client("tenant-1")
	t.Cleanup(client.CloseIdleConnections)
	return &Upstream{
		Deployment: &Deployment{ID: "dep-1", ModelName: "public-model", Provider: ProviderOpenAI,
			UpstreamModel: "upstream-model", BaseURL: u.URL + "/v1", Mode: ModeChat, Timeout: timeout},
		Client:       client,
		APIKey:       compatKey,
		AllowedHosts: []string{"127.0.0.1"},
	}
}

func compatChatRequest(t testing.TB, body string) *ChatRequest {
	t.Helper()
	var req ChatRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

// lastUpstreamBody is the JSON body of the last request the fake received.
func lastUpstreamBody(t *testing.T, u *gatewaytest.Upstream) (gatewaytest.Request, map[string]json.RawMessage) {
	t.Helper()
	r, ok := u.LastRequest()
	if !ok {
		t.Fatal("the fake received no request")
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("the upstream got a body that is not JSON: %s", r.Body)
	}
	return r, body
}

func wantUpstreamError(t *testing.T, err error, class string) *UpstreamError {
	t.Helper()
	ue, ok := AsUpstreamError(err)
	if !ok {
		t.Fatalf("error %v, want an *UpstreamError of class %s", err, class)
	}
	if ue.Class != class {
		t.Fatalf("class %s (%v), want %s", ue.Class, err, class)
	}
	if strings.Contains(err.Error(), compatKey) {
		t.Errorf("the error shows the upstream key: %v", err)
	}
	return ue
}

// The upstream sees the deployment's model and key and nothing a client
// chose about the upstream; the caller's request is left as it was, for
// a retry on another deployment.
func TestOpenAIProviderChat(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{APIKey: compatKey, Text: "Paris.", PromptTokens: 12, CompletionTokens: 3})
	up := compatUpstream(t, u, 0)
	req := compatChatRequest(t, `{"model":"public-model","messages":[{"role":"user","content":"Capital of France?"}],
		"stream_options":{"include_usage":true},"presence_penalty":0.5,"api_base":"http://169.254.169.254",
		"extra_body":{"nested":{"base_url":"http://evil"}},"metadata":{"trace":"t1","api_key":"sk-client"}}`)
	before, _ := json.Marshal(req)

	resp, err := (&OpenAIProvider{}).Chat(context.Background(), up, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := *resp.Choices[0].Message.Content; got != "Paris." || resp.Usage.PromptTokens != 12 || resp.Usage.CompletionTokens != 3 {
		t.Errorf("answer %q, usage %+v", got, resp.Usage)
	}
	r, body := lastUpstreamBody(t, u)
	if r.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer "+compatKey || r.Header.Get("Api-Key") != "" {
		t.Errorf("request %s with Authorization %q", r.Path, r.Header.Get("Authorization"))
	}
	if string(body["model"]) != `"upstream-model"` || string(body["presence_penalty"]) != "0.5" || string(body["metadata"]) != `{"trace":"t1"}` {
		t.Errorf("upstream body %s", r.Body)
	}
	for _, field := range []string{"api_base", "extra_body", "stream", "stream_options"} {
		if _, ok := body[field]; ok {
			t.Errorf("the upstream got %s: %s", field, r.Body)
		}
	}
	if after, _ := json.Marshal(req); !bytes.Equal(before, after) {
		t.Errorf("the caller's request changed:\n%s\n%s", before, after)
	}
}

// collectOpenAIStream runs ChatStream and returns the chunks emitted.
func collectOpenAIStream(ctx context.Context, up *Upstream, req *ChatRequest) ([]*ChatChunk, error) {
	var chunks []*ChatChunk
	err := (&OpenAIProvider{}).ChatStream(ctx, up, req, func(c *ChatChunk) error {
		chunks = append(chunks, c)
		return nil
	})
	return chunks, err
}

// A stream passes every chunk in order and ends with the usage chunk,
// which the provider asks for even when the client did not.
func TestOpenAIProviderStream(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{APIKey: compatKey, Text: "The capital is Paris.", Chunks: 4, PromptTokens: 9})
	up := compatUpstream(t, u, 0)
	req := compatChatRequest(t, `{"model":"public-model","stream":true,"messages":[{"role":"user","content":"Capital?"}]}`)
	chunks, err := collectOpenAIStream(context.Background(), up, req)
	if err != nil {
		t.Fatal(err)
	}
	// role, four pieces, finish, usage
	if len(chunks) != 7 {
		t.Fatalf("%d chunks, want 7", len(chunks))
	}
	var text strings.Builder
	for _, c := range chunks[:6] {
		if len(c.Choices) != 1 || c.Usage != nil {
			t.Fatalf("chunk %+v", c)
		}
		if d := c.Choices[0].Delta.Content; d != nil {
			text.WriteString(*d)
		}
	}
	if chunks[0].Choices[0].Delta.Role != RoleAssistant || text.String() != "The capital is Paris." {
		t.Errorf("role %q, text %q", chunks[0].Choices[0].Delta.Role, text.String())
	}
	if f := chunks[5].Choices[0].FinishReason; f == nil || *f != FinishStop {
		t.Errorf("finish chunk %+v", chunks[5].Choices[0])
	}
	last := chunks[6]
	if len(last.Choices) != 0 || last.Usage == nil || last.Usage.PromptTokens != 9 || last.Usage.CompletionTokens != 4 {
		t.Errorf("usage chunk %+v", last)
	}
	r, body := lastUpstreamBody(t, u)
	if string(body["stream"]) != "true" || string(body["stream_options"]) != `{"include_usage":true}` {
		t.Errorf("upstream body %s", r.Body)
	}
	if r.Header.Get("Accept") != "text/event-stream" {
		t.Errorf("Accept %q", r.Header.Get("Accept"))
	}
}

// Tool calls stream as deltas: the first carries the id and name, the
// rest pieces of the arguments.
func TestOpenAIProviderStreamToolCalls(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{ToolCall: &gatewaytest.ToolCall{Arguments: `{"location":"Paris, FR"}`}, Chunks: 5})
	up := compatUpstream(t, u, 0)
	req := compatChatRequest(t, `{"model":"public-model","stream":true,"messages":[{"role":"user","content":"Weather?"}],
		"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`)
	chunks, err := collectOpenAIStream(context.Background(), up, req)
	if err != nil {
		t.Fatal(err)
	}
	var id, name string
	var args strings.Builder
	var finish string
	for _, c := range chunks {
		for _, ch := range c.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				if tc.ID != "" {
					id, name = tc.ID, tc.Function.Name
				}
				args.WriteString(tc.Function.Arguments)
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if id != "call_fake_1" || name != "get_weather" || args.String() != `{"location":"Paris, FR"}` || finish != FinishToolCalls {
		t.Errorf("tool call %s %s(%s), finish %q", id, name, args.String(), finish)
	}
}

func decodeBase64Vector(t *testing.T, raw json.RawMessage) []float32 {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("embedding %s is not a base64 string", raw)
	}
	bin, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(bin)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
	}
	return v
}

// Vectors reach the client in the format it asked for, whatever format
// the upstream answered in.
func TestOpenAIProviderEmbeddingFormats(t *testing.T) {
	tests := []struct{ asked, upstreamSends string }{
		{"", ""}, {"float", "float"}, {"base64", "base64"},
		{"base64", "float"}, // a server that ignores base64
		{"float", "base64"}, {"", "base64"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("asked %q, upstream sends %q", tt.asked, tt.upstreamSends), func(t *testing.T) {
			u := compatFake(t, gatewaytest.Script{EmbeddingDims: 16, EmbeddingFormat: tt.upstreamSends})
			up := compatUpstream(t, u, 0)
			req := &EmbeddingRequest{Model: "public-model", Input: json.RawMessage(`["first text","second text"]`), EncodingFormat: tt.asked}
			resp, err := (&OpenAIProvider{}).Embed(context.Background(), up, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Data) != 2 || resp.Usage == nil || resp.Usage.PromptTokens == 0 {
				t.Fatalf("answer %+v", resp)
			}
			for i, text := range []string{"first text", "second text"} {
				var got []float32
				if tt.asked == "base64" {
					got = decodeBase64Vector(t, resp.Data[i].Embedding)
				} else if err := json.Unmarshal(resp.Data[i].Embedding, &got); err != nil {
					t.Fatalf("embedding %s is not a list of floats", resp.Data[i].Embedding)
				}
				want := gatewaytest.EmbeddingVector(text, 16)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("vector %d: %v, want %v", i, got, want)
				}
			}
			_, body := lastUpstreamBody(t, u)
			if string(body["model"]) != `"upstream-model"` {
				t.Errorf("upstream model %s", body["model"])
			}
			if tt.asked != "" && string(body["encoding_format"]) != strconv.Quote(tt.asked) {
				t.Errorf("encoding_format %s, want %q passed on", body["encoding_format"], tt.asked)
			}
		})
	}
}

// unsizedReader hides a reader's size, as a file streamed from a client's
// multipart body does.
type unsizedReader struct{ r io.Reader }

func (n unsizedReader) Read(p []byte) (int, error) { return n.r.Read(p) }

// The audio goes upstream as a new multipart form with the deployment's
// model, streamed with or without a known length; json answers are read,
// text answers kept as sent.
func TestOpenAIProviderTranscribe(t *testing.T) {
	audio := bytes.Repeat([]byte("RIFFWAVE"), 10000)
	tests := []struct {
		name, format string
		file         io.Reader
		check        func(t *testing.T, resp *TranscriptionResponse)
	}{
		{"verbose_json with a known length", "verbose_json", bytes.NewReader(audio), func(t *testing.T, resp *TranscriptionResponse) {
			if resp.Text != "bonjour" || resp.Language != "fr" || resp.Duration != 2.5 {
				t.Errorf("read %q, %q, %v", resp.Text, resp.Language, resp.Duration)
			}
		}},
		{"json streamed", "json", unsizedReader{bytes.NewReader(audio)}, func(t *testing.T, resp *TranscriptionResponse) {
			if resp.Text != "bonjour" || resp.Duration != 3 { // whisper reports usage in whole seconds
				t.Errorf("read %q, %v", resp.Text, resp.Duration)
			}
		}},
		{"text", "text", bytes.NewReader(audio), func(t *testing.T, resp *TranscriptionResponse) {
			if string(resp.Body) != "bonjour\n" || !strings.HasPrefix(resp.ContentType, "text/plain") || resp.Text != "bonjour" {
				t.Errorf("body %q, type %q, text %q", resp.Body, resp.ContentType, resp.Text)
			}
		}},
		{"srt", "srt", bytes.NewReader(audio), func(t *testing.T, resp *TranscriptionResponse) {
			if !strings.Contains(string(resp.Body), "00:00:02,500\nbonjour") {
				t.Errorf("body %q", resp.Body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := compatFake(t, gatewaytest.Script{APIKey: compatKey, Transcript: "bonjour", AudioSeconds: 2.5})
			up := compatUpstream(t, u, 0)
			req := &TranscriptionRequest{Model: "public-model", File: tt.file, FileName: `../x"y.wav`, ContentType: "audio/wav",
				Language: "fr", ResponseFormat: tt.format, TimestampGranularities: []string{"word", "segment"}}
			resp, err := (&OpenAIProvider{}).Transcribe(context.Background(), up, req)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, resp)
			r, _ := u.LastRequest()
			if r.File == nil || r.File.Size != int64(len(audio)) || r.File.Name != `x"y.wav` || r.File.ContentType != "audio/wav" {
				t.Errorf("upstream file %+v", r.File)
			}
			if got := r.Form["model"]; len(got) != 1 || got[0] != "upstream-model" {
				t.Errorf("upstream model %v", got)
			}
			if got := r.Form["timestamp_granularities[]"]; len(got) != 2 || r.Form["language"][0] != "fr" || r.Form["response_format"][0] != tt.format {
				t.Errorf("upstream form %v", r.Form)
			}
			_, chunked := tt.file.(unsizedReader)
			if got := r.Header.Get("Content-Length") == ""; got != chunked {
				t.Errorf("Content-Length %q; want one unless the size is unknown", r.Header.Get("Content-Length"))
			}
		})
	}
}

// Error answers are classified, with Retry-After read and the upstream's
// message kept.
func TestOpenAIProviderStatusErrors(t *testing.T) {
	tests := []struct {
		name      string
		script    gatewaytest.Script
		class     string
		status    int
		errType   string
		retry     time.Duration
		inMessage string
	}{
		{"429 with Retry-After", gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 429, RetryAfter: "1", Message: "Rate limit reached"}}},
			ErrClassRateLimit, 429, ErrorTypeRateLimit, time.Second, "Rate limit reached"},
		{"500", gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 500}}},
			ErrClassServer, 500, ErrorTypeServer, 0, "Internal Server Error"},
		{"400", gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 400, Message: "max_tokens is too large"}}},
			ErrClassBadRequest, 400, ErrorTypeInvalidRequest, 0, "max_tokens is too large"},
		{"wrong key", gatewaytest.Script{APIKey: "another-key"},
			ErrClassAuth, 401, ErrorTypeInvalidRequest, 0, "Incorrect API key"},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.name, stream), func(t *testing.T) {
				u := compatFake(t, tt.script)
				up := compatUpstream(t, u, 0)
				req := compatChatRequest(t, `{"model":"public-model","messages":[{"role":"user","content":"hi"}]}`)
				var err error
				if stream {
					_, err = collectOpenAIStream(context.Background(), up, req)
				} else {
					_, err = (&OpenAIProvider{}).Chat(context.Background(), up, req)
				}
				ue := wantUpstreamError(t, err, tt.class)
				if ue.Status != tt.status || ue.RetryAfter != tt.retry || ue.Err == nil || ue.Err.Status != tt.status ||
					ue.Err.Type != tt.errType || !strings.Contains(ue.Err.Message, tt.inMessage) {
					t.Errorf("error %+v, body %+v", ue, ue.Err)
				}
			})
		}
	}
}

func TestUpstreamRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header http.Header
		want   time.Duration
	}{
		{http.Header{}, 0},
		{http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"2"}}, 250 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"soon"}, "Retry-After": {"2"}}, 2 * time.Second},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{http.Header{"Retry-After": {"-3"}}, 0},
		{http.Header{"Retry-After": {"1e300"}}, 0},
		{http.Header{"Retry-After": {"tomorrow"}}, 0},
	}
	for _, tt := range tests {
		if got := upstreamRetryAfter(tt.header, now); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.header, got, tt.want)
		}
	}
}

// Error bodies in other servers' shapes are read; unknown ones, huge ones
// and ones that echo the key never reach the client as they are.
func TestDecodeOpenAIError(t *testing.T) {
	up := &Upstream{APIKey: compatKey}
	huge := strings.Repeat("é", 5000)
	tests := []struct {
		name, body, want string
	}{
		{"OpenAI", `{"error":{"message":"bad model","type":"invalid_request_error","param":"model","code":"model_not_found"}}`, "bad model"},
		{"error string", `{"error":"model not loaded"}`, "model not loaded"},
		{"message", `{"message":"quota exceeded"}`, "quota exceeded"},
		{"FastAPI detail", `{"detail":"Not Found"}`, "Not Found"},
		{"HTML", `<html><body>502 Bad Gateway</body></html>`, "fallback"},
		{"key echoed", `{"error":{"message":"Incorrect API key provided: ` + compatKey + `"}}`, "Incorrect API key provided: [redacted]"},
		{"huge message", `{"error":{"message":"` + huge + `"}}`, huge[:openAIMaxErrorMessage] + "…"},
	}
	for _, tt := range tests {
		if got := decodeOpenAIError(up, []byte(tt.body), "fallback"); got.Message != tt.want {
			t.Errorf("%s: message %q, want %q", tt.name, got.Message, tt.want)
		}
	}
}

// An upstream that stalls mid-stream is cut within about the deployment's
// timeout, however long it keeps the connection open, and sees its
// request cancelled (SECURITY.md check 28).
func TestOpenAIProviderStallMidStream(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{Break: gatewaytest.BreakStall, BreakAfter: 1, Chunks: 4})
	up := compatUpstream(t, u, 200*time.Millisecond)
	req := compatChatRequest(t, `{"model":"public-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	start := time.Now()
	chunks, err := collectOpenAIStream(context.Background(), up, req)
	elapsed := time.Since(start)
	ue := wantUpstreamError(t, err, ErrClassTimeout)
	if !errors.Is(ue, errOpenAITimeout) {
		t.Errorf("error %v does not say the upstream was silent", err)
	}
	if len(chunks) != 2 { // the role chunk and one piece
		t.Errorf("%d chunks before the stall, want 2", len(chunks))
	}
	if elapsed < 200*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("cut after %v, want about 200ms", elapsed)
	}
	if !u.WaitCancelled(1, 2*time.Second) {
		t.Error("the upstream never saw its request cancelled")
	}
}

// A stream whose chunks each come within the timeout is not cut, though
// the whole stream lasts longer than it.
func TestOpenAIProviderSlowStreamWithinTimeout(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{ChunkInterval: 40 * time.Millisecond, Chunks: 15})
	up := compatUpstream(t, u, 500*time.Millisecond)
	req := compatChatRequest(t, `{"model":"public-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	start := time.Now()
	if _, err := collectOpenAIStream(context.Background(), up, req); err != nil {
		t.Fatalf("a stream with 40ms gaps failed under a 500ms timeout: %v", err)
	}
	if elapsed := time.Since(start); elapsed < 500*time.Millisecond {
		t.Fatalf("the stream lasted %v, not longer than the timeout: the test proves nothing", elapsed)
	}
}

// An upstream that never answers, or sends headers and then nothing, ends
// in a timeout for every kind of call.
func TestOpenAIProviderNeverAnswers(t *testing.T) {
	for _, hang := range []gatewaytest.Hang{gatewaytest.HangBeforeHeaders, gatewaytest.HangAfterHeaders} {
		u := compatFake(t, gatewaytest.Script{Hang: hang})
		up := compatUpstream(t, u, 150*time.Millisecond)
		chat := compatChatRequest(t, `{"model":"public-model","messages":[{"role":"user","content":"hi"}]}`)
		calls := map[string]func() error{
			"chat": func() error { _, err := (&OpenAIProvider{}).Chat(context.Background(), up, chat); return err },
			"stream": func() error {
				_, err := collectOpenAIStream(context.Background(), up, chat)
				return err
			},
			"embed": func() error {
				_, err := (&OpenAIProvider{}).Embed(context.Background(), up, &EmbeddingRequest{Input: json.RawMessage(`"x"`)})
				return err
			},
		}
		for name, call := range calls {
			t.Run(fmt.Sprintf("%s/hang=%d", name, hang), func(t *testing.T) {
				start := time.Now()
				err := call()
				wantUpstreamError(t, err, ErrClassTimeout)
				if elapsed := time.Since(start); elapsed > 2*time.Second {
					t.Errorf("cut after %v, want about 150ms", elapsed)
				}
			})
		}
	}
}

// The caller going away cancels the upstream request and is reported as
// a cancellation, not as the upstream's failure.
func TestOpenAIProviderCallerCancels(t *testing.T) {
	t.Run("waiting for the answer", func(t *testing.T) {
		u := compatFake(t, gatewaytest.Script{Latency: 10 * time.Second})
		up := compatUpstream(t, u, 0)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := (&OpenAIProvider{}).Chat(ctx, up, compatChatRequest(t, `{"model":"m","messages":[]}`))
		wantUpstreamError(t, err, ErrClassCancelled)
		if !u.WaitCancelled(1, 2*time.Second) {
			t.Error("the upstream never saw its request cancelled")
		}
	})
	t.Run("mid-stream", func(t *testing.T) {
		u := compatFake(t, gatewaytest.Script{ChunkInterval: 20 * time.Millisecond, Chunks: 50})
		up := compatUpstream(t, u, 0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		err := (&OpenAIProvider{}).ChatStream(ctx, up, compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`),
			func(*ChatChunk) error {
				if n++; n == 3 {
					cancel()
				}
				return nil
			})
		wantUpstreamError(t, err, ErrClassCancelled)
		if !u.WaitCancelled(1, 2*time.Second) {
			t.Error("the upstream never saw its request cancelled")
		}
	})
}

// An error from emit stops the stream and comes back as it is.
func TestOpenAIProviderEmitError(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{Chunks: 10, ChunkInterval: 5 * time.Millisecond})
	up := compatUpstream(t, u, 0)
	clientGone := errors.New("client gone")
	err := (&OpenAIProvider{}).ChatStream(context.Background(), up,
		compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`), func(*ChatChunk) error { return clientGone })
	if err != clientGone {
		t.Errorf("error %v, want emit's own", err)
	}
	if !u.WaitCancelled(1, 2*time.Second) {
		t.Error("the upstream stream was not closed")
	}
}

// Streams that end badly are errors: an error event, or an end before
// [DONE] in the middle of the answer.
func TestOpenAIProviderBrokenStreams(t *testing.T) {
	tests := []struct {
		name  string
		brk   gatewaytest.Break
		class string
	}{
		{"error event", gatewaytest.BreakError, ErrClassServer},
		{"end before [DONE]", gatewaytest.BreakClose, ErrClassConnection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := compatFake(t, gatewaytest.Script{Break: tt.brk, BreakAfter: 2})
			up := compatUpstream(t, u, 0)
			chunks, err := collectOpenAIStream(context.Background(), up, compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`))
			ue := wantUpstreamError(t, err, tt.class)
			if len(chunks) != 3 {
				t.Errorf("%d chunks before the break, want 3", len(chunks))
			}
			if tt.brk == gatewaytest.BreakError && (ue.Err == nil || ue.Err.Status != http.StatusBadGateway ||
				!strings.Contains(ue.Err.Message, "server had an error")) {
				t.Errorf("error body %+v", ue.Err)
			}
		})
	}
}

// rawStreamServer answers every request with body as an event stream.
func rawStreamServer(t *testing.T, body string) *Upstream {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return &Upstream{Deployment: &Deployment{Provider: ProviderOpenAI, BaseURL: srv.URL, UpstreamModel: "m"}, Client: srv.Client()}
}

// Streams from other servers: one that ends cleanly after the finish
// without [DONE] is complete; Azure's chunk with nothing in it is
// skipped; an event over the limit is a bad response.
func TestOpenAIProviderStreamEdges(t *testing.T) {
	finish := `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	content := `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	azureFilter := `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}` + "\n\n"
	req := compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`)

	chunks, err := collectOpenAIStream(context.Background(), rawStreamServer(t, azureFilter+content+finish), req)
	if err != nil || len(chunks) != 2 {
		t.Errorf("finished stream without [DONE]: %d chunks, error %v; want 2 and none", len(chunks), err)
	}
	_, err = collectOpenAIStream(context.Background(), rawStreamServer(t, "data: "+strings.Repeat("x", openAIMaxEvent+1)+"\n\n"), req)
	wantUpstreamError(t, err, ErrClassBadResponse)
	_, err = collectOpenAIStream(context.Background(), rawStreamServer(t, "data: {not json}\n\n"), req)
	wantUpstreamError(t, err, ErrClassBadResponse)
}

// Azure: the deployment in the path, api-version in the query, the key in
// api-key and never in Authorization.
func TestOpenAIProviderAzure(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{APIKey: compatKey})
	up := compatUpstream(t, u, 0)
	up.Deployment.Provider, up.Deployment.BaseURL, up.Deployment.UpstreamModel, up.Deployment.APIVersion =
		ProviderAzure, u.URL, "gpt-4o deployment", "2024-06-01"
	tests := []struct {
		name, path string
		call       func() error
	}{
		{"chat", "/openai/deployments/gpt-4o deployment/chat/completions", func() error {
			_, err := (&OpenAIProvider{}).Chat(context.Background(), up, compatChatRequest(t, `{"model":"m","messages":[]}`))
			return err
		}},
		{"stream", "/openai/deployments/gpt-4o deployment/chat/completions", func() error {
			_, err := collectOpenAIStream(context.Background(), up, compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`))
			return err
		}},
		{"embeddings", "/openai/deployments/gpt-4o deployment/embeddings", func() error {
			_, err := (&OpenAIProvider{}).Embed(context.Background(), up, &EmbeddingRequest{Input: json.RawMessage(`"x"`)})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			r, _ := u.LastRequest()
			if r.Path != tt.path || r.Query != "api-version=2024-06-01" {
				t.Errorf("request to %s?%s", r.Path, r.Query)
			}
			if r.Header.Get("Api-Key") != compatKey || r.Header.Get("Authorization") != "" {
				t.Errorf("api-key %q, Authorization %q", r.Header.Get("Api-Key"), r.Header.Get("Authorization"))
			}
		})
	}
}

// The key is bound to its hosts: through the egress client, a key meant
// for api.openai.com is never sent to the fake, whatever the policy
// allows.
func TestOpenAIProviderKeyBoundToItsHosts(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{})
	up := compatUpstream(t, u, 0)
	up.AllowedHosts = []string{"api.openai.com"}
	_, err := (&OpenAIProvider{}).Chat(context.Background(), up, compatChatRequest(t, `{"model":"m","messages":[]}`))
	wantUpstreamError(t, err, ErrClassConnection)
	var d *egress.DeniedError
	if !errors.As(err, &d) || d.Reason != egress.ReasonCredentialHost {
		t.Errorf("error %v, want a credential-host refusal", err)
	}
	if u.Served() != 0 {
		t.Errorf("the fake received %d requests", u.Served())
	}
}

// Stalled and cancelled calls leave no goroutine behind once the idle
// connections are closed.
func TestOpenAIProviderLeavesNoGoroutines(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{Break: gatewaytest.BreakStall, BreakAfter: 1, DisableRecording: true})
	up := compatUpstream(t, u, 50*time.Millisecond)
	req := compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`)
	_, _ = collectOpenAIStream(context.Background(), up, req) // a first call starts the transport's own goroutines
	up.Client.CloseIdleConnections()
	base := runtime.NumGoroutine()
	for range 20 {
		_, err := collectOpenAIStream(context.Background(), up, req)
		wantUpstreamError(t, err, ErrClassTimeout)
	}
	up.Client.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after 20 stalled streams, %d before", runtime.NumGoroutine(), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every kind of call leaves its connection reusable: bodies are read to
// their end, a stream's past [DONE] included.
func TestOpenAIProviderReusesConnections(t *testing.T) {
	u := compatFake(t, gatewaytest.Script{})
	up := compatUpstream(t, u, 0)
	p := &OpenAIProvider{}
	calls := []func(ctx context.Context) error{
		func(ctx context.Context) error {
			_, err := p.Chat(ctx, up, compatChatRequest(t, `{"model":"m","messages":[]}`))
			return err
		},
		func(ctx context.Context) error {
			_, err := collectOpenAIStream(ctx, up, compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`))
			return err
		},
		func(ctx context.Context) error {
			_, err := p.Embed(ctx, up, &EmbeddingRequest{Input: json.RawMessage(`"x"`), EncodingFormat: "base64"})
			return err
		},
		func(ctx context.Context) error {
			_, err := p.Transcribe(ctx, up, &TranscriptionRequest{File: strings.NewReader("audio"), FileName: "a.wav"})
			return err
		},
	}
	for round := range 2 {
		for i, call := range calls {
			reused := false
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
			})
			if err := call(ctx); err != nil {
				t.Fatal(err)
			}
			if (round > 0 || i > 0) && !reused {
				t.Errorf("call %d of round %d opened a new connection", i, round)
			}
		}
	}
}

// A stream whose body ends a little after [DONE] (the chunked
// terminator in a later packet) still leaves its connection reusable.
func TestOpenAIProviderDrainsAfterDone(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
	}))
	defer srv.Close()
	up := &Upstream{Deployment: &Deployment{Provider: ProviderOpenAI, BaseURL: srv.URL, UpstreamModel: "m"}, Client: srv.Client()}
	req := compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`)
	for i := range 3 {
		reused := false
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		})
		if _, err := collectOpenAIStream(ctx, up, req); err != nil {
			t.Fatal(err)
		}
		if i > 0 && !reused {
			t.Errorf("stream %d opened a new connection", i)
		}
	}
}

func TestEmbeddingConversions(t *testing.T) {
	floats := json.RawMessage(`[0.5,-1,3.25e-05]`)
	b64, err := embeddingAsBase64(floats)
	if err != nil {
		t.Fatal(err)
	}
	back, err := embeddingAsFloats(b64)
	if err != nil {
		t.Fatal(err)
	}
	if string(back) != "[0.5,-1,3.25e-05]" {
		t.Errorf("round trip %s", back)
	}
	for _, bad := range []string{`{"a":1}`, `"not base64!"`, `"AAA="`, `"AADAfw=="`} { // an object, bad base64, 2 bytes, NaN
		if _, err := embeddingAsFloats(json.RawMessage(bad)); err == nil {
			t.Errorf("embeddingAsFloats(%s) succeeded", bad)
		}
	}
}

// benchmarkCall measures one provider call against the fake on loopback,
// the provider's own cost being what is left after the fake's and the
// network's.
func BenchmarkOpenAIProviderChat(b *testing.B) {
	u := compatFake(b, gatewaytest.Script{DisableRecording: true})
	up := compatUpstream(b, u, 0)
	req := compatChatRequest(b, `{"model":"public-model","messages":[{"role":"user","content":"Capital of France?"}]}`)
	p := &OpenAIProvider{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Chat(context.Background(), up, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenAIProviderStream(b *testing.B) {
	u := compatFake(b, gatewaytest.Script{DisableRecording: true, Chunks: 10})
	up := compatUpstream(b, u, 0)
	req := compatChatRequest(b, `{"model":"public-model","stream":true,"messages":[{"role":"user","content":"Capital of France?"}]}`)
	p := &OpenAIProvider{}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ChatStream(context.Background(), up, req, func(*ChatChunk) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenAIChatBody(b *testing.B) {
	up := &Upstream{Deployment: &Deployment{UpstreamModel: "upstream-model"}}
	req := compatChatRequest(b, `{"model":"public-model","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}],"temperature":0.2}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := openAIChatBody(up, req, true); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadUpstreamBodyAnnouncedLength: an upstream that announces a large
// body and sends a few bytes makes the gateway reserve no more than
// upstreamPrealloc, and gets a read error; an honest one is read whole.
func TestReadUpstreamBodyAnnouncedLength(t *testing.T) {
	const announced = 60 << 20
	resp := &http.Response{ContentLength: announced, Body: io.NopCloser(strings.NewReader("{\"partial\":"))}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readUpstreamBody(resp, 64<<20)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a body shorter than its Content-Length was read without an error")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*upstreamPrealloc {
		t.Fatalf("reading a short body announced at %d bytes allocated %d bytes", announced, grew)
	}
	body := strings.Repeat("x", 3*upstreamPrealloc+7)
	resp = &http.Response{ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body))}
	if b, err := readUpstreamBody(resp, 64<<20); err != nil || string(b) != body {
		t.Fatalf("an honest body: %d bytes, %v", len(b), err)
	}
}
