package gateway

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// ExtractiveModel is the built-in model that answers without any network by
// quoting the context passages it is given.
const ExtractiveModel = "nodus/extractive"

// The source convention, which the chat module follows when it sends context:
// a source starts on a line beginning with "[n] " (n a positive integer) and
// runs until the next such line or the end of the message. Sources are read
// from every system, developer and user message; text before the first marker
// is instructions and is ignored. If a number repeats, its first passage is
// kept. The question is the last user message with its source blocks removed.
//
//	Answer from the sources below.
//	[1] Refunds are issued within 14 days. They go to the original card.
//	[2] Shipping is free above 50 euros.
var sourceMarker = regexp.MustCompile(`^\s*\[(\d{1,6})\]\s+`)

// Answer texts. They say plainly that the answer is extractive.
const (
	extractivePrefix  = "Extractive answer (quoted from the provided sources by nodus/extractive, not written by a language model):\n"
	noSourcesAnswer   = "I have no source material to answer from. This is nodus/extractive, the built-in extractive model: it can only quote sources supplied with the question, and none were supplied."
	noMatchAnswer     = "None of the provided sources matches the question. This is nodus/extractive, the built-in extractive model: it only quotes the sources it is given and does not write answers of its own."
	defaultMaxQuotes  = 3
	lengthNormDivisor = 10.0
)

// Extractive is the nodus/extractive model. Its answers depend only on the
// request, so tests and offline installs get the same answer every time.
//
// Scoring: words are lower-cased runs of letters and digits; stop words are
// dropped and a plural "s" is trimmed from words longer than four letters.
// A sentence scores overlap / sqrt(1 + terms/10), where overlap is the number
// of distinct question terms it contains and terms its number of distinct
// terms: overlap dominates, and among equal overlaps shorter sentences win.
// The best MaxQuotes sentences with a positive score are quoted, best first;
// ties go to the lower source number, then the earlier sentence.
//
// Sentences end at '.', '!' or '?' followed by a space, or at a line break.
//
// It never calls tools and ignores stop, temperature and response_format; it
// honours n (identical choices) and max_tokens / max_completion_tokens (the
// answer is cut at a word boundary and finish_reason is "length").
type Extractive struct {
	MaxQuotes int // sentences quoted at most; 0 means 3
}

// Source is one numbered context passage.
type Source struct {
	N    int
	Text string
}

// ParseSources returns the numbered sources of a request, by number.
func ParseSources(req *ChatRequest) []Source {
	var out []Source
	seen := map[int]bool{}
	for _, m := range req.Messages {
		if m.Role != RoleSystem && m.Role != RoleDeveloper && m.Role != RoleUser {
			continue
		}
		srcs, _ := splitSources(m.Content.String())
		for _, s := range srcs {
			if !seen[s.N] {
				seen[s.N] = true
				out = append(out, s)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Source) int { return cmp.Compare(a.N, b.N) })
	return out
}

// splitSources splits text into its sources and the text outside them.
func splitSources(text string) (sources []Source, rest string) {
	var restLines []string
	cur := -1
	for line := range strings.SplitSeq(text, "\n") {
		if m := sourceMarker.FindStringSubmatchIndex(line); m != nil {
			n, err := strconv.Atoi(line[m[2]:m[3]])
			if err == nil && n > 0 {
				sources = append(sources, Source{N: n, Text: strings.TrimSpace(line[m[1]:])})
				cur = len(sources) - 1
				continue
			}
		}
		if cur >= 0 {
			if t := strings.TrimSpace(line); t != "" {
				sources[cur].Text = strings.TrimSpace(sources[cur].Text + "\n" + t)
			}
			continue
		}
		restLines = append(restLines, line)
	}
	return sources, strings.TrimSpace(strings.Join(restLines, "\n"))
}

// question is the last user message without its source blocks.
func question(req *ChatRequest) string {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == RoleUser {
			_, q := splitSources(req.Messages[i].Content.String())
			return q
		}
	}
	return ""
}

// Answer returns the answer text, before any token limit.
func (e Extractive) Answer(req *ChatRequest) string {
	sources := ParseSources(req)
	if len(sources) == 0 {
		return noSourcesAnswer
	}
	q := termSet(question(req))
	type quote struct {
		source, pos int
		text        string
		score       float64
	}
	var quotes []quote
	for _, s := range sources {
		for pos, sent := range sentences(s.Text) {
			terms := termSet(sent)
			overlap := 0
			for t := range terms {
				if q[t] {
					overlap++
				}
			}
			if overlap == 0 {
				continue
			}
			score := float64(overlap) / math.Sqrt(1+float64(len(terms))/lengthNormDivisor)
			quotes = append(quotes, quote{s.N, pos, sent, score})
		}
	}
	if len(quotes) == 0 {
		return noMatchAnswer
	}
	slices.SortStableFunc(quotes, func(a, b quote) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.source, b.source); c != 0 {
			return c
		}
		return cmp.Compare(a.pos, b.pos)
	})
	maxQuotes := e.MaxQuotes
	if maxQuotes <= 0 {
		maxQuotes = defaultMaxQuotes
	}
	var b strings.Builder
	b.WriteString(extractivePrefix)
	for _, qt := range quotes[:min(maxQuotes, len(quotes))] {
		fmt.Fprintf(&b, "\n\"%s\" [%d]", qt.text, qt.source)
	}
	return b.String()
}

// Complete answers req as a non-streaming response.
func (e Extractive) Complete(req *ChatRequest, id string, created int64) ChatResponse {
	content, finish := e.limited(req)
	prompt := PromptTokens(req)
	completion := ApproxTokens(content)
	resp := ChatResponse{
		ID:      id,
		Object:  "chat.completion",
		Created: created,
		Model:   ExtractiveModel,
		Usage:   extractiveUsage(prompt, completion, choiceCount(req)),
	}
	for i := range choiceCount(req) {
		c := content
		resp.Choices = append(resp.Choices, Choice{
			Index:        i,
			Message:      ResponseMessage{Role: RoleAssistant, Content: &c},
			FinishReason: finish,
		})
	}
	return resp
}

// Stream answers req as the chunks of a streamed response: per choice, a
// first chunk with the role and empty content, one chunk per word (with its
// trailing white space), and a chunk with an empty delta and finish_reason;
// then, if stream_options.include_usage is set, a usage chunk with no choices.
// Joining the content of a choice's chunks gives Complete's content.
func (e Extractive) Stream(req *ChatRequest, id string, created int64) []ChatChunk {
	content, finish := e.limited(req)
	chunk := func(choices []ChunkChoice) ChatChunk {
		return ChatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: ExtractiveModel, Choices: choices}
	}
	var out []ChatChunk
	for i := range choiceCount(req) {
		empty := ""
		out = append(out, chunk([]ChunkChoice{{Index: i, Delta: Delta{Role: RoleAssistant, Content: &empty}}}))
		for _, piece := range wordPieces(content) {
			p := piece
			out = append(out, chunk([]ChunkChoice{{Index: i, Delta: Delta{Content: &p}}}))
		}
		f := finish
		out = append(out, chunk([]ChunkChoice{{Index: i, FinishReason: &f}}))
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := chunk([]ChunkChoice{})
		u.Usage = extractiveUsage(PromptTokens(req), ApproxTokens(content), choiceCount(req))
		out = append(out, u)
	}
	return out
}

// limited is the answer cut to the request's token limit, and its finish reason.
func (e Extractive) limited(req *ChatRequest) (string, string) {
	content := e.Answer(req)
	limit := req.MaxCompletionTokens
	if limit == nil {
		limit = req.MaxTokens
	}
	if limit == nil || ApproxTokens(content) <= *limit {
		return content, FinishStop
	}
	// ApproxTokens(w words) = ceil(4w/3) <= limit exactly when w <= floor(3*limit/4).
	words := max(*limit, 0) / 4 * 3
	words += max(*limit, 0) % 4 * 3 / 4
	pieces := wordPieces(content)
	return strings.TrimRightFunc(strings.Join(pieces[:min(int64(len(pieces)), words)], ""), unicode.IsSpace), FinishLength
}

func choiceCount(req *ChatRequest) int {
	if req.N == nil || *req.N < 1 {
		return 1
	}
	return *req.N
}

func extractiveUsage(prompt, completion int64, n int) *Usage {
	completion *= int64(n)
	return &Usage{
		PromptTokens:        prompt,
		CompletionTokens:    completion,
		TotalTokens:         prompt + completion,
		PromptTokensDetails: &PromptTokensDetails{},
	}
}

// ApproxTokens estimates the tokens of text as ceil(words × 4 / 3), words
// being runs of non-space characters: the usual rule of thumb of 0.75 English
// words per token. It is the estimate the extractive model bills with.
func ApproxTokens(text string) int64 {
	w := int64(len(strings.Fields(text)))
	return (w*4 + 2) / 3
}

// PromptTokens estimates a request's prompt tokens as the sum of ApproxTokens
// over its messages' text and tool-call arguments; images and audio count zero.
func PromptTokens(req *ChatRequest) int64 {
	var n int64
	for _, m := range req.Messages {
		n += ApproxTokens(m.Content.String())
		for _, tc := range m.ToolCalls {
			n += ApproxTokens(tc.Function.Arguments)
		}
	}
	return n
}

// wordPieces splits text after each run of white space, so the pieces join
// back to text exactly.
func wordPieces(text string) []string {
	var pieces []string
	start := 0
	inSpace := false
	for i, r := range text {
		sp := unicode.IsSpace(r)
		if inSpace && !sp {
			pieces = append(pieces, text[start:i])
			start = i
		}
		inSpace = sp
	}
	if start < len(text) {
		pieces = append(pieces, text[start:])
	}
	return pieces
}

// sentences splits a passage at '.', '!' or '?' followed by white space, and
// at line breaks.
func sentences(text string) []string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		start := 0
		for i := 0; i < len(line); i++ {
			c := line[i]
			if (c == '.' || c == '!' || c == '?') && (i+1 == len(line) || line[i+1] == ' ' || line[i+1] == '\t') {
				if s := strings.TrimSpace(line[start : i+1]); s != "" {
					out = append(out, s)
				}
				start = i + 1
			}
		}
		if s := strings.TrimSpace(line[start:]); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// termSet is the set of scoring terms of text.
func termSet(text string) map[string]bool {
	set := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if stopWords[w] {
			continue
		}
		if len(w) > 4 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
			w = w[:len(w)-1]
		}
		set[w] = true
	}
	return set
}

// stopWords are common English function words, read-only.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all am an and any are as at be because
		been before being below between both but by can could did do does doing down during each few for from
		further had has have having he her here hers herself him himself his how i if in into is it its itself
		just me more most my myself no nor not now of off on once only or other our ours ourselves out over own
		same she should so some such than that the their theirs them themselves then there these they this those
		through to too under until up very was we were what when where which while who whom why will with would
		you your yours yourself yourselves tell please`) {
		m[w] = true
	}
	return m
}()
