package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// This file serves Anthropic's POST /v1/messages: it translates an
// Anthropic-SDK client's request into the gateway's OpenAI-shaped
// ChatRequest, so it is routed, limited and billed like any chat call, and
// the answer, streamed or not, back into Anthropic's shapes.

// MessagesToChat translates a Messages request into a chat request. The
// system prompt becomes a system message, tool_result blocks become tool
// messages and tool_use blocks tool calls; top_k and
// disable_parallel_tool_use travel as the extra fields top_k and
// parallel_tool_calls. Other unmodelled fields (thinking, …) have no
// OpenAI form and are dropped. A request Anthropic itself would refuse
// (no max_tokens, no messages, a bad role) is a 400 *Error.
func MessagesToChat(req *MessagesRequest) (*ChatRequest, error) {
	var overrides []string
	upstreamOverrides("", req.Extra, &overrides)
	if len(overrides) > 0 {
		// Other fields the translation does not carry are dropped; these
		// are refused, as on the other endpoints (SECURITY.md check 22).
		slices.Sort(overrides)
		return nil, upstreamOverrideError(overrides[0])
	}
	switch {
	case req.Model == "":
		return nil, anthropicBadRequest("model", "model: field required")
	case req.MaxTokens == nil:
		return nil, anthropicBadRequest("max_tokens", "max_tokens: field required")
	case *req.MaxTokens < 1:
		return nil, anthropicBadRequest("max_tokens", "max_tokens: must be at least 1")
	case len(req.Messages) == 0:
		return nil, anthropicBadRequest("messages", "messages: at least one message is required")
	}
	maxTokens := *req.MaxTokens
	out := &ChatRequest{Model: req.Model, MaxTokens: &maxTokens, Stream: req.Stream}
	if req.Temperature != nil {
		t := *req.Temperature
		out.Temperature = &t
	}
	if req.TopP != nil {
		p := *req.TopP
		out.TopP = &p
	}
	if !req.System.IsZero() {
		text, err := messagesSystemText(req.System)
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, Message{Role: RoleSystem, Content: TextContent(text)})
	}
	for i, m := range req.Messages {
		msgs, err := chatMessagesFromAnthropic(m, i, i == len(req.Messages)-1)
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	if len(req.StopSequences) > 0 {
		out.Stop = Stop{Sequences: slices.Clone(req.StopSequences)}
	}
	if req.TopK != nil {
		out.Extra = map[string]json.RawMessage{"top_k": json.RawMessage(fmt.Sprint(*req.TopK))}
	}
	tools, err := chatToolsFromAnthropic(req.Tools)
	if err != nil {
		return nil, err
	}
	out.Tools = tools
	if err := chatToolChoiceFromAnthropic(out, req.ToolChoice); err != nil {
		return nil, err
	}
	if req.Stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	if req.Metadata != nil {
		out.User = req.Metadata.UserID
	}
	return out, nil
}

// messagesSystemText joins a system prompt's text blocks.
func messagesSystemText(c AnthropicContent) (string, error) {
	for i, b := range c.Blocks {
		if b.Type != AnthropicText {
			return "", anthropicBadRequest(fmt.Sprintf("system.%d.type", i), "system: only text blocks are allowed, not %q", b.Type)
		}
	}
	return c.String(), nil
}

// chatMessagesFromAnthropic translates one message. A user message's
// tool_result blocks become tool messages placed before the rest of its
// content, as OpenAI wants tool answers right after the calls. Only the
// last message, when it is the assistant's (a prefill), may be empty, as
// with Anthropic.
func chatMessagesFromAnthropic(m AnthropicMessage, i int, last bool) ([]Message, error) {
	if m.Role != RoleUser && m.Role != RoleAssistant {
		return nil, anthropicBadRequest(fmt.Sprintf("messages.%d.role", i),
			"messages.%d.role: must be \"user\" or \"assistant\", not %q", i, m.Role)
	}
	if m.Content.Text == "" && len(m.Content.Blocks) == 0 && (!last || m.Role != RoleAssistant) {
		return nil, anthropicBadRequest(fmt.Sprintf("messages.%d.content", i),
			"messages.%d.content: all messages must have non-empty content except for the optional final assistant message", i)
	}
	if m.Content.Blocks == nil {
		return []Message{{Role: m.Role, Content: TextContent(m.Content.Text)}}, nil
	}
	if m.Role == RoleAssistant {
		msg, err := chatAssistantFromAnthropic(m.Content.Blocks, i)
		if err != nil {
			return nil, err
		}
		return []Message{msg}, nil
	}
	var out []Message
	var parts []ContentPart
	for j, b := range m.Content.Blocks {
		param := fmt.Sprintf("messages.%d.content.%d", i, j)
		switch b.Type {
		case AnthropicText:
			parts = append(parts, ContentPart{Type: PartText, Text: b.Text})
		case AnthropicImage:
			u, err := imageURLFromAnthropic(b.Source, param)
			if err != nil {
				return nil, err
			}
			parts = append(parts, ContentPart{Type: PartImageURL, ImageURL: &ImageURL{URL: u}})
		case AnthropicToolResult:
			msg, err := chatToolMessageFromAnthropic(b, param)
			if err != nil {
				return nil, err
			}
			out = append(out, msg)
		default:
			return nil, anthropicBadRequest(param+".type", "%s: content block type %q is not supported by this gateway", param, b.Type)
		}
	}
	switch {
	case len(parts) == 1 && parts[0].Type == PartText: // the plain form, which every upstream accepts
		out = append(out, Message{Role: RoleUser, Content: TextContent(parts[0].Text)})
	case len(parts) > 0:
		out = append(out, Message{Role: RoleUser, Content: PartsContent(parts...)})
	}
	return out, nil
}

// chatAssistantFromAnthropic joins an assistant message's text blocks into
// its content and turns tool_use blocks into tool calls. Thinking blocks,
// which clients send back unchanged, have no OpenAI form and are dropped.
func chatAssistantFromAnthropic(blocks []AnthropicBlock, i int) (Message, error) {
	msg := Message{Role: RoleAssistant}
	var text strings.Builder
	hasText := false
	for j, b := range blocks {
		switch b.Type {
		case AnthropicText:
			text.WriteString(b.Text)
			hasText = true
		case AnthropicToolUse:
			msg.ToolCalls = append(msg.ToolCalls, ToolCall{ID: b.ID, Type: "function",
				Function: FunctionCall{Name: b.Name, Arguments: anthropicArguments(b.Input)}})
		case "thinking", "redacted_thinking":
		default:
			param := fmt.Sprintf("messages.%d.content.%d.type", i, j)
			return Message{}, anthropicBadRequest(param, "%s: content block type %q is not supported by this gateway", param, b.Type)
		}
	}
	if hasText || len(msg.ToolCalls) == 0 {
		msg.Content = TextContent(text.String())
	}
	return msg, nil
}

// chatToolMessageFromAnthropic turns a tool_result block into a tool
// message. OpenAI has no is_error flag, so an error result says so in its
// text.
func chatToolMessageFromAnthropic(b AnthropicBlock, param string) (Message, error) {
	if b.ToolUseID == "" {
		return Message{}, anthropicBadRequest(param+".tool_use_id", "%s.tool_use_id: field required", param)
	}
	var text string
	if b.Content != nil {
		for j, cb := range b.Content.Blocks {
			if cb.Type != AnthropicText {
				p := fmt.Sprintf("%s.content.%d.type", param, j)
				return Message{}, anthropicBadRequest(p, "%s: only text is supported inside tool_result, not %q", p, cb.Type)
			}
		}
		text = b.Content.String()
	}
	if b.IsError {
		text = "Error: " + text
	}
	return Message{Role: RoleTool, ToolCallID: b.ToolUseID, Content: TextContent(text)}, nil
}

// imageURLFromAnthropic turns an image source into an image URL: base64
// data into a data: URL.
func imageURLFromAnthropic(src *AnthropicImageSource, param string) (string, error) {
	switch {
	case src == nil:
		return "", anthropicBadRequest(param+".source", "%s.source: field required", param)
	case src.Type == "base64" && src.MediaType != "" && src.Data != "":
		return "data:" + src.MediaType + ";base64," + src.Data, nil
	case src.Type == "url" && src.URL != "":
		return src.URL, nil
	}
	return "", anthropicBadRequest(param+".source", "%s.source: only base64 and url image sources are supported", param)
}

// chatToolsFromAnthropic declares client tools as functions. Anthropic's
// server tools run inside Anthropic and cannot be routed elsewhere.
func chatToolsFromAnthropic(tools []AnthropicTool) ([]Tool, error) {
	var out []Tool
	for i, t := range tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, anthropicBadRequest(fmt.Sprintf("tools.%d.type", i), "tools.%d: tool type %q is not supported by this gateway", i, t.Type)
		}
		if t.Name == "" {
			return nil, anthropicBadRequest(fmt.Sprintf("tools.%d.name", i), "tools.%d.name: field required", i)
		}
		out = append(out, Tool{Type: "function", Function: FunctionTool{
			Name: t.Name, Description: t.Description, Parameters: t.InputSchema,
		}})
	}
	return out, nil
}

// chatToolChoiceFromAnthropic sets out's tool_choice (auto→auto,
// any→required, none→none, tool→the named function) and
// parallel_tool_calls.
func chatToolChoiceFromAnthropic(out *ChatRequest, tc *AnthropicToolChoice) error {
	if tc == nil {
		return nil
	}
	switch tc.Type {
	case AnthropicChoiceAuto:
		out.ToolChoice = &ToolChoice{Mode: "auto"}
	case AnthropicChoiceAny:
		out.ToolChoice = &ToolChoice{Mode: "required"}
	case AnthropicChoiceNone:
		out.ToolChoice = &ToolChoice{Mode: "none"}
	case AnthropicChoiceTool:
		if tc.Name == "" {
			return anthropicBadRequest("tool_choice.name", "tool_choice.name: field required")
		}
		out.ToolChoice = &ToolChoice{Function: tc.Name}
	default:
		return anthropicBadRequest("tool_choice.type", "tool_choice.type: %q is not one of auto, any, tool, none", tc.Type)
	}
	if tc.DisableParallelToolUse && len(out.Tools) > 0 {
		if out.Extra == nil {
			out.Extra = map[string]json.RawMessage{}
		}
		out.Extra["parallel_tool_calls"] = json.RawMessage("false")
	}
	return nil
}

// ChatToMessages translates a chat answer into a Messages answer for a
// client that asked for model.
func ChatToMessages(resp *ChatResponse, model string) *MessagesResponse {
	out := &MessagesResponse{
		ID:         anthropicMessageID(resp.ID),
		Type:       "message",
		Role:       RoleAssistant,
		Model:      model,
		Content:    []AnthropicBlock{},
		StopReason: AnthropicEndTurn,
	}
	if len(resp.Choices) > 0 {
		ch := resp.Choices[0]
		switch {
		case ch.Message.Content != nil && *ch.Message.Content != "":
			out.Content = append(out.Content, AnthropicBlock{Type: AnthropicText, Text: *ch.Message.Content})
		case ch.Message.Refusal != nil && *ch.Message.Refusal != "":
			out.Content = append(out.Content, AnthropicBlock{Type: AnthropicText, Text: *ch.Message.Refusal})
		}
		for _, tc := range ch.Message.ToolCalls {
			out.Content = append(out.Content, AnthropicBlock{Type: AnthropicToolUse, ID: tc.ID,
				Name: tc.Function.Name, Input: anthropicInputFromChat(tc.Function.Arguments)})
		}
		out.StopReason = anthropicStopFromFinish(ch.FinishReason)
	}
	out.Usage = anthropicUsageFromChat(resp.Usage)
	return out
}

// anthropicInputFromChat is an upstream's arguments string as Anthropic's
// input object. Anthropic clients require an object, so arguments a model
// got wrong (not JSON, or not an object) become {} and the client's tool
// sees missing arguments rather than the whole answer failing.
func anthropicInputFromChat(args string) json.RawMessage {
	input, err := anthropicInputFromArguments(args)
	if err != nil {
		return json.RawMessage("{}")
	}
	return input
}

// anthropicMessageID gives a chat id Anthropic's "msg_" prefix.
func anthropicMessageID(id string) string {
	if id == "" {
		return "msg_" + anthropicRandomID()
	}
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + id
}

// anthropicRandomID is an id for a message or tool call the upstream did
// not name.
func anthropicRandomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// anthropicStopFromFinish maps a finish reason to a stop reason.
func anthropicStopFromFinish(finish string) string {
	switch finish {
	case FinishLength:
		return AnthropicMaxTokens
	case FinishToolCalls, "function_call":
		return AnthropicStopToolUse
	case FinishContentFilter:
		return AnthropicRefusal
	}
	return AnthropicEndTurn
}

// anthropicUsageFromChat splits the cached prompt tokens out of the input
// tokens, as Anthropic counts them apart.
func anthropicUsageFromChat(u *Usage) AnthropicUsage {
	if u == nil {
		return AnthropicUsage{}
	}
	cached := u.CachedTokens()
	return AnthropicUsage{
		InputTokens:          max(u.PromptTokens-cached, 0),
		OutputTokens:         u.CompletionTokens,
		CacheReadInputTokens: cached,
	}
}

// MessagesStream translates a streamed chat answer into Anthropic's event
// sequence: message_start; for each text run or tool call a
// content_block_start, its deltas and a content_block_stop; message_delta
// with the stop reason and usage; message_stop. A failure ends it with an
// error event. It is not safe for concurrent use.
type MessagesStream struct {
	model   string
	write   func(event string, data any) error
	started bool
	done    bool
	next    int         // index of the next content block
	open    int         // index of the open content block, -1 when none
	tool    bool        // the open block is a tool_use block
	tools   map[int]int // OpenAI tool call index → content block index
	stop    string
	usage   *Usage // from a usage chunk, when one came
}

// NewMessagesStream returns a translator for a stream answering a client
// that asked for model. write sends one server-sent event; data is an
// AnthropicStreamEvent to encode as JSON.
func NewMessagesStream(model string, write func(event string, data any) error) *MessagesStream {
	return &MessagesStream{model: model, write: write, open: -1, tools: map[int]int{}}
}

// Chunk translates one chat chunk. Only the first choice is translated:
// Anthropic answers have one.
func (s *MessagesStream) Chunk(c *ChatChunk) error {
	if s.done {
		return errors.New("gateway: messages stream already finished")
	}
	if c.Usage != nil {
		u := *c.Usage
		s.usage = &u
	}
	if err := s.start(c.ID, c.Usage); err != nil {
		return err
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		if err := s.delta(ch.Delta); err != nil {
			return err
		}
		if ch.FinishReason != nil {
			s.stop = anthropicStopFromFinish(*ch.FinishReason)
		}
	}
	return nil
}

// Finish ends the stream: with message_delta and message_stop, or, when
// err is not nil, with an error event. usage, when not nil, replaces what
// the chunks reported (the gateway may have counted the tokens itself).
func (s *MessagesStream) Finish(usage *Usage, err error) error {
	if s.done {
		return errors.New("gateway: messages stream already finished")
	}
	s.done = true
	if err != nil {
		_, detail := anthropicErrorDetail(err)
		return s.write(AnthropicErrorEvent, AnthropicStreamEvent{Type: AnthropicErrorEvent, Error: &detail})
	}
	if usage == nil {
		usage = s.usage
	}
	if err := s.start("", usage); err != nil {
		return err
	}
	if err := s.closeBlock(); err != nil {
		return err
	}
	stop := s.stop
	if stop == "" {
		stop = AnthropicEndTurn
	}
	u := anthropicUsageFromChat(usage)
	if err := s.write(AnthropicMessageDelta, AnthropicStreamEvent{Type: AnthropicMessageDelta,
		Delta: AnthropicDelta{StopReason: stop}, Usage: &u}); err != nil {
		return err
	}
	return s.write(AnthropicMessageStop, AnthropicStreamEvent{Type: AnthropicMessageStop})
}

// start sends message_start once, with the input tokens when already known.
func (s *MessagesStream) start(id string, usage *Usage) error {
	if s.started {
		return nil
	}
	s.started = true
	u := anthropicUsageFromChat(usage)
	u.OutputTokens = 0
	return s.write(AnthropicMessageStart, AnthropicStreamEvent{Type: AnthropicMessageStart, Message: &MessagesResponse{
		ID: anthropicMessageID(id), Type: "message", Role: RoleAssistant, Model: s.model, Usage: u,
	}})
}

// delta sends a chunk's text and tool call fragments. Text after a tool
// call, or a new tool call, opens a new block and closes the previous one.
func (s *MessagesStream) delta(d Delta) error {
	text := ""
	switch {
	case d.Content != nil:
		text = *d.Content
	case d.Refusal != nil:
		text = *d.Refusal
	}
	if text != "" {
		if s.open < 0 || s.tool {
			if err := s.openBlock(AnthropicBlock{Type: AnthropicText}); err != nil {
				return err
			}
		}
		if err := s.write(AnthropicContentBlockDelta, AnthropicStreamEvent{Type: AnthropicContentBlockDelta, Index: s.open,
			Delta: AnthropicDelta{Type: AnthropicTextDelta, Text: text}}); err != nil {
			return err
		}
	}
	for _, tc := range d.ToolCalls {
		if err := s.toolCall(tc); err != nil {
			return err
		}
	}
	return nil
}

// toolCall opens a tool_use block for a tool call's first fragment and
// sends its argument pieces as input_json_delta.
func (s *MessagesStream) toolCall(tc ToolCallDelta) error {
	fn := tc.Function
	if fn == nil {
		fn = &FunctionCallDelta{}
	}
	block, seen := s.tools[tc.Index]
	switch {
	case !seen:
		id := tc.ID
		if id == "" {
			id = "toolu_" + anthropicRandomID()
		}
		if err := s.openBlock(AnthropicBlock{Type: AnthropicToolUse, ID: id, Name: fn.Name, Input: json.RawMessage("{}")}); err != nil {
			return err
		}
		s.tools[tc.Index] = s.open
		block = s.open
	case block != s.open:
		// Anthropic's blocks do not interleave; OpenAI-compatible
		// upstreams send one tool call after another.
		return fmt.Errorf("gateway: tool call %d continued after another content block", tc.Index)
	}
	if fn.Arguments == "" {
		return nil
	}
	return s.write(AnthropicContentBlockDelta, AnthropicStreamEvent{Type: AnthropicContentBlockDelta, Index: block,
		Delta: AnthropicDelta{Type: AnthropicInputJSONDelta, PartialJSON: fn.Arguments}})
}

// openBlock closes the open block and starts b as the next one.
func (s *MessagesStream) openBlock(b AnthropicBlock) error {
	if err := s.closeBlock(); err != nil {
		return err
	}
	s.open, s.tool = s.next, b.Type == AnthropicToolUse
	s.next++
	return s.write(AnthropicContentBlockStart, AnthropicStreamEvent{Type: AnthropicContentBlockStart, Index: s.open, ContentBlock: &b})
}

// closeBlock sends content_block_stop for the open block, if any.
func (s *MessagesStream) closeBlock() error {
	if s.open < 0 {
		return nil
	}
	i := s.open
	s.open = -1
	return s.write(AnthropicContentBlockStop, AnthropicStreamEvent{Type: AnthropicContentBlockStop, Index: i})
}

// anthropicErrorDetail is the Anthropic error for a failure of the
// gateway or its upstream. Only messages meant for clients are passed on:
// a gateway *Error's, an upstream's error body; anything else is described
// by its class alone.
func anthropicErrorDetail(err error) (int, AnthropicErrorDetail) {
	var e *Error
	if errors.As(err, &e) {
		return anthropicDetail(e)
	}
	if ue, ok := AsUpstreamError(err); ok {
		if ue.Err != nil {
			return anthropicDetail(ue.Err)
		}
		status := ue.Status
		switch {
		case ue.Class == ErrClassTimeout:
			status = http.StatusGatewayTimeout
		case status < 400:
			status = http.StatusBadGateway
		}
		return status, AnthropicErrorDetail{Type: anthropicTypeForStatus(status),
			Message: fmt.Sprintf("the upstream model failed (%s)", ue.Class)}
	}
	return http.StatusInternalServerError, AnthropicErrorDetail{Type: AnthropicAPIError, Message: "internal error"}
}
