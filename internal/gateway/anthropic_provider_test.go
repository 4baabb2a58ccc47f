package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
)

// anthropicFake is a scripted Anthropic server. It records each request it
// receives and reports when a handler sees its client go away.
type anthropicFake struct {
	*httptest.Server
	mu       sync.Mutex
	requests []anthropicFakeRequest
	gone     chan struct{} // closed when a handler saw its request's context end
	goneOnce sync.Once
}

// anthropicFakeRequest is what the fake server saw of one request.
type anthropicFakeRequest struct {
	Path   string
	Header http.Header
	Body   MessagesRequest
}

// newAnthropicFake serves handle after recording the request.
func newAnthropicFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *anthropicFake {
	t.Helper()
	f := &anthropicFake{gone: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body MessagesRequest
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("fake anthropic: decode request: %v", err)
		}
		f.mu.Lock()
		f.requests = append(f.requests, anthropicFakeRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		f.mu.Unlock()
		go func() {
			<-r.Context().Done()
			f.goneOnce.Do(func() { close(f.gone) })
		}()
		handle(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *anthropicFake) lastRequest(t *testing.T) anthropicFakeRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("the fake server received no request")
	}
	return f.requests[len(f.requests)-1]
}

// upstream is a deployment of the fake server.
func (f *anthropicFake) upstream(timeout time.Duration) *Upstream {
	return &Upstream{
		Deployment: &Deployment{
			ID: "dep-1", ModelName: "claude-public", Provider: ProviderAnthropic, UpstreamModel: "claude-up",
			BaseURL: f.URL, Mode: ModeChat, Timeout: timeout,
		},
		Client:       &http.Client{},
		APIKey:       "sk-ant-canary-key",
		AllowedHosts: []string{"127.0.0.1"},
	}
}

// waitGone fails unless the server saw its client go away within a second.
func (f *anthropicFake) waitGone(t *testing.T) {
	t.Helper()
	select {
	case <-f.gone:
	case <-time.After(time.Second):
		t.Error("the upstream request was not closed")
	}
}

// anthropicWriteSSE sends events as a stream, each as Anthropic frames it.
func anthropicWriteSSE(w http.ResponseWriter, events ...string) {
	for _, e := range events {
		var head struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal([]byte(e), &head)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", head.Type, e)
	}
	w.(http.Flusher).Flush()
}

func anthropicStartSSE(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
}

const anthropicMessageStartEvent = `{"type":"message_start","message":{"id":"msg_s1","type":"message","role":"assistant","model":"claude-up-2025","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":2}}}`

// anthropicToolStream is the stream of the Messages streaming docs' tool
// use example: text, then a tool call whose input arrives in pieces.
var anthropicToolStream = []string{
	anthropicMessageStartEvent,
	`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	`{"type":"ping"}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, let me "}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"check."}}`,
	`{"type":"content_block_stop","index":0}`,
	`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1","name":"get_weather","input":{}}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}}`,
	`{"type":"content_block_stop","index":1}`,
	`{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}`,
	`{"type":"message_stop"}`,
}

// anthropicTestRequest has what a provider must translate: system text,
// two user messages in a row, and tool calls with their results.
func anthropicTestRequest(t *testing.T) *ChatRequest {
	return anthropicChatRequest(t, `{"model":"claude-public","messages":[
		{"role":"system","content":"Be brief."},
		{"role":"user","content":"Hello"},
		{"role":"user","content":"Weather in SF?"},
		{"role":"assistant","content":"","tool_calls":[{"id":"toolu_0","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"SF\"}"}}]},
		{"role":"tool","tool_call_id":"toolu_0","content":"foggy"}],
		"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`)
}

func TestAnthropicProviderChat(t *testing.T) {
	f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_01","type":"message","role":"assistant","model":"claude-up-2025",
			"content":[{"type":"text","text":"Foggy, 14C."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"location":"LA"}}],
			"stop_reason":"tool_use","stop_sequence":null,
			"usage":{"input_tokens":30,"output_tokens":9,"cache_read_input_tokens":4,"cache_creation_input_tokens":0}}`)
	})
	p := &AnthropicProvider{Now: func() time.Time { return time.Unix(1700000000, 0) }}
	req := anthropicTestRequest(t)
	resp, err := p.Chat(context.Background(), f.upstream(0), req)
	if err != nil {
		t.Fatal(err)
	}
	assertAnthropicJSON(t, resp, `{"id":"msg_01","object":"chat.completion","created":1700000000,"model":"claude-up-2025",
		"choices":[{"index":0,"finish_reason":"tool_calls","logprobs":null,"message":{"role":"assistant","content":"Foggy, 14C.","refusal":null,
			"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"LA\"}"}}]}}],
		"usage":{"prompt_tokens":34,"completion_tokens":9,"total_tokens":43,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0}}}`)

	seen := f.lastRequest(t)
	checks := map[string][2]string{
		"path":              {seen.Path, "/v1/messages"},
		"x-api-key":         {seen.Header.Get("x-api-key"), "sk-ant-canary-key"},
		"anthropic-version": {seen.Header.Get("anthropic-version"), "2023-06-01"},
		"content-type":      {seen.Header.Get("Content-Type"), "application/json"},
		"authorization":     {seen.Header.Get("Authorization"), ""},
		"model":             {seen.Body.Model, "claude-up"},
		"system":            {seen.Body.System.String(), "Be brief."},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if seen.Body.Stream || seen.Body.MaxTokens == nil || *seen.Body.MaxTokens != 4096 {
		t.Errorf("stream %v, max_tokens %v; want a non-streaming call with the default 4096", seen.Body.Stream, seen.Body.MaxTokens)
	}
	var roles []string
	for _, m := range seen.Body.Messages {
		roles = append(roles, m.Role)
	}
	if got := strings.Join(roles, ","); got != "user,assistant,user" {
		t.Errorf("roles %s, want user,assistant,user", got)
	}
	if req.Model != "claude-public" || len(req.Messages) != 5 {
		t.Errorf("the caller's request changed: %+v", req)
	}
}

func TestAnthropicProviderURLAndKeyless(t *testing.T) {
	f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"m","type":"message","role":"assistant","model":"x","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`)
	})
	up := f.upstream(0)
	up.Deployment.BaseURL = f.URL + "/v1/"
	up.APIKey = ""
	if _, err := (&AnthropicProvider{}).Chat(context.Background(), up, anthropicTestRequest(t)); err != nil {
		t.Fatal(err)
	}
	seen := f.lastRequest(t)
	if seen.Path != "/v1/messages" {
		t.Errorf("path %q, want /v1/messages", seen.Path)
	}
	if _, ok := seen.Header["X-Api-Key"]; ok {
		t.Error("a keyless deployment sent x-api-key")
	}
}

func TestAnthropicProviderChatStream(t *testing.T) {
	f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
		anthropicStartSSE(w)
		anthropicWriteSSE(w, anthropicToolStream...)
	})
	var chunks []*ChatChunk
	err := (&AnthropicProvider{}).ChatStream(context.Background(), f.upstream(0), anthropicTestRequest(t), func(c *ChatChunk) error {
		chunks = append(chunks, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !f.lastRequest(t).Body.Stream {
		t.Error("the upstream was not asked to stream")
	}
	if len(chunks) < 4 {
		t.Fatalf("%d chunks", len(chunks))
	}
	first := chunks[0].Choices[0].Delta
	if first.Role != RoleAssistant || chunks[0].ID != "msg_s1" || chunks[0].Model != "claude-up-2025" || chunks[0].Object != "chat.completion.chunk" {
		t.Errorf("first chunk %+v, want the assistant role, the message id and model", chunks[0])
	}
	var text, args strings.Builder
	var toolID, toolName string
	var finish []string
	for _, c := range chunks[:len(chunks)-1] {
		if len(c.Choices) != 1 || c.Usage != nil {
			t.Fatalf("chunk %+v: want one choice and no usage before the last chunk", c)
		}
		ch := c.Choices[0]
		if ch.Delta.Content != nil {
			text.WriteString(*ch.Delta.Content)
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.Index != 0 {
				t.Errorf("tool call index %d, want 0", tc.Index)
			}
			if tc.ID != "" {
				toolID, toolName = tc.ID, tc.Function.Name
				if tc.Type != "function" {
					t.Errorf("tool call type %q", tc.Type)
				}
			}
			args.WriteString(tc.Function.Arguments)
		}
		if ch.FinishReason != nil {
			finish = append(finish, *ch.FinishReason)
		}
	}
	if text.String() != "Okay, let me check." || toolID != "toolu_01T1" || toolName != "get_weather" {
		t.Errorf("text %q, tool %q %q", text.String(), toolID, toolName)
	}
	assertAnthropicJSON(t, []byte(args.String()), `{"location":"San Francisco, CA"}`)
	if strings.Join(finish, ",") != "tool_calls" {
		t.Errorf("finish reasons %v, want one tool_calls", finish)
	}
	last := chunks[len(chunks)-1]
	if len(last.Choices) != 0 || last.Usage == nil {
		t.Fatalf("last chunk %+v, want usage and no choices", last)
	}
	assertAnthropicJSON(t, last.Usage, `{"prompt_tokens":32,"completion_tokens":89,"total_tokens":121,"prompt_tokens_details":{"cached_tokens":5,"audio_tokens":0}}`)
}

// The same error answers fail a call and a stream alike.
func TestAnthropicProviderStatusErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		wantClass  string
		wantRetry  time.Duration
		wantType   string
		wantMsg    string
		retryable  bool
		wantNoBody bool
	}{
		{"rate limited", 429, map[string]string{"retry-after": "7"},
			`{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`,
			ErrClassRateLimit, 7 * time.Second, ErrorTypeRateLimit, "Number of request tokens has exceeded your per-minute rate limit", true, false},
		{"overloaded", 529, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}`,
			ErrClassServer, 0, ErrorTypeServer, "Overloaded", true, false},
		{"bad request", 400, nil, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}`,
			ErrClassBadRequest, 0, ErrorTypeInvalidRequest, "messages: roles must alternate", false, false},
		{"bad key", 401, nil, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`,
			ErrClassAuth, 0, ErrorTypeAuthentication, "invalid x-api-key", false, false},
		{"gateway page", 502, nil, `<html>Bad Gateway</html>`, ErrClassServer, 0, "", "", true, true},
	}
	calls := map[string]func(t *testing.T, p *AnthropicProvider, up *Upstream, req *ChatRequest) error{
		"chat": func(_ *testing.T, p *AnthropicProvider, up *Upstream, req *ChatRequest) error {
			_, err := p.Chat(context.Background(), up, req)
			return err
		},
		"stream": func(t *testing.T, p *AnthropicProvider, up *Upstream, req *ChatRequest) error {
			return p.ChatStream(context.Background(), up, req, func(*ChatChunk) error {
				t.Error("a failed call emitted a chunk")
				return nil
			})
		},
	}
	for _, tt := range tests {
		for callName, call := range calls {
			t.Run(tt.name+"/"+callName, func(t *testing.T) {
				f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
					for k, v := range tt.header {
						w.Header().Set(k, v)
					}
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
				})
				err := call(t, &AnthropicProvider{}, f.upstream(0), anthropicTestRequest(t))
				ue, ok := AsUpstreamError(err)
				if !ok {
					t.Fatalf("error %v, want an *UpstreamError", err)
				}
				if ue.Status != tt.status || ue.Class != tt.wantClass || ue.RetryAfter != tt.wantRetry || ue.Retryable() != tt.retryable {
					t.Errorf("got status %d class %s retry-after %s retryable %v", ue.Status, ue.Class, ue.RetryAfter, ue.Retryable())
				}
				if tt.wantNoBody {
					if ue.Err != nil {
						t.Errorf("Err = %+v for a body in an unknown shape", ue.Err)
					}
					return
				}
				if ue.Err == nil || ue.Err.Type != tt.wantType || ue.Err.Message != tt.wantMsg || ue.Err.Status != tt.status {
					t.Errorf("Err = %+v, want %s %q", ue.Err, tt.wantType, tt.wantMsg)
				}
			})
		}
	}
}

func TestAnthropicProviderStreamErrorEvent(t *testing.T) {
	f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
		anthropicStartSSE(w)
		anthropicWriteSSE(w, anthropicMessageStartEvent,
			`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	})
	chunks := 0
	err := (&AnthropicProvider{}).ChatStream(context.Background(), f.upstream(0), anthropicTestRequest(t), func(*ChatChunk) error {
		chunks++
		return nil
	})
	ue, ok := AsUpstreamError(err)
	if !ok || ue.Class != ErrClassServer || ue.Status != StatusOverloaded || ue.Err == nil || ue.Err.Message != "Overloaded" {
		t.Fatalf("error %v, want an overloaded server error", err)
	}
	if chunks != 1 {
		t.Errorf("%d chunks before the error, want the first", chunks)
	}
}

func TestAnthropicProviderStreamCutShort(t *testing.T) {
	f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
		anthropicStartSSE(w)
		anthropicWriteSSE(w, anthropicToolStream[:4]...)
	})
	err := (&AnthropicProvider{}).ChatStream(context.Background(), f.upstream(0), anthropicTestRequest(t), func(*ChatChunk) error { return nil })
	if ue, ok := AsUpstreamError(err); !ok || ue.Class != ErrClassConnection {
		t.Fatalf("error %v, want a connection error", err)
	}
}

// An upstream that stops answering ends the call with a timeout soon after
// the deployment's timeout, and the upstream connection is closed.
func TestAnthropicProviderStalls(t *testing.T) {
	const timeout = 200 * time.Millisecond
	stall := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		stream bool
	}{
		{"before headers", stall, false},
		{"stream before headers", stall, true},
		{"mid-stream", func(w http.ResponseWriter, r *http.Request) {
			anthropicStartSSE(w)
			anthropicWriteSSE(w, anthropicToolStream[:4]...)
			stall(w, r)
		}, true},
		{"mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"id":"msg_1","type":"mess`)
			w.(http.Flusher).Flush()
			stall(w, r)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAnthropicFake(t, tt.handle)
			p := &AnthropicProvider{}
			start := time.Now()
			var err error
			if tt.stream {
				err = p.ChatStream(context.Background(), f.upstream(timeout), anthropicTestRequest(t), func(*ChatChunk) error { return nil })
			} else {
				_, err = p.Chat(context.Background(), f.upstream(timeout), anthropicTestRequest(t))
			}
			elapsed := time.Since(start)
			if ue, ok := AsUpstreamError(err); !ok || ue.Class != ErrClassTimeout || !ue.Retryable() {
				t.Fatalf("error %v, want a timeout", err)
			}
			if elapsed < timeout || elapsed > 5*timeout {
				t.Errorf("took %s with a timeout of %s", elapsed, timeout)
			}
			f.waitGone(t)
		})
	}
}

// A slow client is not a stalled upstream: the time emit takes does not
// count against the deployment's timeout.
func TestAnthropicProviderSlowEmit(t *testing.T) {
	const timeout = 200 * time.Millisecond
	f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
		anthropicStartSSE(w)
		anthropicWriteSSE(w, anthropicToolStream[0])
		time.Sleep(50 * time.Millisecond) // the rest is still to come while the client is slow
		anthropicWriteSSE(w, anthropicToolStream[1:]...)
	})
	slept := false
	err := (&AnthropicProvider{}).ChatStream(context.Background(), f.upstream(timeout), anthropicTestRequest(t), func(*ChatChunk) error {
		if !slept {
			slept = true
			time.Sleep(3 * timeout)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A caller that goes away cancels the call, which ends as cancelled and
// closes the upstream connection.
func TestAnthropicProviderCancel(t *testing.T) {
	t.Run("chat", func(t *testing.T) {
		f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-time.After(50 * time.Millisecond)
			cancel()
		}()
		_, err := (&AnthropicProvider{}).Chat(ctx, f.upstream(time.Minute), anthropicTestRequest(t))
		if ue, ok := AsUpstreamError(err); !ok || ue.Class != ErrClassCancelled || ue.Retryable() {
			t.Fatalf("error %v, want cancelled", err)
		}
		f.waitGone(t)
	})
	t.Run("stream", func(t *testing.T) {
		f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
			anthropicStartSSE(w)
			anthropicWriteSSE(w, anthropicToolStream[:2]...)
			<-r.Context().Done()
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		err := (&AnthropicProvider{}).ChatStream(ctx, f.upstream(time.Minute), anthropicTestRequest(t), func(*ChatChunk) error {
			cancel() // the client went away after the first chunk
			return nil
		})
		if ue, ok := AsUpstreamError(err); !ok || ue.Class != ErrClassCancelled {
			t.Fatalf("error %v, want cancelled", err)
		}
		f.waitGone(t)
	})
}

// An error from emit stops the stream and comes back unchanged.
func TestAnthropicProviderEmitError(t *testing.T) {
	f := newAnthropicFake(t, func(w http.ResponseWriter, r *http.Request) {
		anthropicStartSSE(w)
		anthropicWriteSSE(w, anthropicToolStream...)
	})
	errClient := errors.New("client gone")
	calls := 0
	err := (&AnthropicProvider{}).ChatStream(context.Background(), f.upstream(0), anthropicTestRequest(t), func(*ChatChunk) error {
		calls++
		return errClient
	})
	if err != errClient || calls != 1 {
		t.Fatalf("error %v after %d calls, want the emit error after one", err, calls)
	}
}

func TestAnthropicProviderConnectionRefused(t *testing.T) {
	f := newAnthropicFake(t, func(http.ResponseWriter, *http.Request) {})
	up := f.upstream(0)
	f.Close()
	_, err := (&AnthropicProvider{}).Chat(context.Background(), up, anthropicTestRequest(t))
	if ue, ok := AsUpstreamError(err); !ok || ue.Class != ErrClassConnection || ue.Status != 0 {
		t.Fatalf("error %v, want a connection error", err)
	}
	if strings.Contains(err.Error(), "sk-ant-canary-key") {
		t.Errorf("the error names the key: %v", err)
	}
}

// A request the provider cannot translate fails before any call.
func TestAnthropicProviderBadRequest(t *testing.T) {
	f := newAnthropicFake(t, func(http.ResponseWriter, *http.Request) { t.Error("the upstream was called") })
	req := anthropicChatRequest(t, `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"nope"}}]}]}`)
	_, err := (&AnthropicProvider{}).Chat(context.Background(), f.upstream(0), req)
	assertAnthropicBadRequest(t, err, "messages[0].tool_calls[0].function.arguments")
	err = (&AnthropicProvider{}).ChatStream(context.Background(), f.upstream(0), req, func(*ChatChunk) error { return nil })
	assertAnthropicBadRequest(t, err, "messages[0].tool_calls[0].function.arguments")
}

func TestAnthropicProviderNoEmbeddingsOrTranscription(t *testing.T) {
	p := &AnthropicProvider{}
	_, embedErr := p.Embed(context.Background(), &Upstream{}, &EmbeddingRequest{})
	_, transcribeErr := p.Transcribe(context.Background(), &Upstream{}, &TranscriptionRequest{})
	for _, err := range []error{embedErr, transcribeErr} {
		ue, ok := AsUpstreamError(err)
		if !ok || ue.Status != 400 || ue.Class != ErrClassBadRequest || ue.Err == nil || !strings.Contains(ue.Err.Message, "Anthropic has no") {
			t.Errorf("error %v, want a 400 saying Anthropic has no such endpoint", err)
		}
	}
}

// anthropicEgressStore is an egress store with no rules: every destination
// the policy checks is refused.
type anthropicEgressStore struct{}

func (anthropicEgressStore) FindEgressPolicy(_ context.Context, tenantID string) (*egress.Policy, error) {
	return &egress.Policy{TenantID: tenantID, Mode: egress.ModeEnforce}, nil
}

func (anthropicEgressStore) FindEgressPlatform(context.Context) (*egress.Platform, error) {
	return &egress.Platform{}, nil
}

func (anthropicEgressStore) UpdateEgressPolicy(context.Context, string, func(*egress.Policy) error) (*egress.Policy, *egress.Policy, error) {
	return nil, nil, errors.New("read-only")
}

func (anthropicEgressStore) DeleteEgressTenant(context.Context, string) (int64, error) {
	return 0, errors.New("read-only")
}

func (anthropicEgressStore) UpdateEgressPlatform(context.Context, func(*egress.Platform) error) (*egress.Platform, *egress.Platform, error) {
	return nil, nil, errors.New("read-only")
}

type anthropicAuditLog struct{}

func (anthropicAuditLog) Record(context.Context, audit.Entry) error { return nil }

// The key travels only to its own hosts: through the real egress client, a
// call with a key bound to api.anthropic.com is refused for any other
// host before a connection is made, whatever the policy says.
func TestAnthropicProviderKeyBoundToItsHosts(t *testing.T) {
	svc, err := egress.NewService(anthropicEgressStore{}, egress.Options{Audit: anthropicAuditLog{}})
	if err != nil {
		t.Fatal(err)
	}
	f := newAnthropicFake(t, func(http.ResponseWriter, *http.Request) { t.Error("the request reached the server") })
	tests := []struct {
		name           string
		key            string
		hosts          []string
		wantCredential bool
	}{
		{"key for another host", "sk-ant-canary-key", []string{"api.anthropic.com"}, true},
		{"key with no hosts", "sk-ant-canary-key", nil, true},
		{"key for this host", "sk-ant-canary-key", []string{"127.0.0.1"}, false},
		{"no key", "", []string{"api.anthropic.com"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := f.upstream(0)
			up.Client, up.APIKey, up.AllowedHosts = svc.Client("tenant-1"), tt.key, tt.hosts
			_, err := (&AnthropicProvider{}).Chat(context.Background(), up, anthropicTestRequest(t))
			var d *egress.DeniedError
			if !errors.As(err, &d) {
				t.Fatalf("error %v, want an egress refusal (loopback is never allowed)", err)
			}
			if got := d.Reason == egress.ReasonCredentialHost; got != tt.wantCredential {
				t.Errorf("refused for %s; want a credential-host refusal: %v", d.Reason, tt.wantCredential)
			}
			if ue, ok := AsUpstreamError(err); !ok || ue.Class != ErrClassConnection {
				t.Errorf("error %v, want a connection error", err)
			}
		})
	}
}
