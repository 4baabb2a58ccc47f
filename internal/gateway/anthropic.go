package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// This file holds the wire types of Anthropic's Messages API
// (https://docs.anthropic.com/en/api/messages), used both ways: the
// Anthropic provider sends MessagesRequest and reads MessagesResponse and
// stream events, and the /v1/messages endpoint reads MessagesRequest from
// Anthropic-SDK clients and answers in the same shapes. The translations
// live in anthropic_provider.go, anthropic_messages.go and
// anthropic_stream.go.
//
// Anthropic's API refuses fields it does not know, so every block and event
// is encoded with exactly the fields of its type.

// AnthropicVersion is the anthropic-version header the provider sends.
const AnthropicVersion = "2023-06-01"

// Content block types of the Messages API.
const (
	AnthropicText       = "text"
	AnthropicImage      = "image"
	AnthropicToolUse    = "tool_use"
	AnthropicToolResult = "tool_result"
)

// Stop reasons of the Messages API.
const (
	AnthropicEndTurn      = "end_turn"
	AnthropicMaxTokens    = "max_tokens"
	AnthropicStopSequence = "stop_sequence"
	AnthropicStopToolUse  = "tool_use"
	AnthropicRefusal      = "refusal"
)

// MessagesRequest is the body of POST /v1/messages.
//
// Fields not modelled (thinking, service_tier, whatever the SDKs add next)
// are kept in Extra so that decoding a new SDK's request never fails and
// re-encoding it loses nothing.
type MessagesRequest struct {
	Model         string               `json:"model"`
	Messages      []AnthropicMessage   `json:"messages"`
	System        AnthropicContent     `json:"system,omitzero"`
	MaxTokens     *int64               `json:"max_tokens,omitempty"` // required; nil when a client left it out
	Temperature   *float64             `json:"temperature,omitempty"`
	TopP          *float64             `json:"top_p,omitempty"`
	TopK          *int64               `json:"top_k,omitempty"`
	StopSequences []string             `json:"stop_sequences,omitempty"`
	Stream        bool                 `json:"stream,omitempty"`
	Tools         []AnthropicTool      `json:"tools,omitempty"`
	ToolChoice    *AnthropicToolChoice `json:"tool_choice,omitempty"`
	Metadata      *AnthropicMetadata   `json:"metadata,omitempty"`

	// Extra holds the top-level fields not listed above, verbatim.
	Extra map[string]json.RawMessage `json:"-"`
}

// knownMessagesFields are the JSON names of MessagesRequest's typed fields.
var knownMessagesFields = []string{
	"model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k",
	"stop_sequences", "stream", "tools", "tool_choice", "metadata",
}

type messagesRequestFields MessagesRequest // the same fields without the methods

// UnmarshalJSON decodes the typed fields and keeps every other field in Extra.
func (r *MessagesRequest) UnmarshalJSON(b []byte) error {
	var f messagesRequestFields
	extra, err := splitExtra(b, &f, knownMessagesFields)
	if err != nil {
		return err
	}
	f.Extra = extra
	*r = MessagesRequest(f)
	return nil
}

// MarshalJSON encodes the typed fields, then the Extra fields in key order.
// A typed field wins over an Extra entry of the same name.
func (r MessagesRequest) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(messagesRequestFields(r))
	if err != nil {
		return nil, err
	}
	return joinExtra(b, r.Extra, knownMessagesFields)
}

// AnthropicMessage is one entry of a request's messages; Role is "user" or
// "assistant".
type AnthropicMessage struct {
	Role    string           `json:"role"`
	Content AnthropicContent `json:"content"`
}

// AnthropicContent is a message's content, a tool result's content or the
// system prompt: a string, or a list of blocks when Blocks is non-nil.
type AnthropicContent struct {
	Text   string
	Blocks []AnthropicBlock
}

// IsZero reports content never set, so that omitzero leaves out an absent
// system prompt.
func (c AnthropicContent) IsZero() bool { return c.Text == "" && c.Blocks == nil }

// String returns the text: the string form, or the text blocks joined by
// newlines.
func (c AnthropicContent) String() string {
	if c.Blocks == nil {
		return c.Text
	}
	var buf bytes.Buffer
	for _, b := range c.Blocks {
		if b.Type != AnthropicText {
			continue
		}
		if buf.Len() > 0 {
			buf.WriteByte('\n')
		}
		buf.WriteString(b.Text)
	}
	return buf.String()
}

// MarshalJSON encodes the list form when Blocks is set, the string otherwise.
func (c AnthropicContent) MarshalJSON() ([]byte, error) {
	if c.Blocks != nil {
		return json.Marshal(c.Blocks)
	}
	return json.Marshal(c.Text)
}

// UnmarshalJSON accepts a string, a list of blocks, or null for none.
func (c *AnthropicContent) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*c = AnthropicContent{}
		return nil
	case len(b) > 0 && b[0] == '"':
		*c = AnthropicContent{}
		return json.Unmarshal(b, &c.Text)
	case len(b) > 0 && b[0] == '[':
		var blocks []AnthropicBlock
		if err := json.Unmarshal(b, &blocks); err != nil {
			return err
		}
		if blocks == nil {
			blocks = []AnthropicBlock{}
		}
		*c = AnthropicContent{Blocks: blocks}
		return nil
	}
	return errors.New("gateway: content must be a string or a list of content blocks")
}

// AnthropicBlock is one content block. Only the fields of its Type are
// used: text has Text; image has Source; tool_use has ID, Name and Input;
// tool_result has ToolUseID, Content and IsError. Blocks of other types
// (thinking, document, server tools, new ones) keep their JSON in Raw and
// are encoded from it.
type AnthropicBlock struct {
	Type      string                `json:"type"`
	Text      string                `json:"text,omitempty"`
	Source    *AnthropicImageSource `json:"source,omitempty"`
	ID        string                `json:"id,omitempty"`
	Name      string                `json:"name,omitempty"`
	Input     json.RawMessage       `json:"input,omitempty"`
	ToolUseID string                `json:"tool_use_id,omitempty"`
	Content   *AnthropicContent     `json:"content,omitempty"`
	IsError   bool                  `json:"is_error,omitempty"`
	Raw       json.RawMessage       `json:"-"`
}

// AnthropicImageSource is an image block's source: base64 data with its
// media type, or a URL.
type AnthropicImageSource struct {
	Type      string `json:"type"` // "base64" or "url"
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type anthropicBlockFields AnthropicBlock

// UnmarshalJSON decodes the known block types and keeps the others verbatim.
func (b *AnthropicBlock) UnmarshalJSON(data []byte) error {
	var f anthropicBlockFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	switch f.Type {
	case AnthropicText, AnthropicImage, AnthropicToolUse, AnthropicToolResult:
		f.Raw = nil
	default:
		f = anthropicBlockFields{Type: f.Type, Raw: append(json.RawMessage(nil), data...)}
	}
	*b = AnthropicBlock(f)
	return nil
}

// MarshalJSON encodes exactly the fields of the block's type: a text block
// keeps "text" even when empty (a stream's content_block_start needs it),
// and a tool_use block always has an "input" object.
func (b AnthropicBlock) MarshalJSON() ([]byte, error) {
	if len(b.Raw) > 0 {
		return b.Raw, nil
	}
	switch b.Type {
	case AnthropicText:
		return json.Marshal(struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{b.Type, b.Text})
	case AnthropicImage:
		if b.Source == nil {
			return nil, errors.New("gateway: image block has no source")
		}
		return json.Marshal(struct {
			Type   string                `json:"type"`
			Source *AnthropicImageSource `json:"source"`
		}{b.Type, b.Source})
	case AnthropicToolUse:
		input := b.Input
		if len(input) == 0 {
			input = json.RawMessage("{}")
		}
		return json.Marshal(struct {
			Type  string          `json:"type"`
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		}{b.Type, b.ID, b.Name, input})
	case AnthropicToolResult:
		return json.Marshal(struct {
			Type      string            `json:"type"`
			ToolUseID string            `json:"tool_use_id"`
			Content   *AnthropicContent `json:"content,omitempty"`
			IsError   bool              `json:"is_error,omitempty"`
		}{b.Type, b.ToolUseID, b.Content, b.IsError})
	}
	return nil, fmt.Errorf("gateway: content block of type %q has no raw JSON", b.Type)
}

// AnthropicTool is a tool the model may call. Client tools have no Type (or
// "custom"); Anthropic's server tools (web search, bash, …) have a Type and
// no InputSchema.
type AnthropicTool struct {
	Type        string          `json:"type,omitempty"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

// Tool choice types of the Messages API.
const (
	AnthropicChoiceAuto = "auto"
	AnthropicChoiceAny  = "any"
	AnthropicChoiceTool = "tool"
	AnthropicChoiceNone = "none"
)

// AnthropicToolChoice is {"type":"auto"|"any"|"none"} or
// {"type":"tool","name":…}.
type AnthropicToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// AnthropicMetadata is a request's metadata; UserID is an opaque end-user id.
type AnthropicMetadata struct {
	UserID string `json:"user_id,omitempty"`
}

// MessagesResponse is a non-streaming answer, and the message of a stream's
// message_start event (with empty Content and StopReason).
type MessagesResponse struct {
	ID           string           `json:"id"`
	Type         string           `json:"type"` // "message"
	Role         string           `json:"role"` // "assistant"
	Model        string           `json:"model"`
	Content      []AnthropicBlock `json:"content"`
	StopReason   string           `json:"stop_reason"`   // "" encodes as null
	StopSequence string           `json:"stop_sequence"` // "" encodes as null
	Usage        AnthropicUsage   `json:"usage"`
}

// MarshalJSON encodes an empty stop reason or sequence as null and nil
// Content as [], as Anthropic does.
func (m MessagesResponse) MarshalJSON() ([]byte, error) {
	content := m.Content
	if content == nil {
		content = []AnthropicBlock{}
	}
	return json.Marshal(struct {
		ID           string           `json:"id"`
		Type         string           `json:"type"`
		Role         string           `json:"role"`
		Model        string           `json:"model"`
		Content      []AnthropicBlock `json:"content"`
		StopReason   *string          `json:"stop_reason"`
		StopSequence *string          `json:"stop_sequence"`
		Usage        AnthropicUsage   `json:"usage"`
	}{m.ID, m.Type, m.Role, m.Model, content, nullable(m.StopReason), nullable(m.StopSequence), m.Usage})
}

// UnmarshalJSON accepts null for the stop reason and sequence.
func (m *MessagesResponse) UnmarshalJSON(b []byte) error {
	var f struct {
		ID           string           `json:"id"`
		Type         string           `json:"type"`
		Role         string           `json:"role"`
		Model        string           `json:"model"`
		Content      []AnthropicBlock `json:"content"`
		StopReason   *string          `json:"stop_reason"`
		StopSequence *string          `json:"stop_sequence"`
		Usage        AnthropicUsage   `json:"usage"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*m = MessagesResponse{ID: f.ID, Type: f.Type, Role: f.Role, Model: f.Model, Content: f.Content, Usage: f.Usage}
	if f.StopReason != nil {
		m.StopReason = *f.StopReason
	}
	if f.StopSequence != nil {
		m.StopSequence = *f.StopSequence
	}
	return nil
}

// AnthropicUsage counts a message's tokens. InputTokens excludes the tokens
// read from or written to the prompt cache.
type AnthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// Stream event types of the Messages API.
const (
	AnthropicMessageStart      = "message_start"
	AnthropicContentBlockStart = "content_block_start"
	AnthropicContentBlockDelta = "content_block_delta"
	AnthropicContentBlockStop  = "content_block_stop"
	AnthropicMessageDelta      = "message_delta"
	AnthropicMessageStop       = "message_stop"
	AnthropicPing              = "ping"
	AnthropicErrorEvent        = "error"
)

// Delta types of content_block_delta events.
const (
	AnthropicTextDelta      = "text_delta"
	AnthropicInputJSONDelta = "input_json_delta"
)

// AnthropicStreamEvent is one server-sent event of a streamed answer. Only
// the fields of its Type are used: message_start has Message;
// content_block_start has Index and ContentBlock; content_block_delta has
// Index and Delta (text or partial_json); content_block_stop has Index;
// message_delta has Delta (stop reason) and Usage; error has Error.
type AnthropicStreamEvent struct {
	Type         string                `json:"type"`
	Message      *MessagesResponse     `json:"message,omitempty"`
	Index        int                   `json:"index"`
	ContentBlock *AnthropicBlock       `json:"content_block,omitempty"`
	Delta        AnthropicDelta        `json:"delta"`
	Usage        *AnthropicUsage       `json:"usage,omitempty"`
	Error        *AnthropicErrorDetail `json:"error,omitempty"`
}

// AnthropicDelta is the delta of a content_block_delta event (Type
// text_delta with Text, or input_json_delta with PartialJSON) or of a
// message_delta event (no Type; StopReason and StopSequence).
type AnthropicDelta struct {
	Type         string `json:"type"`
	Text         string `json:"text"`
	PartialJSON  string `json:"partial_json"`
	StopReason   string `json:"stop_reason"`   // "" encodes as null
	StopSequence string `json:"stop_sequence"` // "" encodes as null
}

// MarshalJSON encodes exactly the fields of the event's type.
func (e AnthropicStreamEvent) MarshalJSON() ([]byte, error) {
	type indexed struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}
	switch e.Type {
	case AnthropicMessageStart:
		if e.Message == nil {
			return nil, errors.New("gateway: message_start event has no message")
		}
		return json.Marshal(struct {
			Type    string            `json:"type"`
			Message *MessagesResponse `json:"message"`
		}{e.Type, e.Message})
	case AnthropicContentBlockStart:
		if e.ContentBlock == nil {
			return nil, errors.New("gateway: content_block_start event has no content block")
		}
		return json.Marshal(struct {
			indexed
			ContentBlock *AnthropicBlock `json:"content_block"`
		}{indexed{e.Type, e.Index}, e.ContentBlock})
	case AnthropicContentBlockDelta:
		delta, err := e.Delta.blockDelta()
		if err != nil {
			return nil, err
		}
		return json.Marshal(struct {
			indexed
			Delta any `json:"delta"`
		}{indexed{e.Type, e.Index}, delta})
	case AnthropicContentBlockStop:
		return json.Marshal(indexed{e.Type, e.Index})
	case AnthropicMessageDelta:
		usage := e.Usage
		if usage == nil {
			usage = &AnthropicUsage{}
		}
		return json.Marshal(struct {
			Type  string `json:"type"`
			Delta struct {
				StopReason   *string `json:"stop_reason"`
				StopSequence *string `json:"stop_sequence"`
			} `json:"delta"`
			Usage *AnthropicUsage `json:"usage"`
		}{Type: e.Type, Delta: struct {
			StopReason   *string `json:"stop_reason"`
			StopSequence *string `json:"stop_sequence"`
		}{nullable(e.Delta.StopReason), nullable(e.Delta.StopSequence)}, Usage: usage})
	case AnthropicMessageStop, AnthropicPing:
		return json.Marshal(struct {
			Type string `json:"type"`
		}{e.Type})
	case AnthropicErrorEvent:
		if e.Error == nil {
			return nil, errors.New("gateway: error event has no error")
		}
		return json.Marshal(AnthropicErrorBody{Type: "error", Error: *e.Error})
	}
	return nil, fmt.Errorf("gateway: unknown stream event type %q", e.Type)
}

// blockDelta is the content_block_delta payload for the delta's type.
func (d AnthropicDelta) blockDelta() (any, error) {
	switch d.Type {
	case AnthropicTextDelta:
		return struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{d.Type, d.Text}, nil
	case AnthropicInputJSONDelta:
		return struct {
			Type        string `json:"type"`
			PartialJSON string `json:"partial_json"`
		}{d.Type, d.PartialJSON}, nil
	}
	return nil, fmt.Errorf("gateway: unknown content block delta type %q", d.Type)
}

// Anthropic's error types.
const (
	AnthropicInvalidRequest  = "invalid_request_error"
	AnthropicAuthentication  = "authentication_error"
	AnthropicPermission      = "permission_error"
	AnthropicNotFound        = "not_found_error"
	AnthropicRequestTooLarge = "request_too_large"
	AnthropicRateLimit       = "rate_limit_error"
	AnthropicAPIError        = "api_error"
	AnthropicOverloaded      = "overloaded_error"
)

// StatusOverloaded is the status Anthropic answers with when it is
// overloaded; it is a server error for routing.
const StatusOverloaded = 529

// AnthropicErrorBody is Anthropic's error envelope:
// {"type":"error","error":{"type":…,"message":…}}.
type AnthropicErrorBody struct {
	Type  string               `json:"type"` // "error"
	Error AnthropicErrorDetail `json:"error"`
}

// AnthropicErrorDetail is the error object inside the envelope.
type AnthropicErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// AnthropicError renders an OpenAI-shaped gateway error as Anthropic's
// error body and the status to serve it with, so Anthropic-SDK clients
// raise the exception class they expect (RateLimitError, NotFoundError, …).
func AnthropicError(e *Error) (status int, body []byte) {
	status, detail := anthropicDetail(e)
	body, err := json.Marshal(AnthropicErrorBody{Type: "error", Error: detail})
	if err != nil { // a struct of strings always encodes; keep the contract anyway
		return http.StatusInternalServerError, []byte(`{"type":"error","error":{"type":"api_error","message":"internal error"}}`)
	}
	return status, body
}

// anthropicDetail is e's status and Anthropic error type: the twin of its
// OpenAI type, or else the type Anthropic uses for its status.
func anthropicDetail(e *Error) (int, AnthropicErrorDetail) {
	status := e.Status
	if status == 0 {
		status = anthropicStatusForOpenAIType(e.Type)
	}
	typ := anthropicTypeForOpenAIType(e.Type)
	if typ == "" || typ == AnthropicAPIError {
		typ = anthropicTypeForStatus(status) // keeps 529 overloaded_error, 413 request_too_large
	}
	return status, AnthropicErrorDetail{Type: typ, Message: e.Message}
}

// anthropicTypeForOpenAIType maps the OpenAI error types that have an
// Anthropic twin; "" for the others, which are mapped by status.
func anthropicTypeForOpenAIType(t string) string {
	switch t {
	case ErrorTypeInvalidRequest:
		return AnthropicInvalidRequest
	case ErrorTypeAuthentication:
		return AnthropicAuthentication
	case ErrorTypePermission:
		return AnthropicPermission
	case ErrorTypeNotFound:
		return AnthropicNotFound
	case ErrorTypeRateLimit:
		return AnthropicRateLimit
	case ErrorTypeServer:
		return AnthropicAPIError
	}
	return ""
}

// anthropicStatusForOpenAIType is the status for an error that has none.
func anthropicStatusForOpenAIType(t string) int {
	switch t {
	case ErrorTypeInvalidRequest:
		return http.StatusBadRequest
	case ErrorTypeAuthentication:
		return http.StatusUnauthorized
	case ErrorTypePermission:
		return http.StatusForbidden
	case ErrorTypeNotFound:
		return http.StatusNotFound
	case ErrorTypeRateLimit:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// anthropicTypeForStatus is the Anthropic error type Anthropic itself uses
// for an HTTP status.
func anthropicTypeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return AnthropicAuthentication
	case status == http.StatusForbidden:
		return AnthropicPermission
	case status == http.StatusNotFound:
		return AnthropicNotFound
	case status == http.StatusRequestEntityTooLarge:
		return AnthropicRequestTooLarge
	case status == http.StatusTooManyRequests:
		return AnthropicRateLimit
	case status == StatusOverloaded:
		return AnthropicOverloaded
	case status >= 500:
		return AnthropicAPIError
	}
	return AnthropicInvalidRequest
}

// anthropicStatusForType is the HTTP status Anthropic pairs with an error
// type; it classifies an error that arrives inside a 200 stream.
func anthropicStatusForType(t string) int {
	switch t {
	case AnthropicInvalidRequest:
		return http.StatusBadRequest
	case AnthropicAuthentication:
		return http.StatusUnauthorized
	case AnthropicPermission:
		return http.StatusForbidden
	case AnthropicNotFound:
		return http.StatusNotFound
	case AnthropicRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case AnthropicRateLimit:
		return http.StatusTooManyRequests
	case AnthropicOverloaded:
		return StatusOverloaded
	}
	return http.StatusInternalServerError
}

// openAIErrorFromAnthropic turns Anthropic's error detail into the
// gateway's OpenAI-shaped error. The message goes to the gateway's caller,
// so the provider key (an upstream may quote what it was sent) is cut out
// of it, as safeUpstreamMessage does for OpenAI-compatible upstreams.
func openAIErrorFromAnthropic(status int, d AnthropicErrorDetail, key string) *Error {
	t := ErrorTypeServer
	switch d.Type {
	case AnthropicInvalidRequest, AnthropicRequestTooLarge:
		t = ErrorTypeInvalidRequest
	case AnthropicAuthentication:
		t = ErrorTypeAuthentication
	case AnthropicPermission:
		t = ErrorTypePermission
	case AnthropicNotFound:
		t = ErrorTypeNotFound
	case AnthropicRateLimit:
		t = ErrorTypeRateLimit
	}
	return &Error{Status: status, Message: safeUpstreamMessage(d.Message, key), Type: t}
}
