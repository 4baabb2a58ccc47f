package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Message roles of the chat-completions API.
const (
	RoleSystem    = "system"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Finish reasons of the chat-completions API.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"
	FinishContentFilter = "content_filter"
)

// ChatRequest is the body of POST /v1/chat/completions.
//
// Fields the gateway does not model (presence_penalty, logit_bias,
// reasoning_effort, and whatever the SDKs add next) are kept in Extra and
// encoded again as they came, so an SDK's new field is never rejected.
type ChatRequest struct {
	Model               string                     `json:"model"`
	Messages            []Message                  `json:"messages"`
	Temperature         *float64                   `json:"temperature,omitempty"`
	TopP                *float64                   `json:"top_p,omitempty"`
	N                   *int                       `json:"n,omitempty"`
	Stop                Stop                       `json:"stop,omitzero"`
	MaxTokens           *int64                     `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int64                     `json:"max_completion_tokens,omitempty"`
	Tools               []Tool                     `json:"tools,omitempty"`
	ToolChoice          *ToolChoice                `json:"tool_choice,omitempty"`
	ResponseFormat      *ResponseFormat            `json:"response_format,omitempty"`
	Stream              bool                       `json:"stream,omitempty"`
	StreamOptions       *StreamOptions             `json:"stream_options,omitempty"`
	User                string                     `json:"user,omitempty"`
	Metadata            map[string]json.RawMessage `json:"metadata,omitempty"`
	Seed                *int64                     `json:"seed,omitempty"`

	// Extra holds the top-level fields not listed above, verbatim.
	Extra map[string]json.RawMessage `json:"-"`
}

// knownRequestFields are the JSON names of ChatRequest's typed fields.
var knownRequestFields = []string{
	"model", "messages", "temperature", "top_p", "n", "stop", "max_tokens",
	"max_completion_tokens", "tools", "tool_choice", "response_format", "stream",
	"stream_options", "user", "metadata", "seed",
}

// upstreamFields are request fields that, in LiteLLM and similar proxies,
// choose the upstream or its credentials (CVE-2024-6587). Nodus never honours
// them; UpstreamOverrides reports them so the handler can refuse or strip them.
var upstreamFields = []string{"api_base", "base_url", "api_key", "extra_headers", "custom_llm_provider"}

type chatRequestFields ChatRequest // the same fields without the methods

// UnmarshalJSON decodes the typed fields and keeps every other field in Extra.
func (r *ChatRequest) UnmarshalJSON(b []byte) error {
	var f chatRequestFields
	extra, err := splitExtra(b, &f, knownRequestFields)
	if err != nil {
		return err
	}
	f.Extra = extra
	*r = ChatRequest(f)
	return nil
}

// MarshalJSON encodes the typed fields, then the Extra fields in key order.
// A typed field wins over an Extra entry of the same name.
func (r ChatRequest) MarshalJSON() ([]byte, error) {
	b, err := jsonv1.Marshal(chatRequestFields(r))
	if err != nil {
		return nil, err
	}
	return joinExtra(b, r.Extra, knownRequestFields)
}

// UpstreamOverrides returns the JSON paths of fields that try to choose the
// upstream (api_base, base_url, api_key, extra_headers, custom_llm_provider),
// sorted. It looks at the top-level unknown fields and at metadata, each
// searched recursively, because LiteLLM's bypasses smuggled these names inside
// nested objects. Typed fields cannot carry them: their unknown keys are
// dropped on decoding. Names match case-insensitively.
func (r *ChatRequest) UpstreamOverrides() []string {
	var found []string
	upstreamOverrides("", r.Extra, &found)
	upstreamOverrides("metadata.", r.Metadata, &found)
	sort.Strings(found)
	return found
}

func findUpstreamFields(path string, v json.RawMessage, found *[]string) {
	name := path[strings.LastIndexByte(path, '.')+1:]
	for _, f := range upstreamFields {
		if strings.EqualFold(name, f) {
			*found = append(*found, path)
			return
		}
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return
	}
	switch v[0] {
	case '{':
		var obj map[string]json.RawMessage
		if jsonv1.Unmarshal(v, &obj) == nil {
			for k, child := range obj {
				findUpstreamFields(path+"."+k, child, found)
			}
		}
	case '[':
		var arr []json.RawMessage
		if jsonv1.Unmarshal(v, &arr) == nil {
			for i, child := range arr {
				findUpstreamFields(fmt.Sprintf("%s[%d]", path, i), child, found)
			}
		}
	}
}

// Message is one entry of a request's messages.
type Message struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content,omitzero"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// Content is a message's content: a string, a list of parts, or null.
type Content struct {
	Text  string        // the string form
	Parts []ContentPart // the list form
	form  contentForm
}

type contentForm uint8

const (
	contentUnset contentForm = iota // inferred: Parts if non-nil, else Text if non-empty, else null
	contentNull
	contentText
	contentParts
)

// TextContent is content in the string form, even when s is empty.
func TextContent(s string) Content { return Content{Text: s, form: contentText} }

// PartsContent is content in the list form.
func PartsContent(parts ...ContentPart) Content {
	if parts == nil {
		parts = []ContentPart{}
	}
	return Content{Parts: parts, form: contentParts}
}

func (c Content) resolved() contentForm {
	switch {
	case c.form != contentUnset:
		return c.form
	case c.Parts != nil:
		return contentParts
	case c.Text != "":
		return contentText
	}
	return contentNull
}

// IsNull reports null or absent content.
func (c Content) IsNull() bool { return c.resolved() == contentNull }

// IsZero reports content never set, so that omitzero leaves it out; a null
// that was decoded is encoded again as null.
func (c Content) IsZero() bool { return c.form == contentUnset && c.IsNull() }

// String returns the text: the string form, or the text parts joined by newlines.
func (c Content) String() string {
	if c.resolved() != contentParts {
		return c.Text
	}
	var texts []string
	for _, p := range c.Parts {
		if p.Type == PartText {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// MarshalJSON encodes the form the content was decoded or built in.
func (c Content) MarshalJSON() ([]byte, error) {
	switch c.resolved() {
	case contentText:
		return jsonv1.Marshal(c.Text)
	case contentParts:
		if c.Parts == nil {
			return []byte("[]"), nil
		}
		return jsonv1.Marshal(c.Parts)
	}
	return []byte("null"), nil
}

// UnmarshalJSON accepts a string, a list of parts or null.
func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*c = Content{form: contentNull}
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := jsonv1.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = TextContent(s)
	case len(b) > 0 && b[0] == '[':
		var parts []ContentPart
		if err := jsonv1.Unmarshal(b, &parts); err != nil {
			return err
		}
		*c = PartsContent(parts...)
	default:
		return errors.New("gateway: message content must be a string, a list of parts or null")
	}
	return nil
}

// Content part types.
const (
	PartText       = "text"
	PartImageURL   = "image_url"
	PartInputAudio = "input_audio"
)

// ContentPart is one element of list-form content. Parts of other types
// (file, refusal, new ones) keep their JSON in Raw and are encoded from it.
type ContentPart struct {
	Type       string          `json:"type"`
	Text       string          `json:"text,omitempty"`
	ImageURL   *ImageURL       `json:"image_url,omitempty"`
	InputAudio *InputAudio     `json:"input_audio,omitempty"`
	Raw        json.RawMessage `json:"-"`
}

// ImageURL is an image_url part's payload.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// InputAudio is an input_audio part's payload.
type InputAudio struct {
	Data   string `json:"data"`
	Format string `json:"format"`
}

type contentPartFields ContentPart

// UnmarshalJSON decodes known part types and keeps the others verbatim.
func (p *ContentPart) UnmarshalJSON(b []byte) error {
	var f contentPartFields
	if err := jsonv1.Unmarshal(b, &f); err != nil {
		return err
	}
	switch f.Type {
	case PartText, PartImageURL, PartInputAudio:
		f.Raw = nil
	default:
		f = contentPartFields{Type: f.Type, Raw: append(json.RawMessage(nil), b...)}
	}
	*p = ContentPart(f)
	return nil
}

// MarshalJSON encodes Raw when set, the typed fields otherwise.
func (p ContentPart) MarshalJSON() ([]byte, error) {
	if len(p.Raw) > 0 {
		return p.Raw, nil
	}
	return jsonv1.Marshal(contentPartFields(p))
}

// ToolCall is a function call made by the assistant.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function and carries its arguments as a JSON string.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool is a tool the model may call.
type Tool struct {
	Type     string       `json:"type"`
	Function FunctionTool `json:"function"`
}

// FunctionTool declares a function; Parameters is a JSON schema, kept verbatim.
type FunctionTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolChoice is "none", "auto", "required", or an object such as
// {"type":"function","function":{"name":"f"}}.
type ToolChoice struct {
	Mode     string // the string form
	Function string // the object form {"type":"function","function":{"name":Function}}
	Raw      json.RawMessage
}

// MarshalJSON encodes the string form, the function object, or Raw.
func (t ToolChoice) MarshalJSON() ([]byte, error) {
	switch {
	case len(t.Raw) > 0:
		return t.Raw, nil
	case t.Function != "":
		type fn struct {
			Name string `json:"name"`
		}
		return jsonv1.Marshal(struct {
			Type     string `json:"type"`
			Function fn     `json:"function"`
		}{"function", fn{t.Function}})
	}
	return jsonv1.Marshal(t.Mode)
}

// UnmarshalJSON accepts the string form or an object; objects other than a
// named function (new choice types) are kept verbatim in Raw.
func (t *ToolChoice) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*t = ToolChoice{}
		return jsonv1.Unmarshal(b, &t.Mode)
	}
	if len(b) == 0 || b[0] != '{' {
		return errors.New("gateway: tool_choice must be a string or an object")
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := jsonv1.Unmarshal(b, &obj); err != nil {
		return err
	}
	var keys map[string]json.RawMessage
	_ = jsonv1.Unmarshal(b, &keys)
	if obj.Type == "function" && obj.Function.Name != "" && len(keys) == 2 {
		*t = ToolChoice{Function: obj.Function.Name}
		return nil
	}
	*t = ToolChoice{Raw: append(json.RawMessage(nil), b...)}
	return nil
}

// Stop is the stop parameter: a string or a list of up to four strings.
type Stop struct {
	Sequences []string
	single    bool // decoded from, and encoded as, the string form
}

// StopString is a stop parameter in the string form.
func StopString(s string) Stop { return Stop{Sequences: []string{s}, single: true} }

// IsZero reports an absent stop parameter.
func (s Stop) IsZero() bool { return s.Sequences == nil }

// MarshalJSON encodes the form the value was decoded or built in.
func (s Stop) MarshalJSON() ([]byte, error) {
	if s.single && len(s.Sequences) == 1 {
		return jsonv1.Marshal(s.Sequences[0])
	}
	if s.Sequences == nil {
		return []byte("null"), nil
	}
	return jsonv1.Marshal(s.Sequences)
}

// UnmarshalJSON accepts a string, a list of strings or null.
func (s *Stop) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = Stop{}
	case len(b) > 0 && b[0] == '"':
		var v string
		if err := jsonv1.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = StopString(v)
	default:
		var v []string
		if err := jsonv1.Unmarshal(b, &v); err != nil {
			return errors.New("gateway: stop must be a string or a list of strings")
		}
		if v == nil {
			v = []string{}
		}
		*s = Stop{Sequences: v}
	}
	return nil
}

// ResponseFormat is {"type":"text"}, {"type":"json_object"} or
// {"type":"json_schema","json_schema":{...}}.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is a json_schema response format; Schema is kept verbatim.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// StreamOptions is valid only with stream: true.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ChatResponse is the non-streaming response body.
type ChatResponse struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"` // "chat.completion"
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
	ServiceTier       string   `json:"service_tier,omitempty"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`

	// raw is the upstream's JSON of this answer when it can be passed on
	// as is (valid UTF-8). A response changed after decoding must drop it.
	raw []byte
}

// Choice is one completion of a non-streaming response.
type Choice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs"` // null unless logprobs were asked for
}

// ResponseMessage is the assistant's message; Content is null when the
// assistant only calls tools.
type ResponseMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// Usage counts the tokens of a request.
type Usage struct {
	PromptTokens            int64                    `json:"prompt_tokens"`
	CompletionTokens        int64                    `json:"completion_tokens"`
	TotalTokens             int64                    `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
}

// CachedTokens is the number of prompt tokens served from the provider's cache.
func (u Usage) CachedTokens() int64 {
	if u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

// PromptTokensDetails breaks down the prompt tokens.
type PromptTokensDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
	AudioTokens  int64 `json:"audio_tokens"`
}

// CompletionTokensDetails breaks down the completion tokens.
type CompletionTokensDetails struct {
	ReasoningTokens          int64 `json:"reasoning_tokens"`
	AudioTokens              int64 `json:"audio_tokens"`
	AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
	RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
}

// ChatChunk is one server-sent event of a streamed response. Choices is empty
// (encoded as []) in the final usage chunk; Usage is null in every other chunk.
type ChatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"` // "chat.completion.chunk"
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage"`

	// raw is the upstream's JSON of this chunk when it can be passed on
	// as is (one line, valid UTF-8), valid only while the chunk is being
	// emitted. A chunk changed after decoding must drop it.
	raw []byte
}

// MarshalJSON encodes nil Choices as [] rather than null, as OpenAI does.
func (c ChatChunk) MarshalJSON() ([]byte, error) {
	type fields ChatChunk
	if c.Choices == nil {
		c.Choices = []ChunkChoice{}
	}
	return jsonv1.Marshal(fields(c))
}

// ChunkChoice is one choice's increment; FinishReason is null until the last.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
}

// Delta is the increment of a streamed message.
type Delta struct {
	Role      string          `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	Refusal   *string         `json:"refusal,omitempty"`
	ToolCalls []ToolCallDelta `json:"tool_calls,omitempty"`
}

// ToolCallDelta is a fragment of a tool call: the first fragment of an Index
// carries ID, Type and the name; later ones only pieces of Arguments.
type ToolCallDelta struct {
	Index    int                `json:"index"`
	ID       string             `json:"id,omitempty"`
	Type     string             `json:"type,omitempty"`
	Function *FunctionCallDelta `json:"function,omitempty"`
}

// FunctionCallDelta is a fragment of a function call.
type FunctionCallDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Error types of OpenAI's error shape.
const (
	ErrorTypeInvalidRequest = "invalid_request_error"
	ErrorTypeAuthentication = "authentication_error"
	ErrorTypePermission     = "permission_error"
	ErrorTypeNotFound       = "not_found_error"
	ErrorTypeRateLimit      = "rate_limit_error"
	ErrorTypeServer         = "server_error"
)

// Error is an API error in OpenAI's shape:
// {"error":{"message":…,"type":…,"param":…,"code":…}}, param and code being
// null when empty. Status is the HTTP status it is served with.
type Error struct {
	Status  int
	Message string
	Type    string
	Param   string
	Code    string
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("gateway: %s (%s): %s", e.Type, e.Code, e.Message)
	}
	return fmt.Sprintf("gateway: %s: %s", e.Type, e.Message)
}

type errorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// MarshalJSON encodes the error envelope.
func (e Error) MarshalJSON() ([]byte, error) {
	return jsonv1.Marshal(struct {
		Error errorBody `json:"error"`
	}{errorBody{e.Message, e.Type, nullable(e.Param), nullable(e.Code)}})
}

// UnmarshalJSON decodes the error envelope, as an upstream sends it. A
// numeric code (some OpenAI-compatible servers send one) is kept as text.
func (e *Error) UnmarshalJSON(b []byte) error {
	var env struct {
		Error *struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Param   *string         `json:"param"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if err := jsonv1.Unmarshal(b, &env); err != nil {
		return err
	}
	if env.Error == nil {
		return errors.New(`gateway: error body has no "error" object`)
	}
	status := e.Status
	*e = Error{Status: status, Message: env.Error.Message, Type: env.Error.Type}
	if env.Error.Param != nil {
		e.Param = *env.Error.Param
	}
	code := bytes.TrimSpace(env.Error.Code)
	switch {
	case len(code) == 0 || bytes.Equal(code, []byte("null")):
	case code[0] == '"':
		if err := jsonv1.Unmarshal(code, &e.Code); err != nil {
			return err
		}
	default:
		e.Code = string(code)
	}
	return nil
}
