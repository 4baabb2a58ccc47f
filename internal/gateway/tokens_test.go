package gateway

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/pkoukk/tiktoken-go"
)

// Known counts from OpenAI's cookbook ("How to count tokens with
// tiktoken", its encoding comparison) and tiktoken's README.
func TestCountTokensKnownCounts(t *testing.T) {
	tests := []struct {
		text          string
		cl100k, o200k int64
	}{
		{"", 0, 0},
		{"hello world", 2, 2},
		{"tiktoken is great!", 6, 6},
		{"antidisestablishmentarianism", 6, 6},
		{"2 + 2 = 4", 7, 7},
		{"お誕生日おめでとう", 9, 8},
	}
	for _, tt := range tests {
		if got := CountTokens("gpt-4", tt.text); got != tt.cl100k {
			t.Errorf("cl100k_base %q: %d tokens, want %d", tt.text, got, tt.cl100k)
		}
		if got := CountTokens("gpt-4o", tt.text); got != tt.o200k {
			t.Errorf("o200k_base %q: %d tokens, want %d", tt.text, got, tt.o200k)
		}
	}
}

func TestEncodingFor(t *testing.T) {
	tests := map[string]string{
		"gpt-4o": encodingO200K, "gpt-4o-mini-2024-07-18": encodingO200K, "openai/gpt-4.1-nano": encodingO200K,
		"GPT-5": encodingO200K, "o1": encodingO200K, "o3-mini": encodingO200K, "azure/o4-mini": encodingO200K,
		"chatgpt-4o-latest": encodingO200K, "gpt-4": encodingCL100K, "gpt-3.5-turbo": encodingCL100K,
		"text-embedding-3-small": encodingCL100K, "llama3.1:8b": encodingCL100K, "ollama": encodingCL100K,
		"": encodingCL100K,
	}
	for model, want := range tests {
		if got := encodingFor(model); got != want {
			t.Errorf("encodingFor(%q) = %s, want %s", model, got, want)
		}
	}
}

// cookbookMessages is the cookbook's example conversation, which the API
// billed as 129 prompt tokens on gpt-4 and gpt-3.5-turbo and 124 on
// gpt-4o and gpt-4o-mini.
func cookbookMessages(t *testing.T) *ChatRequest {
	t.Helper()
	var req ChatRequest
	err := json.Unmarshal([]byte(`{"model":"gpt-4","messages":[
		{"role":"system","content":"You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
		{"role":"system","name":"example_user","content":"New synergies will help drive top-line growth."},
		{"role":"system","name":"example_assistant","content":"Things working well together will increase revenue."},
		{"role":"system","name":"example_user","content":"Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
		{"role":"system","name":"example_assistant","content":"Let's talk later when we're less busy about how to do better."},
		{"role":"user","content":"This late pivot means we don't have time to boil the ocean for the client deliverable."}]}`), &req)
	if err != nil {
		t.Fatal(err)
	}
	return &req
}

func TestCountChatTokensMatchesTheCookbook(t *testing.T) {
	req := cookbookMessages(t)
	for model, want := range map[string]int64{"gpt-4": 129, "gpt-3.5-turbo": 129, "gpt-4o": 124, "gpt-4o-mini": 124} {
		if got := CountChatTokens(model, req); got != want {
			t.Errorf("%s: %d prompt tokens, want %d", model, got, want)
		}
	}
}

// Parts, images, tool calls and tool definitions all add to the count.
func TestCountChatTokensCountsEveryPart(t *testing.T) {
	base := CountChatTokens("gpt-4o", &ChatRequest{Messages: []Message{{Role: RoleUser, Content: TextContent("hello world")}}})
	if base != 3+1+2+3 { // message overhead, "user", "hello world", reply priming
		t.Fatalf("one message: %d tokens, want 9", base)
	}
	tests := []struct {
		name string
		req  ChatRequest
		more int64
	}{
		{"parts", ChatRequest{Messages: []Message{{Role: RoleUser, Content: PartsContent(
			ContentPart{Type: PartText, Text: "hello world"}, ContentPart{Type: PartImageURL, ImageURL: &ImageURL{URL: "https://x/y.png"}})}}},
			tokensPerImage},
		{"tool call", ChatRequest{Messages: []Message{{Role: RoleUser, Content: TextContent("hello world"),
			ToolCalls: []ToolCall{{ID: "c", Type: "function", Function: FunctionCall{Name: "f", Arguments: `{"x":1}`}}}}}},
			CountTokens("gpt-4o", "f") + CountTokens("gpt-4o", `{"x":1}`)},
		{"tools", ChatRequest{Messages: []Message{{Role: RoleUser, Content: TextContent("hello world")}},
			Tools: []Tool{{Type: "function", Function: FunctionTool{Name: "get_weather", Parameters: json.RawMessage(`{"type":"object"}`)}}}},
			CountTokens("gpt-4o", `[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]`)},
	}
	for _, tt := range tests {
		if got := CountChatTokens("gpt-4o", &tt.req); got != base+tt.more {
			t.Errorf("%s: %d tokens, want %d", tt.name, got, base+tt.more)
		}
	}
}

func TestCountFallsBackWhenTheEncodingFails(t *testing.T) {
	failing := func() (*tiktoken.Tiktoken, error) { return nil, errors.New("no ranks") }
	text := "one two three four five six"
	if got, want := countWith(failing, text), ApproxTokens(text); got != want {
		t.Errorf("fallback count %d, want ApproxTokens' %d", got, want)
	}
}

// The encodings load once, whoever asks first, and count the same under
// concurrent use (run with -race).
func TestCountTokensConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	counts := make([]int64, 16)
	for i := range counts {
		wg.Go(func() {
			model := "gpt-4"
			if i%2 == 1 {
				model = "gpt-4o"
			}
			counts[i] = CountTokens(model, "お誕生日おめでとう")
		})
	}
	wg.Wait()
	for i, n := range counts {
		if want := []int64{9, 8}[i%2]; n != want {
			t.Errorf("goroutine %d counted %d, want %d", i, n, want)
		}
	}
}

func BenchmarkCountTokens(b *testing.B) {
	text := strings.Repeat("The gateway counts the tokens of a streamed answer when the provider sends no usage. ", 12) // ~1 KB
	for _, model := range []string{"gpt-4", "gpt-4o"} {
		b.Run(model, func(b *testing.B) {
			CountTokens(model, "warm up") // load outside the timing
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				CountTokens(model, text)
			}
		})
	}
}

func BenchmarkCountChatTokens(b *testing.B) {
	var req ChatRequest
	_ = json.Unmarshal([]byte(`{"model":"gpt-4o","messages":[
		{"role":"system","content":"You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
		{"role":"user","content":"This late pivot means we don't have time to boil the ocean for the client deliverable."}]}`), &req)
	CountChatTokens("gpt-4o", &req)
	b.ReportAllocs()
	for b.Loop() {
		CountChatTokens("gpt-4o", &req)
	}
}
