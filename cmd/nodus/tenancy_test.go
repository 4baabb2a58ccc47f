package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/httpapi"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// client calls the API with a bearer token.
type client struct {
	t     *testing.T
	base  string
	token string
	user  identity.User
}

// do sends body (nil for none) as JSON and returns the status and body.
func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		r = jsonBody(body)
	}
	resp, b := call(c.t, method, c.base+path, r, withBearer(c.token))
	return resp.StatusCode, b
}

// must sends a request that has to answer want, and decodes the answer
// into into (when not nil).
func (c *client) must(method, path string, body any, want int, into any) {
	c.t.Helper()
	status, b := c.do(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s as %s: %d %s, want %d", method, path, c.user.Username, status, b, want)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// signIn signs in with a password, mints an API token with the session
// (and its CSRF token), and returns a client that uses the token.
func signIn(t *testing.T, base, login, password string) *client {
	t.Helper()
	resp, body := call(t, "POST", base+"/api/v1/auth/login", jsonBody(map[string]string{"login": login, "password": password}))
	if resp.StatusCode != 200 {
		t.Fatalf("sign in as %s: %d %s", login, resp.StatusCode, body)
	}
	var me struct {
		User      identity.User `json:"user"`
		CSRFToken string        `json:"csrf_token"`
	}
	if err := json.Unmarshal(body, &me); err != nil {
		t.Fatal(err)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == httpapi.SessionCookie {
			cookie = ck
		}
	}
	resp, body = call(t, "POST", base+"/api/v1/tokens", jsonBody(map[string]any{"name": "test"}),
		withCookie(cookie), withHeader("X-CSRF-Token", me.CSRFToken))
	if resp.StatusCode != 201 {
		t.Fatalf("mint a token as %s: %d %s", login, resp.StatusCode, body)
	}
	var minted struct{ Secret string }
	if err := json.Unmarshal(body, &minted); err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: base, token: minted.Secret, user: me.User}
}

// tenancy is the world the tenancy tests share: a super_admin, tenants A
// and B, and in each an org_admin, a user and a viewer.
type tenancy struct {
	in      *instance
	vars    map[string]string
	admin   *client
	a, b    identity.Tenant
	members map[string]*client // "a-admin", "a-user", "a-viewer", "b-admin", …
	// tracingKeys holds each tenant's Langfuse key pair: public, secret.
	tracingKeys map[string][2]string
}

const memberPassword = "a long enough password"

// newTenancy builds the world through the API alone, as an operator would:
// the bootstrapped super_admin creates the tenants and their org_admins,
// and each org_admin creates the rest of their tenant.
func newTenancy(t *testing.T, databaseURL string) *tenancy {
	vars := nodusEnv(t, databaseURL)
	vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
	in := startNodus(t, vars)
	w := &tenancy{in: in, vars: vars, members: map[string]*client{}, tracingKeys: map[string][2]string{}}
	w.admin = signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
	for name, dst := range map[string]*identity.Tenant{"a": &w.a, "b": &w.b} {
		var got struct{ Tenant identity.Tenant }
		w.admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Tenant " + strings.ToUpper(name), "max_users": 10}, 201, &got)
		*dst = got.Tenant
		w.admin.must("POST", "/api/v1/users", map[string]any{"email": name + "-admin@example.test", "username": name + "-admin",
			"role": "org_admin", "tenant_id": got.Tenant.ID, "password": memberPassword}, 201, nil)
		orgAdmin := signIn(t, in.base, name+"-admin", memberPassword)
		w.members[name+"-admin"] = orgAdmin
		orgAdmin.must("POST", "/api/v1/menu-items", map[string]any{"key": name + "-docs", "label": "Our docs",
			"path": "https://docs.example.test/" + name, "roles": []string{"org_admin", "user", "viewer"}}, 201, nil)
		orgAdmin.must("PUT", "/api/v1/egress/policy", map[string]any{"mode": "enforce",
			"rules": []map[string]any{{"host": name + ".example.test", "comment": "our API"}}}, 200, nil)
		// The vault: a custom environment, a secret, a handle and a grant.
		orgAdmin.must("POST", "/api/v1/vault/environments", map[string]any{"slug": name + "-env"}, 201, nil)
		orgAdmin.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/db",
			"key": "PASSWORD", "value": name + "-canary-secret"}, 200, nil)
		orgAdmin.must("POST", "/api/v1/vault/handles", map[string]any{"environment": "prod", "path": "/db",
			"key": "PASSWORD", "allowed_hosts": []string{name + ".example.test"}, "purpose": "test.db"}, 201, nil)
		orgAdmin.must("POST", "/api/v1/vault/grants", map[string]any{"subject_type": "role", "subject": "user",
			"environment": "prod", "path_prefix": "/db", "permission": "read"}, 201, nil)
		// A secret written twice is rotated: a notification for the
		// org_admin. Then a webhook (after, so nothing is posted to it).
		for _, v := range []string{"v1", "v2"} {
			orgAdmin.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/api",
				"key": "TOKEN", "value": name + "-token-" + v}, 200, nil)
		}
		orgAdmin.must("POST", "/api/v1/webhooks", map[string]any{"url": "https://" + name + ".example.test/hooks",
			"kinds": []string{"secret.rotated", "budget.exhausted"}}, 201, nil)
		// A recording, left waiting for a speech model (none is set).
		if status, b := uploadAudio(t, orgAdmin, name+"-recording", name+".wav", silentWAV(1)); status != 201 {
			t.Fatalf("upload a recording for %s: %d %s", name, status, b)
		}
		waitRecordingsSettled(t, orgAdmin)
		// A machine identity, with a grant of its own.
		var machine struct{ Machine struct{ ID string } }
		orgAdmin.must("POST", "/api/v1/vault/machines", map[string]any{"name": name + "-deployer"}, 201, &machine)
		orgAdmin.must("POST", "/api/v1/vault/grants", map[string]any{"subject_type": "machine", "subject": machine.Machine.ID,
			"environment": "prod", "path_prefix": "/db", "permission": "read"}, 201, nil)
		// The gateway: a deployment, a virtual key and a tenant budget.
		orgAdmin.must("POST", "/api/v1/gateway/deployments", map[string]any{"model_name": name + "-model", "provider": "openai",
			"upstream_model": "gpt-4o", "base_url": "https://" + name + ".example.test/v1"}, 201, nil)
		var key struct{ Key struct{ Key string } }
		orgAdmin.must("POST", "/api/v1/gateway/keys", map[string]any{"name": name + "-key", "max_budget_micros": 1000000}, 201, &key)
		// The key works on the model API, for the built-in model; the other
		// tenant's model does not exist for it.
		caller := &client{t: t, base: in.base, token: key.Key.Key}
		var answer struct {
			Choices []struct{ Message struct{ Content string } }
		}
		caller.must("POST", "/v1/chat/completions", map[string]any{"model": "nodus/extractive", "messages": []map[string]any{
			{"role": "system", "content": "[1] Refunds take 14 days."}, {"role": "user", "content": "How long do refunds take?"}}}, 200, &answer)
		if len(answer.Choices) != 1 || !strings.Contains(answer.Choices[0].Message.Content, "14 days") {
			t.Fatalf("extractive answer through %s's key: %+v", name, answer)
		}
		other := map[string]string{"a": "b", "b": "a"}[name]
		caller.must("POST", "/v1/chat/completions", map[string]any{"model": other + "-model",
			"messages": []map[string]any{{"role": "user", "content": "hi"}}}, 404, nil)
		(&client{t: t, base: in.base}).must("GET", "/v1/models", nil, 401, nil)
		orgAdmin.must("PUT", "/api/v1/gateway/budgets", map[string]any{"scope": "tenant", "max_micros": 5000000, "period": "30d"}, 200, nil)
		orgAdmin.must("PUT", "/api/v1/gateway/router-settings", map[string]any{"strategy": "least-busy",
			"fallbacks": map[string][]string{name + "-model": {"nodus/extractive"}}}, 200, nil)
		orgAdmin.must("PUT", "/api/v1/gateway/prices/"+name+"-model", map[string]any{"input": 1, "output": 2}, 200, nil)
		// A knowledge base, through the API, with a failed document written
		// through the store (uploads have no route yet).
		var kb struct {
			KnowledgeBase struct{ ID string } `json:"knowledge_base"`
		}
		orgAdmin.must("POST", "/api/v1/knowledge-bases", map[string]any{"name": name + "-kb", "description": "Tenant " + name}, 201, &kb)
		addKnowledgeDocument(t, vars, got.Tenant.ID, kb.KnowledgeBase.ID)
		for _, role := range []string{"user", "viewer"} {
			login := name + "-" + role
			// No tenant_id: an org_admin's users join the org_admin's tenant.
			orgAdmin.must("POST", "/api/v1/users", map[string]any{"email": login + "@example.test", "username": login,
				"role": role, "password": memberPassword}, 201, nil)
			w.members[login] = signIn(t, in.base, login, memberPassword)
		}
		// A chatbot answering offline from the knowledge base, and a
		// conversation of the tenant's user with it.
		var bot struct{ Chatbot struct{ ID string } }
		orgAdmin.must("POST", "/api/v1/chatbots", map[string]any{"name": name + "-bot", "model_name": "nodus/extractive",
			"knowledge_bases": []string{kb.KnowledgeBase.ID}}, 201, &bot)
		w.members[name+"-user"].must("POST", "/api/v1/chatbots/"+bot.Chatbot.ID+"/chat",
			map[string]any{"message": "What does tenant " + name + " know?", "stream": false}, 200, nil)
		// The turn's trace is written in the background: wait for it, so
		// the snapshots of B compare settled rows.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var traces struct{ Traces []struct{ Name string } }
			orgAdmin.must("GET", "/api/v1/traces", nil, 200, &traces)
			if slices.ContainsFunc(traces.Traces, func(tr struct{ Name string }) bool { return tr.Name == "chat "+name+"-bot" }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the chat turn of %s left no trace", name)
			}
		}
		// A notebook of the tenant's user, shared with its viewer: a source,
		// a card and a chat answer.
		nbUser := w.members[name+"-user"]
		var nb struct{ Notebook struct{ ID string } }
		nbUser.must("POST", "/api/v1/notebooks", map[string]any{"name": name + "-notebook"}, 201, &nb)
		nbBase := "/api/v1/notebooks/" + nb.Notebook.ID
		var nbSrc struct{ Source struct{ ID string } }
		nbUser.must("POST", nbBase+"/sources", map[string]any{"kind": "text", "title": name + "-source",
			"text": "Tenant " + name + " keeps its notes here."}, 201, &nbSrc)
		// Its summary is written in the background: wait for it, so the
		// snapshots of B compare settled rows.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var src struct{ Source struct{ Status string } }
			nbUser.must("GET", nbBase+"/sources/"+nbSrc.Source.ID, nil, 200, &src)
			if src.Source.Status == "ready" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the source of %s's notebook was never summarised", name)
			}
		}
		nbUser.must("POST", nbBase+"/cards", map[string]any{"title": name + "-card", "content": "A *note*."}, 201, nil)
		nbUser.must("PUT", nbBase+"/shares/"+w.members[name+"-viewer"].user.ID, map[string]any{"permission": "read"}, 200, nil)
		var nbChat struct{ Chat struct{ ID string } }
		nbUser.must("POST", nbBase+"/chats", map[string]any{}, 201, &nbChat)
		nbUser.must("POST", nbBase+"/chats/"+nbChat.Chat.ID+"/messages", map[string]any{"message": "What does tenant " + name + " keep?"}, 200, nil)
		// The gateway traces the answer's call in the background: wait for
		// it too.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var traces struct {
				Traces []struct {
					Name   string
					UserID string `json:"user_id"`
				}
			}
			orgAdmin.must("GET", "/api/v1/traces", nil, 200, &traces)
			if slices.ContainsFunc(traces.Traces, func(tr struct {
				Name   string
				UserID string `json:"user_id"`
			}) bool {
				return tr.Name == "gateway chat" && tr.UserID == nbUser.user.ID
			}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the notebook chat of %s left no trace", name)
			}
		}
		// An agent session of the tenant's user, with an event and state in
		// every scope; both tenants use the same app and session id, so only
		// the tenant and the user keep them apart.
		user := w.members[name+"-user"]
		user.must("POST", "/api/v1/agent/apps/helpdesk/users/me/sessions", map[string]any{"session_id": "s1",
			"state": map[string]any{"topic": name, "user:lang": name, "app:tone": name}}, 201, nil)
		user.must("POST", "/api/v1/agent/apps/helpdesk/users/me/memories", map[string]any{"messages": []map[string]any{
			{"role": "user", "content": "My favourite colour is " + name + "-teal."}}}, 200, nil)
		user.must("POST", "/api/v1/agent/apps/helpdesk/users/me/sessions/s1/events", map[string]any{"author": "user",
			"content": map[string]any{"role": "user", "parts": []any{map[string]any{"text": name + "-canary"}}}}, 201, nil)
		// A Langfuse key pair, and a trace with a generation sent with it.
		var tk struct {
			Key struct {
				PublicKey string `json:"public_key"`
			}
			SecretKey string `json:"secret_key"`
		}
		orgAdmin.must("POST", "/api/v1/tracing/keys", map[string]any{"name": name + "-sdk"}, 201, &tk)
		w.tracingKeys[name] = [2]string{tk.Key.PublicKey, tk.SecretKey}
		orgAdmin.must("PUT", "/api/v1/tracing/settings", map[string]any{"retention_days": 30}, 200, nil)
		ingestBatch(t, in.base, w.tracingKeys[name], []map[string]any{
			{"id": name + "-ev1", "type": "trace-create", "body": map[string]any{"id": name + "-trace", "name": name + "-canary",
				"sessionId": name + "-session", "userId": name + "-sdk-user"}},
			{"id": name + "-ev2", "type": "generation-create", "body": map[string]any{"id": name + "-gen", "traceId": name + "-trace",
				"model": "gpt-4o", "usageDetails": map[string]any{"input": 5}}},
			{"id": name + "-ev3", "type": "score-create", "body": map[string]any{"id": name + "-score", "traceId": name + "-trace",
				"name": "quality", "value": 1}},
		}, 207)
	}
	for name, c := range w.members {
		want := w.a.ID
		if strings.HasPrefix(name, "b-") {
			want = w.b.ID
		}
		if c.user.TenantID != want {
			t.Fatalf("%s is in tenant %q, want %q", name, c.user.TenantID, want)
		}
	}
	return w
}

// ids returns the ids of a tenant's objects, by the kind of object a
// route's {id} names.
func (w *tenancy) ids(tenant string) map[string]string {
	t := w.members[tenant+"-admin"].t
	out := map[string]string{"tenants": w.a.ID, "users": w.members[tenant+"-viewer"].user.ID}
	if tenant == "b" {
		out["tenants"] = w.b.ID
	}
	var tokens struct{ Tokens []identity.Token }
	w.members[tenant+"-admin"].must("GET", "/api/v1/tokens", nil, 200, &tokens)
	if len(tokens.Tokens) == 0 {
		t.Fatalf("%s has no token", tenant)
	}
	out["tokens"] = tokens.Tokens[0].ID
	var items struct {
		Items []struct {
			ID       string
			TenantID string `json:"tenant_id"`
		}
	}
	w.members[tenant+"-admin"].must("GET", "/api/v1/menu-items", nil, 200, &items)
	for _, it := range items.Items {
		if it.TenantID != "" {
			out["menu-items"] = it.ID
		}
	}
	if out["menu-items"] == "" {
		t.Fatalf("%s has no menu item of its own", tenant)
	}
	out["environments"] = tenant + "-env"
	var handles struct{ Handles []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/vault/handles", nil, 200, &handles)
	var grants struct{ Grants []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/vault/grants", nil, 200, &grants)
	if len(handles.Handles) == 0 || len(grants.Grants) == 0 {
		t.Fatalf("%s has no vault handle or grant", tenant)
	}
	out["handles"], out["grants"] = handles.Handles[0].ID, grants.Grants[0].ID
	var machines struct{ Machines []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/vault/machines", nil, 200, &machines)
	if len(machines.Machines) == 0 {
		t.Fatalf("%s has no machine identity", tenant)
	}
	out["machines"] = machines.Machines[0].ID
	var notes struct{ Notifications []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/notifications", nil, 200, &notes)
	var hooks struct{ Webhooks []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/webhooks", nil, 200, &hooks)
	if len(notes.Notifications) == 0 || len(hooks.Webhooks) == 0 {
		t.Fatalf("%s has no notification or webhook", tenant)
	}
	out["notifications"], out["webhooks"] = notes.Notifications[0].ID, hooks.Webhooks[0].ID
	var recs struct{ Recordings []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/recordings", nil, 200, &recs)
	if len(recs.Recordings) == 0 {
		t.Fatalf("%s has no recording", tenant)
	}
	out["recordings"] = recs.Recordings[0].ID
	var deps struct{ Deployments []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/gateway/deployments", nil, 200, &deps)
	var keys struct{ Keys []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/gateway/keys", nil, 200, &keys)
	var budgets struct{ Budgets []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/gateway/budgets", nil, 200, &budgets)
	if len(deps.Deployments) == 0 || len(keys.Keys) == 0 || len(budgets.Budgets) == 0 {
		t.Fatalf("%s has no gateway deployment, key or budget", tenant)
	}
	out["deployments"], out["keys"], out["budgets"] = deps.Deployments[0].ID, keys.Keys[0].ID, budgets.Budgets[0].ID
	out["prices"] = tenant + "-model" // its price override, made in newTenancy
	var kbs struct {
		KnowledgeBases []struct{ ID string } `json:"knowledge_bases"`
	}
	w.members[tenant+"-admin"].must("GET", "/api/v1/knowledge-bases", nil, 200, &kbs)
	if len(kbs.KnowledgeBases) == 0 {
		t.Fatalf("%s has no knowledge base", tenant)
	}
	out["knowledge-bases"] = kbs.KnowledgeBases[0].ID
	var docs struct{ Documents []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/knowledge-bases/"+out["knowledge-bases"]+"/documents", nil, 200, &docs)
	if len(docs.Documents) == 0 {
		t.Fatalf("%s has no document", tenant)
	}
	out["documents"] = docs.Documents[0].ID
	var bots struct{ Chatbots []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/chatbots", nil, 200, &bots)
	var convs struct{ Conversations []struct{ ID string } }
	w.members[tenant+"-user"].must("GET", "/api/v1/conversations", nil, 200, &convs)
	if len(bots.Chatbots) == 0 || len(convs.Conversations) == 0 {
		t.Fatalf("%s has no chatbot or conversation", tenant)
	}
	out["chatbots"], out["conversations"] = bots.Chatbots[0].ID, convs.Conversations[0].ID
	var conv struct{ Messages []struct{ ID, Role string } }
	w.members[tenant+"-user"].must("GET", "/api/v1/conversations/"+out["conversations"], nil, 200, &conv)
	for _, m := range conv.Messages {
		if m.Role == "assistant" {
			out["messages"] = m.ID
		}
	}
	var mems struct{ Memories []struct{ ID string } }
	w.members[tenant+"-user"].must("GET", "/api/v1/agent/apps/helpdesk/users/me/memories", nil, 200, &mems)
	if len(mems.Memories) == 0 {
		t.Fatalf("%s has no memory", tenant)
	}
	out["memories"] = mems.Memories[0].ID
	var traces struct{ Traces []struct{ ID string } }
	w.members[tenant+"-user"].must("GET", "/api/v1/traces", nil, 200, &traces)
	var tkeys struct{ Keys []struct{ ID string } }
	w.members[tenant+"-admin"].must("GET", "/api/v1/tracing/keys", nil, 200, &tkeys)
	if len(traces.Traces) == 0 || len(tkeys.Keys) == 0 {
		t.Fatalf("%s has no trace or tracing key", tenant)
	}
	out["traces"], out["tracing-keys"] = traces.Traces[0].ID, tkeys.Keys[0].ID
	// The session of the trace sent with the tenant's key pair.
	out["sessions"] = tenant + "-session"
	// Agent sessions are named by app, user and session (newTenancy's).
	out["agent-user"], out["agent-session"] = w.members[tenant+"-user"].user.ID, "s1"
	// The notebook of the tenant's user, and what is in it.
	nbUser := w.members[tenant+"-user"]
	var nbs struct{ Notebooks []struct{ ID string } }
	nbUser.must("GET", "/api/v1/notebooks", nil, 200, &nbs)
	if len(nbs.Notebooks) == 0 {
		t.Fatalf("%s has no notebook", tenant)
	}
	nbBase := "/api/v1/notebooks/" + nbs.Notebooks[0].ID
	var srcs struct{ Sources []struct{ ID string } }
	nbUser.must("GET", nbBase+"/sources", nil, 200, &srcs)
	var cards struct{ Cards []struct{ ID string } }
	nbUser.must("GET", nbBase+"/cards", nil, 200, &cards)
	var chats struct{ Chats []struct{ ID string } }
	nbUser.must("GET", nbBase+"/chats", nil, 200, &chats)
	if len(srcs.Sources) == 0 || len(cards.Cards) == 0 || len(chats.Chats) == 0 {
		t.Fatalf("%s's notebook has no source, card or chat", tenant)
	}
	var nbChat struct{ Messages []struct{ ID, Role string } }
	nbUser.must("GET", nbBase+"/chats/"+chats.Chats[0].ID, nil, 200, &nbChat)
	for _, m := range nbChat.Messages {
		if m.Role == "assistant" {
			out["notebook-message"] = m.ID
		}
	}
	out["notebooks"], out["notebook-source"], out["notebook-card"] = nbs.Notebooks[0].ID, srcs.Sources[0].ID, cards.Cards[0].ID
	out["notebook-chat"], out["notebook-member"] = chats.Chats[0].ID, w.members[tenant+"-viewer"].user.ID
	return out
}

// fillPath puts ids into a route's {id} by the collection it belongs to:
// the path segment before it. The {id} may be followed by fixed segments
// (/api/v1/vault/machines/{id}/secret); a model name ({model...}) takes its
// place in /api/v1/gateway/prices/.
func fillPath(t *testing.T, path string, ids map[string]string) string {
	t.Helper()
	// An agent session's routes name its app, user and session.
	path = strings.NewReplacer("{app}", "helpdesk", "{user}", ids["agent-user"], "{session}", ids["agent-session"]).Replace(path)
	// The tracing key pairs' {id}: not the gateway's keys.
	if before, after, ok := strings.Cut(path, "/tracing/keys/{id}"); ok {
		return before + "/tracing/keys/" + ids["tracing-keys"] + after
	}
	// A notebook's routes name what is in it too: those first.
	path = strings.NewReplacer("{source}", ids["notebook-source"], "{card}", ids["notebook-card"], "{chat}", ids["notebook-chat"],
		"{message}", ids["notebook-message"], "{member}", ids["notebook-member"]).Replace(path)
	// A document's routes name its knowledge base too: {doc} first.
	if before, after, ok := strings.Cut(path, "/documents/{doc}"); ok {
		path = before + "/documents/" + ids["documents"] + after
	}
	if !strings.Contains(path, "{") {
		return path
	}
	prefix, rest, _ := strings.Cut(path, "/{")
	name, rest, _ := strings.Cut(rest, "}")
	kind := prefix[strings.LastIndex(prefix, "/")+1:]
	id, ok := ids[kind]
	if !ok || strings.Count(path, "{") != 1 || (name != "id" && name != "model...") ||
		(rest != "" && !strings.HasPrefix(rest, "/")) {
		t.Fatalf("route %s: the test does not know whose id goes in it; teach fillPath its kind", path)
	}
	return prefix + "/" + id + rest
}

// snapshot is what tenant B holds, as the super_admin and B's org_admin
// see it, minus last_used_at (which reading tokens updates).
func (w *tenancy) snapshot(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	for _, path := range []string{"/api/v1/tenants/" + w.b.ID, "/api/v1/users?tenant_id=" + w.b.ID,
		"/api/v1/menu-items?tenant_id=" + w.b.ID, "/api/v1/menus?tenant_id=" + w.b.ID, "/api/v1/settings?tenant_id=" + w.b.ID,
		"/api/v1/egress/policy?tenant_id=" + w.b.ID,
		"/api/v1/vault/environments?tenant_id=" + w.b.ID, "/api/v1/vault/handles?tenant_id=" + w.b.ID,
		"/api/v1/vault/grants?tenant_id=" + w.b.ID, "/api/v1/vault/machines?tenant_id=" + w.b.ID,
		"/api/v1/vault/secret?environment=prod&path=/db&key=PASSWORD&tenant_id=" + w.b.ID,
		"/api/v1/gateway/deployments?tenant_id=" + w.b.ID, "/api/v1/gateway/keys?tenant_id=" + w.b.ID,
		"/api/v1/gateway/budgets?tenant_id=" + w.b.ID, "/api/v1/gateway/router-settings?tenant_id=" + w.b.ID,
		"/api/v1/gateway/prices?tenant_id=" + w.b.ID,
		"/api/v1/traces?tenant_id=" + w.b.ID, "/api/v1/traces/b-trace?tenant_id=" + w.b.ID,
		"/api/v1/tracing/keys?tenant_id=" + w.b.ID, "/api/v1/tracing/sessions?tenant_id=" + w.b.ID,
		"/api/v1/tracing/sessions/b-session?tenant_id=" + w.b.ID, "/api/v1/tracing/users?tenant_id=" + w.b.ID,
		"/api/v1/webhooks?tenant_id=" + w.b.ID, "/api/v1/recordings?tenant_id=" + w.b.ID} {
		status, b := w.admin.do("GET", path, nil)
		if status != 200 || len(b) < 50 {
			t.Fatalf("snapshot GET %s: %d %s", path, status, b)
		}
		buf.Write(b)
	}
	// B's tracing retention (short: no length check).
	if status, b := w.admin.do("GET", "/api/v1/tracing/settings?tenant_id="+w.b.ID, nil); status != 200 {
		t.Fatalf("snapshot GET tracing settings: %d %s", status, b)
	} else {
		buf.Write(b)
	}
	var kbs struct {
		KnowledgeBases []struct{ ID string } `json:"knowledge_bases"`
	}
	w.admin.must("GET", "/api/v1/knowledge-bases?tenant_id="+w.b.ID, nil, 200, &kbs)
	if len(kbs.KnowledgeBases) == 0 {
		t.Fatal("snapshot: B has no knowledge base")
	}
	for _, path := range []string{"/api/v1/knowledge-bases?tenant_id=" + w.b.ID,
		"/api/v1/knowledge-bases/" + kbs.KnowledgeBases[0].ID + "/documents?tenant_id=" + w.b.ID} {
		status, b := w.admin.do("GET", path, nil)
		if status != 200 || len(b) < 50 {
			t.Fatalf("snapshot GET %s: %d %s", path, status, b)
		}
		buf.Write(b)
	}
	var convs struct{ Conversations []struct{ ID string } }
	w.admin.must("GET", "/api/v1/conversations?all=true&tenant_id="+w.b.ID, nil, 200, &convs)
	if len(convs.Conversations) == 0 {
		t.Fatal("snapshot: B has no conversation")
	}
	for _, path := range []string{"/api/v1/chatbots?tenant_id=" + w.b.ID,
		"/api/v1/conversations/" + convs.Conversations[0].ID + "?tenant_id=" + w.b.ID} {
		status, b := w.admin.do("GET", path, nil)
		if status != 200 || len(b) < 50 {
			t.Fatalf("snapshot GET %s: %d %s", path, status, b)
		}
		buf.Write(b)
	}
	// B's notebook, as its owner sees it.
	var nbs struct{ Notebooks []struct{ ID string } }
	w.members["b-user"].must("GET", "/api/v1/notebooks", nil, 200, &nbs)
	if len(nbs.Notebooks) == 0 {
		t.Fatal("snapshot: B has no notebook")
	}
	nbB := "/api/v1/notebooks/" + nbs.Notebooks[0].ID
	for _, path := range []string{"/api/v1/notebooks", nbB, nbB + "/shares", nbB + "/sources", nbB + "/cards", nbB + "/chats"} {
		status, b := w.members["b-user"].do("GET", path, nil)
		if status != 200 || len(b) < 50 {
			t.Fatalf("snapshot GET %s as B's user: %d %s", path, status, b)
		}
		buf.Write(b)
	}
	memB := "/api/v1/agent/apps/helpdesk/users/" + w.members["b-user"].user.ID + "/memories?tenant_id=" + w.b.ID
	if status, b := w.admin.do("GET", memB, nil); status != 200 || len(b) < 50 {
		t.Fatalf("snapshot GET %s: %d %s", memB, status, b)
	} else {
		buf.Write(b)
	}
	agentB := "/api/v1/agent/apps/helpdesk/users/" + w.members["b-user"].user.ID + "/sessions"
	for _, path := range []string{agentB + "?tenant_id=" + w.b.ID, agentB + "/s1?tenant_id=" + w.b.ID} {
		status, b := w.admin.do("GET", path, nil)
		if status != 200 || len(b) < 50 {
			t.Fatalf("snapshot GET %s: %d %s", path, status, b)
		}
		buf.Write(b)
	}
	// B's org_admin's own notifications, read state and preferences.
	for _, path := range []string{"/api/v1/notifications", "/api/v1/notifications/preferences"} {
		status, b := w.members["b-admin"].do("GET", path, nil)
		if status != 200 || len(b) < 50 {
			t.Fatalf("snapshot GET %s as B's org_admin: %d %s", path, status, b)
		}
		buf.Write(b)
	}
	var tokens struct{ Tokens []map[string]any }
	w.members["b-admin"].must("GET", "/api/v1/tokens", nil, 200, &tokens)
	for _, k := range tokens.Tokens {
		delete(k, "last_used_at")
	}
	b, _ := json.Marshal(tokens)
	buf.Write(b)
	return buf.String()
}

// TestTenancyEndToEnd is the scenario of issue 3 and SECURITY.md checks
// 1, 3 and 7 over HTTP, on SQLite and PostgreSQL: the bootstrapped admin
// makes two tenants with an org_admin each, who make users of every role;
// then every route is tried with the other tenant's ids, every write
// route as a viewer, the role rules one by one, sign-in throttling, and
// finally `nodus audit verify` before and after a row is edited.
func TestTenancyEndToEnd(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newTenancy(t, databaseURL)
		t.Run("cross-tenant", func(t *testing.T) { w.crossTenantMatrix(t) })
		t.Run("viewer-cannot-write", func(t *testing.T) { w.viewerCannotWrite(t) })
		t.Run("role-rules", func(t *testing.T) { w.roleRules(t) })
		t.Run("throttle", func(t *testing.T) { w.throttle(t) })
		t.Run("deactivated-tenant", func(t *testing.T) { w.deactivatedTenant(t) })
		t.Run("otlp", func(t *testing.T) { w.otlpScenario(t) })
		t.Run("tracing-public", func(t *testing.T) { w.publicTracingIsolation(t) })
		t.Run("tracing", func(t *testing.T) { w.tracingScenario(t) })
		t.Run("audit-verify", func(t *testing.T) { w.auditVerify(t) })
	})
}

// crossTenantMatrix walks the route table: A's org_admin calls every
// route with B's ids in the path, the query and the body. Each call must
// answer 404 (403 where the role may not use the route at all), and B's
// rows must be unchanged afterwards (SECURITY.md check 1).
func (w *tenancy) crossTenantMatrix(t *testing.T) {
	b := w.ids("b")
	// foreign lists how a route takes another tenant's ids besides an {id}
	// in its path: in its query or its body. Every route that takes none
	// is on the list of routes without foreign ids; a new route that is on
	// neither list fails the test until someone decides which it is.
	type input struct {
		query string
		body  map[string]any
	}
	item := func(extra map[string]any) map[string]any {
		m := map[string]any{"key": "intruder", "label": "Intruder", "path": "/intruder", "roles": []string{"viewer"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	foreign := map[string][]input{
		"GET /api/v1/users":      {{query: "tenant_id=" + w.b.ID}},
		"POST /api/v1/users":     {{body: map[string]any{"email": "x@example.test", "username": "intruder", "role": "viewer", "tenant_id": w.b.ID, "password": memberPassword}}},
		"GET /api/v1/audit":      {{query: "tenant_id=" + w.b.ID}},
		"GET /api/v1/menus":      {{query: "tenant_id=" + w.b.ID}},
		"GET /api/v1/menu-items": {{query: "tenant_id=" + w.b.ID}},
		"POST /api/v1/menu-items": {
			{body: item(map[string]any{"tenant_id": w.b.ID})},
			{body: item(map[string]any{"parent_id": b["menu-items"]})},
		},
		"PATCH /api/v1/users/{id}":      {{body: map[string]any{"full_name": "hijacked", "role": "viewer"}}},
		"PATCH /api/v1/tenants/{id}":    {{body: map[string]any{"name": "hijacked"}}},
		"PATCH /api/v1/menu-items/{id}": {{body: map[string]any{"label": "hijacked", "parent_id": ""}}},
		"GET /api/v1/settings":          {{query: "tenant_id=" + w.b.ID}},
		"PATCH /api/v1/settings":        {{query: "tenant_id=" + w.b.ID, body: map[string]any{"branding": map[string]any{"product_name": "hijacked"}}}},
		// A valid address, so only B's scope can refuse it: 404 before
		// B's settings are read or anything is sent.
		"POST /api/v1/settings/email/test": {{query: "tenant_id=" + w.b.ID, body: map[string]any{"to": "x@example.test"}}},
		"GET /api/v1/egress/policy":        {{query: "tenant_id=" + w.b.ID}},
		"PUT /api/v1/egress/policy": {{query: "tenant_id=" + w.b.ID,
			body: map[string]any{"mode": "report", "rules": []map[string]any{{"host": "evil.example.test"}}}}},
		"POST /api/v1/egress/check": {{query: "tenant_id=" + w.b.ID, body: map[string]any{"url": "https://b.example.test/"}}},
	}
	// The vault addresses secrets by location within the caller's tenant,
	// so the only way to name B's is B's tenant id: every vault route
	// without an id in its path gets it, with a body that would otherwise
	// be a valid request.
	secret := map[string]any{"environment": "prod", "path": "/db", "key": "PASSWORD"}
	with := func(m map[string]any, extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	onB := "tenant_id=" + w.b.ID
	at := onB + "&environment=prod&path=/db&key=PASSWORD"
	for pattern, in := range map[string]input{
		"GET /api/v1/vault":                  {query: onB},
		"GET /api/v1/vault/environments":     {query: onB},
		"POST /api/v1/vault/environments":    {query: onB, body: map[string]any{"slug": "intruder"}},
		"PATCH /api/v1/vault/config":         {query: onB, body: map[string]any{"max_versions": 1}},
		"GET /api/v1/vault/secrets":          {query: onB + "&environment=prod&recursive=true"},
		"GET /api/v1/vault/secret":           {query: at},
		"PUT /api/v1/vault/secret":           {query: onB, body: with(secret, map[string]any{"value": "hijacked"})},
		"POST /api/v1/vault/secret/reveal":   {query: onB, body: secret},
		"DELETE /api/v1/vault/secret":        {query: at},
		"POST /api/v1/vault/secret/undelete": {query: onB, body: secret},
		"POST /api/v1/vault/secret/destroy":  {query: onB, body: with(secret, map[string]any{"all": true})},
		"GET /api/v1/vault/handles":          {query: onB},
		"POST /api/v1/vault/handles":         {query: onB, body: with(secret, map[string]any{"purpose": "x"})},
		"GET /api/v1/vault/grants":           {query: onB},
		"POST /api/v1/vault/grants": {query: onB, body: map[string]any{"subject_type": "role", "subject": "user",
			"environment": "prod", "path_prefix": "/", "permission": "write"}},
		"GET /api/v1/vault/keys":           {query: onB},
		"POST /api/v1/vault/keys/rotate":   {query: onB},
		"PATCH /api/v1/vault/handles/{id}": {body: with(secret, map[string]any{"purpose": "x"})},
		"GET /api/v1/vault/machines":       {query: onB},
		"POST /api/v1/vault/machines":      {query: onB, body: map[string]any{"name": "intruder"}},
		"PATCH /api/v1/vault/machines/{id}": {body: map[string]any{"name": "hijacked", "is_active": false,
			"allowed_cidrs": []string{"0.0.0.0/0"}}},
		"GET /api/v1/gateway/deployments": {query: onB},
		"POST /api/v1/gateway/deployments": {query: onB, body: map[string]any{"model_name": "intruder", "provider": "openai",
			"upstream_model": "gpt-4o", "base_url": "https://evil.example.test/v1"}},
		"PUT /api/v1/gateway/deployments/{id}": {body: map[string]any{"model_name": "hijacked", "provider": "openai",
			"upstream_model": "gpt-4o", "base_url": "https://evil.example.test/v1"}},
		"GET /api/v1/gateway/keys":            {query: onB},
		"POST /api/v1/gateway/keys":           {query: onB, body: map[string]any{"name": "intruder"}},
		"PATCH /api/v1/gateway/keys/{id}":     {body: map[string]any{"name": "hijacked", "blocked": true}},
		"GET /api/v1/gateway/budgets":         {query: onB},
		"PUT /api/v1/gateway/budgets":         {query: onB, body: map[string]any{"scope": "tenant", "max_micros": 1}},
		"GET /api/v1/spend":                   {query: onB},
		"GET /api/v1/gateway/router-settings": {query: onB},
		"PUT /api/v1/gateway/router-settings": {query: onB, body: map[string]any{"strategy": "weighted"}},
		"GET /api/v1/gateway/prices":          {query: onB},
		// A model name is no id: without B's tenant id the price would be
		// A's own.
		"PUT /api/v1/gateway/prices/{model...}": {query: onB, body: map[string]any{"input": 7, "output": 7}},
		"POST /api/v1/gateway/import":           {query: onB},
		"GET /api/v1/knowledge-bases":           {query: onB},
		"POST /api/v1/knowledge-bases":          {query: onB, body: map[string]any{"name": "intruder"}},
		"PATCH /api/v1/knowledge-bases/{id}": {body: map[string]any{"name": "hijacked",
			"chunking": map[string]any{"size": 100, "overlap": 0}}},
		"GET /api/v1/knowledge-bases/{id}/documents": {query: "status=failed"},
		// A valid query, so only the knowledge base's tenant can refuse it.
		"POST /api/v1/knowledge-bases/{id}/search": {body: map[string]any{"query": "tenant document"}},
		"GET /api/v1/chatbots":                     {query: onB},
		"POST /api/v1/chatbots":                    {query: onB, body: map[string]any{"name": "intruder", "model_name": "nodus/extractive"}},
		"PATCH /api/v1/chatbots/{id}":              {body: map[string]any{"name": "hijacked", "is_active": false}},
		"POST /api/v1/chatbots/{id}/chat":          {body: map[string]any{"message": "hello", "stream": false}},
		"GET /api/v1/conversations":                {query: onB + "&all=true"},
		"PATCH /api/v1/conversations/{id}":         {body: map[string]any{"title": "hijacked", "archived": true}},
		"PUT /api/v1/messages/{id}/feedback":       {body: map[string]any{"rating": "dislike"}},
		"GET /api/v1/tracing/keys":                 {query: onB},
		"POST /api/v1/tracing/keys":                {query: onB, body: map[string]any{"name": "intruder"}},
		"GET /api/v1/tracing/settings":             {query: onB},
		"PUT /api/v1/tracing/settings":             {query: onB, body: map[string]any{"retention_days": 1}},
		"GET /api/v1/tracing/metrics":              {query: onB + "&from=2026-01-01&to=2026-01-31&group_by=model"},
		"GET /api/v1/metrics/usage":                {query: onB + "&from=2026-01-01&to=2026-01-31&group_by=user&format=csv"},
		"GET /api/v1/traces":                       {query: onB},
		"POST /api/v1/scores":                      {body: map[string]any{"trace_id": b["traces"], "name": "hijack", "value": 0}},
		"GET /api/v1/tracing/sessions":             {query: onB},
		"GET /api/v1/tracing/sessions/{id}":        {query: onB},
		"GET /api/v1/tracing/users":                {query: onB},
		// Notifications are the caller's own: B's tenant named is not
		// found; B's notification by id is not found either.
		"GET /api/v1/notifications":             {query: onB + "&unread=true"},
		"GET /api/v1/notifications/count":       {query: onB},
		"POST /api/v1/notifications/read-all":   {query: onB},
		"GET /api/v1/notifications/preferences": {query: onB},
		"PUT /api/v1/notifications/preferences": {query: onB, body: map[string]any{"email": map[string]bool{"secret.rotated": true}}},
		"GET /api/v1/webhooks":                  {query: onB},
		"POST /api/v1/webhooks":                 {query: onB, body: map[string]any{"url": "https://evil.example.test/", "kinds": []string{"secret.rotated"}}},
		"GET /api/v1/notebooks":                 {query: onB},
		"POST /api/v1/notebooks":                {query: onB, body: map[string]any{"name": "intruder"}},
		// Recordings: B's by id (in the path), or B's tenant named.
		"GET /api/v1/recordings":                 {query: onB},
		"PATCH /api/v1/recordings/{id}":          {body: map[string]any{"title": "hijacked"}},
		"POST /api/v1/recordings/{id}/knowledge": {body: map[string]any{"knowledge_base_id": b["knowledge-bases"]}},
	} {
		foreign[pattern] = append(foreign[pattern], in)
	}
	foreign["POST /api/v1/scores"] = append(foreign["POST /api/v1/scores"],
		input{query: onB, body: map[string]any{"trace_id": b["traces"], "name": "hijack", "value": 0}})
	// An upload to B's knowledge base, by its id alone or naming B's tenant:
	// 404 before the body (here not even multipart) is looked at.
	foreign["POST /api/v1/knowledge-bases/{id}/documents"] = []input{{}, {query: onB}}
	// An import from a URL B's egress policy allows, into B's knowledge
	// base: 404 before anything is fetched. A bulk import likewise, before
	// its body is read.
	importB := map[string]any{"url": "https://b.example.test/b.md"}
	foreign["POST /api/v1/knowledge-bases/{id}/documents/import-url"] = []input{{body: importB}, {query: onB, body: importB}}
	foreign["POST /api/v1/knowledge-bases/{id}/documents/bulk"] = []input{{}, {query: onB}}
	// The progress stream of B's knowledge base, alone, naming B's tenant
	// or following B's document: 404 before any stream starts. The matrix
	// reads answers to their end, so it only ever tries the refusals of a
	// stream; were one to open, the test would hang until go test's
	// timeout rather than pass.
	foreign["GET /api/v1/knowledge-bases/{id}/documents/events"] = []input{{}, {query: onB}, {query: "document=" + b["documents"]}}
	// B's agent sessions, named by B's user (not a user of A's tenant) and
	// also naming B's tenant: 404 before any session is looked up.
	for pattern, body := range map[string]map[string]any{
		"POST /api/v1/agent/apps/{app}/users/{user}/sessions":                  {"session_id": "s2", "state": map[string]any{"user:lang": "hijacked"}},
		"GET /api/v1/agent/apps/{app}/users/{user}/sessions":                   nil,
		"GET /api/v1/agent/apps/{app}/users/{user}/sessions/{session}":         nil,
		"DELETE /api/v1/agent/apps/{app}/users/{user}/sessions/{session}":      nil,
		"POST /api/v1/agent/apps/{app}/users/{user}/sessions/{session}/events": {"author": "intruder", "actions": map[string]any{"state_delta": map[string]any{"app:tone": "hijacked"}}},
	} {
		foreign[pattern] = []input{{body: body}, {query: onB, body: body}}
	}
	// B's memories likewise, by B's user, and A's own user naming B's
	// memory id.
	for pattern, body := range map[string]map[string]any{
		"POST /api/v1/agent/apps/{app}/users/{user}/memories":                  {"messages": []map[string]any{{"role": "user", "content": "My name is Mallory."}}},
		"GET /api/v1/agent/apps/{app}/users/{user}/memories":                   nil,
		"DELETE /api/v1/agent/apps/{app}/users/{user}/memories":                nil,
		"POST /api/v1/agent/apps/{app}/users/{user}/memories/search":           {"query": "favourite colour"},
		"GET /api/v1/agent/apps/{app}/users/{user}/memories/{id}":              nil,
		"PUT /api/v1/agent/apps/{app}/users/{user}/memories/{id}":              {"memory": "hijacked"},
		"DELETE /api/v1/agent/apps/{app}/users/{user}/memories/{id}":           nil,
		"GET /api/v1/agent/apps/{app}/users/{user}/memories/{id}/history":      nil,
		"POST /api/v1/agent/apps/{app}/users/{user}/sessions/{session}/memory": {},
	} {
		foreign[pattern] = []input{{body: body}, {query: onB, body: body}}
	}
	// A chatbot of A's own naming B's knowledge base; B's conversation
	// continued through A's chatbot.
	foreign["POST /api/v1/chatbots"] = append(foreign["POST /api/v1/chatbots"], input{body: map[string]any{
		"name": "intruder", "model_name": "nodus/extractive", "knowledge_bases": []string{b["knowledge-bases"]}}})
	foreign["GET /api/v1/conversations"] = append(foreign["GET /api/v1/conversations"], input{query: onB})
	// B's notification and webhooks by id, alone and naming B's tenant.
	for _, pattern := range []string{"POST /api/v1/notifications/{id}/read", "DELETE /api/v1/webhooks/{id}",
		"GET /api/v1/webhooks/{id}/deliveries"} {
		foreign[pattern] = []input{{}, {query: onB}}
	}
	// An upload into B's tenant: 404 before the body (not even multipart).
	foreign["POST /api/v1/recordings"] = []input{{query: onB}}
	// B's price override named in A's tenant is A's to delete, and A has none.
	foreign["DELETE /api/v1/gateway/prices/{model...}"] = []input{{}, {query: onB}}
	// A grant in A's own vault naming B's machine identity.
	foreign["POST /api/v1/vault/grants"] = append(foreign["POST /api/v1/vault/grants"], input{body: map[string]any{
		"subject_type": "machine", "subject": b["machines"], "environment": "prod", "path_prefix": "/", "permission": "write"}})
	noForeignIDs := []string{
		"POST /api/v1/auth/logout", "GET /api/v1/me", "POST /api/v1/me/password", "PATCH /api/v1/me",
		"POST /api/v1/tokens", "GET /api/v1/tokens", "GET /api/v1/tenants", "POST /api/v1/tenants",
		// Platform-wide: no tenant in them, and an org_admin is refused outright.
		"GET /api/v1/egress/platform", "PUT /api/v1/egress/platform",
	}
	perms := identity.NewPermissions()
	before := w.snapshot(t)
	attacker := w.members["a-admin"]
	for _, rt := range httpapi.Routes() {
		pattern := rt.Method + " " + rt.Path
		inputs, hasForeign := foreign[pattern]
		switch {
		case rt.Public:
			continue
		case slices.Contains(noForeignIDs, pattern):
			if hasForeign || strings.Contains(rt.Path, "{") {
				t.Errorf("%s is on both lists", pattern)
			}
			continue
		case !hasForeign && !strings.Contains(rt.Path, "{"):
			t.Errorf("route %s takes no id in its path and is on neither list: add it to foreign or noForeignIDs", pattern)
			continue
		}
		if len(inputs) == 0 {
			inputs = []input{{}}
		}
		for _, in := range inputs {
			path := fillPath(t, rt.Path, b)
			if in.query != "" {
				path += "?" + in.query
			}
			var body any
			if in.body != nil {
				body = in.body
			} else if rt.Method != "GET" && rt.Method != "DELETE" {
				body = map[string]any{}
			}
			want := http.StatusNotFound
			if !perms.Allows(attacker.user.Role, rt.Action) {
				want = http.StatusForbidden
			}
			status, got := attacker.do(rt.Method, path, body)
			if status != want {
				t.Errorf("%s %s %v as A's org_admin: %d %s, want %d", rt.Method, path, body, status, got, want)
			}
			if bytes.Contains(got, []byte(w.b.Name)) || bytes.Contains(got, []byte("b-admin")) {
				t.Errorf("%s %s leaks B's data: %s", rt.Method, path, got)
			}
		}
	}
	// B's ids inside the bodies of A's own notebook: B's document as a
	// source, B's user as a share, B's chat answer saved as a card.
	var own struct{ Notebook struct{ ID string } }
	attacker.must("POST", "/api/v1/notebooks", map[string]any{"name": "attacker's"}, 201, &own)
	ownBase := "/api/v1/notebooks/" + own.Notebook.ID
	attacker.must("POST", ownBase+"/sources", map[string]any{"kind": "document", "document_id": b["documents"]}, 404, nil)
	attacker.must("PUT", ownBase+"/shares/"+b["notebook-member"], map[string]any{"permission": "write"}, 404, nil)
	attacker.must("POST", ownBase+"/cards/reorder", map[string]any{"card_ids": []string{b["notebook-card"]}}, 400, nil)
	var ownChat struct{ Chat struct{ ID string } }
	attacker.must("POST", ownBase+"/chats", map[string]any{}, 201, &ownChat)
	attacker.must("POST", ownBase+"/chats/"+ownChat.Chat.ID+"/messages/"+b["notebook-message"]+"/card", map[string]any{}, 404, nil)
	attacker.must("DELETE", ownBase, nil, 204, nil)
	if after := w.snapshot(t); after != before {
		t.Errorf("B's rows changed:\nbefore %s\nafter  %s", before, after)
	}
}

// readsByPost are the POST routes that change nothing for a viewer: they
// take a body too large or structured for a query string, or (the
// memory's MCP endpoint) offer a viewer the reading tools only, which
// TestMemoryMCP checks. Named one by one, so a write route given a read
// action by mistake still fails below.
var readsByPost = []string{"POST /api/v1/knowledge-bases/{id}/search", "POST /api/v1/knowledge-bases/{id}/mcp",
	"POST /api/v1/agent/apps/{app}/users/{user}/mcp"}

// viewerCannotWrite sends every state-changing route, with the viewer's
// own tenant's ids, as a viewer: all are 403 except the viewer's own
// profile, password and tokens (SECURITY.md check 3).
func (w *tenancy) viewerCannotWrite(t *testing.T) {
	a := w.ids("a")
	viewer := w.members["a-viewer"]
	for _, rt := range httpapi.Routes() {
		if rt.Public || rt.Method == "GET" || strings.HasPrefix(string(rt.Action), "self.") ||
			slices.Contains(readsByPost, rt.Method+" "+rt.Path) {
			continue
		}
		status, body := viewer.do(rt.Method, fillPath(t, rt.Path, a), map[string]any{})
		if status != http.StatusForbidden {
			t.Errorf("%s %s as a viewer: %d %s, want 403", rt.Method, rt.Path, status, body)
		}
	}
}

// roleRules checks the rules of who may change whom (SECURITY.md check 3).
func (w *tenancy) roleRules(t *testing.T) {
	user, orgAdmin, viewer := w.members["a-user"], w.members["a-admin"], w.members["a-viewer"]

	// A user cannot change their own role or tenant, by either door.
	user.must("PATCH", "/api/v1/me", map[string]any{"role": "org_admin"}, 403, nil)
	user.must("PATCH", "/api/v1/me", map[string]any{"tenant_id": w.b.ID}, 403, nil)
	user.must("PATCH", "/api/v1/users/"+user.user.ID, map[string]any{"role": "org_admin"}, 403, nil)
	var me struct{ User identity.User }
	user.must("PATCH", "/api/v1/me", map[string]any{"full_name": "Ann User"}, 200, &me)
	if me.User.FullName != "Ann User" || me.User.Role != identity.RoleUser {
		t.Errorf("profile update: %+v", me.User)
	}

	// An org_admin cannot grant super_admin, change their own role, or
	// deactivate or delete themselves.
	orgAdmin.must("POST", "/api/v1/users", map[string]any{"email": "root@example.test", "username": "root2",
		"role": "super_admin", "password": memberPassword}, 403, nil)
	orgAdmin.must("PATCH", "/api/v1/users/"+user.user.ID, map[string]any{"role": "super_admin"}, 403, nil)
	orgAdmin.must("PATCH", "/api/v1/users/"+orgAdmin.user.ID, map[string]any{"role": "user"}, 403, nil)
	orgAdmin.must("PATCH", "/api/v1/users/"+orgAdmin.user.ID, map[string]any{"is_active": false}, 403, nil)
	orgAdmin.must("DELETE", "/api/v1/users/"+orgAdmin.user.ID, nil, 403, nil)
	// The super_admin is outside every tenant: invisible to an org_admin.
	orgAdmin.must("GET", "/api/v1/users/"+w.admin.user.ID, nil, 404, nil)
	orgAdmin.must("PATCH", "/api/v1/tenants/"+w.a.ID, map[string]any{"max_users": 1000}, 403, nil)
	// Moving a user between tenants is refused, even for the super_admin.
	w.admin.must("PATCH", "/api/v1/users/"+user.user.ID, map[string]any{"tenant_id": w.b.ID}, 400, nil)

	// A token never holds more power than its creator: not at minting,
	// and a lesser token cannot mint a greater one.
	orgAdmin.must("POST", "/api/v1/tokens", map[string]any{"name": "up", "role": "super_admin"}, 403, nil)
	viewer.must("POST", "/api/v1/tokens", map[string]any{"name": "up", "role": "user"}, 403, nil)
	var minted struct{ Secret string }
	orgAdmin.must("POST", "/api/v1/tokens", map[string]any{"name": "read-only", "role": "viewer"}, 201, &minted)
	readOnly := &client{t: t, base: orgAdmin.base, token: minted.Secret, user: orgAdmin.user}
	readOnly.must("GET", "/api/v1/users", nil, 403, nil) // users.read is for admins; the token is a viewer
	readOnly.must("PATCH", "/api/v1/users/"+user.user.ID, map[string]any{"full_name": "x"}, 403, nil)
	readOnly.must("POST", "/api/v1/tokens", map[string]any{"name": "escalate", "role": "org_admin"}, 403, nil)
	var seen struct{ User identity.User }
	readOnly.must("GET", "/api/v1/me", nil, 200, &seen)
	if seen.User.Role != identity.RoleViewer {
		t.Errorf("a viewer token's /me shows role %q", seen.User.Role)
	}

	// Demoting a user demotes their tokens at once.
	orgAdmin.must("PATCH", "/api/v1/users/"+user.user.ID, map[string]any{"role": "viewer"}, 200, nil)
	user.must("GET", "/api/v1/me", nil, 200, &seen)
	if seen.User.Role != identity.RoleViewer {
		t.Errorf("after demotion the user's token acts as %q", seen.User.Role)
	}
	orgAdmin.must("PATCH", "/api/v1/users/"+user.user.ID, map[string]any{"role": "user"}, 200, nil)
	// So is a token minted with an explicit admin role: once its owner is
	// demoted it acts as the owner is now, in every module's own checks
	// too (another user's memories, sessions, chats are an admin's).
	orgAdmin.must("POST", "/api/v1/users", map[string]any{"email": "admin2@example.test", "username": "a-admin2",
		"role": "org_admin", "password": memberPassword}, 201, nil)
	admin2 := signIn(t, orgAdmin.base, "a-admin2", memberPassword)
	orgAdmin.must("GET", "/api/v1/agent/apps/helpdesk/users/"+user.user.ID+"/memories", nil, 200, nil)
	var adminToken struct{ Secret string }
	admin2.must("POST", "/api/v1/tokens", map[string]any{"name": "admin", "role": "org_admin"}, 201, &adminToken)
	admin2.token = adminToken.Secret
	admin2.must("GET", "/api/v1/agent/apps/helpdesk/users/"+user.user.ID+"/memories", nil, 200, nil)
	orgAdmin.must("PATCH", "/api/v1/users/"+admin2.user.ID, map[string]any{"role": "user"}, 200, nil)
	for _, path := range []string{"/api/v1/agent/apps/helpdesk/users/" + user.user.ID + "/memories",
		"/api/v1/agent/apps/helpdesk/users/" + user.user.ID + "/sessions"} {
		admin2.must("GET", path, nil, 403, nil)
	}
	admin2.must("POST", "/api/v1/agent/apps/helpdesk/users/"+user.user.ID+"/mcp",
		map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, 403, nil)
	orgAdmin.must("DELETE", "/api/v1/users/"+admin2.user.ID, nil, 204, nil)

	// max_users holds: A has 3 of 10; fill it, then one more is refused.
	for i := range 7 {
		orgAdmin.must("POST", "/api/v1/users", map[string]any{"email": fmt.Sprintf("extra%d@example.test", i),
			"username": fmt.Sprintf("extra%d", i), "role": "viewer"}, 201, nil)
	}
	orgAdmin.must("POST", "/api/v1/users", map[string]any{"email": "one-too-many@example.test",
		"username": "one-too-many", "role": "viewer"}, 409, nil)
}

// throttle fails a sign-in twenty times; the twenty-first attempt is
// refused with 429 and Retry-After even with the right password, while
// another account from the same address still signs in (check 7).
func (w *tenancy) throttle(t *testing.T) {
	login := w.in.base + "/api/v1/auth/login"
	for i := range 20 {
		resp, body := call(t, "POST", login, jsonBody(map[string]string{"login": "b-user", "password": "wrong password " + fmt.Sprint(i)}))
		if resp.StatusCode != 401 {
			t.Fatalf("wrong password %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := call(t, "POST", login, jsonBody(map[string]string{"login": "b-user", "password": memberPassword}))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("21st attempt: %d %s (Retry-After %q), want 429 with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if resp, body := call(t, "POST", login, jsonBody(map[string]string{"login": "b-viewer", "password": memberPassword})); resp.StatusCode != 200 {
		t.Fatalf("another account from the same address: %d %s", resp.StatusCode, body)
	}
}

// deactivatedTenant deactivates B: its members' tokens stop at once and
// come back when it is reactivated.
func (w *tenancy) deactivatedTenant(t *testing.T) {
	bViewer := w.members["b-viewer"]
	w.admin.must("PATCH", "/api/v1/tenants/"+w.b.ID, map[string]any{"is_active": false}, 200, nil)
	bViewer.must("GET", "/api/v1/me", nil, 401, nil)
	// So does its Langfuse key pair.
	noop := []map[string]any{{"id": "b-noop", "type": "sdk-log", "body": map[string]any{}}}
	ingestBatch(t, w.in.base, w.tracingKeys["b"], noop, 401)
	w.admin.must("PATCH", "/api/v1/tenants/"+w.b.ID, map[string]any{"is_active": true}, 200, nil)
	bViewer.must("GET", "/api/v1/me", nil, 200, nil)
	ingestBatch(t, w.in.base, w.tracingKeys["b"], noop, 207)
}

// auditVerify checks that everything above left an intact chain, that it
// holds the management actions, and that editing one row behind Nodus's
// back breaks `nodus audit verify`.
func (w *tenancy) auditVerify(t *testing.T) {
	var page struct {
		Entries []struct {
			Action   string
			TenantID string `json:"tenant_id"`
			Changes  map[string]struct{ Before, After any }
		}
	}
	w.admin.must("GET", "/api/v1/audit?limit=500", nil, 200, &page)
	seen := map[string]bool{}
	for _, e := range page.Entries {
		seen[e.Action] = true
		// The demotion in roleRules is recorded with the role before and
		// after, and nothing else changed.
		if r, ok := e.Changes["role"]; ok && e.Action == "user.update" && r.Before == "user" && r.After == "viewer" {
			seen["demotion"] = len(e.Changes) == 1
		}
	}
	if !seen["demotion"] {
		t.Error("no user.update entry with exactly role user → viewer")
	}
	for _, action := range []string{"tenant.create", "tenant.update", "user.create", "user.update", "token.create",
		"auth.login", "auth.login_failed", "auth.login_throttled", "authz.denied"} {
		if !seen[action] {
			t.Errorf("no %s entry in the audit log", action)
		}
	}
	// An org_admin sees their tenant's entries only.
	w.members["a-admin"].must("GET", "/api/v1/audit?limit=500", nil, 200, &page)
	for _, e := range page.Entries {
		if e.TenantID != w.a.ID {
			t.Fatalf("A's org_admin sees an entry of tenant %q", e.TenantID)
		}
	}

	ctx := context.Background()
	verify := func() (string, error) {
		var out bytes.Buffer
		err := run(ctx, []string{"nodus", "audit", "verify"}, env(w.vars), nil, &out, io.Discard)
		return out.String(), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("verify: %q, %v", out, err)
	}
	url := w.vars["DATABASE_URL"]
	if url == "" {
		url = "sqlite:" + filepath.Join(w.vars["NODUS_DATA_DIR"], "main.db")
	}
	db, err := store.Open(ctx, storetest.Config(url))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	on := ""
	if db.Dialect() == store.Postgres {
		on = " ON audit_log"
	}
	err = db.Write(nodus.WithAllTenants(ctx), func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "DROP TRIGGER audit_log_no_update"+on); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE audit_log SET address = '203.0.113.9' WHERE action = 'tenant.create'")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil || exitCode(err) != 1 || !strings.Contains(out, "BROKEN") {
		t.Fatalf("verify after an edit: %q, %v; want a failure", out, err)
	}
}

// addKnowledgeDocument writes a failed document into a knowledge base of
// tenantID through the store, as an upload that failed would have left it.
func addKnowledgeDocument(t *testing.T, vars map[string]string, tenantID, kbID string) {
	t.Helper()
	ctx := context.Background()
	url := vars["DATABASE_URL"]
	if url == "" {
		url = "sqlite:" + filepath.Join(vars["NODUS_DATA_DIR"], "main.db")
	}
	db, err := store.Open(ctx, storetest.Config(url))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	blobID := nodus.NewID()
	doc := knowledge.Document{ID: nodus.NewID(), TenantID: tenantID, KnowledgeBaseID: kbID, Filename: blobID, BlobID: blobID,
		OriginalFilename: "handbook.md", FileType: "markdown", FileSize: 5, ContentHash: strings.Repeat("cd", 32),
		Status: knowledge.StatusFailed, Error: "the uploaded file is missing from storage; upload it again",
		UploadedBy: "admin", CreatedAt: now, UpdatedAt: now}
	if err := db.CreateDocument(nodus.WithTenant(ctx, tenantID), doc); err != nil {
		t.Fatal(err)
	}
}

// publicCall calls Langfuse's public API with a key pair and returns the
// status and body.
func publicCall(t *testing.T, base string, key [2]string, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = jsonBody(body)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(key[0], key[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// publicTracingIsolation covers Langfuse's public read API as the
// ingestion is covered: A's key pair reads A's trace, observation, score
// and session, but every one of B's is 404, by id or by filter, the
// lists hold nothing of B's, A's key deletes nothing of B's, and B's rows
// are unchanged afterwards.
func (w *tenancy) publicTracingIsolation(t *testing.T) {
	base, keyA := w.in.base, w.tracingKeys["a"]
	before := w.snapshot(t)
	for _, path := range []string{"/api/public/traces/a-trace", "/api/public/observations/a-gen",
		"/api/public/scores/a-score", "/api/public/sessions/a-session"} {
		if status, b := publicCall(t, base, keyA, "GET", path, nil); status != 200 || !bytes.Contains(b, []byte(`"a-`)) {
			t.Errorf("GET %s with A's key: %d %s", path, status, b)
		}
	}
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/public/traces/b-trace", nil},
		{"GET", "/api/public/observations/b-gen", nil},
		{"GET", "/api/public/scores/b-score", nil},
		{"GET", "/api/public/sessions/b-session", nil},
		{"DELETE", "/api/public/traces/b-trace", nil},
		{"DELETE", "/api/public/scores/b-score", nil},
		{"POST", "/api/public/scores", map[string]any{"traceId": "b-trace", "name": "hijack", "value": 0}},
		{"POST", "/api/public/scores", map[string]any{"traceId": "a-trace", "observationId": "b-gen", "name": "hijack", "value": 0}},
	} {
		status, b := publicCall(t, base, keyA, c.method, c.path, c.body)
		if status != http.StatusNotFound {
			t.Errorf("%s %s with A's key: %d %s, want 404", c.method, c.path, status, b)
		}
	}
	// The lists, plain and filtered by B's values, hold A's rows only.
	for _, path := range []string{"/api/public/traces", "/api/public/observations", "/api/public/sessions",
		"/api/public/scores", "/api/public/v2/scores", "/api/public/projects",
		"/api/public/traces?userId=b-sdk-user", "/api/public/traces?sessionId=b-session",
		"/api/public/observations?traceId=b-trace", "/api/public/scores?traceId=b-trace",
		"/api/public/v2/scores?userId=b-sdk-user", "/api/public/traces?projectId=" + w.b.ID} {
		status, b := publicCall(t, base, keyA, "GET", path, nil)
		if status != 200 {
			t.Errorf("GET %s with A's key: %d %s", path, status, b)
			continue
		}
		if bytes.Contains(b, []byte(`"b-`)) || bytes.Contains(b, []byte(w.b.ID)) || bytes.Contains(b, []byte(w.b.Name)) {
			t.Errorf("GET %s with A's key leaks B's rows: %s", path, b)
		}
		if !strings.Contains(path, "?") && !bytes.Contains(b, []byte(w.a.ID)) {
			t.Errorf("GET %s with A's key shows nothing of A's: %s", path, b)
		}
	}
	if after := w.snapshot(t); after != before {
		t.Errorf("B's rows changed:\nbefore %s\nafter  %s", before, after)
	}
}
