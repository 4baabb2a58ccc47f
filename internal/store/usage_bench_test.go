package store_test

import (
	"fmt"
	"strings"
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

// BenchmarkUsage measures the usage metrics on a busy day: 10 tenants,
// each with 5 chatbots and 20 users, 200 conversations, 1,000 chat turns
// (and their 1,000 questions), 5,000 gateway calls (the 1,000 the chats
// made among them) and 20 documents ingested; 50,000 calls in all.
// "rollup" rebuilds that day for every tenant (what the job does twice
// every five minutes); "query" reads one tenant's year of rows (365 days
// × 5 chatbots × 20 users × 2 models, 73,000 rows) by day and by user
// and model, as GET /api/v1/metrics/usage does.
//
//	go test -run '^$' -bench Usage -benchtime 10x ./internal/store/
func BenchmarkUsage(b *testing.B) {
	const tenants, bots, users, convs, turns, calls, docs = 10, 5, 20, 200, 1000, 5000, 20
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for _, engine := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.OpenSQLite}, {"postgres", storetest.OpenPostgres}} {
		b.Run(engine.name, func(b *testing.B) {
			main, gw := engine.open(b), engine.open(b)
			for set, db := range map[string]*store.DB{store.SetMain: main, store.SetGateway: gw} {
				m, err := store.NewMigrator(set, db)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.Up(ctx); err != nil {
					b.Fatal(err)
				}
			}
			at := func(i, n int) time.Time { return day.Add(time.Duration(i) * 24 * time.Hour / time.Duration(n)) }
			var logs []gateway.SpendLog
			for t := range tenants {
				s := newTenantScope()
				var botIDs []string
				for k := range bots {
					bot := chat.Chatbot{ID: nodus.NewID(), TenantID: s.id, Name: fmt.Sprint("bot ", k), ModelName: "m0",
						IsActive: true, CreatedAt: day, UpdatedAt: day}
					if err := main.CreateChatbot(s.ctx, bot, 0); err != nil {
						b.Fatal(err)
					}
					botIDs = append(botIDs, bot.ID)
				}
				user := func(i int) string { return fmt.Sprintf("user-%d-%d", t, i%users) }
				model := func(i int) string { return fmt.Sprint("m", i%2) }
				convIDs := make([]string, convs)
				err := main.Write(platformCtx, func(tx *store.Tx) error {
					for i := range convs {
						convIDs[i] = nodus.NewID()
						if _, err := tx.Exec(platformCtx, `INSERT INTO conversations (id, tenant_id, chatbot_id, user_id, title, archived,
							created_at, updated_at) VALUES (?, ?, ?, ?, '', ?, ?, ?)`, convIDs[i], s.id, botIDs[i%bots], user(i), false,
							at(i, convs), at(i, convs)); err != nil {
							return err
						}
					}
					for i := range turns {
						c := i % convs
						reqID := nodus.NewID()
						q, a := at(i, turns), at(i, turns).Add(2*time.Second)
						md := `{"model":"` + model(c) + `","request_id":"` + reqID + `","cost_micros":10}`
						if _, err := tx.Exec(platformCtx, `INSERT INTO messages (id, tenant_id, conversation_id, seq, role, content,
							metadata, created_at) VALUES (?, ?, ?, ?, 'user', 'question', '{}', ?), (?, ?, ?, ?, 'assistant', 'answer', ?, ?)`,
							nodus.NewID(), s.id, convIDs[c], 2*(i/convs)+1, q, nodus.NewID(), s.id, convIDs[c], 2*(i/convs)+2, md, a); err != nil {
							return err
						}
						logs = append(logs, gateway.SpendLog{RequestID: reqID, TenantID: s.id, UserID: user(c), Model: model(c),
							CallType: "chat", PromptTokens: 900, CompletionTokens: 150, CostMicros: 1200, StartedAt: q.Add(time.Second),
							EndedAt: a, Status: gateway.StatusSuccess})
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				for i := range calls - turns {
					status := gateway.StatusSuccess
					if i%50 == 0 {
						status = gateway.StatusError
					}
					logs = append(logs, gateway.SpendLog{RequestID: nodus.NewID(), TenantID: s.id, KeyID: "k", UserID: user(i),
						Model: model(i), CallType: "chat", PromptTokens: 400, CompletionTokens: 100, CostMicros: 500,
						StartedAt: at(i, calls-turns), EndedAt: at(i, calls-turns).Add(time.Second), Status: status})
				}
				kb := newKnowledgeBase(s.id, "Docs")
				if err := main.CreateKnowledgeBase(s.ctx, kb); err != nil {
					b.Fatal(err)
				}
				for i := range docs {
					d := newDocument(s.id, kb.ID, fmt.Sprint("doc ", t, i))
					done := at(i, docs)
					d.Status, d.ProcessedAt, d.UploadedBy = knowledge.StatusCompleted, &done, user(i)
					if err := main.CreateDocument(s.ctx, d); err != nil {
						b.Fatal(err)
					}
				}
			}
			for len(logs) > 0 {
				n := min(len(logs), 2000)
				if err := gw.WriteSpend(platformCtx, logs[:n], nil); err != nil {
					b.Fatal(err)
				}
				logs = logs[n:]
			}
			u, err := usage.NewService(usage.Config{Store: main, Gateway: gw})
			if err != nil {
				b.Fatal(err)
			}
			d := day.Format(usage.DayFormat)
			b.Run("rollup", func(b *testing.B) {
				var rows int
				for b.Loop() {
					if rows, err = u.RollupDay(ctx, d); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows), "rows")
			})

			// A tenant's year, written directly.
			year := newTenantScope()
			var rows []usage.Row
			for k := range 365 {
				dd := day.AddDate(0, 0, -k).Format(usage.DayFormat)
				rows = rows[:0]
				for bot := range bots {
					for us := range users {
						for m := range 2 {
							rows = append(rows, usage.Row{TenantID: year.id, Day: dd, ChatbotID: fmt.Sprint("bot-", bot),
								UserID: fmt.Sprint("user-", us), Model: fmt.Sprint("m", m), Requests: 10, PromptTokens: 9000,
								CompletionTokens: 1500, CostMicros: 12000, ChatTurns: 10})
						}
					}
				}
				if k == 0 {
					continue // the day the rollup wrote is left as it is
				}
				if err := main.ReplaceUsageDay(platformCtx, dd, rows); err != nil {
					b.Fatal(err)
				}
			}
			from := day.AddDate(0, 0, -364).Format(usage.DayFormat)
			for _, groups := range [][]string{{usage.GroupDay}, {usage.GroupUser, usage.GroupModel}} {
				b.Run("query/"+strings.Join(groups, ","), func(b *testing.B) {
					var n int
					for b.Loop() {
						res, err := u.Usage(year.ctx, year.id, usage.Query{From: from, To: d, GroupBy: groups})
						if err != nil {
							b.Fatal(err)
						}
						n = len(res.Rows)
					}
					b.ReportMetric(float64(n), "rows")
				})
			}
		})
	}
}
