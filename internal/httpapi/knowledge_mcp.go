package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/mcp"
)

// This file serves a knowledge base's search as an MCP tool, so an MCP
// client (Claude Desktop, Cursor, an agent framework) answers from the
// tenant's documents:
//
//	POST /api/v1/knowledge-bases/{id}/mcp
//
// with an API token as a Bearer credential; any member of the tenant may
// search, as with POST …/search. The knowledge base is found first, so
// another tenant's is a 404 before any MCP exchange; the model reads its
// name and description in the tool's description.

func (s *Server) handleKnowledgeMCP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := s.knowledgeManager(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		kb, err := s.deps.Knowledge.GetKnowledgeBase(r.Context(), m, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		about := fmt.Sprintf("the knowledge base %q", kb.Name)
		if kb.Description != "" {
			about += " (" + kb.Description + ")"
		}
		srv := mcp.Server{Name: "nodus-knowledge", Title: "Nodus knowledge base " + kb.Name, Version: "1",
			Instructions: "Search " + about + " for passages that answer the user's question, and cite the documents " +
				"they come from.",
			Tools: []mcp.Tool{{Name: "search_knowledge_base", Title: "Search " + kb.Name, ReadOnly: true, Idempotent: true,
				Description: "Search " + about + ": the passages that best match the query, best first, each with " +
					"the document it is from.",
				InputSchema: json.RawMessage(fmt.Sprintf(`{"type":"object","properties":{`+
					`"query":{"type":"string","description":"what to look for, in words the documents would use"},`+
					`"top_k":{"type":"integer","minimum":1,"maximum":%d,"description":"at most this many passages (default: the knowledge base's)"}},`+
					`"required":["query"]}`, knowledge.MaxTopK)),
				Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
					var args struct {
						Query string `json:"query"`
						TopK  int    `json:"top_k"`
					}
					if err := mcp.Arguments(raw, &args); err != nil {
						return nil, err
					}
					res, err := s.deps.Knowledge.Search(ctx, m, kb.ID, knowledge.SearchInput{Query: args.Query, TopK: args.TopK})
					if err != nil {
						return nil, err
					}
					return viewSearchResult(res), nil
				}}},
			Failed: func(ctx context.Context, tool string, err error) {
				s.deps.Logger.ErrorContext(ctx, "knowledge MCP tool failed", "request_id", RequestID(ctx), "tool", tool, "err", err)
			}}
		srv.ServeHTTP(w, r)
	})
}
