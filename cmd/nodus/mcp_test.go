package main

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// bearer adds an API token to every request of an HTTP client.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestMemoryMCP drives the memory's MCP endpoint with the official MCP Go
// SDK's client over Streamable HTTP against a full `nodus serve`, on both
// databases: a user's tools remember, search, list, read, rewrite and
// forget her memories of one app; another user of the tenant finds none
// of them and cannot reach them by id; a viewer is offered the reading
// tools only; no token is a 401.
func TestMemoryMCP(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{})
		members := map[string]*client{}
		for _, m := range []struct{ login, role string }{{"mcp-ann", "user"}, {"mcp-bob", "user"}, {"mcp-vera", "viewer"}} {
			w.do(t, w.orgAdmin, "POST", "/api/v1/users", map[string]any{"email": m.login + "@example.test", "username": m.login,
				"role": m.role, "password": canaryOrgPassword}, 201, nil)
			members[m.login] = signIn(t, w.in.base, m.login, canaryOrgPassword)
		}
		ann, bob, vera := members["mcp-ann"], members["mcp-bob"], members["mcp-vera"]
		endpoint := "/api/v1/agent/apps/assistant/users/me/mcp"
		ctx := context.Background()
		connect := func(c *client, path string) *sdk.ClientSession {
			t.Helper()
			cl := sdk.NewClient(&sdk.Implementation{Name: "nodus-test", Version: "1"}, nil)
			sess, err := cl.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: w.in.base + path,
				HTTPClient: &http.Client{Transport: bearer{c.token}}}, nil)
			if err != nil {
				t.Fatalf("connect as %s: %v", c.user.Username, err)
			}
			t.Cleanup(func() { sess.Close() })
			return sess
		}
		tools := func(s *sdk.ClientSession) []string {
			t.Helper()
			res, err := s.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range res.Tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			return names
		}
		// use runs a tool and decodes its structured result into into;
		// it returns the text of a failed call ("" when it succeeded).
		use := func(s *sdk.ClientSession, name string, args map[string]any, into any) string {
			t.Helper()
			res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if res.IsError {
				return res.Content[0].(*sdk.TextContent).Text
			}
			b, err := json.Marshal(res.StructuredContent)
			if err != nil {
				t.Fatal(err)
			}
			// The text is the same JSON, for clients that read text only.
			var fromText any
			if err := json.Unmarshal([]byte(res.Content[0].(*sdk.TextContent).Text), &fromText); err != nil ||
				!reflect.DeepEqual(fromText, res.StructuredContent) {
				t.Errorf("%s: text %s, structured %s", name, res.Content[0].(*sdk.TextContent).Text, b)
			}
			if into != nil {
				if err := json.Unmarshal(b, into); err != nil {
					t.Fatal(err)
				}
			}
			return ""
		}

		annS := connect(ann, endpoint)
		if got := annS.InitializeResult(); got.ServerInfo.Name != "nodus-memory" || got.Capabilities.Tools == nil ||
			got.Instructions == "" {
			t.Fatalf("initialize: %+v", got)
		}
		all := []string{"add_memory", "delete_all_memories", "delete_memory", "get_memories", "get_memory",
			"search_memories", "update_memory"}
		if got := tools(annS); !slices.Equal(got, all) {
			t.Fatalf("ann's tools %v", got)
		}
		// No model named in the URL: her salient sentence is kept as said.
		var added struct {
			Results []struct{ Event, ID, Memory string }
		}
		if msg := use(annS, "add_memory", map[string]any{"text": "My favourite colour is teal. Which paint should I buy?"}, &added); msg != "" {
			t.Fatal(msg)
		}
		if len(added.Results) != 1 || added.Results[0].Event != "ADD" || added.Results[0].Memory != "My favourite colour is teal." {
			t.Fatalf("add_memory: %+v", added)
		}
		id := added.Results[0].ID
		var found struct {
			Results []struct {
				ID, Memory string
				Score      float64
			}
		}
		use(annS, "search_memories", map[string]any{"query": "favourite colour"}, &found)
		if len(found.Results) != 1 || found.Results[0].ID != id || found.Results[0].Score <= 0 {
			t.Fatalf("search_memories: %+v", found)
		}
		var listed struct {
			Memories []struct{ ID, Memory, AppName string } `json:"memories"`
		}
		use(annS, "get_memories", nil, &listed)
		if len(listed.Memories) != 1 || listed.Memories[0].ID != id {
			t.Fatalf("get_memories: %+v", listed)
		}
		// The same memories as the REST routes'.
		var rest struct{ Memories []struct{ ID string } }
		ann.must("GET", "/api/v1/agent/apps/assistant/users/me/memories", nil, 200, &rest)
		if len(rest.Memories) != 1 || rest.Memories[0].ID != id {
			t.Fatalf("REST lists %+v", rest)
		}
		var one struct{ Memory struct{ Memory string } }
		use(annS, "update_memory", map[string]any{"memory_id": id, "text": "My favourite colour is navy."}, nil)
		use(annS, "get_memory", map[string]any{"memory_id": id}, &one)
		if one.Memory.Memory != "My favourite colour is navy." {
			t.Fatalf("get_memory after update: %+v", one)
		}
		// Arguments the model got wrong come back as a failed call it can
		// read.
		if msg := use(annS, "get_memory", map[string]any{"id": id}, nil); !strings.Contains(msg, `unknown field "id"`) {
			t.Errorf("a wrong argument: %q", msg)
		}
		if msg := use(annS, "add_memory", map[string]any{"text": ""}, nil); msg != "text is required" {
			t.Errorf("an empty text: %q", msg)
		}
		// Another app of hers is another set of memories.
		other := connect(ann, "/api/v1/agent/apps/other-app/users/me/mcp")
		use(other, "get_memories", nil, &listed)
		if len(listed.Memories) != 0 {
			t.Fatalf("another app lists %+v", listed)
		}
		if msg := use(other, "get_memory", map[string]any{"memory_id": id}, nil); !strings.Contains(msg, "not found") {
			t.Errorf("another app reads the memory: %q", msg)
		}

		// Bob, same tenant: nothing of Ann's, not even by id; not her URL.
		bobS := connect(bob, endpoint)
		use(bobS, "search_memories", map[string]any{"query": "favourite colour"}, &found)
		if len(found.Results) != 0 {
			t.Fatalf("Bob finds %+v", found)
		}
		for tool, args := range map[string]map[string]any{"get_memory": {"memory_id": id},
			"update_memory": {"memory_id": id, "text": "Bob was here."}, "delete_memory": {"memory_id": id}} {
			if msg := use(bobS, tool, args, nil); !strings.Contains(msg, "not found") {
				t.Errorf("Bob's %s of Ann's memory: %q", tool, msg)
			}
		}
		status, _ := bob.do("POST", "/api/v1/agent/apps/assistant/users/"+ann.user.ID+"/mcp",
			map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"})
		if status != http.StatusForbidden {
			t.Errorf("Bob at Ann's URL: %d, want 403", status)
		}

		// A viewer reads, and is offered nothing that writes.
		veraS := connect(vera, endpoint)
		if got := tools(veraS); !slices.Equal(got, []string{"get_memories", "get_memory", "search_memories"}) {
			t.Fatalf("the viewer's tools %v", got)
		}
		if _, err := veraS.CallTool(ctx, &sdk.CallToolParams{Name: "add_memory", Arguments: map[string]any{"text": "I am Vera."}}); err == nil {
			t.Error("a viewer called add_memory")
		}

		// Without a token, nothing; GET (a stream) is not offered.
		resp, body := call(t, "POST", w.in.base+endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("no token: %d %s", resp.StatusCode, body)
		}
		if status, _ := ann.do("GET", endpoint, nil); status != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d, want 405", status)
		}

		// Forgetting: one, then all.
		use(annS, "add_memory", map[string]any{"text": "I live in Lisbon."}, nil)
		var deleted struct{ Deleted any }
		use(annS, "delete_memory", map[string]any{"memory_id": id}, &deleted)
		if msg := use(annS, "get_memory", map[string]any{"memory_id": id}, nil); !strings.Contains(msg, "not found") {
			t.Errorf("a forgotten memory: %q", msg)
		}
		use(annS, "delete_all_memories", nil, &deleted)
		if deleted.Deleted != float64(1) {
			t.Errorf("delete_all_memories: %+v", deleted)
		}
		use(annS, "get_memories", nil, &listed)
		if len(listed.Memories) != 0 {
			t.Fatalf("after delete_all_memories: %+v", listed)
		}
	})
}

// TestKnowledgeMCP searches a knowledge base through its MCP endpoint with
// the official client, on both databases: any member of the tenant,
// viewers included, gets passages with their document; another tenant's
// administrator reaches nothing.
func TestKnowledgeMCP(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		vars["NODUS_JOB_POLL_INTERVAL"] = "100ms"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		members := map[string]*client{}
		for _, tn := range []string{"Readers", "Others"} {
			var tenant struct{ Tenant struct{ ID string } }
			admin.must("POST", "/api/v1/tenants", map[string]any{"name": tn}, 201, &tenant)
			for _, role := range []string{"org_admin", "viewer"} {
				login := tn + "-" + role
				admin.must("POST", "/api/v1/users", map[string]any{"email": login + "@example.test", "username": login,
					"role": role, "tenant_id": tenant.Tenant.ID, "password": canaryOrgPassword}, 201, nil)
				members[login] = signIn(t, in.base, login, canaryOrgPassword)
			}
		}
		owner, viewer, other := members["Readers-org_admin"], members["Readers-viewer"], members["Others-org_admin"]
		var kb struct {
			KnowledgeBase struct{ ID string } `json:"knowledge_base"`
		}
		owner.must("POST", "/api/v1/knowledge-bases", map[string]any{"name": "Handbook", "description": "how we work"}, 201, &kb)
		docs := "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID + "/documents"
		status, body := owner.upload(docs, "onboarding.md", "# Onboarding\n\nEvery new starter receives the amber lantern handbook on day one.\n")
		var d documentAnswer
		if status != 201 || json.Unmarshal(body, &d) != nil {
			t.Fatalf("upload: %d %s", status, body)
		}
		for deadline := time.Now().Add(20 * time.Second); d.Document.Status != "completed"; time.Sleep(50 * time.Millisecond) {
			owner.must("GET", docs+"/"+d.Document.ID, nil, 200, &d)
			if d.Document.Status == "failed" || time.Now().After(deadline) {
				t.Fatalf("the document: %+v\n%s", d.Document, in.logs.String())
			}
		}

		endpoint := in.base + "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID + "/mcp"
		ctx := context.Background()
		connect := func(c *client, url string) (*sdk.ClientSession, error) {
			cl := sdk.NewClient(&sdk.Implementation{Name: "nodus-test", Version: "1"}, nil)
			return cl.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer{c.token}},
				MaxRetries: -1}, nil)
		}
		sess, err := connect(viewer, endpoint)
		if err != nil {
			t.Fatalf("a viewer connects: %v", err)
		}
		defer sess.Close()
		tools, err := sess.ListTools(ctx, nil)
		if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "search_knowledge_base" ||
			!strings.Contains(tools.Tools[0].Description, "Handbook") || !strings.Contains(tools.Tools[0].Description, "how we work") {
			t.Fatalf("tools: %+v %v", tools, err)
		}
		res, err := sess.CallTool(ctx, &sdk.CallToolParams{Name: "search_knowledge_base",
			Arguments: map[string]any{"query": "amber lantern", "top_k": 3}})
		if err != nil || res.IsError {
			t.Fatalf("search: %+v %v", res, err)
		}
		b, _ := json.Marshal(res.StructuredContent)
		var found struct {
			Hits []struct {
				DocumentName string  `json:"document_name"`
				Text         string  `json:"text"`
				Score        float64 `json:"score"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(b, &found); err != nil || len(found.Hits) != 1 || found.Hits[0].DocumentName != "onboarding.md" ||
			!strings.Contains(found.Hits[0].Text, "amber lantern") || found.Hits[0].Score <= 0 {
			t.Fatalf("search results: %s %v", b, err)
		}
		res, err = sess.CallTool(ctx, &sdk.CallToolParams{Name: "search_knowledge_base", Arguments: map[string]any{"query": ""}})
		if err != nil || !res.IsError {
			t.Errorf("an empty query: %+v %v", res, err)
		}
		// Another tenant's administrator, and an id that is nobody's.
		if _, err := connect(other, endpoint); err == nil {
			t.Error("another tenant's administrator connected")
		}
		for c, path := range map[*client]string{other: "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID + "/mcp",
			owner: "/api/v1/knowledge-bases/no-such-base/mcp"} {
			if status, body := c.do("POST", path, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}); status != 404 {
				t.Errorf("POST %s as %s: %d %s, want 404", path, c.user.Username, status, body)
			}
		}
	})
}

// TestChatbotMCP asks a chatbot through its MCP endpoint with the official
// client, on both databases: the answer comes through the gateway, the
// turn is stored in the caller's conversation, and a follow-up with its
// conversation_id continues it; a viewer may not ask.
func TestChatbotMCP(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{Text: "Parcels ship every weekday."})
		var bot struct{ Chatbot struct{ ID string } }
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Helpdesk", "model_name": "fake",
			"description": "answers customers"}, 201, &bot)
		w.do(t, w.orgAdmin, "POST", "/api/v1/users", map[string]any{"email": "cb-vera@example.test", "username": "cb-vera",
			"role": "viewer", "password": canaryOrgPassword}, 201, nil)
		vera := signIn(t, w.in.base, "cb-vera", canaryOrgPassword)
		endpoint := w.in.base + "/api/v1/chatbots/" + bot.Chatbot.ID + "/mcp"
		ctx := context.Background()
		cl := sdk.NewClient(&sdk.Implementation{Name: "nodus-test", Version: "1"}, nil)
		sess, err := cl.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: endpoint,
			HTTPClient: &http.Client{Transport: bearer{w.orgAdmin.token}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		tools, err := sess.ListTools(ctx, nil)
		if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "ask_chatbot" ||
			!strings.Contains(tools.Tools[0].Description, "answers customers") {
			t.Fatalf("tools: %+v %v", tools, err)
		}
		type answer struct {
			ConversationID string `json:"conversation_id"`
			Answer         string `json:"answer"`
		}
		ask := func(args map[string]any) answer {
			t.Helper()
			res, err := sess.CallTool(ctx, &sdk.CallToolParams{Name: "ask_chatbot", Arguments: args})
			if err != nil || res.IsError {
				t.Fatalf("ask %v: %+v %v\n%s", args, res, err, w.in.logs.String())
			}
			b, _ := json.Marshal(res.StructuredContent)
			var a answer
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatal(err)
			}
			return a
		}
		first := ask(map[string]any{"question": "When do parcels ship?"})
		if first.Answer != "Parcels ship every weekday." || first.ConversationID == "" {
			t.Fatalf("first answer %+v", first)
		}
		second := ask(map[string]any{"question": "And on Saturdays?", "conversation_id": first.ConversationID})
		if second.ConversationID != first.ConversationID {
			t.Errorf("the follow-up started conversation %s, not %s", second.ConversationID, first.ConversationID)
		}
		// The follow-up's prompt holds the first exchange.
		if req, _ := w.fake.LastRequest(); !strings.Contains(string(req.Body), "When do parcels ship?") {
			t.Errorf("the follow-up was asked without its history: %s", req.Body)
		}
		// The caller's conversation, as the chat API lists it.
		var conv struct {
			Messages []struct{ Role, Content string } `json:"messages"`
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/conversations/"+first.ConversationID, nil, 200, &conv)
		if len(conv.Messages) != 4 {
			t.Errorf("the conversation holds %d messages, want 4: %+v", len(conv.Messages), conv.Messages)
		}
		if status, body := vera.do("POST", "/api/v1/chatbots/"+bot.Chatbot.ID+"/mcp",
			map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}); status != http.StatusForbidden {
			t.Errorf("a viewer: %d %s", status, body)
		}
	})
}
