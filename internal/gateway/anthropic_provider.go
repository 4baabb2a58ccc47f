package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Limits of the Anthropic provider.
const (
	anthropicDefaultBaseURL   = "https://api.anthropic.com"
	anthropicDefaultTimeout   = 60 * time.Second
	anthropicDefaultMaxTokens = 4096      // Anthropic requires max_tokens; OpenAI callers often omit it
	anthropicMaxBody          = 16 << 20  // a non-streaming answer
	anthropicMaxErrorBody     = 1 << 20   // an error answer
	anthropicMaxStream        = 256 << 20 // a whole stream, every event included
	anthropicMaxLine          = 1 << 20   // one line of a stream
)

// errAnthropicTimeout is the cause of a call cut by the deployment's
// timeout, told apart from the caller's own cancellation.
var errAnthropicTimeout = errors.New("anthropic: the upstream was silent for longer than the deployment's timeout")

// AnthropicProvider calls Anthropic's Messages API, translating the
// gateway's OpenAI-shaped chat requests to it and its answers back. It
// holds no per-call state and is safe for concurrent use.
type AnthropicProvider struct {
	// Now stamps the created field of translated answers; nil means time.Now.
	Now func() time.Time
}

var _ Provider = (*AnthropicProvider)(nil)

func (p *AnthropicProvider) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Chat makes a non-streaming call; the deployment's timeout bounds it from
// the request to the last byte of the answer.
func (p *AnthropicProvider) Chat(ctx context.Context, up *Upstream, req *ChatRequest) (*ChatResponse, error) {
	body, err := anthropicRequestBody(up, req, false)
	if err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, anthropicTimeout(up), errAnthropicTimeout)
	defer cancel()
	resp, err := anthropicPost(callCtx, up, body)
	if err != nil {
		return nil, anthropicTransportError(ctx, callCtx, 0, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, anthropicStatusError(resp, up.APIKey, p.now())
	}
	b, err := egress.ReadBody(resp, anthropicMaxBody)
	if err != nil {
		return nil, anthropicTransportError(ctx, callCtx, resp.StatusCode, err)
	}
	var m MessagesResponse
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &UpstreamError{Status: resp.StatusCode, Class: ErrClassBadResponse,
			Cause: fmt.Errorf("anthropic: decode message: %w", err)}
	}
	return chatResponseFromAnthropic(&m, p.now().Unix()), nil
}

// Embed fails: Anthropic has no embeddings endpoint.
func (p *AnthropicProvider) Embed(context.Context, *Upstream, *EmbeddingRequest) (*EmbeddingResponse, error) {
	return nil, anthropicUnsupported("embeddings")
}

// Transcribe fails: Anthropic has no transcription endpoint.
func (p *AnthropicProvider) Transcribe(context.Context, *Upstream, *TranscriptionRequest) (*TranscriptionResponse, error) {
	return nil, anthropicUnsupported("audio transcription")
}

func anthropicUnsupported(what string) *UpstreamError {
	return &UpstreamError{Status: http.StatusBadRequest, Class: ErrClassBadRequest, Err: &Error{
		Status:  http.StatusBadRequest,
		Type:    ErrorTypeInvalidRequest,
		Message: fmt.Sprintf("Anthropic has no %s endpoint; use a deployment of another provider for this model", what),
	}}
}

// anthropicTimeout is the deployment's timeout, or the default when unset.
func anthropicTimeout(up *Upstream) time.Duration {
	if up.Deployment.Timeout > 0 {
		return up.Deployment.Timeout
	}
	return anthropicDefaultTimeout
}

// anthropicURL is the Messages endpoint under a deployment's base URL. A
// base URL ending in /v1 (as OpenAI base URLs do) is accepted too.
func anthropicURL(base string) string {
	base = strings.TrimRight(base, "/")
	if base == "" {
		base = anthropicDefaultBaseURL
	}
	if strings.HasSuffix(base, "/v1") {
		return base + "/messages"
	}
	return base + "/v1/messages"
}

// anthropicRequestBody translates req for the deployment's upstream model
// and encodes it. req itself is left untouched: the router may retry it on
// a deployment of another provider.
func anthropicRequestBody(up *Upstream, req *ChatRequest, stream bool) ([]byte, error) {
	m, err := anthropicRequestFromChat(req, up.Deployment.UpstreamModel, stream)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("anthropic: encode request: %w", err)
	}
	return body, nil
}

// anthropicPost sends body to the deployment with up's client. The key
// goes only with a context bound to the key's hosts, so the egress client
// refuses it anywhere else, redirects included.
func anthropicPost(ctx context.Context, up *Upstream, body []byte) (*http.Response, error) {
	if up.Client == nil {
		return nil, errors.New("anthropic: the upstream has no HTTP client")
	}
	if up.APIKey != "" {
		ctx = egress.WithCredentialHosts(ctx, up.AllowedHosts...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, anthropicURL(up.Deployment.BaseURL), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("anthropic: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-version", AnthropicVersion)
	if up.APIKey != "" {
		req.Header.Set("x-api-key", up.APIKey)
	}
	resp, err := up.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("anthropic: post: %w", err)
	}
	return resp, nil
}

// anthropicTransportError classifies a failure without a usable answer:
// the caller going away, the deployment's timeout, an oversized or
// unreadable body, or the connection. parent is the caller's context, call
// the one the request ran under.
func anthropicTransportError(parent, call context.Context, status int, err error) *UpstreamError {
	var netErr net.Error
	class := ErrClassConnection
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		class = ErrClassCancelled
	case parent.Err() != nil, errors.Is(context.Cause(call), errAnthropicTimeout):
		class = ErrClassTimeout
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		class = ErrClassTimeout
	case errors.Is(err, ErrSSETooLarge), nodus.ErrorCode(err) == nodus.ETOOLARGE:
		class = ErrClassBadResponse
	}
	if errors.Is(context.Cause(call), errAnthropicTimeout) && !errors.Is(err, errAnthropicTimeout) {
		err = fmt.Errorf("%w: %w", errAnthropicTimeout, err) // say why the transport gave up
	}
	return &UpstreamError{Status: status, Class: class, Cause: err}
}

// anthropicStatusError turns a non-2xx answer into an UpstreamError with
// Anthropic's error body translated to the gateway's error shape.
func anthropicStatusError(resp *http.Response, key string, now time.Time) *UpstreamError {
	ue := &UpstreamError{
		Status:     resp.StatusCode,
		Class:      ClassifyStatus(resp.StatusCode),
		RetryAfter: anthropicRetryAfter(resp.Header, now),
	}
	b, err := egress.ReadBody(resp, anthropicMaxErrorBody)
	if err != nil {
		ue.Cause = fmt.Errorf("anthropic: read %d error body: %w", resp.StatusCode, err)
		return ue
	}
	var body AnthropicErrorBody
	if json.Unmarshal(b, &body) == nil && body.Type == "error" && body.Error.Type != "" {
		ue.Err = openAIErrorFromAnthropic(resp.StatusCode, body.Error, key)
		return ue
	}
	ue.Cause = fmt.Errorf("anthropic: status %d with an error body in an unknown shape", resp.StatusCode)
	return ue
}

// anthropicRetryAfter reads retry-after-ms, or retry-after in seconds or
// as an HTTP date; 0 when absent, unreadable or in the past.
func anthropicRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("retry-after"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// anthropicBadRequest is a 400 for a request Anthropic cannot be asked.
func anthropicBadRequest(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: param,
		Message: fmt.Sprintf(format, args...)}
}

// anthropicRequestFromChat translates an OpenAI-shaped chat request into a
// Messages request for model. Parameters with no Anthropic counterpart
// (presence_penalty, logit_bias, seed, …) are dropped, because Anthropic
// refuses fields it does not know; top_k, which OpenAI-compatible clients
// send as an extra field, is passed on. Temperature goes as it came:
// Anthropic's range is 0–1 and its own 400 says so better than a silent
// clamp would.
func anthropicRequestFromChat(req *ChatRequest, model string, stream bool) (*MessagesRequest, error) {
	if req.N != nil && *req.N > 1 {
		return nil, anthropicBadRequest("n", "Anthropic returns one choice per request; n must be 1")
	}
	system, messages, err := anthropicMessagesFromChat(req.Messages)
	if err != nil {
		return nil, err
	}
	if len(messages) == 0 {
		return nil, anthropicBadRequest("messages", "messages must hold at least one user or assistant message")
	}
	instruction, err := anthropicFormatInstruction(req.ResponseFormat)
	if err != nil {
		return nil, err
	}
	if instruction != "" {
		system = append(system, AnthropicBlock{Type: AnthropicText, Text: instruction})
	}
	maxTokens := int64(anthropicDefaultMaxTokens)
	switch {
	case req.MaxCompletionTokens != nil:
		maxTokens = *req.MaxCompletionTokens
	case req.MaxTokens != nil:
		maxTokens = *req.MaxTokens
	}
	out := &MessagesRequest{
		Model:       model,
		Messages:    messages,
		MaxTokens:   &maxTokens,
		Temperature: req.Temperature,
		TopP:        req.TopP,
		Stream:      stream,
	}
	if len(system) > 0 {
		out.System = AnthropicContent{Blocks: system}
	}
	if len(req.Stop.Sequences) > 0 {
		out.StopSequences = slices.Clone(req.Stop.Sequences)
	}
	if raw, ok := req.Extra["top_k"]; ok {
		var k int64
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, anthropicBadRequest("top_k", "top_k must be an integer")
		}
		out.TopK = &k
	}
	if out.Tools, err = anthropicToolsFromChat(req.Tools); err != nil {
		return nil, err
	}
	if out.ToolChoice, err = anthropicToolChoiceFromChat(req.ToolChoice, req.Extra["parallel_tool_calls"], len(out.Tools) > 0); err != nil {
		return nil, err
	}
	if req.User != "" {
		out.Metadata = &AnthropicMetadata{UserID: req.User}
	}
	return out, nil
}

// anthropicMessagesFromChat splits system and developer messages into the
// system prompt and turns the rest into Anthropic messages: tool messages
// become user tool_result blocks, and consecutive messages of one role are
// merged, because Anthropic requires user and assistant to alternate.
func anthropicMessagesFromChat(msgs []Message) (system []AnthropicBlock, out []AnthropicMessage, err error) {
	for i, m := range msgs {
		var role string
		var blocks []AnthropicBlock
		switch m.Role {
		case RoleSystem, RoleDeveloper:
			if text := m.Content.String(); text != "" {
				system = append(system, AnthropicBlock{Type: AnthropicText, Text: text})
			}
			continue
		case RoleUser:
			role = RoleUser
			blocks, err = anthropicBlocksFromContent(m.Content, fmt.Sprintf("messages[%d].content", i))
		case RoleAssistant:
			role = RoleAssistant
			blocks, err = anthropicAssistantBlocks(m, i)
		case RoleTool:
			role = RoleUser
			var b AnthropicBlock
			b, err = anthropicToolResultFromChat(m, i)
			blocks = []AnthropicBlock{b}
		default:
			return nil, nil, anthropicBadRequest(fmt.Sprintf("messages[%d].role", i),
				"role %q is not supported; use system, developer, user, assistant or tool", m.Role)
		}
		if err != nil {
			return nil, nil, err
		}
		if len(blocks) == 0 {
			continue // Anthropic refuses empty content
		}
		if n := len(out); n > 0 && out[n-1].Role == role {
			out[n-1].Content.Blocks = append(out[n-1].Content.Blocks, blocks...)
			continue
		}
		out = append(out, AnthropicMessage{Role: role, Content: AnthropicContent{Blocks: blocks}})
	}
	// Anthropic wants a user turn's tool results before anything else in it.
	for _, m := range out {
		if m.Role == RoleUser {
			slices.SortStableFunc(m.Content.Blocks, func(a, b AnthropicBlock) int {
				return anthropicResultRank(a) - anthropicResultRank(b)
			})
		}
	}
	return system, out, nil
}

func anthropicResultRank(b AnthropicBlock) int {
	if b.Type == AnthropicToolResult {
		return 0
	}
	return 1
}

// anthropicBlocksFromContent turns user content into text and image blocks.
func anthropicBlocksFromContent(c Content, param string) ([]AnthropicBlock, error) {
	if c.Parts == nil {
		if c.Text == "" {
			return nil, nil
		}
		return []AnthropicBlock{{Type: AnthropicText, Text: c.Text}}, nil
	}
	var blocks []AnthropicBlock
	for j, p := range c.Parts {
		switch p.Type {
		case PartText:
			if p.Text != "" {
				blocks = append(blocks, AnthropicBlock{Type: AnthropicText, Text: p.Text})
			}
		case PartImageURL:
			if p.ImageURL == nil {
				return nil, anthropicBadRequest(fmt.Sprintf("%s[%d].image_url", param, j), "image_url part has no image_url")
			}
			src, err := anthropicImageSource(p.ImageURL.URL, fmt.Sprintf("%s[%d].image_url.url", param, j))
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, AnthropicBlock{Type: AnthropicImage, Source: src})
		default:
			return nil, anthropicBadRequest(fmt.Sprintf("%s[%d].type", param, j),
				"content part type %q is not supported by Anthropic", p.Type)
		}
	}
	return blocks, nil
}

// anthropicImageSource turns an image URL into a source: a data: URL into
// base64 data, an http(s) URL into a URL Anthropic fetches itself.
func anthropicImageSource(u, param string) (*AnthropicImageSource, error) {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		header, data, ok := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(header, ";base64")
		if !ok || !isBase64 || mediaType == "" {
			return nil, anthropicBadRequest(param, "a data: image URL must be data:<media type>;base64,<data>")
		}
		return &AnthropicImageSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return &AnthropicImageSource{Type: "url", URL: u}, nil
	}
	return nil, anthropicBadRequest(param, "an image URL must be an http(s) URL or a base64 data: URL")
}

// anthropicAssistantBlocks turns an assistant message's text and tool calls
// into text and tool_use blocks.
func anthropicAssistantBlocks(m Message, i int) ([]AnthropicBlock, error) {
	var blocks []AnthropicBlock
	if m.Content.Parts == nil {
		if m.Content.Text != "" {
			blocks = append(blocks, AnthropicBlock{Type: AnthropicText, Text: m.Content.Text})
		}
	} else {
		for j, p := range m.Content.Parts {
			switch p.Type {
			case PartText:
				if p.Text != "" {
					blocks = append(blocks, AnthropicBlock{Type: AnthropicText, Text: p.Text})
				}
			case "refusal": // a refusal the model made earlier carries nothing to send back
			default:
				return nil, anthropicBadRequest(fmt.Sprintf("messages[%d].content[%d].type", i, j),
					"assistant content part type %q is not supported by Anthropic", p.Type)
			}
		}
	}
	for j, tc := range m.ToolCalls {
		input, err := anthropicInputFromArguments(tc.Function.Arguments)
		if err != nil {
			return nil, anthropicBadRequest(fmt.Sprintf("messages[%d].tool_calls[%d].function.arguments", i, j), "%v", err)
		}
		blocks = append(blocks, AnthropicBlock{Type: AnthropicToolUse, ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	return blocks, nil
}

// anthropicInputFromArguments turns OpenAI's arguments string into
// Anthropic's input object; "" means no arguments.
func anthropicInputFromArguments(args string) (json.RawMessage, error) {
	args = strings.TrimSpace(args)
	if args == "" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid([]byte(args)) {
		return nil, errors.New("tool call arguments are not valid JSON")
	}
	if args[0] != '{' {
		return nil, errors.New("tool call arguments must be a JSON object")
	}
	return json.RawMessage(args), nil
}

// anthropicToolResultFromChat turns a tool message into a tool_result block.
func anthropicToolResultFromChat(m Message, i int) (AnthropicBlock, error) {
	if m.ToolCallID == "" {
		return AnthropicBlock{}, anthropicBadRequest(fmt.Sprintf("messages[%d].tool_call_id", i), "a tool message needs tool_call_id")
	}
	b := AnthropicBlock{Type: AnthropicToolResult, ToolUseID: m.ToolCallID}
	if m.Content.Parts == nil {
		if m.Content.Text != "" {
			b.Content = &AnthropicContent{Text: m.Content.Text}
		}
		return b, nil
	}
	blocks, err := anthropicBlocksFromContent(m.Content, fmt.Sprintf("messages[%d].content", i))
	if err != nil {
		return AnthropicBlock{}, err
	}
	if len(blocks) > 0 {
		b.Content = &AnthropicContent{Blocks: blocks}
	}
	return b, nil
}

// anthropicFormatInstruction is the system instruction standing in for
// response_format. It is best effort: Anthropic's Messages API has no JSON
// mode, so the model is asked for JSON but not constrained to it.
func anthropicFormatInstruction(f *ResponseFormat) (string, error) {
	if f == nil {
		return "", nil
	}
	switch f.Type {
	case "", "text":
		return "", nil
	case "json_object":
		return "Respond only with a single valid JSON object, with no other text before or after it.", nil
	case "json_schema":
		if f.JSONSchema == nil || len(f.JSONSchema.Schema) == 0 {
			return "Respond only with a single valid JSON value, with no other text before or after it.", nil
		}
		var schema bytes.Buffer
		if err := json.Compact(&schema, f.JSONSchema.Schema); err != nil {
			return "", anthropicBadRequest("response_format.json_schema.schema", "the schema is not valid JSON")
		}
		return "Respond only with a single valid JSON value, with no other text before or after it, " +
			"that conforms to this JSON schema:\n" + schema.String(), nil
	}
	return "", anthropicBadRequest("response_format.type", "response_format type %q is not supported by Anthropic", f.Type)
}

// anthropicToolsFromChat declares function tools as Anthropic client tools.
func anthropicToolsFromChat(tools []Tool) ([]AnthropicTool, error) {
	var out []AnthropicTool
	for i, t := range tools {
		if t.Type != "function" {
			return nil, anthropicBadRequest(fmt.Sprintf("tools[%d].type", i), "tool type %q is not supported by Anthropic", t.Type)
		}
		schema := t.Function.Parameters
		if len(bytes.TrimSpace(schema)) == 0 || bytes.Equal(bytes.TrimSpace(schema), []byte("null")) {
			schema = json.RawMessage(`{"type":"object","properties":{}}`) // Anthropic requires a schema
		}
		out = append(out, AnthropicTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	return out, nil
}

// anthropicToolChoiceFromChat maps tool_choice (auto→auto, required→any,
// none→none, a named function→tool) and parallel_tool_calls: false to
// disable_parallel_tool_use.
func anthropicToolChoiceFromChat(tc *ToolChoice, parallel json.RawMessage, hasTools bool) (*AnthropicToolChoice, error) {
	var out *AnthropicToolChoice
	switch {
	case tc == nil:
	case len(tc.Raw) > 0:
		return nil, anthropicBadRequest("tool_choice", "this tool_choice object is not supported by Anthropic")
	case tc.Function != "":
		out = &AnthropicToolChoice{Type: AnthropicChoiceTool, Name: tc.Function}
	case tc.Mode == "auto":
		out = &AnthropicToolChoice{Type: AnthropicChoiceAuto}
	case tc.Mode == "required":
		out = &AnthropicToolChoice{Type: AnthropicChoiceAny}
	case tc.Mode == "none":
		out = &AnthropicToolChoice{Type: AnthropicChoiceNone}
	default:
		return nil, anthropicBadRequest("tool_choice", "tool_choice %q is not supported", tc.Mode)
	}
	if hasTools && bytes.Equal(bytes.TrimSpace(parallel), []byte("false")) {
		if out == nil {
			out = &AnthropicToolChoice{Type: AnthropicChoiceAuto}
		}
		if out.Type != AnthropicChoiceNone {
			out.DisableParallelToolUse = true
		}
	}
	return out, nil
}

// chatResponseFromAnthropic translates a Messages answer: text blocks
// joined, tool_use blocks as tool calls, the stop reason as a finish
// reason. Other blocks (thinking, server tools) have no OpenAI form.
func chatResponseFromAnthropic(m *MessagesResponse, created int64) *ChatResponse {
	var text strings.Builder
	hasText := false
	var calls []ToolCall
	for _, b := range m.Content {
		switch b.Type {
		case AnthropicText:
			text.WriteString(b.Text)
			hasText = true
		case AnthropicToolUse:
			calls = append(calls, ToolCall{ID: b.ID, Type: "function",
				Function: FunctionCall{Name: b.Name, Arguments: anthropicArguments(b.Input)}})
		}
	}
	msg := ResponseMessage{Role: RoleAssistant, ToolCalls: calls}
	if hasText || len(calls) == 0 { // content is null only beside tool calls
		s := text.String()
		msg.Content = &s
	}
	usage := anthropicChatUsage(m.Usage)
	return &ChatResponse{
		ID:      m.ID,
		Object:  "chat.completion",
		Created: created,
		Model:   m.Model,
		Choices: []Choice{{Index: 0, Message: msg, FinishReason: anthropicFinishReason(m.StopReason)}},
		Usage:   &usage,
	}
}

// anthropicArguments is a tool_use input as OpenAI's arguments string.
func anthropicArguments(input json.RawMessage) string {
	var buf bytes.Buffer
	if len(input) == 0 || json.Compact(&buf, input) != nil {
		return "{}"
	}
	return buf.String()
}

// anthropicFinishReason maps a stop reason to a finish reason.
func anthropicFinishReason(stop string) string {
	switch stop {
	case AnthropicMaxTokens, "model_context_window_exceeded":
		return FinishLength
	case AnthropicStopToolUse:
		return FinishToolCalls
	case AnthropicRefusal:
		return FinishContentFilter
	}
	return FinishStop // end_turn, stop_sequence, pause_turn
}

// anthropicChatUsage counts cache reads and writes as prompt tokens, as
// OpenAI does, and reports the reads as cached.
func anthropicChatUsage(u AnthropicUsage) Usage {
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	return Usage{
		PromptTokens:        prompt,
		CompletionTokens:    u.OutputTokens,
		TotalTokens:         prompt + u.OutputTokens,
		PromptTokensDetails: &PromptTokensDetails{CachedTokens: u.CacheReadInputTokens},
	}
}
