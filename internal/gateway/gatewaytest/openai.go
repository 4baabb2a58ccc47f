package gatewaytest

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strconv"
)

// The fake's OpenAI answers, built by appending to the call's buffer.
// Every answer has the id "chatcmpl-fake" and created 1700000000, and
// echoes the request's model.

// chat answers POST /v1/chat/completions, as JSON or as a stream.
func (u *Upstream) chat(c *call) {
	if c.req.Stream {
		c.chatStream()
		return
	}
	tool := c.toolName()
	b := c.out[:0]
	b = append(b, `{"id":"chatcmpl-fake","object":"chat.completion","created":1700000000,"model":`...)
	b = appendString(b, c.req.Model)
	b = append(b, `,"system_fingerprint":"fp_fake","choices":[{"index":0,"message":{"role":"assistant","content":`...)
	completion := c.s.completion
	if tool == "" {
		b = append(b, c.s.textJSON...)
		b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"stop"}]`...)
	} else {
		completion = c.s.completionTC
		b = append(b, `null,"refusal":null,"tool_calls":[{"id":"call_fake_1","type":"function","function":{"name":`...)
		b = appendString(b, tool)
		b = append(b, `,"arguments":`...)
		b = append(b, c.s.argsJSON...)
		b = append(b, `}}]},"logprobs":null,"finish_reason":"tool_calls"}]`...)
	}
	if !c.s.OmitUsage {
		b = append(b, `,"usage":`...)
		b = appendUsage(b, c.promptTokens(), completion)
	}
	c.out = append(b, '}')
	c.writeBody(http.StatusOK, "application/json", c.out)
}

func appendUsage(b []byte, prompt, completion int64) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, prompt, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, completion, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, prompt+completion, 10)
	return append(b, `,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}}`...)
}

// chatStream streams the answer: a role chunk, the content (or a tool
// call's arguments) in pieces, a finish chunk, the usage chunk when asked
// for, and [DONE], with the script's breaks.
func (c *call) chatStream() {
	tool := c.toolName()
	c.startStream()
	pieces, finish, completion := c.s.pieces, "stop", c.s.completion
	open, closing := `{"content":`, `}`
	name := []byte(nil)
	if tool != "" {
		pieces, finish, completion = c.s.argPieces, "tool_calls", c.s.completionTC
		open, closing = `{"tool_calls":[{"index":0,"function":{"arguments":`, `}}]}`
		name = appendString(nil, tool)
	}
	if tool == "" && !c.sendChunk(`{"role":"assistant","content":""}`, nil, "", "") ||
		tool != "" && !c.sendChunk(`{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_fake_1","type":"function","function":{"name":`,
			name, `,"arguments":""}}]}`, "") {
		return
	}
	for i, p := range pieces {
		if c.s.Break != BreakNone && i == c.s.BreakAfter {
			c.breakStream()
			return
		}
		if !c.wait(c.s.ChunkInterval) {
			return
		}
		if !c.sendChunk(open, p, closing, "") {
			return
		}
	}
	if c.s.Break != BreakNone {
		c.breakStream()
		return
	}
	if !c.wait(c.s.ChunkInterval) || !c.sendChunk("{}", nil, "", finish) {
		return
	}
	if c.req.StreamOptions != nil && c.req.StreamOptions.IncludeUsage && !c.s.OmitUsage {
		b := c.chunkHead(c.out[:0])
		b = append(b, `[],"usage":`...)
		b = appendUsage(b, c.promptTokens(), completion)
		c.out = append(b, "}\n\n"...)
		if !c.send(c.out) {
			return
		}
	}
	c.send([]byte("data: [DONE]\n\n"))
}

// chunkHead starts a chunk event, up to the value of "choices".
func (c *call) chunkHead(b []byte) []byte {
	b = append(b, `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":`...)
	b = appendString(b, c.req.Model)
	return append(b, `,"system_fingerprint":"fp_fake","choices":`...)
}

// sendChunk sends a one-choice chunk whose delta is open, value and
// closing put together, with a finish reason ("" for null).
func (c *call) sendChunk(open string, value []byte, closing, finish string) bool {
	b := c.chunkHead(c.out[:0])
	b = append(b, `[{"index":0,"delta":`...)
	b = append(b, open...)
	b = append(b, value...)
	b = append(b, closing...)
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, finish)
	}
	c.out = append(b, "}],\"usage\":null}\n\n"...)
	return c.send(c.out)
}

// breakStream cuts an OpenAI stream as the script says.
func (c *call) breakStream() {
	switch c.s.Break {
	case BreakStall:
		c.block()
	case BreakError:
		msg := "The server had an error while processing your request."
		if c.s.BreakEchoHeader != "" {
			msg += " " + c.r.Header.Get(c.s.BreakEchoHeader)
		}
		b := append(c.out[:0], `data: {"error":{"message":`...)
		b = appendString(b, msg)
		c.out = append(b, `,"type":"server_error","param":null,"code":null}}`+"\n\n"...)
		c.send(c.out)
	}
}

// embeddings answers POST /v1/embeddings with EmbeddingVector of each
// input, as floats or base64 as asked (or as the script forces).
func (u *Upstream) embeddings(c *call) {
	inputs, err := embeddingInputs(c.req.Input)
	if err != nil {
		c.fail(http.StatusBadRequest, err.Error())
		return
	}
	format := c.req.Format
	if c.s.EmbeddingFormat != "" {
		format = c.s.EmbeddingFormat
	}
	b := c.out[:0]
	b = append(b, `{"object":"list","data":[`...)
	var prompt int64
	for i, in := range inputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		b = appendVector(b, EmbeddingVector(in, c.s.embedDims), format == "base64")
		b = append(b, '}')
		prompt += int64(len(in)+3) / 4
	}
	b = append(b, `],"model":`...)
	b = appendString(b, c.req.Model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, prompt, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, prompt, 10)
	c.out = append(b, "}}"...)
	c.writeBody(http.StatusOK, "application/json", c.out)
}

// embeddingInputs returns the texts of an embeddings input: a string, a
// list of strings, a token array (its JSON text stands for it) or a list
// of token arrays.
func embeddingInputs(raw json.RawMessage) ([]string, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
		return nil, fmt.Errorf("input must be a string, a list of strings or token arrays")
	}
	if len(items[0]) > 0 && items[0][0] != '"' && items[0][0] != '[' {
		return []string{string(raw)}, nil // one token array
	}
	out := make([]string, len(items))
	for i, it := range items {
		if json.Unmarshal(it, &out[i]) != nil {
			out[i] = string(it)
		}
	}
	return out, nil
}

// EmbeddingVector is the fake's vector for a text: dims values in
// [-1, 1), derived from a hash of the text, each exact in float32 so it
// survives float text and base64 alike.
func EmbeddingVector(text string, dims int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(text))
	seed := h.Sum64()
	v := make([]float32, dims)
	for i := range v {
		x := splitmix64(seed + uint64(i))
		v[i] = float32(x>>40)/float32(1<<23) - 1 // 24 bits: exact in float32
	}
	return v
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// appendVector appends v as a JSON array of floats, or as a base64 string
// of little-endian float32 values.
func appendVector(b []byte, v []float32, asBase64 bool) []byte {
	if asBase64 {
		bin := make([]byte, 4*len(v))
		for i, f := range v {
			binary.LittleEndian.PutUint32(bin[4*i:], math.Float32bits(f))
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, bin)
		return append(b, '"')
	}
	b = append(b, '[')
	for i, f := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	}
	return append(b, ']')
}

// transcription answers POST /v1/audio/transcriptions in the requested
// response_format: json, text, verbose_json, srt or vtt.
func (u *Upstream) transcription(c *call) {
	form, file := c.form, c.file
	if form == nil || c.formErr != nil {
		c.fail(http.StatusBadRequest, "the request is not a multipart form")
		return
	}
	if file == nil || len(form["model"]) == 0 {
		c.fail(http.StatusBadRequest, "a transcription needs a file and a model")
		return
	}
	text, secs := c.s.transcript, c.s.AudioSeconds
	if secs == 0 {
		secs = 1.5
	}
	format := ""
	if f := form["response_format"]; len(f) > 0 {
		format = f[0]
	}
	b := c.out[:0]
	switch format {
	case "", "json":
		b = append(b, `{"text":`...)
		b = appendString(b, text)
		b = append(b, `,"usage":{"type":"duration","seconds":`...)
		b = strconv.AppendInt(b, int64(math.Ceil(secs)), 10)
		b = append(b, "}}"...)
	case "verbose_json":
		lang := "english"
		if l := form["language"]; len(l) > 0 {
			lang = l[0]
		}
		b = append(b, `{"task":"transcribe","language":`...)
		b = appendString(b, lang)
		b = append(b, `,"duration":`...)
		b = strconv.AppendFloat(b, secs, 'f', -1, 64)
		b = append(b, `,"text":`...)
		b = appendString(b, text)
		b = append(b, `,"segments":[{"id":0,"seek":0,"start":0,"end":`...)
		b = strconv.AppendFloat(b, secs, 'f', -1, 64)
		b = append(b, `,"text":`...)
		b = appendString(b, text)
		b = append(b, `,"tokens":[],"temperature":0,"avg_logprob":-0.1,"compression_ratio":1,"no_speech_prob":0}],"usage":{"type":"duration","seconds":`...)
		b = strconv.AppendInt(b, int64(math.Ceil(secs)), 10)
		b = append(b, "}}"...)
	case "text":
		c.out = append(append(b, text...), '\n')
		c.writeBody(http.StatusOK, "text/plain", c.out)
		return
	case "srt":
		c.out = fmt.Appendf(b, "1\n00:00:00,000 --> %s\n%s\n\n", timestamp(secs, ','), text)
		c.writeBody(http.StatusOK, "text/plain", c.out)
		return
	case "vtt":
		c.out = fmt.Appendf(b, "WEBVTT\n\n00:00:00.000 --> %s\n%s\n\n", timestamp(secs, '.'), text)
		c.writeBody(http.StatusOK, "text/plain", c.out)
		return
	default:
		c.fail(http.StatusBadRequest, "response_format must be json, text, srt, verbose_json or vtt")
		return
	}
	c.out = b
	c.writeBody(http.StatusOK, "application/json", c.out)
}

// timestamp formats seconds as hh:mm:ss followed by sep and milliseconds.
func timestamp(secs float64, sep byte) string {
	ms := int64(math.Round(secs * 1000))
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", ms/3600000, ms/60000%60, ms/1000%60, sep, ms%1000)
}
