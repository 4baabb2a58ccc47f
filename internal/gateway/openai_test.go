package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// Fixtures written by hand in the shapes the OpenAI SDKs send and receive
// (reference gateway.md §1.1–1.3, §1.7).
const (
	sdkRequest = `{"model":"gpt-4o","messages":[
	 {"role":"developer","content":"You are terse."},
	 {"role":"system","content":[{"type":"text","text":"Context follows."}]},
	 {"role":"user","content":[{"type":"text","text":"What is in this image?"},
	   {"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}},
	   {"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},
	   {"type":"file","file":{"file_id":"file-1"}}]},
	 {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},
	 {"role":"tool","tool_call_id":"call_1","content":"42"},
	 {"role":"assistant","content":""}],
	"temperature":0.2,"top_p":1,"n":1,"stop":"\n\n","max_tokens":100,"max_completion_tokens":200,
	"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"x":{"type":"integer"}}},"strict":true}}],
	"tool_choice":{"type":"function","function":{"name":"f"}},
	"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"},"strict":true}},
	"stream":true,"stream_options":{"include_usage":true},"user":"u-1","metadata":{"k":"v","tags":["a"]},"seed":7,
	"presence_penalty":0.5,"logit_bias":{"50256":-100},"reasoning_effort":"low","parallel_tool_calls":false}`

	sdkResponse = `{"id":"chatcmpl-abc","object":"chat.completion","created":1700000000,"model":"gpt-4o-2024-08-06",
	 "system_fingerprint":"fp_x","choices":[{"index":0,"finish_reason":"stop","logprobs":null,
	   "message":{"role":"assistant","content":"Hi","refusal":null,
	     "tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]}}],
	 "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,
	   "prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},
	   "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,
	     "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`
)

var sdkChunks = []string{
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]},"finish_reason":null}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`,
}

// sameJSON reports whether a and b decode to equal values.
func sameJSON(t *testing.T, a, b []byte) {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if !reflect.DeepEqual(va, vb) {
		t.Errorf("JSON differs:\n got %s\nwant %s", a, b)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
		v    func() any
	}{
		{"request", sdkRequest, func() any { return new(ChatRequest) }},
		{"response", sdkResponse, func() any { return new(ChatResponse) }},
		{"minimal request", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, func() any { return new(ChatRequest) }},
		{"stop list", `{"model":"m","messages":[],"stop":["a","b"],"tool_choice":"auto"}`, func() any { return new(ChatRequest) }},
		{"tool choice object kept", `{"model":"m","messages":[],"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}}`, func() any { return new(ChatRequest) }},
		{"error", `{"error":{"message":"no such model","type":"invalid_request_error","param":"model","code":"model_not_found"}}`, func() any { return new(Error) }},
		{"error nulls", `{"error":{"message":"m","type":"server_error","param":null,"code":null}}`, func() any { return new(Error) }},
	}
	for i, c := range sdkChunks {
		tests = append(tests, struct {
			name string
			in   string
			v    func() any
		}{"chunk " + string(rune('0'+i)), c, func() any { return new(ChatChunk) }})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.v()
			if err := json.Unmarshal([]byte(tt.in), v); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, out, []byte(tt.in))
		})
	}
}

func TestRequestDecoding(t *testing.T) {
	var r ChatRequest
	if err := json.Unmarshal([]byte(sdkRequest), &r); err != nil {
		t.Fatal(err)
	}
	if got := r.Messages[0].Content.String(); got != "You are terse." {
		t.Errorf("developer content = %q", got)
	}
	if got := r.Messages[1].Content.String(); got != "Context follows." {
		t.Errorf("parts content = %q", got)
	}
	user := r.Messages[2].Content
	if len(user.Parts) != 4 || user.Parts[1].ImageURL.URL != "https://example.com/a.png" || user.Parts[2].InputAudio.Format != "wav" || user.Parts[3].Raw == nil {
		t.Errorf("user parts = %+v", user.Parts)
	}
	if !r.Messages[3].Content.IsNull() || r.Messages[3].ToolCalls[0].Function.Arguments != `{"x":1}` {
		t.Errorf("assistant tool call message = %+v", r.Messages[3])
	}
	if r.Messages[4].ToolCallID != "call_1" {
		t.Errorf("tool_call_id = %q", r.Messages[4].ToolCallID)
	}
	if r.Messages[5].Content.IsNull() {
		t.Error(`content "" decoded as null`)
	}
	if !slices.Equal(r.Stop.Sequences, []string{"\n\n"}) || r.ToolChoice.Function != "f" || !r.StreamOptions.IncludeUsage ||
		*r.MaxCompletionTokens != 200 || *r.Seed != 7 || r.ResponseFormat.JSONSchema.Name != "s" {
		t.Errorf("decoded request = %+v", r)
	}
	var extra []string
	for k := range r.Extra {
		extra = append(extra, k)
	}
	slices.Sort(extra)
	if want := []string{"logit_bias", "parallel_tool_calls", "presence_penalty", "reasoning_effort"}; !slices.Equal(extra, want) {
		t.Errorf("Extra keys = %v, want %v", extra, want)
	}
}

func TestRequestRejectsBadUnions(t *testing.T) {
	for _, in := range []string{
		`{"model":"m","messages":[{"role":"user","content":42}]}`,
		`{"model":"m","messages":[],"stop":7}`,
		`{"model":"m","messages":[],"tool_choice":3}`,
		`[]`,
	} {
		var r ChatRequest
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestBuiltRequestEncoding(t *testing.T) {
	n := 2
	r := ChatRequest{
		Model: "m",
		Messages: []Message{
			{Role: RoleUser, Content: Content{Text: "hi"}},
			{Role: RoleAssistant, Content: TextContent("")},
			{Role: RoleAssistant, ToolCalls: []ToolCall{{ID: "c", Type: "function", Function: FunctionCall{Name: "f", Arguments: "{}"}}}},
		},
		N:          &n,
		Stop:       StopString("END"),
		ToolChoice: &ToolChoice{Mode: "required"},
		Extra:      map[string]json.RawMessage{"model": json.RawMessage(`"ignored"`), "zz": json.RawMessage(`1`)},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":""},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}],"n":2,"stop":"END","tool_choice":"required","zz":1}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	r.Extra = map[string]json.RawMessage{"bad": json.RawMessage(`{`)}
	if _, err := json.Marshal(r); err == nil {
		t.Error("invalid extra JSON encoded without error")
	}
}

func TestUpstreamOverrides(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`{"model":"m","messages":[]}`, nil},
		{`{"model":"m","messages":[],"presence_penalty":1}`, nil},
		{`{"model":"m","messages":[],"api_base":"http://169.254.169.254/","api_key":"sk-x"}`, []string{"api_base", "api_key"}},
		{`{"model":"m","messages":[],"base_url":"x","extra_headers":{"a":"b"},"custom_llm_provider":"openai"}`, []string{"base_url", "custom_llm_provider", "extra_headers"}},
		{`{"model":"m","messages":[],"litellm_embedding_config":{"nested":[{"API_BASE":"x"}]}}`, []string{"litellm_embedding_config.nested[0].API_BASE"}},
		{`{"model":"m","messages":[],"metadata":{"api_key":"sk","ok":"v"}}`, []string{"metadata.api_key"}},
		// A tool's JSON schema may legitimately name a property api_key.
		{`{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"api_key":{}}}}}]}`, nil},
	}
	for _, tt := range tests {
		var r ChatRequest
		if err := json.Unmarshal([]byte(tt.in), &r); err != nil {
			t.Fatal(err)
		}
		if got := r.UpstreamOverrides(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	e := &Error{Status: 404, Message: "The model `x` does not exist", Type: ErrorTypeInvalidRequest, Param: "model", Code: "model_not_found"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, b, []byte(`{"error":{"message":"The model `+"`x`"+` does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}`))
	if e.Error() == "" {
		t.Error("empty Error()")
	}
	var got Error
	if err := json.Unmarshal([]byte(`{"error":{"message":"m","type":"t","code":429}}`), &got); err != nil || got.Code != "429" {
		t.Errorf("numeric code: %+v, %v", got, err)
	}
	if err := json.Unmarshal([]byte(`{"message":"m"}`), &got); err == nil {
		t.Error("missing envelope accepted")
	}
}

func TestChunkEncodesEmptyChoices(t *testing.T) {
	b, err := json.Marshal(ChatChunk{ID: "x", Object: "chat.completion.chunk"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"choices":[]`)) || !bytes.Contains(b, []byte(`"usage":null`)) {
		t.Errorf("got %s", b)
	}
}
