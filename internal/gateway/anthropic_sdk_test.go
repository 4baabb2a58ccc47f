package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// These tests run the official Anthropic Go SDK against a /v1/messages
// endpoint made of this package's translations: the SDK's requests must
// decode, and the answers, streamed or not, must decode in the SDK to the
// same message.

// anthropicSDKAnswer is what the gateway's upstream answers, in OpenAI's shape.
var anthropicSDKAnswer = ChatResponse{
	ID: "chatcmpl-42", Object: "chat.completion", Created: 1, Model: "gpt-up",
	Choices: []Choice{{FinishReason: FinishToolCalls, Message: ResponseMessage{
		Role: RoleAssistant, Content: anthropicStr("Let me check Rome too."),
		ToolCalls: []ToolCall{{ID: "call_r", Type: "function", Function: FunctionCall{Name: "weather", Arguments: `{"city":"Rome"}`}}},
	}}},
	Usage: &Usage{PromptTokens: 30, CompletionTokens: 12, TotalTokens: 42, PromptTokensDetails: &PromptTokensDetails{CachedTokens: 10}},
}

// anthropicSDKChunks is the same answer streamed, the tool input in pieces.
func anthropicSDKChunks() []*ChatChunk {
	chunk := func(d Delta) *ChatChunk {
		return &ChatChunk{ID: "chatcmpl-42", Object: "chat.completion.chunk", Model: "gpt-up", Choices: []ChunkChoice{{Delta: d}}}
	}
	call := func(id, name, args string) Delta {
		return Delta{ToolCalls: []ToolCallDelta{{ID: id, Type: "function", Function: &FunctionCallDelta{Name: name, Arguments: args}}}}
	}
	finish := chunk(Delta{})
	finish.Choices[0].FinishReason = anthropicStr(FinishToolCalls)
	return []*ChatChunk{
		chunk(Delta{Role: RoleAssistant, Content: anthropicStr("")}),
		chunk(Delta{Content: anthropicStr("Let me check ")}),
		chunk(Delta{Content: anthropicStr("Rome too.")}),
		chunk(call("call_r", "weather", "")),
		chunk(call("", "", `{"ci`)),
		chunk(call("", "", `ty":"Rome"}`)),
		finish,
		{ID: "chatcmpl-42", Object: "chat.completion.chunk", Model: "gpt-up", Usage: anthropicSDKAnswer.Usage},
	}
}

// anthropicSDKServer serves /v1/messages from the translations and keeps
// the chat requests it made. A model named "fail" streams one chunk and
// then an overloaded upstream's error.
type anthropicSDKServer struct {
	mu   sync.Mutex
	seen []*ChatRequest
}

func (s *anthropicSDKServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req MessagesRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, &Error{Status: 400, Type: ErrorTypeInvalidRequest, Message: err.Error()})
		return
	}
	chat, err := MessagesToChat(&req)
	var e *Error
	if errors.As(err, &e) {
		s.fail(w, e)
		return
	}
	s.mu.Lock()
	s.seen = append(s.seen, chat)
	s.mu.Unlock()
	if !chat.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ChatToMessages(&anthropicSDKAnswer, req.Model))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	stream := NewMessagesStream(req.Model, func(event string, data any) error {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		return err
	})
	chunks := anthropicSDKChunks()
	var streamErr error
	if req.Model == "fail" {
		chunks = chunks[:2]
		streamErr = &UpstreamError{Status: 529, Class: ErrClassServer, Err: &Error{Status: 529, Type: ErrorTypeServer, Message: "Overloaded"}}
	}
	for _, c := range chunks {
		if err := stream.Chunk(c); err != nil {
			panic(err) // the scripted chunks are valid; a failure is a bug in the test
		}
	}
	if err := stream.Finish(nil, streamErr); err != nil {
		panic(err)
	}
}

func (s *anthropicSDKServer) fail(w http.ResponseWriter, e *Error) {
	status, body := AnthropicError(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func anthropicSDKParams(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:         anthropic.Model(model),
		MaxTokens:     512,
		Temperature:   anthropic.Float(0.2),
		StopSequences: []string{"END"},
		System:        []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?")),
			anthropic.NewAssistantMessage(anthropic.NewToolUseBlock("toolu_p", map[string]any{"city": "Paris"}, "weather")),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_p", "21C", false), anthropic.NewTextBlock("And Rome?")),
		},
		Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name: "weather", Description: anthropic.String("Weather now"),
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}},
		}}},
		ToolChoice: anthropic.ToolChoiceUnionParam{OfAuto: &anthropic.ToolChoiceAutoParam{}},
		Metadata:   anthropic.MetadataParam{UserID: anthropic.String("end-user-1")},
	}
}

// anthropicSDKSummary is what a client reads from a message, in one line.
func anthropicSDKSummary(t *testing.T, m *anthropic.Message) string {
	t.Helper()
	parts := []string{m.ID, string(m.Model), string(m.StopReason)}
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			parts = append(parts, "text:"+b.Text)
		case "tool_use":
			var input bytes.Buffer
			if err := json.Compact(&input, b.Input); err != nil {
				t.Fatalf("tool input %q: %v", b.Input, err)
			}
			parts = append(parts, fmt.Sprintf("tool_use:%s:%s:%s", b.ID, b.Name, input.String()))
		default:
			parts = append(parts, "unexpected:"+b.Type)
		}
	}
	parts = append(parts, fmt.Sprintf("usage:%d/%d/%d", m.Usage.InputTokens, m.Usage.CacheReadInputTokens, m.Usage.OutputTokens))
	return strings.Join(parts, " | ")
}

func TestAnthropicSDKMessages(t *testing.T) {
	backend := &anthropicSDKServer{}
	srv := httptest.NewServer(backend)
	defer srv.Close()
	client := anthropic.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("sk-nodus-test"), option.WithMaxRetries(0))
	ctx := context.Background()
	const want = "msg_chatcmpl-42 | claude-public | tool_use | text:Let me check Rome too. | " +
		`tool_use:call_r:weather:{"city":"Rome"} | usage:20/10/12`

	msg, err := client.Messages.New(ctx, anthropicSDKParams("claude-public"))
	if err != nil {
		t.Fatal(err)
	}
	if got := anthropicSDKSummary(t, msg); got != want {
		t.Errorf("Messages.New:\n got %s\nwant %s", got, want)
	}

	stream := client.Messages.NewStreaming(ctx, anthropicSDKParams("claude-public"))
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatalf("accumulate: %v", err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	if got := anthropicSDKSummary(t, &acc); got != want {
		t.Errorf("Messages.NewStreaming:\n got %s\nwant %s", got, want)
	}

	// Both requests reached the gateway as the same chat request.
	backend.mu.Lock()
	defer backend.mu.Unlock()
	if len(backend.seen) != 2 {
		t.Fatalf("%d chat requests, want 2", len(backend.seen))
	}
	if !backend.seen[1].Stream || backend.seen[1].StreamOptions == nil || !backend.seen[1].StreamOptions.IncludeUsage {
		t.Error("the streaming request did not ask for a stream with usage")
	}
	backend.seen[1].Stream, backend.seen[1].StreamOptions = false, nil
	assertAnthropicJSON(t, backend.seen[1], anthropicMustJSON(t, backend.seen[0]))
	assertAnthropicJSON(t, backend.seen[0], `{"model":"claude-public","max_tokens":512,"temperature":0.2,"stop":["END"],"user":"end-user-1",
		"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather in Paris?"},
			{"role":"assistant","tool_calls":[{"id":"toolu_p","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
			{"role":"tool","tool_call_id":"toolu_p","content":"21C"},{"role":"user","content":"And Rome?"}],
		"tools":[{"type":"function","function":{"name":"weather","description":"Weather now","parameters":{"properties":{"city":{"type":"string"}},"type":"object"}}}],
		"tool_choice":"auto"}`)
}

func TestAnthropicSDKErrors(t *testing.T) {
	srv := httptest.NewServer(&anthropicSDKServer{})
	defer srv.Close()
	client := anthropic.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("sk-nodus-test"), option.WithMaxRetries(0))
	ctx := context.Background()

	params := anthropicSDKParams("claude-public")
	params.MaxTokens = 0
	_, err := client.Messages.New(ctx, params)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Type() != "invalid_request_error" {
		t.Errorf("error %v, want a 400 invalid_request_error", err)
	}

	stream := client.Messages.NewStreaming(ctx, anthropicSDKParams("fail"))
	events := 0
	for stream.Next() {
		events++
	}
	if !errors.As(stream.Err(), &apiErr) || apiErr.Type() != "overloaded_error" {
		t.Errorf("stream error %v, want overloaded_error", stream.Err())
	}
	if events == 0 {
		t.Error("no event before the error")
	}
	stream.Close()
}

func anthropicMustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
