package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestAdmissionCountsExactlyNearTheBudget: admission reserves on a cheap
// upper bound of the prompt's tokens and counts them exactly only when the
// bound is refused. A budget that fits the exact worst case but not the
// bound's admits the call; one below the exact worst case refuses it.
func TestAdmissionCountsExactlyNearTheBudget(t *testing.T) {
	prompt := strings.Repeat("hello ", 400)
	req := &gateway.ChatRequest{Model: "gpt-4o", Messages: []gateway.Message{{Role: "user", Content: gateway.Content{Text: prompt}}}}
	exact, bound := gateway.CountChatTokens("gpt-4o", req), gateway.ChatTokensBound(req)
	if exact <= 0 || bound < exact {
		t.Fatalf("bound %d below the exact count %d", bound, exact)
	}
	price, _, ok := gateway.LookupPrice(gateway.Catalogue(), nil, "gpt-4o-2024-08-06")
	if !ok {
		t.Fatal("gpt-4o has no catalogue price")
	}
	const maxTokens = 10
	exactWorst := gateway.Cost(price, gateway.Usage{PromptTokens: exact, CompletionTokens: maxTokens})
	boundWorst := gateway.Cost(price, gateway.Usage{PromptTokens: bound, CompletionTokens: maxTokens})
	if boundWorst < 2*exactWorst {
		t.Fatalf("the test needs a bound well above the exact count: %d vs %d µ$", boundWorst, exactWorst)
	}
	for _, tc := range []struct {
		name   string
		budget int64
		want   int
	}{
		{"fits the exact worst case", (exactWorst + boundWorst) / 2, http.StatusOK},
		{"below the exact worst case", exactWorst - 1, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, db *store.DB) {
				w := newWorld(t, db)
				now := time.Now().UTC().Truncate(time.Millisecond)
				b := gateway.Budget{ID: nodus.NewID(), TenantID: w.tenant, Scope: gateway.BudgetTenant, MaxMicros: tc.budget, UpdatedAt: now}
				if err := db.CreateBudget(w.tctx, b); err != nil {
					t.Fatal(err)
				}
				w2 := w.restart(t)
				_, err := w2.client(w.key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o",
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}, MaxTokens: openai.Int(maxTokens)})
				got := http.StatusOK
				if err != nil {
					got = apiStatus(t, err)
				}
				if got != tc.want {
					t.Fatalf("budget %d µ$ (exact worst %d, bound worst %d): status %d, want %d (%v)",
						tc.budget, exactWorst, boundWorst, got, tc.want, err)
				}
			})
		})
	}
}

// TestChatTokensBoundIsAnUpperBound: the bound admission reserves on is
// never below the exact count, whatever the text.
func TestChatTokensBoundIsAnUpperBound(t *testing.T) {
	texts := []string{"", "a", "hi", " ", "\n\n\n", "Say hello", "ünïcödé 文字 🙂🙂", strings.Repeat("x", 1000),
		"<|endoftext|> special", `{"a": [1, 2, 3]}`, "1234567890 12 3", strings.Repeat("🙂", 50)}
	for _, model := range []string{"gpt-4o", "gpt-3.5-turbo", "llama3"} {
		for _, text := range texts {
			req := &gateway.ChatRequest{Model: model, Messages: []gateway.Message{
				{Role: "system", Content: gateway.Content{Text: text}},
				{Role: "user", Name: "bob", Content: gateway.Content{Parts: []gateway.ContentPart{{Type: gateway.PartText, Text: text}}}},
				{Role: "assistant", ToolCalls: []gateway.ToolCall{{ID: "c1", Type: "function", Function: gateway.FunctionCall{Name: "f", Arguments: text}}}},
				{Role: "tool", ToolCallID: "c1", Content: gateway.Content{Text: text}},
			}}
			if exact, bound := gateway.CountChatTokens(model, req), gateway.ChatTokensBound(req); bound < exact {
				t.Errorf("%s %q: bound %d below exact %d", model, text, bound, exact)
			}
		}
	}
}
