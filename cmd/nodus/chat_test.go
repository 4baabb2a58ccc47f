package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// sseEvent is one Server-Sent Event of a chat stream.
type chatEvent struct {
	name string
	data map[string]any
}

// chatStream posts a chat turn and reads its events until the stream ends
// or stop says to stop (then the connection is dropped).
func chatStream(t *testing.T, base, token, path string, body any, stop func(chatEvent) bool) (int, []chatEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, jsonBody(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, nil
	}
	var events []chatEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var name string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev := chatEvent{name: name}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				t.Fatalf("event %s: %v", name, err)
			}
			events = append(events, ev)
			if stop != nil && stop(ev) {
				return resp.StatusCode, events
			}
		}
	}
	return resp.StatusCode, events
}

// TestChatGroundedThroughGateway runs a full `nodus serve`, on both
// databases: a chatbot grounded in an uploaded document answers through
// the gateway (a fake OpenAI-compatible provider), streaming; its
// citations name the document's chunk, the prompt carries it as source
// [1], and the message's metadata agrees with the gateway's spend log. A
// client that goes away mid-answer cancels the upstream call and keeps the
// partial answer. The built-in extractive model answers offline.
func TestChatGroundedThroughGateway(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		answer := "Refunds are issued within fourteen days of the return [1]."
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{Text: answer, Chunks: 4})
		var kb struct {
			KnowledgeBase struct{ ID string } `json:"knowledge_base"`
		}
		w.do(t, w.orgAdmin, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Policies"}, 201, &kb)
		docs := "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID + "/documents"
		var refunds, shipping documentAnswer
		for _, up := range []struct {
			name, text string
			into       *documentAnswer
		}{
			{"refunds.md", "# Refunds\n\nRefunds are issued within fourteen days of the return reaching our warehouse.\n", &refunds},
			{"shipping.md", "# Shipping\n\nParcels ship from Lisbon every weekday morning.\n", &shipping},
		} {
			status, body := w.orgAdmin.upload(docs, up.name, up.text)
			if status != 201 || json.Unmarshal(body, up.into) != nil {
				t.Fatalf("upload %s: %d %s", up.name, status, body)
			}
		}
		for _, id := range []string{refunds.Document.ID, shipping.Document.ID} {
			deadline := time.Now().Add(60 * time.Second)
			for {
				var d documentAnswer
				w.do(t, w.orgAdmin, "GET", docs+"/"+id, nil, 200, &d)
				if d.Document.Status == "completed" {
					break
				}
				if d.Document.Status == "failed" || time.Now().After(deadline) {
					t.Fatalf("document %+v\n%s", d.Document, w.in.logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		var bot struct{ Chatbot struct{ ID string } }
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Helpdesk", "model_name": "fake",
			"system_prompt": "You answer customers of the shop.", "knowledge_bases": []string{kb.KnowledgeBase.ID}}, 201, &bot)
		chatPath := "/api/v1/chatbots/" + bot.Chatbot.ID + "/chat"

		// A streamed, grounded answer.
		status, events := chatStream(t, w.in.base, w.orgAdmin.token, chatPath,
			map[string]any{"message": "How long do refunds take?"}, nil)
		if status != 200 || len(events) < 3 {
			t.Fatalf("chat: %d %+v\n%s", status, events, w.in.logs.String())
		}
		start, end := events[0], events[len(events)-1]
		if start.name != "message_start" || end.name != "message_end" {
			t.Fatalf("events %q … %q", start.name, end.name)
		}
		var streamed strings.Builder
		for _, ev := range events[1 : len(events)-1] {
			if ev.name != "message" || ev.data["conversation_id"] != start.data["conversation_id"] {
				t.Fatalf("unexpected event %+v", ev)
			}
			streamed.WriteString(ev.data["answer"].(string))
		}
		if streamed.String() != answer {
			t.Fatalf("streamed %q, want %q", streamed.String(), answer)
		}
		cites := start.data["citations"].([]any)
		first := cites[0].(map[string]any)
		if first["document_id"] != refunds.Document.ID || first["n"] != 1.0 || first["chunk_id"] == "" {
			t.Fatalf("first citation %+v, want the refunds document", first)
		}
		meta := end.data["metadata"].(map[string]any)
		if c := meta["citations"].([]any)[0].(map[string]any); c["cited"] != true {
			t.Fatalf("the answer's [1] is not marked cited: %+v", c)
		}
		req, _ := w.fake.LastRequest()
		if !regexp.MustCompile(`\[1\] refunds\.md: [^\n]*Refunds are issued within fourteen days`).Match(req.Body) {
			t.Fatalf("the prompt does not carry the passage as source [1]: %s", req.Body)
		}

		// The message's metadata and the spend log agree.
		usage := meta["usage"].(map[string]any)
		requestID := meta["request_id"].(string)
		var spend struct {
			Spend []struct {
				RequestID        string `json:"request_id"`
				PromptTokens     int64  `json:"prompt_tokens"`
				CompletionTokens int64  `json:"completion_tokens"`
				CostMicros       int64  `json:"cost_micros"`
				UserID           string `json:"user_id"`
			}
		}
		found := false
		for deadline := time.Now().Add(20 * time.Second); !found; time.Sleep(100 * time.Millisecond) {
			w.do(t, w.orgAdmin, "GET", "/api/v1/spend?limit=500", nil, 200, &spend)
			for _, s := range spend.Spend {
				if s.RequestID != requestID {
					continue
				}
				found = true
				if float64(s.PromptTokens) != usage["prompt_tokens"] || float64(s.CompletionTokens) != usage["completion_tokens"] ||
					float64(s.CostMicros) != meta["cost_micros"] {
					t.Fatalf("spend row %+v, message metadata %+v", s, meta)
				}
			}
			if !found && time.Now().After(deadline) {
				t.Fatalf("no spend row %s: %+v", requestID, spend.Spend)
			}
		}

		// The turn is a trace: the conversation its session, the model
		// call a generation under the turn that names its spend row and
		// carries the same usage.
		convOf := start.data["conversation_id"].(string)
		type observation struct {
			ID, Type, Name string
			UsageDetails   map[string]float64 `json:"usage_details"`
			Metadata       map[string]any
			Children       []observation
		}
		var traces struct{ Traces []struct{ ID string } }
		for deadline := time.Now().Add(10 * time.Second); len(traces.Traces) == 0; time.Sleep(50 * time.Millisecond) {
			w.do(t, w.orgAdmin, "GET", "/api/v1/traces?session_id="+convOf, nil, 200, &traces)
			if time.Now().After(deadline) {
				t.Fatalf("no trace of the turn\n%s", w.in.logs.String())
			}
		}
		var detail struct{ Observations []observation }
		w.do(t, w.orgAdmin, "GET", "/api/v1/traces/"+traces.Traces[0].ID, nil, 200, &detail)
		if len(detail.Observations) != 1 || detail.Observations[0].Type != "CHAIN" {
			t.Fatalf("trace observations %+v", detail.Observations)
		}
		kinds := map[string]observation{}
		for _, o := range detail.Observations[0].Children {
			kinds[o.Type] = o
		}
		gen, ok := kinds["GENERATION"]
		if _, retrieved := kinds["RETRIEVER"]; !ok || !retrieved || gen.Metadata["spend_request_id"] != meta["request_id"] ||
			gen.UsageDetails["input"] != usage["prompt_tokens"] || gen.UsageDetails["output"] != usage["completion_tokens"] {
			t.Fatalf("the turn's observations %+v, message metadata %+v", detail.Observations[0].Children, meta)
		}

		// The conversation holds both messages, titled from the question.
		convID := start.data["conversation_id"].(string)
		var conv struct {
			Conversation struct{ Title string }
			Messages     []struct {
				Role, Content string
				Metadata      map[string]any
			}
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/conversations/"+convID, nil, 200, &conv)
		if conv.Conversation.Title != "How long do refunds take?" || len(conv.Messages) != 2 ||
			conv.Messages[1].Content != answer || conv.Messages[1].Metadata["request_id"] != requestID {
			t.Fatalf("conversation %+v", conv)
		}

		// The same turn without streaming, in the same conversation.
		var turn struct {
			Answer   string
			Metadata map[string]any
		}
		w.do(t, w.orgAdmin, "POST", chatPath, map[string]any{"message": "And for shipping?", "conversation_id": convID,
			"stream": false}, 200, &turn)
		if turn.Answer != answer || turn.Metadata["request_id"] == requestID {
			t.Fatalf("non-streaming turn %+v", turn)
		}
		req, _ = w.fake.LastRequest()
		if !strings.Contains(string(req.Body), "How long do refunds take?") {
			t.Fatal("the second turn's prompt lacks the conversation so far")
		}

		// A client that goes away mid-answer: the upstream call is
		// cancelled, the partial answer kept and marked.
		w.fake.SetScript(gatewaytest.Script{Text: strings.Repeat("slow words ", 40), Chunks: 40,
			ChunkInterval: 100 * time.Millisecond})
		cancelledBefore := w.fake.Cancelled()
		_, events = chatStream(t, w.in.base, w.orgAdmin.token, chatPath, map[string]any{"message": "Tell me everything"},
			func(ev chatEvent) bool { return ev.name == "message" })
		if !w.fake.WaitCancelled(cancelledBefore+1, 10*time.Second) {
			t.Fatal("the upstream call went on after the client left")
		}
		partialConv := events[0].data["conversation_id"].(string)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			w.do(t, w.orgAdmin, "GET", "/api/v1/conversations/"+partialConv, nil, 200, &conv)
			if len(conv.Messages) == 2 {
				m := conv.Messages[1]
				if m.Metadata["partial"] != true || m.Content == "" || !strings.HasPrefix(strings.Repeat("slow words ", 40), m.Content) {
					t.Fatalf("partial answer %+v", m)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no partial answer stored: %+v", conv)
			}
		}

		// A turn that comes with a W3C traceparent joins the caller's trace.
		callerTrace := "4bf92f3577b34da6a3ce929d0e0e4736"
		resp, body := call(t, "POST", w.in.base+chatPath, jsonBody(map[string]any{"message": "Refunds?", "stream": false}),
			withBearer(w.orgAdmin.token), withHeader("traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01"))
		if resp.StatusCode != 200 {
			t.Fatalf("turn with traceparent: %d %s", resp.StatusCode, body)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			status, _ := w.orgAdmin.do("GET", "/api/v1/traces/"+callerTrace, nil)
			if status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the turn did not join the caller's trace")
			}
		}

		// Offline: the built-in extractive model quotes the source.
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Offline",
			"model_name": "nodus/extractive", "knowledge_bases": []string{kb.KnowledgeBase.ID}}, 201, &bot)
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots/"+bot.Chatbot.ID+"/chat",
			map[string]any{"message": "How long do refunds take?", "stream": false}, 200, &turn)
		if !strings.Contains(turn.Answer, "Extractive answer") || !strings.Contains(turn.Answer, "fourteen days") ||
			!strings.Contains(turn.Answer, "[1]") {
			t.Fatalf("extractive answer %q", turn.Answer)
		}
	})
}

// TestChatAccess runs the rules of who may do what with chatbots and
// conversations over HTTP, offline (nodus/extractive), on both databases:
// admins manage chatbots within the tenant's quota, users chat in their
// own conversations only, an admin's review of another's is audited,
// viewers cannot chat.
func TestChatAccess(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{})
		var me struct {
			User struct {
				TenantID string `json:"tenant_id"`
			}
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/me", nil, 200, &me)
		members := map[string]*client{}
		for _, m := range []struct{ login, role string }{{"c-user", "user"}, {"c-other", "user"}, {"c-viewer", "viewer"}} {
			w.do(t, w.orgAdmin, "POST", "/api/v1/users", map[string]any{"email": m.login + "@example.test", "username": m.login,
				"role": m.role, "password": canaryOrgPassword}, 201, nil)
			members[m.login] = signIn(t, w.in.base, m.login, canaryOrgPassword)
		}
		user, other, viewer := members["c-user"], members["c-other"], members["c-viewer"]

		// Quota: two chatbots for the tenant; a user manages none.
		w.do(t, w.admin, "PATCH", "/api/v1/tenants/"+me.User.TenantID, map[string]any{"max_chatbots": 2}, 200, nil)
		var bot struct{ Chatbot struct{ ID string } }
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Offline", "model_name": "nodus/extractive",
			"welcome_message": "Hello!"}, 201, &bot)
		w.do(t, user, "POST", "/api/v1/chatbots", map[string]any{"name": "Mine", "model_name": "nodus/extractive"}, 403, nil)
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Second", "model_name": "nodus/extractive"}, 201, nil)
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Third", "model_name": "nodus/extractive"}, 403, nil)
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "", "model_name": "x", "temperature": 9}, 400, nil)
		w.do(t, viewer, "GET", "/api/v1/chatbots/"+bot.Chatbot.ID, nil, 200, nil)

		chatPath := "/api/v1/chatbots/" + bot.Chatbot.ID + "/chat"
		var turn struct {
			ConversationID string `json:"conversation_id"`
			MessageID      string `json:"message_id"`
			QuestionID     string `json:"question_id"`
			Answer         string
		}
		w.do(t, user, "POST", chatPath, map[string]any{"message": "Hello there", "stream": false}, 200, &turn)
		if turn.ConversationID == "" || !strings.Contains(turn.Answer, "no source material") {
			t.Fatalf("turn %+v", turn)
		}
		conv := "/api/v1/conversations/" + turn.ConversationID
		w.do(t, viewer, "POST", chatPath, map[string]any{"message": "Hi", "stream": false}, 403, nil)
		w.do(t, other, "GET", conv, nil, 404, nil)
		w.do(t, other, "POST", chatPath, map[string]any{"message": "Hi", "conversation_id": turn.ConversationID, "stream": false}, 404, nil)
		w.do(t, w.orgAdmin, "POST", chatPath, map[string]any{"message": "Hi", "conversation_id": turn.ConversationID, "stream": false}, 404, nil)
		w.do(t, other, "PUT", "/api/v1/messages/"+turn.MessageID+"/feedback", map[string]any{"rating": "like"}, 404, nil)

		// The admin's review: listed with all=true only, and audited.
		var list struct{ Conversations []struct{ ID, UserID string } }
		w.do(t, w.orgAdmin, "GET", "/api/v1/conversations", nil, 200, &list)
		if len(list.Conversations) != 0 {
			t.Fatalf("the admin's own list holds %+v", list.Conversations)
		}
		w.do(t, user, "GET", "/api/v1/conversations?all=true", nil, 403, nil)
		w.do(t, w.orgAdmin, "GET", "/api/v1/conversations?all=true", nil, 200, &list)
		if len(list.Conversations) != 1 || list.Conversations[0].ID != turn.ConversationID {
			t.Fatalf("review list %+v", list.Conversations)
		}
		w.do(t, w.orgAdmin, "GET", conv, nil, 200, nil)
		var entries struct {
			Entries []struct {
				Action   string
				TargetID string `json:"target_id"`
			}
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/audit?action=chat.conversation_review", nil, 200, &entries)
		if len(entries.Entries) != 1 || entries.Entries[0].TargetID != turn.ConversationID {
			t.Fatalf("review audit entries %+v", entries.Entries)
		}

		// Feedback, renaming, archiving.
		w.do(t, user, "PUT", "/api/v1/messages/"+turn.MessageID+"/feedback", map[string]any{"rating": "dislike",
			"comment": "not helpful"}, 200, nil)
		w.do(t, user, "PUT", "/api/v1/messages/"+turn.QuestionID+"/feedback", map[string]any{"rating": "like"}, 400, nil)
		w.do(t, user, "PUT", "/api/v1/messages/"+turn.MessageID+"/feedback", map[string]any{"rating": "meh"}, 400, nil)
		var got struct {
			Conversation struct {
				Title    string
				Archived bool
			}
			Messages []struct {
				Feedback *struct{ Rating, Comment string }
			}
		}
		w.do(t, user, "PATCH", conv, map[string]any{"title": "Greetings", "archived": true}, 200, nil)
		w.do(t, user, "GET", conv, nil, 200, &got)
		if got.Conversation.Title != "Greetings" || !got.Conversation.Archived || got.Messages[1].Feedback == nil ||
			got.Messages[1].Feedback.Comment != "not helpful" {
			t.Fatalf("conversation %+v", got)
		}
		w.do(t, user, "POST", chatPath, map[string]any{"message": "Again", "conversation_id": turn.ConversationID, "stream": false}, 409, nil)
		w.do(t, other, "DELETE", conv, nil, 404, nil)
		w.do(t, user, "DELETE", conv, nil, 204, nil)
		w.do(t, user, "GET", conv, nil, 404, nil)
	})
}

// TestChatMemory: a chatbot with memory on remembers, in a background
// job, what a user says of themselves, and recalls it in the user's next
// conversation (in its prompt and the answer's metadata), never in
// another user's.
func TestChatMemory(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{})
		var bot struct{ Chatbot struct{ ID string } }
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Buddy", "model_name": "fake",
			"memory_enabled": true}, 201, &bot)
		members := map[string]*client{}
		for _, login := range []string{"m-ann", "m-bob"} {
			w.do(t, w.orgAdmin, "POST", "/api/v1/users", map[string]any{"email": login + "@example.test", "username": login,
				"role": "user", "password": canaryOrgPassword}, 201, nil)
			members[login] = signIn(t, w.in.base, login, canaryOrgPassword)
		}
		ann, bob := members["m-ann"], members["m-bob"]
		chatPath := "/api/v1/chatbots/" + bot.Chatbot.ID + "/chat"
		type turn struct {
			ConversationID string `json:"conversation_id"`
			Metadata       struct{ Memories []string }
		}
		var first turn
		w.do(t, ann, "POST", chatPath, map[string]any{"message": "My favourite colour is teal. Which paint should I buy?",
			"stream": false}, 200, &first)

		// The job remembers Ann's statement (the fake's answer is no
		// JSON of facts, so her words are kept as she said them).
		memories := "/api/v1/agent/apps/" + bot.Chatbot.ID + "/users/me/memories"
		var list struct{ Memories []struct{ Memory string } }
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			w.do(t, ann, "GET", memories, nil, 200, &list)
			if len(list.Memories) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing remembered\n%s", w.in.logs.String())
			}
		}
		if len(list.Memories) != 1 || list.Memories[0].Memory != "My favourite colour is teal." {
			t.Fatalf("memories %+v", list.Memories)
		}

		// A new conversation recalls it, in the prompt and the metadata.
		var second turn
		w.do(t, ann, "POST", chatPath, map[string]any{"message": "What colour do I like?", "stream": false}, 200, &second)
		if second.ConversationID == first.ConversationID || len(second.Metadata.Memories) != 1 ||
			second.Metadata.Memories[0] != "My favourite colour is teal." {
			t.Fatalf("second turn %+v", second)
		}
		// The answer's request, not the memory job's that may follow it.
		var prompt string
		for _, req := range w.fake.Requests() {
			if strings.Contains(string(req.Body), "What colour do I like?") && !strings.Contains(string(req.Body), "lasting facts") {
				prompt = string(req.Body)
			}
		}
		if !strings.Contains(prompt, "- My favourite colour is teal.") {
			t.Fatalf("the prompt does not recall the memory: %s", prompt)
		}

		// Bob, of the same tenant and chatbot, recalls nothing of Ann's.
		var bobs turn
		w.do(t, bob, "POST", chatPath, map[string]any{"message": "What colour do I like?", "stream": false}, 200, &bobs)
		req, _ := w.fake.LastRequest()
		if len(bobs.Metadata.Memories) != 0 || strings.Contains(string(req.Body), "teal") {
			t.Fatalf("Bob recalls Ann's memory: %+v %s", bobs, req.Body)
		}
		w.do(t, bob, "GET", memories, nil, 200, &list)
		if len(list.Memories) != 0 {
			t.Fatalf("Bob lists %+v", list.Memories)
		}

		// mem0's operations over HTTP: search, update with history, delete.
		var found struct {
			Results []struct {
				ID     string
				Memory string
				Score  float64
			}
		}
		w.do(t, ann, "POST", memories+"/search", map[string]any{"query": "favourite colour"}, 200, &found)
		if len(found.Results) != 1 || found.Results[0].Score <= 0 {
			t.Fatalf("search %+v", found)
		}
		id := found.Results[0].ID
		w.do(t, bob, "POST", memories+"/search", map[string]any{"query": "favourite colour"}, 200, &found)
		if len(found.Results) != 0 {
			t.Fatalf("Bob's search finds %+v", found.Results)
		}
		annID := ann.user.ID
		w.do(t, bob, "GET", "/api/v1/agent/apps/"+bot.Chatbot.ID+"/users/"+annID+"/memories/"+id, nil, 403, nil)
		w.do(t, bob, "GET", memories+"/"+id, nil, 404, nil)
		w.do(t, ann, "PUT", memories+"/"+id, map[string]any{"memory": "My favourite colour is navy."}, 200, nil)
		var history struct {
			History []struct{ Event string }
		}
		w.do(t, ann, "GET", memories+"/"+id+"/history", nil, 200, &history)
		if len(history.History) != 2 || history.History[0].Event != "ADD" || history.History[1].Event != "UPDATE" {
			t.Fatalf("history %+v", history)
		}
		w.do(t, ann, "DELETE", memories+"/"+id, nil, 204, nil)
		w.do(t, ann, "GET", memories+"/"+id, nil, 404, nil)

		// ADK's add_session_to_memory: a session's events, the user's
		// statements kept.
		sessions := "/api/v1/agent/apps/helpdesk/users/me/sessions"
		w.do(t, ann, "POST", sessions, map[string]any{"session_id": "s1"}, 201, nil)
		for author, text := range map[string]string{"user": "I live in Lisbon. Can you help?", "helper": "I am a bot; of course."} {
			w.do(t, ann, "POST", sessions+"/s1/events", map[string]any{"author": author,
				"content": map[string]any{"role": "user", "parts": []any{map[string]any{"text": text}}}}, 201, nil)
		}
		var added struct {
			Results []struct{ Event, Memory string }
		}
		w.do(t, ann, "POST", sessions+"/s1/memory", map[string]any{}, 200, &added)
		if len(added.Results) != 1 || added.Results[0].Event != "ADD" || added.Results[0].Memory != "I live in Lisbon." {
			t.Fatalf("session to memory: %+v", added)
		}
	})
}

// TestUsageEndToEnd runs a full `nodus serve` on both databases: a chat
// turn and then a call with a virtual key go through the gateway to the
// fake provider, and the usage rollup job (every second here) puts each in
// GET /api/v1/metrics/usage: the turn's call on its chatbot, with the
// spend log's tokens and cost and one chat answer and conversation; the
// key's call, made after the turn was counted (so a later run of the job
// counts it), on chatbot "", and the totals the sum of both.
func TestUsageEndToEnd(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayWorldVars(t, databaseURL, gatewaytest.Script{Text: "Hello there."},
			map[string]string{"NODUS_USAGE_ROLLUP_INTERVAL": "1s"})
		type figures struct {
			ChatbotID        string `json:"chatbot_id"`
			Requests         int64
			Errors           int64
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
			CostMicros       int64 `json:"cost_micros"`
			ChatTurns        int64 `json:"chat_turns"`
			Conversations    int64
		}
		var got struct {
			Rows   []figures
			Totals figures
		}
		waitFor := func(what string, ok func() bool) {
			t.Helper()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				w.do(t, w.orgAdmin, "GET", "/api/v1/metrics/usage?group_by=chatbot", nil, 200, &got)
				if ok() {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("usage %+v: want %s\n%s", got, what, w.in.logs.String())
				}
			}
		}

		var bot struct{ Chatbot struct{ ID string } }
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Helpdesk", "model_name": "fake"}, 201, &bot)
		var turn struct{ Metadata map[string]any }
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots/"+bot.Chatbot.ID+"/chat",
			map[string]any{"message": "Hello?", "stream": false}, 200, &turn)
		turnUsage := turn.Metadata["usage"].(map[string]any)
		waitFor("the turn's call and answer", func() bool { return got.Totals.Requests == 1 && got.Totals.ChatTurns == 1 })

		if status, _, body := w.chat(t, w.key, "fake", false, "usage-e2e-key-call"); status != 200 {
			t.Fatalf("call with the virtual key: %d %s", status, body)
		}
		waitFor("the key's call too", func() bool { return got.Totals.Requests == 2 })

		rows := map[string]figures{}
		for _, r := range got.Rows {
			rows[r.ChatbotID] = r
		}
		chat, key := rows[bot.Chatbot.ID], rows[""]
		if chat.Requests != 1 || chat.ChatTurns != 1 || chat.Conversations != 1 ||
			float64(chat.PromptTokens) != turnUsage["prompt_tokens"] || float64(chat.CompletionTokens) != turnUsage["completion_tokens"] ||
			float64(chat.CostMicros) != turn.Metadata["cost_micros"] || chat.CostMicros == 0 {
			t.Errorf("the chatbot's row %+v; the turn's metadata %+v", chat, turn.Metadata)
		}
		if key.Requests != 1 || key.ChatTurns != 0 || key.Errors != 0 || key.PromptTokens == 0 {
			t.Errorf("the key's call, on chatbot \"\": %+v", key)
		}
		if got.Totals.PromptTokens != chat.PromptTokens+key.PromptTokens || got.Totals.CostMicros != chat.CostMicros+key.CostMicros {
			t.Errorf("totals %+v are not the sum of %+v and %+v", got.Totals, chat, key)
		}
	})
}
