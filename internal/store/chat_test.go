package store_test

import (
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

func newChatbot(tenantID, name string, kbs ...string) chat.Chatbot {
	now := nodus.SystemClock{}.Now()
	return chat.Chatbot{ID: nodus.NewID(), TenantID: tenantID, Name: name, ModelName: "nodus/extractive",
		KnowledgeBases: kbs, IsActive: true, CreatedBy: "u1", CreatedAt: now, UpdatedAt: now}
}

func mustCreateChatbot(t *testing.T, db *store.DB, s tenantScope, name string, kbs ...string) chat.Chatbot {
	t.Helper()
	b := newChatbot(s.id, name, kbs...)
	if err := db.CreateChatbot(s.ctx, b, 0); err != nil {
		t.Fatalf("create chatbot %s: %v", name, err)
	}
	return b
}

func mustCreateConversation(t *testing.T, db *store.DB, s tenantScope, botID, userID string, at time.Time) chat.Conversation {
	t.Helper()
	c := chat.Conversation{ID: nodus.NewID(), TenantID: s.id, ChatbotID: botID, UserID: userID,
		Title: "about " + userID, CreatedAt: at, UpdatedAt: at}
	if err := db.CreateConversation(s.ctx, c); err != nil {
		t.Fatalf("create conversation: %v", err)
	}
	return c
}

func mustAddMessage(t *testing.T, db *store.DB, s tenantScope, convID, role, content string, at time.Time) chat.Message {
	t.Helper()
	m := chat.Message{ID: nodus.NewID(), TenantID: s.id, ConversationID: convID, Role: role, Content: content,
		CreatedAt: at}
	if err := db.AddMessage(s.ctx, m); err != nil {
		t.Fatalf("add message %q: %v", content, err)
	}
	return m
}

func TestChatbots(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		kb1, kb2, kb3 := mustCreateKB(t, db, a, "Handbook"), mustCreateKB(t, db, a, "Policies"),
			mustCreateKB(t, db, a, "Runbooks")
		kbB := mustCreateKB(t, db, b, "Handbook")

		bot := newChatbot(a.id, "Helpdesk", kb2.ID, kb1.ID)
		bot.Description, bot.SystemPrompt, bot.WelcomeMessage = "answers questions", "Be brief.", "Hello!"
		bot.Temperature, bot.MaxTokens, bot.ContextTokens, bot.MemoryEnabled = new(0.3), 800, 128000, true
		bot.Retrieval = chat.RetrievalOverrides{TopK: 4, ScoreThreshold: new(0.2), Mode: "hybrid",
			HybridWeight: new(0.6)}
		if err := db.CreateChatbot(a.ctx, bot, 0); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindChatbot(a.ctx, bot.ID)
		if err != nil || !reflect.DeepEqual(got, bot) {
			t.Fatalf("FindChatbot = %+v, %v; want %+v", got, err, bot)
		}
		// Defaults round-trip too: no temperature, no overrides, no knowledge.
		bare := mustCreateChatbot(t, db, a, "Bare")
		bare.IsActive = true
		if got, err := db.FindChatbot(a.ctx, bare.ID); err != nil || !reflect.DeepEqual(got, bare) {
			t.Fatalf("FindChatbot(bare) = %+v, %v; want %+v", got, err, bare)
		}

		// Names are unique per tenant; knowledge bases must be the tenant's.
		err = db.CreateChatbot(a.ctx, newChatbot(a.id, "Helpdesk"), 0)
		wantCode(t, "duplicate name", err, nodus.ECONFLICT)
		if nodus.ErrorFields(err)["name"] == "" {
			t.Errorf("duplicate name: no field error: %v", err)
		}
		mustCreateChatbot(t, db, b, "Helpdesk")
		wantCode(t, "another tenant's knowledge base", db.CreateChatbot(a.ctx, newChatbot(a.id, "X", kb1.ID, kbB.ID), 0),
			nodus.ENOTFOUND)
		wantCode(t, "unknown knowledge base", db.CreateChatbot(a.ctx, newChatbot(a.id, "X", nodus.NewID()), 0),
			nodus.ENOTFOUND)
		wantCode(t, "knowledge base twice", db.CreateChatbot(a.ctx, newChatbot(a.id, "X", kb1.ID, kb1.ID), 0),
			nodus.EINVALID)
		wantCode(t, "record of another tenant", db.CreateChatbot(b.ctx, newChatbot(a.id, "X"), 0), nodus.EINTERNAL)
		wantCode(t, "no scope", db.CreateChatbot(ctx, newChatbot("", "X"), 0), nodus.EINTERNAL)
		if _, err := db.FindChatbot(a.ctx, bot.ID); err != nil {
			t.Fatal(err)
		}

		// Pages of two, by id, with their knowledge bases.
		third := mustCreateChatbot(t, db, a, "Third", kb3.ID)
		page, next, err := db.ListChatbots(a.ctx, "", 2)
		if err != nil || len(page) != 2 || next == "" || !reflect.DeepEqual(page[0], bot) || page[1].ID != bare.ID {
			t.Fatalf("first page: %+v, %q, %v", page, next, err)
		}
		page, next, err = db.ListChatbots(a.ctx, next, 2)
		if err != nil || len(page) != 1 || next != "" || !reflect.DeepEqual(page[0], third) {
			t.Fatalf("second page: %+v, %q, %v", page, next, err)
		}
		wantCode(t, "bad cursor", func() error { _, _, err := db.ListChatbots(a.ctx, "nope", 2); return err }(),
			nodus.EINVALID)

		// Update: identity fields stay; the knowledge bases are rewritten.
		later := bot.UpdatedAt.Add(time.Minute)
		updated, err := db.UpdateChatbot(a.ctx, bot.ID, func(c *chat.Chatbot) error {
			c.Name, c.Temperature, c.MaxTokens, c.IsActive, c.UpdatedAt = "Helpdesk v2", nil, 0, false, later
			c.KnowledgeBases = []string{kb3.ID, kb2.ID, kb1.ID}
			c.Retrieval = chat.RetrievalOverrides{}
			c.ID, c.TenantID, c.CreatedBy, c.CreatedAt = "other", b.id, "intruder", later
			return nil
		})
		want := bot
		want.Name, want.Temperature, want.MaxTokens, want.IsActive, want.UpdatedAt = "Helpdesk v2", nil, 0, false, later
		want.KnowledgeBases, want.Retrieval = []string{kb3.ID, kb2.ID, kb1.ID}, chat.RetrievalOverrides{}
		if err != nil || !reflect.DeepEqual(updated, want) {
			t.Fatalf("UpdateChatbot = %+v, %v; want %+v", updated, err, want)
		}
		if got, err := db.FindChatbot(a.ctx, bot.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after update: %+v, %v; want %+v", got, err, want)
		}
		_, err = db.UpdateChatbot(a.ctx, bot.ID, func(c *chat.Chatbot) error {
			c.KnowledgeBases = append(c.KnowledgeBases, kbB.ID)
			return nil
		})
		wantCode(t, "update to another tenant's knowledge base", err, nodus.ENOTFOUND)
		_, err = db.UpdateChatbot(a.ctx, bot.ID, func(c *chat.Chatbot) error { c.Name = "Bare"; return nil })
		wantCode(t, "update to a taken name", err, nodus.ECONFLICT)
		_, err = db.UpdateChatbot(a.ctx, bot.ID, func(c *chat.Chatbot) error {
			c.KnowledgeBases = nil
			return nodus.Errorf(nodus.EINVALID, "refused")
		})
		wantCode(t, "change error", err, nodus.EINVALID)
		if got, _ := db.FindChatbot(a.ctx, bot.ID); !reflect.DeepEqual(got, want) {
			t.Fatalf("failed updates changed the chatbot: %+v", got)
		}

		// Tenant B sees none of it.
		wantCode(t, "B finds A's", func() error { _, err := db.FindChatbot(b.ctx, bot.ID); return err }(), nodus.ENOTFOUND)
		_, err = db.UpdateChatbot(b.ctx, bot.ID, func(*chat.Chatbot) error { return nil })
		wantCode(t, "B updates A's", err, nodus.ENOTFOUND)
		wantCode(t, "B deletes A's", db.DeleteChatbot(b.ctx, bot.ID), nodus.ENOTFOUND)
		if page, _, err := db.ListChatbots(b.ctx, "", 10); err != nil || len(page) != 1 || page[0].Name != "Helpdesk" ||
			page[0].TenantID != b.id {
			t.Fatalf("B's list: %+v, %v", page, err)
		}
		if page, _, err := db.ListChatbots(platform, "", 10); err != nil || len(page) != 4 {
			t.Fatalf("platform list: %d chatbots, %v; want 4", len(page), err)
		}

		// A deleted knowledge base leaves the chatbots that used it.
		if _, err := db.DeleteKnowledgeBase(a.ctx, kb2.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindChatbot(a.ctx, bot.ID); err != nil || !reflect.DeepEqual(got.KnowledgeBases,
			[]string{kb3.ID, kb1.ID}) {
			t.Fatalf("after deleting a knowledge base: %v, %v", got.KnowledgeBases, err)
		}
		if _, err := db.DeleteKnowledgeTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindChatbot(a.ctx, bot.ID); err != nil || got.KnowledgeBases != nil {
			t.Fatalf("after deleting every knowledge base: %v, %v", got.KnowledgeBases, err)
		}
	})
}

func TestChatbotQuota(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		mustCreateChatbot(t, db, b, "B's") // another tenant's do not count
		const tries, max = 8, 3
		errs := make([]error, tries)
		var wg sync.WaitGroup
		for i := range tries {
			wg.Go(func() {
				errs[i] = db.CreateChatbot(a.ctx, newChatbot(a.id, nodus.NewID()), max)
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch nodus.ErrorCode(err) {
			case "":
				ok++
			case nodus.EFORBIDDEN:
			default:
				t.Errorf("concurrent create: %v", err)
			}
		}
		if ok != max {
			t.Fatalf("%d of %d concurrent creations succeeded, want %d: %v", ok, tries, max, errs)
		}
		if n := countRows(t, db, "chatbots", a.id); n != max {
			t.Fatalf("%d chatbots stored, want %d", n, max)
		}
		err := db.CreateChatbot(a.ctx, newChatbot(a.id, "one more"), max)
		wantCode(t, "over quota", err, nodus.EFORBIDDEN)
		if err == nil || nodus.ErrorMessage(err) != "the tenant has reached its limit of 3 chatbots" {
			t.Errorf("over quota message: %v", err)
		}
		if err := db.CreateChatbot(a.ctx, newChatbot(a.id, "unlimited"), 0); err != nil {
			t.Errorf("no limit: %v", err)
		}
	})
}

func TestConversations(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		bot1, bot2 := mustCreateChatbot(t, db, a, "One"), mustCreateChatbot(t, db, a, "Two")
		botB := mustCreateChatbot(t, db, b, "B")
		base := nodus.SystemClock{}.Now().Add(-time.Hour)

		// Five conversations, each later than the last but two at the same
		// time, so ids break the tie.
		at := []time.Duration{1, 2, 3, 3, 5}
		bots := []string{bot1.ID, bot2.ID, bot1.ID, bot1.ID, bot2.ID}
		users := []string{"u1", "u1", "u2", "u1", "u2"}
		var convs []chat.Conversation
		for i := range at {
			convs = append(convs, mustCreateConversation(t, db, a, bots[i], users[i], base.Add(at[i]*time.Minute)))
		}
		archived, err := db.UpdateConversation(a.ctx, convs[0].ID, func(c *chat.Conversation) error {
			c.Archived, c.Title = true, "renamed"
			c.ChatbotID, c.UserID, c.TenantID, c.CreatedAt = bot2.ID, "intruder", b.id, base
			return nil
		})
		want := convs[0]
		want.Archived, want.Title = true, "renamed"
		if err != nil || !reflect.DeepEqual(archived, want) {
			t.Fatalf("UpdateConversation = %+v, %v; want %+v", archived, err, want)
		}
		convs[0] = want
		if got, err := db.FindConversation(a.ctx, want.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("FindConversation = %+v, %v; want %+v", got, err, want)
		}

		// Newest first; the tie at 3 minutes is ordered by id, descending.
		tie := []chat.Conversation{convs[3], convs[2]}
		if convs[2].ID > convs[3].ID {
			tie = []chat.Conversation{convs[2], convs[3]}
		}
		all := []chat.Conversation{convs[4], tie[0], tie[1], convs[1], convs[0]}
		ids := func(cs []chat.Conversation) []string {
			var out []string
			for _, c := range cs {
				out = append(out, c.ID)
			}
			return out
		}
		only := func(keep func(chat.Conversation) bool) []string {
			var out []chat.Conversation
			for _, c := range all {
				if keep(c) {
					out = append(out, c)
				}
			}
			return ids(out)
		}
		for _, tc := range []struct {
			name string
			f    chat.ConversationFilter
			want []string
		}{
			{"all", chat.ConversationFilter{}, ids(all)},
			{"user", chat.ConversationFilter{UserID: "u1"}, only(func(c chat.Conversation) bool { return c.UserID == "u1" })},
			{"chatbot", chat.ConversationFilter{ChatbotID: bot1.ID},
				only(func(c chat.Conversation) bool { return c.ChatbotID == bot1.ID })},
			{"user and chatbot", chat.ConversationFilter{UserID: "u1", ChatbotID: bot1.ID},
				only(func(c chat.Conversation) bool { return c.UserID == "u1" && c.ChatbotID == bot1.ID })},
			{"archived", chat.ConversationFilter{Archived: new(true)}, []string{convs[0].ID}},
			{"not archived", chat.ConversationFilter{Archived: new(false)}, ids(all[:4])},
			{"unknown user", chat.ConversationFilter{UserID: "nobody"}, nil},
		} {
			// Pages of two must add up to the whole list.
			var got []string
			cursor := ""
			for range 10 {
				page, next, err := db.ListConversations(a.ctx, tc.f, cursor, 2)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if len(page) > 2 || next != "" && len(page) != 2 {
					t.Fatalf("%s: page of %d, next %q", tc.name, len(page), next)
				}
				got = append(got, ids(page)...)
				if cursor = next; cursor == "" {
					break
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
		page, _, err := db.ListConversations(a.ctx, chat.ConversationFilter{}, "", 0)
		if err != nil || !reflect.DeepEqual(page, all) {
			t.Fatalf("full list: %+v, %v", page, err)
		}
		_, _, err = db.ListConversations(a.ctx, chat.ConversationFilter{}, "bad cursor", 2)
		wantCode(t, "bad cursor", err, nodus.EINVALID)

		// Creation needs a chatbot of the tenant.
		c := chat.Conversation{ID: nodus.NewID(), ChatbotID: botB.ID, CreatedAt: base, UpdatedAt: base}
		wantCode(t, "another tenant's chatbot", db.CreateConversation(a.ctx, c), nodus.ENOTFOUND)
		c.ChatbotID = nodus.NewID()
		wantCode(t, "unknown chatbot", db.CreateConversation(a.ctx, c), nodus.ENOTFOUND)
		c.ChatbotID = bot1.ID
		wantCode(t, "duplicate id", db.CreateConversation(a.ctx, convs[1]), nodus.ECONFLICT)

		// Tenant B sees none of it.
		mustCreateConversation(t, db, b, botB.ID, "u1", base)
		wantCode(t, "B finds A's", func() error { _, err := db.FindConversation(b.ctx, convs[1].ID); return err }(),
			nodus.ENOTFOUND)
		_, err = db.UpdateConversation(b.ctx, convs[1].ID, func(*chat.Conversation) error { return nil })
		wantCode(t, "B updates A's", err, nodus.ENOTFOUND)
		wantCode(t, "B deletes A's", db.DeleteConversation(b.ctx, convs[1].ID), nodus.ENOTFOUND)
		for _, f := range []chat.ConversationFilter{{}, {ChatbotID: bot1.ID}, {UserID: "u2"}} {
			page, _, err := db.ListConversations(b.ctx, f, "", 10)
			if err != nil || len(page) > 1 || len(page) == 1 && page[0].TenantID != b.id {
				t.Fatalf("B lists %+v: %+v, %v", f, page, err)
			}
		}

		// Deletion takes the messages with it.
		mustAddMessage(t, db, a, convs[1].ID, chat.RoleUser, "hi", base.Add(time.Hour))
		if err := db.DeleteConversation(a.ctx, convs[1].ID); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "deleted", func() error { _, err := db.FindConversation(a.ctx, convs[1].ID); return err }(),
			nodus.ENOTFOUND)
		wantCode(t, "deleted twice", db.DeleteConversation(a.ctx, convs[1].ID), nodus.ENOTFOUND)
		if n := countRows(t, db, "messages", a.id); n != 0 {
			t.Fatalf("%d messages left", n)
		}
	})
}

func TestMessages(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		bot := mustCreateChatbot(t, db, a, "Bot")
		base := nodus.SystemClock{}.Now().Add(-time.Hour)
		conv := mustCreateConversation(t, db, a, bot.ID, "u1", base)

		// Messages at one instant still keep the order they were added in.
		var msgs []chat.Message
		for i, role := range []string{chat.RoleSystem, chat.RoleUser, chat.RoleAssistant, chat.RoleUser, chat.RoleAssistant} {
			at := base.Add(time.Duration(i/2+1) * time.Minute)
			m := chat.Message{ID: nodus.NewID(), TenantID: a.id, ConversationID: conv.ID, Role: role,
				Content: role + " " + string(rune('a'+i)), CreatedAt: at}
			if role == chat.RoleAssistant {
				m.Metadata = json.RawMessage(`{"model":"nodus/extractive","usage":{"total_tokens":12}}`)
			}
			if err := db.AddMessage(a.ctx, m); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		got, err := db.ListMessages(a.ctx, conv.ID, 0)
		if err != nil || !reflect.DeepEqual(got, msgs) {
			t.Fatalf("ListMessages = %+v, %v; want %+v", got, err, msgs)
		}
		if got, err := db.ListMessages(a.ctx, conv.ID, 2); err != nil || !reflect.DeepEqual(got, msgs[3:]) {
			t.Fatalf("last two = %+v, %v", got, err)
		}
		if got, err := db.ListMessages(a.ctx, conv.ID, 50); err != nil || len(got) != len(msgs) {
			t.Fatalf("last 50 = %d, %v", len(got), err)
		}
		if c, err := db.FindConversation(a.ctx, conv.ID); err != nil || !c.UpdatedAt.Equal(msgs[4].CreatedAt) ||
			!c.CreatedAt.Equal(conv.CreatedAt) {
			t.Fatalf("conversation after messages: %+v, %v; want updated at %v", c, err, msgs[4].CreatedAt)
		}
		if m, err := db.FindMessage(a.ctx, msgs[2].ID); err != nil || !reflect.DeepEqual(m, msgs[2]) {
			t.Fatalf("FindMessage = %+v, %v", m, err)
		}

		// Invalid messages.
		bad := chat.Message{ID: nodus.NewID(), ConversationID: conv.ID, Role: "robot", CreatedAt: base}
		wantCode(t, "role", db.AddMessage(a.ctx, bad), nodus.EINVALID)
		bad.Role, bad.Metadata = chat.RoleAssistant, json.RawMessage(`{"x":`)
		wantCode(t, "metadata", db.AddMessage(a.ctx, bad), nodus.EINVALID)
		bad.Metadata, bad.ConversationID = nil, nodus.NewID()
		wantCode(t, "unknown conversation", db.AddMessage(a.ctx, bad), nodus.ENOTFOUND)
		wantCode(t, "duplicate id", db.AddMessage(a.ctx, msgs[0]), nodus.ECONFLICT)
		_, err = db.ListMessages(a.ctx, nodus.NewID(), 0)
		wantCode(t, "list of unknown conversation", err, nodus.ENOTFOUND)

		// Feedback: set, change, clear; assistant messages only.
		fb := &chat.Feedback{Rating: chat.RatingDislike, Comment: "wrong page", UpdatedAt: base.Add(time.Hour)}
		m, err := db.SetFeedback(a.ctx, msgs[2].ID, fb)
		withFB := msgs[2]
		withFB.Feedback = fb
		if err != nil || !reflect.DeepEqual(m, withFB) {
			t.Fatalf("SetFeedback = %+v, %v; want %+v", m, err, withFB)
		}
		if m, err := db.FindMessage(a.ctx, msgs[2].ID); err != nil || !reflect.DeepEqual(m, withFB) {
			t.Fatalf("after feedback: %+v, %v", m, err)
		}
		fb2 := &chat.Feedback{Rating: chat.RatingLike, UpdatedAt: base.Add(2 * time.Hour)}
		if m, err := db.SetFeedback(a.ctx, msgs[2].ID, fb2); err != nil || !reflect.DeepEqual(m.Feedback, fb2) {
			t.Fatalf("changed feedback: %+v, %v", m.Feedback, err)
		}
		if m, err := db.SetFeedback(a.ctx, msgs[2].ID, nil); err != nil || !reflect.DeepEqual(m, msgs[2]) {
			t.Fatalf("cleared feedback: %+v, %v", m, err)
		}
		if m, err := db.FindMessage(a.ctx, msgs[2].ID); err != nil || m.Feedback != nil {
			t.Fatalf("after clearing: %+v, %v", m.Feedback, err)
		}
		_, err = db.SetFeedback(a.ctx, msgs[1].ID, fb)
		wantCode(t, "feedback on a user message", err, nodus.EINVALID)
		_, err = db.SetFeedback(a.ctx, msgs[2].ID, &chat.Feedback{Rating: "meh", UpdatedAt: base})
		wantCode(t, "bad rating", err, nodus.EINVALID)
		_, err = db.SetFeedback(a.ctx, nodus.NewID(), fb)
		wantCode(t, "unknown message", err, nodus.ENOTFOUND)

		// Tenant B sees none of it.
		botB := mustCreateChatbot(t, db, b, "Bot")
		convB := mustCreateConversation(t, db, b, botB.ID, "u1", base)
		_, err = db.ListMessages(b.ctx, conv.ID, 0)
		wantCode(t, "B lists A's", err, nodus.ENOTFOUND)
		_, err = db.FindMessage(b.ctx, msgs[0].ID)
		wantCode(t, "B finds A's", err, nodus.ENOTFOUND)
		_, err = db.SetFeedback(b.ctx, msgs[2].ID, fb)
		wantCode(t, "B rates A's", err, nodus.ENOTFOUND)
		bad = chat.Message{ID: nodus.NewID(), ConversationID: conv.ID, Role: chat.RoleUser, CreatedAt: base}
		wantCode(t, "B adds to A's", db.AddMessage(b.ctx, bad), nodus.ENOTFOUND)
		if got, err := db.ListMessages(b.ctx, convB.ID, 0); err != nil || len(got) != 0 {
			t.Fatalf("B's messages: %+v, %v", got, err)
		}
	})
}

func TestChatDeletes(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		kb, kbB := mustCreateKB(t, db, a, "Handbook"), mustCreateKB(t, db, b, "Handbook")
		now := nodus.SystemClock{}.Now()
		fill := func(s tenantScope, name, kbID string) (chat.Chatbot, chat.Conversation) {
			bot := mustCreateChatbot(t, db, s, name, kbID)
			conv := mustCreateConversation(t, db, s, bot.ID, "u1", now)
			mustAddMessage(t, db, s, conv.ID, chat.RoleUser, "q", now)
			mustAddMessage(t, db, s, conv.ID, chat.RoleAssistant, "a", now)
			return bot, conv
		}
		gone, goneConv := fill(a, "Gone", kb.ID)
		kept, keptConv := fill(a, "Kept", kb.ID)
		fill(b, "B", kbB.ID)
		counts := func(s tenantScope) [4]int {
			return [4]int{countRows(t, db, "chatbots", s.id), countRows(t, db, "chatbot_knowledge_bases", s.id),
				countRows(t, db, "conversations", s.id), countRows(t, db, "messages", s.id)}
		}

		if err := db.DeleteChatbot(a.ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		if got := counts(a); got != [4]int{1, 1, 1, 2} {
			t.Fatalf("after DeleteChatbot: %v", got)
		}
		wantCode(t, "deleted chatbot", func() error { _, err := db.FindChatbot(a.ctx, gone.ID); return err }(),
			nodus.ENOTFOUND)
		wantCode(t, "its conversation", func() error { _, err := db.FindConversation(a.ctx, goneConv.ID); return err }(),
			nodus.ENOTFOUND)
		wantCode(t, "deleted twice", db.DeleteChatbot(a.ctx, gone.ID), nodus.ENOTFOUND)
		if _, err := db.FindConversation(a.ctx, keptConv.ID); err != nil {
			t.Fatalf("another chatbot's conversation: %v", err)
		}

		if err := db.DeleteChatTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		if got := counts(a); got != [4]int{} {
			t.Fatalf("after DeleteChatTenant: %v", got)
		}
		if err := db.DeleteChatTenant(a.ctx); err != nil {
			t.Fatalf("second DeleteChatTenant: %v", err)
		}
		if got := counts(b); got != [4]int{1, 1, 1, 2} {
			t.Fatalf("B's rows after A's deletion: %v", got)
		}
		wantCode(t, "deleted tenant's chatbot", func() error { _, err := db.FindChatbot(a.ctx, kept.ID); return err }(),
			nodus.ENOTFOUND)
		wantCode(t, "platform scope", db.DeleteChatTenant(platform), nodus.EINTERNAL)
		// The knowledge base survives its chatbots.
		if _, err := db.FindKnowledgeBase(a.ctx, kb.ID); err != nil {
			t.Fatal(err)
		}
	})
}
