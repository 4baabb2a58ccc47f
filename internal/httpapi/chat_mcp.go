package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/mcp"
)

// This file serves a chatbot as an MCP tool, so an MCP client asks it as
// the caller would in its chat, grounded in its knowledge bases, with the
// caller's budgets and the turn traced:
//
//	POST /api/v1/chatbots/{id}/mcp
//
// with an API token as a Bearer credential. The question and answer are
// stored in a conversation of the caller's like any turn; the tool's
// result names it, and the next call may continue it.

func (s *Server) handleChatbotMCP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.chatActor(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		bot, err := s.deps.Chat.GetChatbot(r.Context(), a, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		about := fmt.Sprintf("the chatbot %q", bot.Name)
		if bot.Description != "" {
			about += " (" + bot.Description + ")"
		}
		srv := mcp.Server{Name: "nodus-chatbot", Title: "Nodus chatbot " + bot.Name, Version: "1",
			Instructions: "Ask " + about + " questions it answers from its documents; pass conversation_id back to ask " +
				"a follow-up in the same conversation.",
			Tools: []mcp.Tool{{Name: "ask_chatbot", Title: "Ask " + bot.Name,
				Description: "Ask " + about + " a question. Returns its answer, the sources it cites and the " +
					"conversation_id to continue with.",
				InputSchema: json.RawMessage(`{"type":"object","properties":{` +
					`"question":{"type":"string","description":"the question, as a user would ask it"},` +
					`"conversation_id":{"type":"string","description":"a conversation_id of a previous answer, to follow up"}},` +
					`"required":["question"]}`),
				Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
					var args struct {
						Question       string `json:"question"`
						ConversationID string `json:"conversation_id"`
					}
					if err := mcp.Arguments(raw, &args); err != nil {
						return nil, err
					}
					t, err := s.deps.Chat.Turn(ctx, a, chat.TurnInput{ChatbotID: bot.ID, ConversationID: args.ConversationID,
						Message: args.Question, TraceID: traceIDOf(r)}, nil)
					if t == nil || (err != nil && t.Answer.Content == "") {
						return nil, err
					}
					return turnView(t), nil
				}}},
			Failed: func(ctx context.Context, tool string, err error) {
				s.deps.Logger.ErrorContext(ctx, "chatbot MCP tool failed", "request_id", RequestID(ctx), "tool", tool, "err", err)
			}}
		srv.ServeHTTP(w, r)
	})
}
