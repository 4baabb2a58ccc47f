package gatewaytest

import (
	"net/http"
	"strconv"
)

// The fake's Anthropic answers. Every message has the id "msg_fake" and
// echoes the request's model; a tool call has the id "toolu_fake_1".

// messages answers POST /v1/messages, as JSON or as a stream.
func (u *Upstream) messages(c *call) {
	if c.req.Stream {
		c.messagesStream()
		return
	}
	tool := c.toolName()
	b := c.out[:0]
	b = append(b, `{"id":"msg_fake","type":"message","role":"assistant","model":`...)
	b = appendString(b, c.req.Model)
	completion := c.s.completion
	if tool == "" {
		b = append(b, `,"content":[{"type":"text","text":`...)
		b = append(b, c.s.textJSON...)
		b = append(b, `}],"stop_reason":"end_turn"`...)
	} else {
		completion = c.s.completionTC
		b = append(b, `,"content":[{"type":"tool_use","id":"toolu_fake_1","name":`...)
		b = appendString(b, tool)
		b = append(b, `,"input":`...)
		b = append(b, c.s.toolInput()...)
		b = append(b, `}],"stop_reason":"tool_use"`...)
	}
	b = append(b, `,"stop_sequence":null,"usage":`...)
	b = appendAnthropicUsage(b, c.promptTokens(), completion)
	c.out = append(b, '}')
	c.writeBody(http.StatusOK, "application/json", c.out)
}

// toolInput is the tool call's arguments as a JSON object.
func (s *compiled) toolInput() string {
	if s.argsRaw == "" {
		return "{}"
	}
	return s.argsRaw
}

func appendAnthropicUsage(b []byte, input, output int64) []byte {
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, input, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, output, 10)
	return append(b, '}')
}

// messagesStream streams the answer as Anthropic does: message_start,
// one content block (text deltas, or a tool_use block with input_json
// deltas) with a ping after its start, message_delta with the stop reason
// and output tokens, and message_stop, with the script's breaks.
func (c *call) messagesStream() {
	tool := c.toolName()
	c.startStream()
	b := append(c.out[:0], "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"...)
	b = appendString(b, c.req.Model)
	b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	b = appendAnthropicUsage(b, c.promptTokens(), 1)
	c.out = append(b, "}}\n\n"...)
	if !c.send(c.out) {
		return
	}

	pieces, stop, completion := c.s.pieces, "end_turn", c.s.completion
	open, closing := `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`, "}}\n\n"
	b = append(c.out[:0], "event: content_block_start\ndata: "...)
	if tool == "" {
		b = append(b, `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`...)
	} else {
		pieces, stop, completion = c.s.argPieces, "tool_use", c.s.completionTC
		open = `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":`
		b = append(b, `{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_fake_1","name":`...)
		b = appendString(b, tool)
		b = append(b, `,"input":{}}}`...)
	}
	c.out = append(b, "\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n"...)
	if !c.send(c.out) {
		return
	}
	for i, p := range pieces {
		if c.s.Break != BreakNone && i == c.s.BreakAfter {
			c.breakMessages()
			return
		}
		if !c.wait(c.s.ChunkInterval) {
			return
		}
		b = append(c.out[:0], "event: content_block_delta\ndata: "...)
		b = append(b, open...)
		b = append(b, p...)
		c.out = append(b, closing...)
		if !c.send(c.out) {
			return
		}
	}
	if c.s.Break != BreakNone {
		c.breakMessages()
		return
	}
	if !c.wait(c.s.ChunkInterval) {
		return
	}
	b = append(c.out[:0], "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"...)
	b = append(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"...)
	b = appendString(b, stop)
	b = append(b, `,"stop_sequence":null},"usage":{"output_tokens":`...)
	b = strconv.AppendInt(b, completion, 10)
	c.out = append(b, "}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
	c.send(c.out)
}

// breakMessages cuts an Anthropic stream as the script says.
func (c *call) breakMessages() {
	switch c.s.Break {
	case BreakStall:
		c.block()
	case BreakError:
		msg := "Overloaded"
		if c.s.BreakEchoHeader != "" {
			msg += " " + c.r.Header.Get(c.s.BreakEchoHeader)
		}
		b := append(c.out[:0], "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"...)
		b = appendString(b, msg)
		c.out = append(b, "}}\n\n"...)
		c.send(c.out)
	}
}
