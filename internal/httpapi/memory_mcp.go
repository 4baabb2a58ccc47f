package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/mcp"
	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file serves long-term memory as MCP tools with mem0's names, so an
// MCP client (Claude Desktop, Cursor, an ADK agent's McpToolset) uses a
// user's memories of one app as it would OpenMemory's:
//
//	POST /api/v1/agent/apps/{app}/users/{user}/mcp[?model=…&embedding_model=…]
//
// with the caller's API token as a Bearer credential. {user} follows the
// memory routes' rule (agentUser): "me" or the caller's id, any user of
// the tenant for admins. The query names the chat model that extracts
// facts from what add_memory is given (none: salient sentences kept
// verbatim) and the embedding model of the memories (none: full-text
// search): the operator sets them once in the URL, the model on the other
// end never chooses a model. A role that may only read (viewer) is offered
// the reading tools only.

// memoryServerInstructions tell the client's model what the tools are for.
const memoryServerInstructions = `Long-term memory of one user in one app. Search it (search_memories) before answering ` +
	`questions that may depend on what the user said before; store what the user tells you about themselves, their ` +
	`preferences and their work with add_memory. Memories are short facts; add_memory merges a new fact with the ` +
	`memories it updates or contradicts.`

func (s *Server) handleMemoryMCP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.deps.Memory == nil {
			s.writeError(w, r, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "memory is not available"})
			return
		}
		ctx, userID, err := s.agentUser(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		tenantID, _, _ := nodus.TenantScope(ctx)
		c := callerFrom(r.Context())
		scope := memoryScope{svc: s.deps.Memory, tenantID: tenantID, app: r.PathValue("app"), userID: userID,
			actor: c.principal.User.ID, model: r.URL.Query().Get("model"),
			embeddingModel: r.URL.Query().Get("embedding_model")}
		srv := mcp.Server{Name: "nodus-memory", Title: "Nodus memory", Version: "1", Instructions: memoryServerInstructions,
			Tools: scope.tools(s.perms.Allows(c.principal.User.Role, identity.ActionUseAgent)),
			Failed: func(ctx context.Context, tool string, err error) {
				s.deps.Logger.ErrorContext(ctx, "memory MCP tool failed", "request_id", RequestID(ctx), "tool", tool, "err", err)
			}}
		srv.ServeHTTP(w, r.WithContext(ctx))
	})
}

// memoryScope is the memories one MCP request works on.
type memoryScope struct {
	svc                   *memory.Service
	tenantID, app, userID string
	actor                 string // recorded in the history
	model, embeddingModel string
}

// own reads a memory and checks it is the scope's: another's is not found.
func (m memoryScope) own(ctx context.Context, id string) (*memory.Memory, error) {
	if id == "" {
		return nil, nodus.Errorf(nodus.EINVALID, "memory_id is required")
	}
	got, err := m.svc.Get(ctx, m.tenantID, id)
	if err != nil {
		return nil, err
	}
	if got.AppName != m.app || got.UserID != m.userID {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "memory %s not found", id)
	}
	return &got, nil
}

// ownArg reads the scope's memory that the arguments {"memory_id"} name.
func (m memoryScope) ownArg(ctx context.Context, raw json.RawMessage) (*memory.Memory, error) {
	var args struct {
		MemoryID string `json:"memory_id"`
	}
	if err := mcp.Arguments(raw, &args); err != nil {
		return nil, err
	}
	return m.own(ctx, args.MemoryID)
}

// tools lists the memory tools; write, whether the caller may change
// memories.
func (m memoryScope) tools(write bool) []mcp.Tool {
	tools := []mcp.Tool{
		{Name: "search_memories", Title: "Search memories", ReadOnly: true, Idempotent: true,
			Description: "Search the user's memories for what bears on a query; the best first.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{` +
				`"query":{"type":"string","description":"what to look for"},` +
				`"limit":{"type":"integer","minimum":1,"maximum":100,"description":"at most this many memories (default 10)"}},` +
				`"required":["query"]}`),
			Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
				var args struct {
					Query string `json:"query"`
					Limit int    `json:"limit"`
				}
				if err := mcp.Arguments(raw, &args); err != nil {
					return nil, err
				}
				hits, err := m.svc.Search(ctx, memory.SearchInput{TenantID: m.tenantID, AppName: m.app, UserID: m.userID,
					Query: args.Query, Limit: args.Limit, EmbeddingModel: m.embeddingModel})
				if err != nil {
					return nil, err
				}
				return viewHits(hits), nil
			}},
		{Name: "get_memories", Title: "List memories", ReadOnly: true, Idempotent: true,
			Description: "List the user's memories, newest first, a page at a time.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{` +
				`"limit":{"type":"integer","minimum":1,"maximum":200,"description":"memories per page (default 50)"},` +
				`"cursor":{"type":"string","description":"next_cursor of the previous page"}}}`),
			Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
				var args struct {
					Limit  int    `json:"limit"`
					Cursor string `json:"cursor"`
				}
				if err := mcp.Arguments(raw, &args); err != nil {
					return nil, err
				}
				ms, next, err := m.svc.List(ctx, memory.ListInput{TenantID: m.tenantID, AppName: m.app, UserID: m.userID,
					Cursor: args.Cursor, Limit: args.Limit})
				if err != nil {
					return nil, err
				}
				return viewMemories(ms, next), nil
			}},
		{Name: "get_memory", Title: "Read a memory", ReadOnly: true, Idempotent: true,
			Description: "Read one memory by its id.",
			InputSchema: memoryIDSchema,
			Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
				got, err := m.ownArg(ctx, raw)
				if err != nil {
					return nil, err
				}
				return map[string]any{"memory": viewMemory(got)}, nil
			}},
	}
	if !write {
		return tools
	}
	return append(tools,
		mcp.Tool{Name: "add_memory", Title: "Remember",
			Description: "Remember what the user said: the facts in the text are added, or merged with the memories " +
				"they update or contradict. Returns what changed.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{` +
				`"text":{"type":"string","description":"what the user said or what to remember, in their words"}},` +
				`"required":["text"]}`),
			Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
				var args struct {
					Text string `json:"text"`
				}
				if err := mcp.Arguments(raw, &args); err != nil {
					return nil, err
				}
				if args.Text == "" {
					return nil, nodus.Errorf(nodus.EINVALID, "text is required")
				}
				return viewChanges(m.svc.Add(ctx, memory.AddInput{TenantID: m.tenantID, AppName: m.app, UserID: m.userID,
					Messages: []memory.Message{{Role: "user", Content: args.Text}}, Model: m.model,
					EmbeddingModel: m.embeddingModel, Actor: m.actor}))
			}},
		mcp.Tool{Name: "update_memory", Title: "Rewrite a memory", Idempotent: true,
			Description: "Replace the text of one memory.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{` +
				`"memory_id":{"type":"string"},"text":{"type":"string","description":"the memory's new text"}},` +
				`"required":["memory_id","text"]}`),
			Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
				var args struct {
					MemoryID string `json:"memory_id"`
					Text     string `json:"text"`
				}
				if err := mcp.Arguments(raw, &args); err != nil {
					return nil, err
				}
				if _, err := m.own(ctx, args.MemoryID); err != nil {
					return nil, err
				}
				got, err := m.svc.Update(ctx, m.tenantID, args.MemoryID, args.Text, m.actor)
				if err != nil {
					return nil, err
				}
				return map[string]any{"memory": viewMemory(&got)}, nil
			}},
		mcp.Tool{Name: "delete_memory", Title: "Forget a memory", Destructive: true, Idempotent: true,
			Description: "Forget one memory by its id.",
			InputSchema: memoryIDSchema,
			Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
				got, err := m.ownArg(ctx, raw)
				if err != nil {
					return nil, err
				}
				if err := m.svc.Delete(ctx, m.tenantID, got.ID, m.actor); err != nil {
					return nil, err
				}
				return map[string]any{"deleted": got.ID}, nil
			}},
		mcp.Tool{Name: "delete_all_memories", Title: "Forget everything", Destructive: true, Idempotent: true,
			Description: "Forget every memory of the user in this app. Only when the user asks for it.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{}}`),
			Call: func(ctx context.Context, raw json.RawMessage) (any, error) {
				if err := mcp.Arguments(raw, &struct{}{}); err != nil {
					return nil, err
				}
				n, err := m.svc.DeleteAll(ctx, m.tenantID, m.app, m.userID, m.actor)
				if err != nil {
					return nil, err
				}
				return map[string]any{"deleted": n}, nil
			}},
	)
}

var memoryIDSchema = json.RawMessage(`{"type":"object","properties":{"memory_id":{"type":"string"}},"required":["memory_id"]}`)
