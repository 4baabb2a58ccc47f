package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// assertAnthropicJSON fails unless got encodes to the same JSON value as want.
func assertAnthropicJSON(t *testing.T, got any, want string) {
	t.Helper()
	b, ok := got.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(got); err != nil {
			t.Fatalf("encode: %v", err)
		}
	}
	var g, w any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("decode got %s: %v", b, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("decode want: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs\n got: %s\nwant: %s", b, anthropicCompactJSON(t, want))
	}
}

func anthropicCompactJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func anthropicChatRequest(t *testing.T, s string) *ChatRequest {
	t.Helper()
	var r ChatRequest
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func anthropicMessagesRequest(t *testing.T, s string) *MessagesRequest {
	t.Helper()
	var r MessagesRequest
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// assertAnthropicBadRequest fails unless err is a 400 invalid_request_error *Error
// about param.
func assertAnthropicBadRequest(t *testing.T, err error, param string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want a *Error", err)
	}
	if e.Status != http.StatusBadRequest || e.Type != ErrorTypeInvalidRequest || e.Param != param || e.Message == "" {
		t.Errorf("error = %+v, want a 400 invalid_request_error about %s", e, param)
	}
}

func TestAnthropicRequestFromChat(t *testing.T) {
	tests := []struct {
		name   string
		stream bool
		chat   string
		want   string
	}{{
		name: "conversation with tools",
		chat: `{"model":"public","messages":[
			{"role":"system","content":"Be brief."},
			{"role":"developer","content":[{"type":"text","text":"Answer in English."}]},
			{"role":"user","content":"Hi"},
			{"role":"user","content":[{"type":"text","text":"What is this?"},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBOR"}},
				{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"low"}}]},
			{"role":"assistant","content":"Let me check.","tool_calls":[
				{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\": \"cat\"}"}},
				{"id":"call_2","type":"function","function":{"name":"now","arguments":""}}]},
			{"role":"tool","tool_call_id":"call_1","content":"a cat"},
			{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"noon"}]},
			{"role":"user","content":"Thanks"}],
			"max_completion_tokens":100,"max_tokens":50,"temperature":0.5,"top_p":0.9,"stop":"END","user":"u-1",
			"tools":[{"type":"function","function":{"name":"lookup","description":"Look up","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}},
				{"type":"function","function":{"name":"now"}}],
			"tool_choice":"required","parallel_tool_calls":false,"presence_penalty":0.1,"top_k":5,"seed":7}`,
		want: `{"model":"claude-up","max_tokens":100,"temperature":0.5,"top_p":0.9,"top_k":5,"stop_sequences":["END"],
			"system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Answer in English."}],
			"messages":[
				{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":"What is this?"},
					{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}},
					{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]},
				{"role":"assistant","content":[{"type":"text","text":"Let me check."},
					{"type":"tool_use","id":"call_1","name":"lookup","input":{"q":"cat"}},
					{"type":"tool_use","id":"call_2","name":"now","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"a cat"},
					{"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"noon"}]},
					{"type":"text","text":"Thanks"}]}],
			"tools":[{"name":"lookup","description":"Look up","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}},
				{"name":"now","input_schema":{"type":"object","properties":{}}}],
			"tool_choice":{"type":"any","disable_parallel_tool_use":true},
			"metadata":{"user_id":"u-1"}}`,
	}, {
		name:   "defaults, json mode and a named tool",
		stream: true,
		chat: `{"model":"public","messages":[{"role":"user","content":"List three colours."},
			{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
			{"role":"user","content":"go on"}],
			"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
			"tool_choice":{"type":"function","function":{"name":"f"}}}`,
		want: `{"model":"claude-up","max_tokens":4096,"stream":true,
			"system":[{"type":"text","text":"Respond only with a single valid JSON object, with no other text before or after it."}],
			"messages":[{"role":"user","content":[{"type":"text","text":"List three colours."}]},
				{"role":"assistant","content":[{"type":"tool_use","id":"c","name":"f","input":{}}]},
				{"role":"user","content":[{"type":"text","text":"go on"}]}],
			"tools":[{"name":"f","input_schema":{"type":"object"}}],
			"tool_choice":{"type":"tool","name":"f"}}`,
	}, {
		name: "json schema and legacy max_tokens",
		chat: `{"model":"public","messages":[{"role":"user","content":"Name a colour."}],"max_tokens":20,"tool_choice":"none",
			"response_format":{"type":"json_schema","json_schema":{"name":"c","schema":{"type": "object", "required": ["name"]}}}}`,
		want: `{"model":"claude-up","max_tokens":20,
			"system":[{"type":"text","text":"Respond only with a single valid JSON value, with no other text before or after it, that conforms to this JSON schema:\n{\"type\":\"object\",\"required\":[\"name\"]}"}],
			"messages":[{"role":"user","content":[{"type":"text","text":"Name a colour."}]}],
			"tool_choice":{"type":"none"}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := anthropicChatRequest(t, tt.chat)
			before, _ := json.Marshal(req)
			got, err := anthropicRequestFromChat(req, "claude-up", tt.stream)
			if err != nil {
				t.Fatal(err)
			}
			assertAnthropicJSON(t, got, tt.want)
			after, _ := json.Marshal(req)
			if string(before) != string(after) {
				t.Errorf("the caller's request changed:\nbefore %s\n after %s", before, after)
			}
		})
	}
}

func TestAnthropicRequestFromChatErrors(t *testing.T) {
	tests := []struct {
		name, chat, param string
	}{
		{"invalid arguments", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}`,
			"messages[0].tool_calls[0].function.arguments"},
		{"arguments not an object", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`,
			"messages[0].tool_calls[0].function.arguments"},
		{"unknown role", `{"model":"m","messages":[{"role":"function","content":"x"}]}`, "messages[0].role"},
		{"several choices", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{"audio", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA","format":"wav"}}]}]}`,
			"messages[0].content[0].type"},
		{"bad data URL", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,raw"}}]}]}`,
			"messages[0].content[0].image_url.url"},
		{"file URL", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`,
			"messages[0].content[0].image_url.url"},
		{"only a system message", `{"model":"m","messages":[{"role":"system","content":"x"}]}`, "messages"},
		{"tool message without id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{"unknown tool type", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","function":{"name":"f"}}]}`, "tools[0].type"},
		{"tool choice object", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"allowed_tools","allowed_tools":{}}}`, "tool_choice"},
		{"response format", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"grammar"}}`, "response_format.type"},
		{"top_k", `{"model":"m","messages":[{"role":"user","content":"x"}],"top_k":"many"}`, "top_k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := anthropicRequestFromChat(anthropicChatRequest(t, tt.chat), "claude-up", false)
			assertAnthropicBadRequest(t, err, tt.param)
		})
	}
}

func TestAnthropicChatResponse(t *testing.T) {
	tests := []struct {
		name, message, want string
	}{{
		name: "text and tool use",
		message: `{"id":"msg_1","type":"message","role":"assistant","model":"claude-up",
			"content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Let me "},{"type":"text","text":"look."},
				{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q": "cat"}}],
			"stop_reason":"tool_use","stop_sequence":null,
			"usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}`,
		want: `{"id":"msg_1","object":"chat.completion","created":1700000000,"model":"claude-up",
			"choices":[{"index":0,"finish_reason":"tool_calls","logprobs":null,"message":{"role":"assistant","content":"Let me look.","refusal":null,
				"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"cat\"}"}}]}}],
			"usage":{"prompt_tokens":130,"completion_tokens":5,"total_tokens":135,"prompt_tokens_details":{"cached_tokens":100,"audio_tokens":0}}}`,
	}, {
		name: "only a tool call",
		message: `{"id":"msg_2","type":"message","role":"assistant","model":"m","content":[{"type":"tool_use","id":"t","name":"f","input":{}}],
			"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}}`,
		want: `{"id":"msg_2","object":"chat.completion","created":1700000000,"model":"m",
			"choices":[{"index":0,"finish_reason":"tool_calls","logprobs":null,"message":{"role":"assistant","content":null,"refusal":null,
				"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]}}],
			"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m MessagesResponse
			if err := json.Unmarshal([]byte(tt.message), &m); err != nil {
				t.Fatal(err)
			}
			assertAnthropicJSON(t, chatResponseFromAnthropic(&m, 1700000000), tt.want)
		})
	}
}

func TestAnthropicFinishAndStopReasons(t *testing.T) {
	for stop, finish := range map[string]string{
		"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
		"refusal": "content_filter", "pause_turn": "stop", "": "stop",
	} {
		if got := anthropicFinishReason(stop); got != finish {
			t.Errorf("anthropicFinishReason(%q) = %q, want %q", stop, got, finish)
		}
	}
	for finish, stop := range map[string]string{
		"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
		"content_filter": "refusal", "": "end_turn",
	} {
		if got := anthropicStopFromFinish(finish); got != stop {
			t.Errorf("anthropicStopFromFinish(%q) = %q, want %q", finish, got, stop)
		}
	}
}

func TestMessagesToChat(t *testing.T) {
	req := anthropicMessagesRequest(t, `{"model":"claude-public","max_tokens":256,"stream":true,
		"system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Use metric units.","cache_control":{"type":"ephemeral"}}],
		"messages":[
			{"role":"user","content":"What is the weather?"},
			{"role":"assistant","content":[{"type":"thinking","thinking":"…","signature":"s"},{"type":"text","text":"Checking."},
				{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"20C"}]},
				{"type":"tool_result","tool_use_id":"toolu_2","content":"no such city","is_error":true},
				{"type":"text","text":"And this?"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}},
				{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}],
		"temperature":0.2,"top_p":0.8,"top_k":40,"stop_sequences":["\n\nHuman:"],
		"tools":[{"name":"weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
		"tool_choice":{"type":"any","disable_parallel_tool_use":true},
		"metadata":{"user_id":"end-user-7"},"thinking":{"type":"enabled","budget_tokens":1024}}`)
	if string(req.Extra["thinking"]) == "" {
		t.Error("an unknown field was not kept in Extra")
	}
	got, err := MessagesToChat(req)
	if err != nil {
		t.Fatal(err)
	}
	assertAnthropicJSON(t, got, `{"model":"claude-public","max_tokens":256,"stream":true,"stream_options":{"include_usage":true},
		"temperature":0.2,"top_p":0.8,"top_k":40,"stop":["\n\nHuman:"],"user":"end-user-7","parallel_tool_calls":false,
		"messages":[
			{"role":"system","content":"Be brief.\nUse metric units."},
			{"role":"user","content":"What is the weather?"},
			{"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
			{"role":"tool","tool_call_id":"toolu_1","content":"20C"},
			{"role":"tool","tool_call_id":"toolu_2","content":"Error: no such city"},
			{"role":"user","content":[{"type":"text","text":"And this?"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}},
				{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}],
		"tools":[{"type":"function","function":{"name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
		"tool_choice":"required"}`)
}

func TestMessagesToChatErrors(t *testing.T) {
	tests := []struct {
		name, req, param string
	}{
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"no messages", `{"model":"m","max_tokens":5,"messages":[]}`, "messages"},
		{"no model", `{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "model"},
		{"empty content", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":""}]}`, "messages.0.content"},
		{"null content", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":null},{"role":"assistant","content":[]}]}`, "messages.0.content"},
		{"empty assistant turn", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[]},{"role":"user","content":"y"}]}`,
			"messages.1.content"},
		{"system role", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, "messages.0.role"},
		{"image in system", `{"model":"m","max_tokens":5,"system":[{"type":"image","source":{"type":"url","url":"https://x"}}],"messages":[{"role":"user","content":"x"}]}`,
			"system.0.type"},
		{"document block", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`,
			"messages.0.content.0.type"},
		{"file image source", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`,
			"messages.0.content.0.source"},
		{"image in a tool result", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}]}]}`,
			"messages.0.content.0.content.0.type"},
		{"server tool", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`,
			"tools.0.type"},
		{"tool choice without name", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"tool"}}`,
			"tool_choice.name"},
		{"unknown tool choice", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"some"}}`,
			"tool_choice.type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MessagesToChat(anthropicMessagesRequest(t, tt.req))
			assertAnthropicBadRequest(t, err, tt.param)
		})
	}
}

func TestMessagesToChatPrefill(t *testing.T) {
	got, err := MessagesToChat(anthropicMessagesRequest(t, `{"model":"m","max_tokens":5,"system":null,
		"messages":[{"role":"user","content":"Say hi"},{"role":"assistant","content":""}]}`))
	if err != nil {
		t.Fatal(err)
	}
	assertAnthropicJSON(t, got, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"Say hi"},{"role":"assistant","content":""}]}`)
}

// An Anthropic client's request that goes through the gateway to an
// Anthropic deployment reaches it with every field it set.
func TestMessagesRequestRoundTrip(t *testing.T) {
	orig := `{"model":"claude-up","max_tokens":300,"stream":true,"temperature":0.3,"top_p":0.7,"top_k":10,
		"stop_sequences":["STOP"],"metadata":{"user_id":"u-9"},
		"system":[{"type":"text","text":"You are terse."}],
		"messages":[
			{"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"},{"type":"image","source":{"type":"url","url":"https://example.com/map.png"}}]},
			{"role":"assistant","content":[{"type":"text","text":"Checking both."},
				{"type":"tool_use","id":"toolu_a","name":"weather","input":{"city":"Paris"}},
				{"type":"tool_use","id":"toolu_b","name":"weather","input":{"city":"Rome","units":["C"]}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_a","content":"21C"},
				{"type":"tool_result","tool_use_id":"toolu_b","content":"25C"},{"type":"text","text":"Warmer?"}]}],
		"tools":[{"name":"weather","description":"Current weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],
		"tool_choice":{"type":"tool","name":"weather","disable_parallel_tool_use":true}}`
	chat, err := MessagesToChat(anthropicMessagesRequest(t, orig))
	if err != nil {
		t.Fatal(err)
	}
	// The chat request travels as JSON between the handler and the router's
	// retries; encode and decode it as the wire would.
	wire, err := json.Marshal(chat)
	if err != nil {
		t.Fatal(err)
	}
	back, err := anthropicRequestFromChat(anthropicChatRequest(t, string(wire)), "claude-up", chat.Stream)
	if err != nil {
		t.Fatal(err)
	}
	assertAnthropicJSON(t, back, orig)
}

// An Anthropic answer that goes through the gateway to an Anthropic client
// arrives with its content, stop reason and usage.
func TestMessagesResponseRoundTrip(t *testing.T) {
	orig := `{"id":"msg_01XFD","type":"message","role":"assistant","model":"claude-public",
		"content":[{"type":"text","text":"I'll check."},{"type":"tool_use","id":"toolu_01","name":"weather","input":{"city":"Paris","days":[1,2]}}],
		"stop_reason":"tool_use","stop_sequence":null,
		"usage":{"input_tokens":42,"output_tokens":17,"cache_read_input_tokens":8,"cache_creation_input_tokens":0}}`
	var m MessagesResponse
	if err := json.Unmarshal([]byte(orig), &m); err != nil {
		t.Fatal(err)
	}
	chat := chatResponseFromAnthropic(&m, 1)
	assertAnthropicJSON(t, ChatToMessages(chat, "claude-public"), orig)
}

func TestMessagesFromChatResponse(t *testing.T) {
	tests := []struct {
		name, chat, want string
	}{{
		name: "bad tool arguments and length",
		chat: `{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"finish_reason":"length",
			"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}}],
			"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}`,
		want: `{"id":"msg_chatcmpl-9","type":"message","role":"assistant","model":"public","stop_reason":"max_tokens","stop_sequence":null,
			"content":[{"type":"tool_use","id":"call_1","name":"f","input":{}}],
			"usage":{"input_tokens":10,"output_tokens":3,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}`,
	}, {
		name: "refusal without usage or choices",
		chat: `{"id":"x","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"finish_reason":"content_filter",
			"message":{"role":"assistant","content":null,"refusal":"I can't help with that."}}]}`,
		want: `{"id":"msg_x","type":"message","role":"assistant","model":"public","stop_reason":"refusal","stop_sequence":null,
			"content":[{"type":"text","text":"I can't help with that."}],
			"usage":{"input_tokens":0,"output_tokens":0,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}`,
	}, {
		name: "no choices",
		chat: `{"id":"msg_y","object":"chat.completion","created":1,"model":"gpt-x","choices":[]}`,
		want: `{"id":"msg_y","type":"message","role":"assistant","model":"public","stop_reason":"end_turn","stop_sequence":null,"content":[],
			"usage":{"input_tokens":0,"output_tokens":0,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp ChatResponse
			if err := json.Unmarshal([]byte(tt.chat), &resp); err != nil {
				t.Fatal(err)
			}
			assertAnthropicJSON(t, ChatToMessages(&resp, "public"), tt.want)
		})
	}
}

func TestAnthropicError(t *testing.T) {
	tests := []struct {
		in         Error
		wantStatus int
		wantType   string
	}{
		{Error{Status: 400, Type: ErrorTypeInvalidRequest, Message: "m"}, 400, "invalid_request_error"},
		{Error{Status: 401, Type: ErrorTypeAuthentication, Message: "m"}, 401, "authentication_error"},
		{Error{Status: 403, Type: ErrorTypePermission, Message: "m"}, 403, "permission_error"},
		{Error{Status: 404, Type: ErrorTypeNotFound, Message: "m"}, 404, "not_found_error"},
		{Error{Status: 429, Type: ErrorTypeRateLimit, Message: "m"}, 429, "rate_limit_error"},
		{Error{Status: 429, Type: "insufficient_quota", Message: "m"}, 429, "rate_limit_error"},
		{Error{Status: 413, Type: "too_large", Message: "m"}, 413, "request_too_large"},
		{Error{Status: 500, Type: ErrorTypeServer, Message: "m"}, 500, "api_error"},
		{Error{Status: 529, Type: ErrorTypeServer, Message: "m"}, 529, "overloaded_error"},
		{Error{Type: ErrorTypeRateLimit, Message: "m"}, 429, "rate_limit_error"},
		{Error{Type: "budget_exceeded", Message: "m"}, 500, "api_error"},
	}
	for _, tt := range tests {
		status, body := AnthropicError(&tt.in)
		if status != tt.wantStatus {
			t.Errorf("%+v: status %d, want %d", tt.in, status, tt.wantStatus)
		}
		assertAnthropicJSON(t, body, `{"type":"error","error":{"type":"`+tt.wantType+`","message":"m"}}`)
	}
}

// anthropicEvent is one event a MessagesStream wrote, encoded as a client reads it.
type anthropicEvent struct {
	name, data string
}

func recordAnthropicEvents(t *testing.T) (*[]anthropicEvent, func(string, any) error) {
	var events []anthropicEvent
	return &events, func(name string, data any) error {
		b, err := json.Marshal(data)
		if err != nil {
			t.Fatalf("encode %s: %v", name, err)
		}
		events = append(events, anthropicEvent{name, string(b)})
		return nil
	}
}

func anthropicStr(s string) *string { return &s }

func TestMessagesStream(t *testing.T) {
	events, write := recordAnthropicEvents(t)
	s := NewMessagesStream("claude-public", write)
	chunk := func(d Delta, finish string) *ChatChunk {
		c := &ChatChunk{ID: "chatcmpl-1", Object: "chat.completion.chunk", Model: "gpt-x", Choices: []ChunkChoice{{Delta: d}}}
		if finish != "" {
			c.Choices[0].FinishReason = anthropicStr(finish)
		}
		return c
	}
	tool := func(i int, id, name, args string) Delta {
		return Delta{ToolCalls: []ToolCallDelta{{Index: i, ID: id, Type: "function", Function: &FunctionCallDelta{Name: name, Arguments: args}}}}
	}
	for _, c := range []*ChatChunk{
		chunk(Delta{Role: RoleAssistant, Content: anthropicStr("")}, ""),
		chunk(Delta{Content: anthropicStr("Hel")}, ""),
		chunk(Delta{Content: anthropicStr("lo")}, ""),
		chunk(tool(0, "call_a", "weather", ""), ""),
		chunk(tool(0, "", "", `{"ci`), ""),
		chunk(tool(0, "", "", `ty":"Paris"}`), ""),
		chunk(tool(1, "call_b", "time", "{}"), ""),
		chunk(Delta{}, "tool_calls"),
		{ID: "chatcmpl-1", Usage: &Usage{PromptTokens: 30, CompletionTokens: 12, TotalTokens: 42,
			PromptTokensDetails: &PromptTokensDetails{CachedTokens: 10}}},
	} {
		if err := s.Chunk(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Finish(nil, nil); err != nil {
		t.Fatal(err)
	}
	want := []anthropicEvent{
		{"message_start", `{"type":"message_start","message":{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"claude-public","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}`},
		{"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`},
		{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}`},
		{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}`},
		{"content_block_stop", `{"type":"content_block_stop","index":0}`},
		{"content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_a","name":"weather","input":{}}}`},
		{"content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}}`},
		{"content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ty\":\"Paris\"}"}}`},
		{"content_block_stop", `{"type":"content_block_stop","index":1}`},
		{"content_block_start", `{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_b","name":"time","input":{}}}`},
		{"content_block_delta", `{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}`},
		{"content_block_stop", `{"type":"content_block_stop","index":2}`},
		{"message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":20,"output_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":10}}`},
		{"message_stop", `{"type":"message_stop"}`},
	}
	if !reflect.DeepEqual(*events, want) {
		t.Errorf("events differ")
		for i := range max(len(*events), len(want)) {
			var g, w anthropicEvent
			if i < len(*events) {
				g = (*events)[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("event %d\n got %s %s\nwant %s %s", i, g.name, g.data, w.name, w.data)
			}
		}
	}
	// The pieces of the first tool's input make valid JSON.
	var input strings.Builder
	for _, e := range *events {
		var ev AnthropicStreamEvent
		if err := json.Unmarshal([]byte(e.data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == AnthropicContentBlockDelta && ev.Index == 1 {
			input.WriteString(ev.Delta.PartialJSON)
		}
	}
	assertAnthropicJSON(t, []byte(input.String()), `{"city":"Paris"}`)
	if err := s.Chunk(chunk(Delta{Content: anthropicStr("late")}, "")); err == nil {
		t.Error("a chunk after Finish was accepted")
	}
}

func TestMessagesStreamErrors(t *testing.T) {
	tests := []struct {
		name   string
		chunks []*ChatChunk
		err    error
		want   []anthropicEvent
	}{{
		name: "before any chunk",
		err:  &UpstreamError{Status: 429, Class: ErrClassRateLimit, Err: &Error{Status: 429, Type: ErrorTypeRateLimit, Message: "slow down"}},
		want: []anthropicEvent{{"error", `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`}},
	}, {
		name:   "mid-stream stall",
		chunks: []*ChatChunk{{ID: "c", Choices: []ChunkChoice{{Delta: Delta{Content: anthropicStr("Hi")}}}}},
		err:    &UpstreamError{Class: ErrClassTimeout, Cause: errors.New("dial tcp 10.0.0.1: secret detail")},
		want: []anthropicEvent{
			{"message_start", `{"type":"message_start","message":{"id":"msg_c","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}`},
			{"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`},
			{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`},
			{"error", `{"type":"error","error":{"type":"api_error","message":"the upstream model failed (timeout)"}}`},
		},
	}, {
		name: "an internal error is not described",
		err:  errors.New("store: connection to 10.0.0.5 refused"),
		want: []anthropicEvent{{"error", `{"type":"error","error":{"type":"api_error","message":"internal error"}}`}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, write := recordAnthropicEvents(t)
			s := NewMessagesStream("m", write)
			for _, c := range tt.chunks {
				if err := s.Chunk(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Finish(nil, tt.err); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*events, tt.want) {
				t.Errorf("events\n got %v\nwant %v", *events, tt.want)
			}
			if err := s.Finish(nil, nil); err == nil {
				t.Error("a second Finish was accepted")
			}
		})
	}
}

func TestMessagesStreamInterleavedToolCalls(t *testing.T) {
	_, write := recordAnthropicEvents(t)
	s := NewMessagesStream("m", write)
	call := func(i int, id, args string) *ChatChunk {
		return &ChatChunk{ID: "c", Choices: []ChunkChoice{{Delta: Delta{ToolCalls: []ToolCallDelta{{Index: i, ID: id,
			Function: &FunctionCallDelta{Name: "f", Arguments: args}}}}}}}
	}
	for _, c := range []*ChatChunk{call(0, "a", "{"), call(1, "b", "{}")} {
		if err := s.Chunk(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Chunk(call(0, "", "}")); err == nil {
		t.Error("a tool call resumed after another block was accepted")
	}
}

// TestAnthropicSSE: Anthropic's named events through the shared reader.
func TestAnthropicSSE(t *testing.T) {
	type ev struct{ name, data string }
	tests := []struct {
		name, in string
		max      int
		want     []ev
		wantErr  error
	}{
		{"events", "event: ping\ndata: {\"type\":\"ping\"}\n\n: keep-alive\n\nevent: a\r\ndata: x\r\ndata:y\r\n\r\nid: 3\nevent: lost\n\n", 100,
			[]ev{{"ping", `{"type":"ping"}`}, {"a", "x\ny"}}, io.EOF},
		{"cut off", "data: whole\n\ndata: half", 100, []ev{{"", "whole"}}, io.EOF},
		{"long line", "data: " + strings.Repeat("x", 200) + "\n\n", 100, nil, ErrSSETooLarge},
		{"long data", strings.Repeat("data: "+strings.Repeat("x", 40)+"\n", 4) + "\n", 100, nil, ErrSSETooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewSSEReader(strings.NewReader(tt.in), tt.max)
			var got []ev
			for {
				e, err := r.Next()
				if err != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Errorf("error %v, want %v", err, tt.wantErr)
					}
					break
				}
				got = append(got, ev{e.Name, string(e.Data)})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAnthropicRetryAfter(t *testing.T) {
	now := anthropicTime(t, "Mon, 02 Jan 2006 15:04:05 GMT")
	tests := []struct {
		header map[string]string
		want   string
	}{
		{map[string]string{"retry-after": "7"}, "7s"},
		{map[string]string{"retry-after": "1.5"}, "1.5s"},
		{map[string]string{"retry-after": "Mon, 02 Jan 2006 15:04:35 GMT"}, "30s"},
		{map[string]string{"retry-after": "Mon, 02 Jan 2006 15:00:00 GMT"}, "0s"},
		{map[string]string{"retry-after-ms": "250", "retry-after": "9"}, "250ms"},
		{map[string]string{"retry-after": "soon"}, "0s"},
		{nil, "0s"},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		if got := anthropicRetryAfter(h, now).String(); got != tt.want {
			t.Errorf("%v: %s, want %s", tt.header, got, tt.want)
		}
	}
}

func anthropicTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := http.ParseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
