package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nodus-os/nodus/internal/egress"
)

// ChatStream makes a streaming call and translates Anthropic's events into
// OpenAI chunks: a first chunk with the assistant role, content and tool
// call fragments, a finish chunk, then a usage chunk. The deployment's
// timeout bounds the wait for the answer's headers and every gap between
// two events, so a stalled upstream ends in an ErrClassTimeout error.
func (p *AnthropicProvider) ChatStream(ctx context.Context, up *Upstream, req *ChatRequest, emit func(*ChatChunk) error) error {
	body, err := anthropicRequestBody(up, req, true)
	if err != nil {
		return err
	}
	timeout := anthropicTimeout(up)
	callCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// One timer cancels the call when the upstream is silent for too long.
	// It is stopped while emit runs, so a slow client is not taken for a
	// stalled upstream; the handler bounds slow clients itself.
	stall := time.AfterFunc(timeout, func() { cancel(errAnthropicTimeout) })
	defer stall.Stop()

	resp, err := anthropicPost(callCtx, up, body)
	if err != nil {
		return anthropicTransportError(ctx, callCtx, 0, err)
	}
	if resp.StatusCode/100 != 2 {
		return anthropicStatusError(resp, up.APIKey, p.now())
	}
	egress.LimitBody(resp, anthropicMaxStream)
	defer resp.Body.Close()

	events := NewSSEReader(resp.Body, anthropicMaxLine)
	if b := streamBatchFrom(ctx); b != nil {
		// Flush what is held before waiting on the upstream; a slow client
		// there is not the upstream stalling.
		events.BeforeWait = func() {
			stall.Stop()
			b.flush()
			stall.Reset(timeout)
		}
		b.held = true
		defer func() { b.held = false }()
	}
	c := anthropicChunker{created: p.now().Unix(), tools: map[int]int{}, key: up.APIKey}
	for {
		stall.Reset(timeout)
		ev, err := events.Next()
		stall.Stop()
		if errors.Is(err, io.EOF) && callCtx.Err() == nil {
			return &UpstreamError{Status: resp.StatusCode, Class: ErrClassConnection,
				Cause: errors.New("anthropic: the stream ended before message_stop")}
		}
		if err != nil {
			return anthropicTransportError(ctx, callCtx, resp.StatusCode, err)
		}
		done, err := c.handle(ev.Name, ev.Data, emit)
		if err != nil || done {
			return err
		}
	}
}

// anthropicChunker turns one stream's events into OpenAI chunks. It keeps
// what later chunks need: the message id and model, the usage so far, and
// which content blocks are tool calls.
type anthropicChunker struct {
	created   int64
	id, model string
	usage     AnthropicUsage
	tools     map[int]int // Anthropic content block index → OpenAI tool call index
	finished  bool        // the finish chunk was emitted
	key       string      // the provider key, cut out of error messages
}

// handle translates one event's data; done is true after message_stop.
// Errors from emit are returned as they are.
func (c *anthropicChunker) handle(name string, data []byte, emit func(*ChatChunk) error) (done bool, err error) {
	var ev AnthropicStreamEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return false, &UpstreamError{Status: 200, Class: ErrClassBadResponse,
			Cause: fmt.Errorf("anthropic: decode %s event: %w", name, err)}
	}
	if ev.Type == "" {
		ev.Type = name
	}
	switch ev.Type {
	case AnthropicMessageStart:
		if ev.Message == nil {
			return false, &UpstreamError{Status: 200, Class: ErrClassBadResponse,
				Cause: errors.New("anthropic: message_start event without a message")}
		}
		c.id, c.model, c.usage = ev.Message.ID, ev.Message.Model, ev.Message.Usage
		empty := ""
		return false, emit(c.chunk(Delta{Role: RoleAssistant, Content: &empty}))
	case AnthropicContentBlockStart:
		return false, c.blockStart(ev, emit)
	case AnthropicContentBlockDelta:
		return false, c.blockDelta(ev, emit)
	case AnthropicMessageDelta:
		if ev.Usage != nil {
			c.addUsage(*ev.Usage)
		}
		return false, c.finish(ev.Delta.StopReason, emit)
	case AnthropicMessageStop:
		if err := c.finish("", emit); err != nil {
			return false, err
		}
		usage := anthropicChatUsage(c.usage)
		chunk := c.chunk(Delta{})
		chunk.Choices, chunk.Usage = nil, &usage
		return true, emit(chunk)
	case AnthropicErrorEvent:
		var detail AnthropicErrorDetail
		if ev.Error != nil {
			detail = *ev.Error
		}
		// The answer's status was 200; the error's type says which status
		// Anthropic would have answered with, and so how to route.
		status := anthropicStatusForType(detail.Type)
		return false, &UpstreamError{Status: status, Class: ClassifyStatus(status), Err: openAIErrorFromAnthropic(status, detail, c.key)}
	}
	return false, nil // ping, content_block_stop and new event types carry nothing to translate
}

// blockStart opens a text block (usually empty) or a tool call, whose
// first fragment carries its id and name at the next tool call index.
func (c *anthropicChunker) blockStart(ev AnthropicStreamEvent, emit func(*ChatChunk) error) error {
	b := ev.ContentBlock
	if b == nil {
		return &UpstreamError{Status: 200, Class: ErrClassBadResponse,
			Cause: errors.New("anthropic: content_block_start event without a content block")}
	}
	switch b.Type {
	case AnthropicText:
		if b.Text != "" {
			return emit(c.chunk(Delta{Content: &b.Text}))
		}
	case AnthropicToolUse:
		i := len(c.tools)
		c.tools[ev.Index] = i
		return emit(c.chunk(Delta{ToolCalls: []ToolCallDelta{{
			Index: i, ID: b.ID, Type: "function", Function: &FunctionCallDelta{Name: b.Name},
		}}}))
	}
	return nil
}

// blockDelta passes on text and pieces of a tool call's input JSON.
// Deltas of blocks with no OpenAI form (thinking, server tools) are
// dropped.
func (c *anthropicChunker) blockDelta(ev AnthropicStreamEvent, emit func(*ChatChunk) error) error {
	switch ev.Delta.Type {
	case AnthropicTextDelta:
		if ev.Delta.Text != "" {
			text := ev.Delta.Text
			return emit(c.chunk(Delta{Content: &text}))
		}
	case AnthropicInputJSONDelta:
		i, ok := c.tools[ev.Index]
		if ok && ev.Delta.PartialJSON != "" {
			return emit(c.chunk(Delta{ToolCalls: []ToolCallDelta{{
				Index: i, Function: &FunctionCallDelta{Arguments: ev.Delta.PartialJSON},
			}}}))
		}
	}
	return nil
}

// finish emits the finish chunk once, from message_delta's stop reason or,
// failing that, at message_stop.
func (c *anthropicChunker) finish(stop string, emit func(*ChatChunk) error) error {
	if c.finished {
		return nil
	}
	c.finished = true
	reason := anthropicFinishReason(stop)
	chunk := c.chunk(Delta{})
	chunk.Choices[0].FinishReason = &reason
	return emit(chunk)
}

// addUsage merges message_delta's usage: output tokens are a running
// total; input and cache counts, when present, replace message_start's.
func (c *anthropicChunker) addUsage(u AnthropicUsage) {
	c.usage.OutputTokens = u.OutputTokens
	if u.InputTokens > 0 {
		c.usage.InputTokens = u.InputTokens
	}
	if u.CacheReadInputTokens > 0 {
		c.usage.CacheReadInputTokens = u.CacheReadInputTokens
	}
	if u.CacheCreationInputTokens > 0 {
		c.usage.CacheCreationInputTokens = u.CacheCreationInputTokens
	}
}

// chunk is a chunk of the stream with one choice holding delta.
func (c *anthropicChunker) chunk(delta Delta) *ChatChunk {
	return &ChatChunk{
		ID:      c.id,
		Object:  "chat.completion.chunk",
		Created: c.created,
		Model:   c.model,
		Choices: []ChunkChoice{{Index: 0, Delta: delta}},
	}
}
