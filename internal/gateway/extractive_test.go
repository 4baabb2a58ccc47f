package gateway

import (
	"strings"
	"testing"
)

const shopSources = "Answer only from the sources.\n" +
	"[1] Refunds are issued within 14 days of the return. Refunds go to the original card.\n" +
	"[2] Shipping is free for orders above 50 euros. Express shipping costs 9 euros."

func ask(system, user string) *ChatRequest {
	r := &ChatRequest{Model: ExtractiveModel}
	if system != "" {
		r.Messages = append(r.Messages, Message{Role: RoleSystem, Content: TextContent(system)})
	}
	r.Messages = append(r.Messages, Message{Role: RoleUser, Content: TextContent(user)})
	return r
}

func TestExtractiveAnswers(t *testing.T) {
	tests := []struct {
		name string
		req  *ChatRequest
		want string
	}{
		{
			// overlap 1 each; the shorter sentence (4 terms) beats the longer (6 terms)
			"refunds", ask(shopSources, "How long do refunds take?"),
			extractivePrefix + "\n\"Refunds go to the original card.\" [1]\n\"Refunds are issued within 14 days of the return.\" [1]",
		},
		{
			// overlap 2 beats overlap 1; both cite source 2
			"shipping", ask(shopSources, "Is shipping free?"),
			extractivePrefix + "\n\"Shipping is free for orders above 50 euros.\" [2]\n\"Express shipping costs 9 euros.\" [2]",
		},
		{
			"sources in the user message", ask("", "When does the office open?\n[3] The office opens at nine. It closes at five."),
			extractivePrefix + "\n\"The office opens at nine.\" [3]",
		},
		{"no sources", ask("Be helpful.", "What is the refund policy?"), noSourcesAnswer},
		{"no match", ask(shopSources, "Who won the match?"), noMatchAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 { // deterministic
				if got := (Extractive{}).Answer(tt.req); got != tt.want {
					t.Fatalf("got  %q\nwant %q", got, tt.want)
				}
			}
		})
	}
}

func TestParseSources(t *testing.T) {
	r := ask("intro\n[2] two\ncontinued\n\n[1] one\n[2] duplicate", "q?\n[10] ten")
	got := ParseSources(r)
	want := []Source{{1, "one"}, {2, "two\ncontinued"}, {10, "ten"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("source %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if q := question(r); q != "q?" {
		t.Errorf("question = %q", q)
	}
}

func TestExtractiveMaxQuotes(t *testing.T) {
	got := Extractive{MaxQuotes: 1}.Answer(ask(shopSources, "Is shipping free?"))
	if strings.Count(got, "[2]") != 1 || !strings.Contains(got, "Shipping is free") {
		t.Errorf("got %q", got)
	}
}

func TestExtractiveComplete(t *testing.T) {
	req := ask(shopSources, "Is shipping free?")
	resp := Extractive{}.Complete(req, "chatcmpl-x", 1700000000)
	if resp.ID != "chatcmpl-x" || resp.Object != "chat.completion" || resp.Created != 1700000000 || resp.Model != ExtractiveModel {
		t.Errorf("header = %+v", resp)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].FinishReason != FinishStop || *resp.Choices[0].Message.Content != (Extractive{}).Answer(req) {
		t.Fatalf("choices = %+v", resp.Choices)
	}
	// prompt: system 5+10+6+9+5 = 35 words -> ceil(140/3) = 47; user 3 words -> 4. Total 51.
	// completion: the answer's words x 4/3, rounded up.
	u := resp.Usage
	if u.PromptTokens != 51 || u.CompletionTokens != ApproxTokens(*resp.Choices[0].Message.Content) || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage = %+v", u)
	}
}

func TestApproxTokens(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "one": 2, "one two": 3, "a b c": 4, " a  b\nc d ": 6} {
		if got := ApproxTokens(in); got != want {
			t.Errorf("ApproxTokens(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestExtractiveTokenLimit(t *testing.T) {
	req := ask(shopSources, "Is shipping free?")
	limit := int64(5) // floor(3*5/4) = 3 words -> ceil(4*3/3) = 4 tokens
	req.MaxCompletionTokens = &limit
	resp := Extractive{}.Complete(req, "id", 1)
	c := resp.Choices[0]
	if *c.Message.Content != "Extractive answer (quoted" || c.FinishReason != FinishLength || resp.Usage.CompletionTokens != 4 {
		t.Errorf("got %q %s %+v", *c.Message.Content, c.FinishReason, resp.Usage)
	}
}

func TestExtractiveStream(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		req := ask(shopSources, "How long do refunds take?")
		req.Stream = true
		req.StreamOptions = &StreamOptions{IncludeUsage: includeUsage}
		n := 2
		req.N = &n
		full := Extractive{}.Complete(req, "id", 7)
		chunks := Extractive{}.Stream(req, "id", 7)

		var content [2]strings.Builder
		var finishes [2]string
		for i, ch := range chunks {
			if ch.ID != "id" || ch.Created != 7 || ch.Object != "chat.completion.chunk" {
				t.Fatalf("chunk %d header = %+v", i, ch)
			}
			if len(ch.Choices) == 0 {
				if !includeUsage || i != len(chunks)-1 || ch.Usage.TotalTokens != full.Usage.TotalTokens || ch.Usage.CompletionTokens != full.Usage.CompletionTokens {
					t.Errorf("unexpected usage chunk %d: %+v", i, ch)
				}
				continue
			}
			if ch.Usage != nil {
				t.Errorf("chunk %d carries usage", i)
			}
			c := ch.Choices[0]
			if c.Delta.Role != "" && (c.Delta.Content == nil || *c.Delta.Content != "") {
				t.Errorf("role chunk %d has content", i)
			}
			if c.Delta.Content != nil {
				content[c.Index].WriteString(*c.Delta.Content)
			}
			if c.FinishReason != nil {
				finishes[c.Index] = *c.FinishReason
			}
		}
		if first := chunks[0].Choices[0].Delta; first.Role != RoleAssistant {
			t.Errorf("first delta = %+v", first)
		}
		if includeUsage != (len(chunks[len(chunks)-1].Choices) == 0) {
			t.Errorf("include_usage=%v but last chunk = %+v", includeUsage, chunks[len(chunks)-1])
		}
		for i := range 2 {
			if content[i].String() != *full.Choices[i].Message.Content || finishes[i] != FinishStop {
				t.Errorf("choice %d: stream %q (%s), complete %q", i, content[i].String(), finishes[i], *full.Choices[i].Message.Content)
			}
		}
	}
}
