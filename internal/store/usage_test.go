package store_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/usage"
)

// runUsage runs fn on SQLite and PostgreSQL with a migrated main database
// and gateway database, as serve has them, and a usage service over both.
func runUsage(t *testing.T, fn func(t *testing.T, main, gw *store.DB, u *usage.Service)) {
	for _, b := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.OpenSQLite}, {"postgres", storetest.OpenPostgres}} {
		t.Run(b.name, func(t *testing.T) {
			main, gw := b.open(t), b.open(t)
			migrate(t, main, store.SetMain)
			migrate(t, gw, store.SetGateway)
			u, err := usage.NewService(usage.Config{Store: main, Gateway: gw,
				Now: func() time.Time { return time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC) }})
			if err != nil {
				t.Fatal(err)
			}
			fn(t, main, gw, u)
		})
	}
}

func spend(id, tenant, user, model string, at time.Time, in, out, micros int64, status string) gateway.SpendLog {
	return gateway.SpendLog{RequestID: id, TenantID: tenant, UserID: user, Model: model, CallType: "chat", PromptTokens: in,
		CompletionTokens: out, CostMicros: micros, StartedAt: at, EndedAt: at.Add(time.Second), Status: status}
}

func turn(t *testing.T, main *store.DB, s tenantScope, convID, model, requestID string, at time.Time) {
	t.Helper()
	md, _ := json.Marshal(map[string]any{"model": model, "request_id": requestID, "cost_micros": 1})
	m := chat.Message{ID: nodus.NewID(), TenantID: s.id, ConversationID: convID, Role: chat.RoleAssistant, Content: "answer",
		Metadata: md, CreatedAt: at}
	if err := main.AddMessage(s.ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestUsageRollup: a day's metrics are the gateway's exact figures, with
// the calls a chat made on its chatbot (a call that started before
// midnight and answered after it on the day it started), chat turns on the
// day they were written, conversations and completed documents; a rebuild
// gives the same rows; each tenant reads only its own.
func TestUsageRollup(t *testing.T) {
	runUsage(t, func(t *testing.T, main, gw *store.DB, u *usage.Service) {
		a, b := newTenantScope(), newTenantScope()
		day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
		at := func(h, m, s int) time.Time {
			return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
		}

		bot := mustCreateChatbot(t, main, a, "Helpdesk")
		conv := mustCreateConversation(t, main, a, bot.ID, "alice", at(10, 0, 0))
		mustAddMessage(t, main, a, conv.ID, chat.RoleUser, "question", at(10, 0, 30))
		turn(t, main, a, conv.ID, "gpt", "r1", at(10, 1, 0))
		turn(t, main, a, conv.ID, "gpt", "r2", at(24, 0, 30)) // its call started at 23:59:50
		kb := mustCreateKB(t, main, a, "Handbook")
		doc := newDocument(a.id, kb.ID, "alpha")
		processed := at(8, 0, 0)
		doc.Status, doc.ProcessedAt, doc.UploadedBy = knowledge.StatusCompleted, &processed, "alice"
		if err := main.CreateDocument(a.ctx, doc); err != nil {
			t.Fatal(err)
		}
		logs := []gateway.SpendLog{
			spend("r1", a.id, "alice", "gpt", at(10, 0, 58), 100, 20, 500, gateway.StatusSuccess),
			spend("r2", a.id, "alice", "gpt", at(23, 59, 50), 10, 5, 50, gateway.StatusSuccess),
			spend("r3", a.id, "alice", "gpt", at(12, 0, 0), 7, 3, 30, gateway.StatusError),
			spend("r4", a.id, "", "embed", at(9, 0, 0), 5, 0, 1, gateway.StatusSuccess),
			spend("rb", b.id, "bob", "gpt", at(11, 0, 0), 1000, 1000, 9000, gateway.StatusSuccess),
		}
		if err := gw.WriteSpend(nodus.WithAllTenants(ctx), logs, nil); err != nil {
			t.Fatal(err)
		}

		d := day.Format(usage.DayFormat)
		for range 2 { // a rebuild is idempotent
			if _, err := u.RollupDay(ctx, d); err != nil {
				t.Fatal(err)
			}
			if _, err := u.RollupDay(ctx, day.AddDate(0, 0, 1).Format(usage.DayFormat)); err != nil {
				t.Fatal(err)
			}
		}
		res, err := u.Usage(a.ctx, a.id, usage.Query{From: d, To: d, GroupBy: []string{usage.GroupChatbot, usage.GroupUser, usage.GroupModel}})
		if err != nil {
			t.Fatal(err)
		}
		want := []usage.Row{
			{UserID: "", Model: "embed", Requests: 1, PromptTokens: 5, CostMicros: 1},
			{UserID: "alice", Model: "", Documents: 1},
			{UserID: "alice", Model: "gpt", Requests: 1, Errors: 1, PromptTokens: 7, CompletionTokens: 3, CostMicros: 30},
			{ChatbotID: bot.ID, UserID: "alice", Model: "", Conversations: 1},
			{ChatbotID: bot.ID, UserID: "alice", Model: "gpt", Requests: 2, PromptTokens: 110, CompletionTokens: 25, CostMicros: 550, ChatTurns: 1},
		}
		for i := range want {
			want[i].TenantID = a.id
		}
		if !reflect.DeepEqual(res.Rows, want) {
			t.Errorf("rows:\n got %+v\nwant %+v", res.Rows, want)
		}
		tot := res.Totals
		if tot.Requests != 4 || tot.CostMicros != 581 || tot.ChatTurns != 1 || tot.Conversations != 1 || tot.Documents != 1 || tot.Errors != 1 {
			t.Errorf("totals %+v", tot)
		}

		// By day: the turn answered after midnight is the next day's turn.
		byDay, err := u.Usage(a.ctx, a.id, usage.Query{From: d, To: day.AddDate(0, 0, 1).Format(usage.DayFormat), GroupBy: []string{usage.GroupDay}})
		if err != nil {
			t.Fatal(err)
		}
		if len(byDay.Rows) != 2 || byDay.Rows[0].Requests != 4 || byDay.Rows[1].ChatTurns != 1 || byDay.Rows[1].Requests != 0 {
			t.Errorf("by day: %+v", byDay.Rows)
		}

		// B sees its own call only; A cannot name B.
		resB, err := u.Usage(b.ctx, b.id, usage.Query{From: d, To: d})
		if err != nil || len(resB.Rows) != 1 || resB.Totals.Requests != 1 || resB.Totals.CostMicros != 9000 {
			t.Errorf("B: %+v %v", resB, err)
		}
		if _, err := u.Usage(a.ctx, b.id, usage.Query{From: d, To: d}); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A reads B's usage: %v", err)
		}
		if _, err := main.ListUsage(ctx, usage.Query{From: d, To: d}, 10); err == nil {
			t.Error("ListUsage without a scope")
		}
		if err := main.ReplaceUsageDay(a.ctx, d, nil); err == nil {
			t.Error("a tenant's scope replaced a day of every tenant")
		}

		// Purging A leaves B's rows.
		if err := u.PurgeTenant(ctx, a.id); err != nil {
			t.Fatal(err)
		}
		if res, _ := u.Usage(a.ctx, a.id, usage.Query{From: d, To: d}); len(res.Rows) != 0 {
			t.Errorf("after the purge A has %+v", res.Rows)
		}
		if res, _ := u.Usage(b.ctx, b.id, usage.Query{From: d, To: d}); len(res.Rows) != 1 {
			t.Errorf("B's rows went with A's: %+v", res.Rows)
		}
	})
}

func TestUsageQueryValidation(t *testing.T) {
	runUsage(t, func(t *testing.T, main, gw *store.DB, u *usage.Service) {
		a := newTenantScope()
		for _, q := range []usage.Query{
			{From: "2026-13-01"}, {To: "yesterday"}, {From: "2026-03-10", To: "2026-03-01"}, {From: "2024-01-01", To: "2026-03-01"},
			{GroupBy: []string{"tenant"}}, {GroupBy: []string{"day", "day"}},
		} {
			if _, err := u.Usage(a.ctx, a.id, q); nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("%+v: %v", q, err)
			}
		}
		res, err := u.Usage(a.ctx, a.id, usage.Query{GroupBy: []string{"model", "day"}})
		if err != nil || res.From != "2026-02-10" || res.To != "2026-03-11" || fmt.Sprint(res.GroupBy) != "[day model]" || res.Rows == nil {
			t.Errorf("defaults: %+v %v", res, err)
		}
	})
}
