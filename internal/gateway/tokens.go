package gateway

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
)

// This file counts tokens locally, for streams whose provider sent no
// usage (a client that went away, a server that never reports it) and for
// budget reservations. It uses OpenAI's own BPE encodings, embedded in the
// binary by tiktoken-go-loader, so nothing is downloaded at run time; a
// model of another family is counted with cl100k_base, which is close
// enough for billing estimates, and the spend log marks such figures
// estimated.

// Encoding names.
const (
	encodingO200K  = tiktoken.MODEL_O200K_BASE  // gpt-4o, gpt-4.1, gpt-4.5, gpt-5, the o-series
	encodingCL100K = tiktoken.MODEL_CL100K_BASE // gpt-4, gpt-3.5, the embeddings models, and the fallback
)

// OpenAI cookbook's chat overhead ("How to count tokens with tiktoken"):
// every message is wrapped in <|start|>{role}\n{content}<|end|>\n, a name
// costs one token more, and every reply is primed with
// <|start|>assistant<|message|>.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	tokensReplyPrime = 3
	// tokensPerImage is the price of one low-detail image, the least an
	// image costs on OpenAI; the gateway never fetches images to size them.
	tokensPerImage = 85
)

// encoders holds the two encodings, each loaded on its first use: loading
// one takes a few hundred milliseconds and tens of megabytes, which a
// gateway that always gets usage from its providers never pays. These are
// caches of immutable data, not state: every caller sees the same value.
var encoders = map[string]func() (*tiktoken.Tiktoken, error){
	encodingO200K:  sync.OnceValues(func() (*tiktoken.Tiktoken, error) { return loadEncoding(encodingO200K) }),
	encodingCL100K: sync.OnceValues(func() (*tiktoken.Tiktoken, error) { return loadEncoding(encodingCL100K) }),
}

// setOfflineLoader points tiktoken-go, whose default loader downloads the
// ranks from OpenAI, at the embedded copy, once for the whole process.
var setOfflineLoader = sync.OnceFunc(func() { tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader()) })

func loadEncoding(name string) (*tiktoken.Tiktoken, error) {
	setOfflineLoader()
	return tiktoken.GetEncoding(name)
}

// encodingFor names the encoding of a model: o200k_base for the gpt-4o,
// gpt-4.1, gpt-4.5, gpt-5 and o-series families, cl100k_base otherwise.
// A provider prefix ("openai/gpt-4o", "azure/o3-mini") is ignored.
func encodingFor(model string) string {
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	model = strings.ToLower(model)
	for _, p := range []string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "codex-"} {
		if strings.HasPrefix(model, p) {
			return encodingO200K
		}
	}
	if len(model) >= 2 && model[0] == 'o' && model[1] >= '1' && model[1] <= '9' {
		return encodingO200K // o1, o3-mini, o4-mini, …
	}
	return encodingCL100K
}

// CountTokens is the number of tokens text encodes to for model. Special
// tokens in text ("<|endoftext|>") count as the plain text they are, as
// the API treats user input. If the encoding cannot be loaded it falls
// back to ApproxTokens.
func CountTokens(model, text string) int64 {
	return countWith(encoders[encodingFor(model)], text)
}

// countWith counts text's tokens in the encoding load returns, or
// approximately when it cannot be loaded.
func countWith(load func() (*tiktoken.Tiktoken, error), text string) int64 {
	if text == "" {
		return 0
	}
	enc, err := load()
	if err != nil {
		return ApproxTokens(text)
	}
	return int64(len(enc.EncodeOrdinary(text)))
}

// CountCompletionTokens is the number of tokens of a reply's text, the
// completion tokens of a stream whose provider sent no usage. The reply's
// priming tokens are part of the prompt (CountChatTokens), not of this.
func CountCompletionTokens(model, text string) int64 {
	return CountTokens(model, text)
}

// CountChatTokens estimates the prompt tokens of a chat request the way
// OpenAI's cookbook does: each message's role, content and name, plus a
// fixed overhead per message and for the reply. Tool calls count as their
// name and arguments, tool definitions as their JSON, and an image as the
// least it can cost. Providers add a few tokens of their own for tools, so
// a count for a request with tools is a slight underestimate.
func CountChatTokens(model string, req *ChatRequest) int64 {
	enc := encoders[encodingFor(model)]
	return chatTokens(req, func(text string) int64 { return countWith(enc, text) })
}

// ChatTokensBound is an upper bound of CountChatTokens that reads no
// tokenizer: every token of a byte-pair encoding covers at least one byte,
// so a text has at most as many tokens as bytes (one more for the
// word-based fallback of a one-byte text). Admission reserves with it and
// counts exactly only when the bound alone would be refused.
func ChatTokensBound(req *ChatRequest) int64 {
	return chatTokens(req, textTokensBound)
}

func textTokensBound(text string) int64 {
	if text == "" {
		return 0
	}
	return int64(len(text)) + 1
}

// chatTokens adds up a request's prompt tokens with count as the tokens
// of one text.
func chatTokens(req *ChatRequest, count func(string) int64) int64 {
	n := int64(tokensReplyPrime)
	for i := range req.Messages {
		n += messageTokens(&req.Messages[i], count)
	}
	if len(req.Tools) > 0 {
		if b, err := json.Marshal(req.Tools); err == nil {
			n += count(string(b))
		}
	}
	return n
}

func messageTokens(m *Message, count func(string) int64) int64 {
	n := int64(tokensPerMessage) + count(m.Role)
	if m.Name != "" {
		n += tokensPerName + count(m.Name)
	}
	if m.Content.Parts == nil {
		n += count(m.Content.Text)
	}
	for _, p := range m.Content.Parts {
		switch p.Type {
		case PartText:
			n += count(p.Text)
		case PartImageURL:
			n += tokensPerImage
		}
	}
	for _, tc := range m.ToolCalls {
		n += count(tc.Function.Name) + count(tc.Function.Arguments)
	}
	if m.ToolCallID != "" {
		n += count(m.ToolCallID)
	}
	return n
}
