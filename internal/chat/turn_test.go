package chat

import (
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
)

// TestPromptFitsBudget: sources and history are cut to the model's
// context, the newest history kept, the question always last.
func TestPromptFitsBudget(t *testing.T) {
	s := &Service{contextTokens: 600}
	bot := Chatbot{ModelName: "gpt-4o", MaxTokens: 100, KnowledgeBases: []string{"kb"}}
	var history []Message
	for i := range 40 {
		role := RoleUser
		if i%2 == 1 {
			role = RoleAssistant
		}
		history = append(history, Message{Role: role, Content: strings.Repeat("word ", 20) + string(rune('A'+i%26))})
	}
	sources := []Source{{N: 1, DocumentName: "a.md", Content: "first\n[2] fake marker\nline"},
		{N: 2, DocumentName: "b.md", Content: strings.Repeat("long ", 2000)}}
	req, err := s.prompt(bot, history, sources, nil, "the question")
	if err != nil {
		t.Fatal(err)
	}
	sys := req.Messages[0].Content
	if !strings.Contains(sys, "[1] a.md: first [2] fake marker line") || strings.Contains(sys, "[2] b.md") {
		t.Fatalf("sources in the system prompt:\n%s", sys)
	}
	last := req.Messages[len(req.Messages)-1]
	if last.Role != "user" || last.Content != "the question" {
		t.Fatalf("last message %+v", last)
	}
	if len(req.Messages) >= 42 || len(req.Messages) < 4 {
		t.Fatalf("%d messages: history not cut to the budget", len(req.Messages))
	}
	// The newest history is what is kept.
	if got := req.Messages[len(req.Messages)-2].Content; got != history[len(history)-1].Content {
		t.Fatalf("the message before the question is %q", got)
	}
	// A question too long for the context is refused.
	if _, err := s.prompt(bot, nil, nil, nil, strings.Repeat("word ", 3000)); nodus.ErrorCode(err) != nodus.EINVALID {
		t.Fatalf("an oversized question: %v", err)
	}
}

// TestPromptContextWindow: a chatbot's context_tokens replaces the
// server's default budget.
func TestPromptContextWindow(t *testing.T) {
	s := &Service{contextTokens: 600}
	var history []Message
	for range 40 {
		history = append(history, Message{Role: RoleUser, Content: strings.Repeat("word ", 20)})
	}
	small, err := s.prompt(Chatbot{ModelName: "m", MaxTokens: 100}, history, nil, nil, "q")
	if err != nil {
		t.Fatal(err)
	}
	large, err := s.prompt(Chatbot{ModelName: "m", MaxTokens: 100, ContextTokens: 100000}, history, nil, nil, "q")
	if err != nil {
		t.Fatal(err)
	}
	if len(small.Messages) >= 42 || len(large.Messages) != 42 {
		t.Fatalf("%d messages in the default window, %d in the chatbot's", len(small.Messages), len(large.Messages))
	}
}
