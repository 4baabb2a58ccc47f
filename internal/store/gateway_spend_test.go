package store_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

var spendDay = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func spendLog(tenantID, keyID string, at time.Time, cost int64) gateway.SpendLog {
	return gateway.SpendLog{RequestID: nodus.NewID(), TenantID: tenantID, KeyID: keyID, UserID: "user-1",
		CallType: "chat", Model: "gpt-4o", DeploymentID: "dep-1", Provider: gateway.ProviderOpenAI,
		UpstreamModel: "gpt-4o-2024-08-06", PromptTokens: 10, CompletionTokens: 5, CachedTokens: 2, CostMicros: cost,
		StartedAt: at, EndedAt: at.Add(time.Second), Status: gateway.StatusSuccess, StatusCode: 200}
}

// daily returns the scope's rollup rows of spendDay.
func daily(t *testing.T, db *store.DB, s tenantScope) []gateway.DailySpend {
	t.Helper()
	day := spendDay.Format(time.DateOnly)
	rows, err := db.ListDailySpend(s.ctx, day, day)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func budgetSpend(t *testing.T, db *store.DB, s tenantScope, scope, subject string) int64 {
	t.Helper()
	b, err := db.FindBudget(s.ctx, scope, subject)
	if err != nil {
		t.Fatal(err)
	}
	return b.Spend
}

func writeSpend(t *testing.T, db *store.DB, logs []gateway.SpendLog, budgets ...gateway.BudgetSpend) {
	t.Helper()
	if err := db.WriteSpend(ctx, logs, budgets); err != nil {
		t.Fatal(err)
	}
}

func TestGatewayWriteSpendCountsOnce(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, _ tenantScope) {
		budget := newBudget(a.id, gateway.BudgetTenant, "", 1_000_000)
		if err := db.CreateBudget(a.ctx, budget); err != nil {
			t.Fatal(err)
		}
		key := nodus.NewID()
		first := []gateway.SpendLog{spendLog(a.id, key, spendDay, 100), spendLog(a.id, key, spendDay, 200),
			spendLog(a.id, key, spendDay, 300)}
		first[2].Status, first[2].StatusCode = gateway.StatusError, 502
		inc := gateway.BudgetSpend{BudgetID: budget.ID, Micros: 600}

		// The same batch twice (a retry after a lost commit) counts once.
		writeSpend(t, db, first, inc)
		writeSpend(t, db, first, inc)
		want := gateway.DailySpend{TenantID: a.id, Day: spendDay.Format(time.DateOnly), KeyID: key, UserID: "user-1",
			Model: "gpt-4o", Provider: gateway.ProviderOpenAI, Requests: 3, Successes: 2, Failures: 1, PromptTokens: 30,
			CompletionTokens: 15, CachedTokens: 6, CostMicros: 600}
		if got := daily(t, db, a); !reflect.DeepEqual(got, []gateway.DailySpend{want}) {
			t.Fatalf("rollup after a retried batch: %+v, want %+v", got, want)
		}
		if got := budgetSpend(t, db, a, gateway.BudgetTenant, ""); got != 600 {
			t.Fatalf("budget after a retried batch: %d, want 600", got)
		}

		// A second batch adds to the same rollup row and budget.
		second := []gateway.SpendLog{spendLog(a.id, key, spendDay, 50), spendLog(a.id, key, spendDay.Add(time.Hour), 50)}
		second[1].Status = gateway.StatusCancelled
		writeSpend(t, db, second, gateway.BudgetSpend{BudgetID: budget.ID, Micros: 100})
		want.Requests, want.Successes, want.PromptTokens, want.CompletionTokens, want.CachedTokens, want.CostMicros =
			5, 3, 50, 25, 10, 700
		if got := daily(t, db, a); !reflect.DeepEqual(got, []gateway.DailySpend{want}) {
			t.Fatalf("rollup after two batches: %+v, want %+v", got, want)
		}
		if got := budgetSpend(t, db, a, gateway.BudgetTenant, ""); got != 700 {
			t.Fatalf("budget after two batches: %d, want 700", got)
		}

		// A batch partly stored before is scaled to its new cost: of 400,
		// the 100 of first[0] was counted already. A request id twice in
		// one batch counts once.
		again := spendLog(a.id, key, spendDay, 300)
		twice := spendLog(a.id, key, spendDay, 10)
		writeSpend(t, db, []gateway.SpendLog{first[0], again}, gateway.BudgetSpend{BudgetID: budget.ID, Micros: 400})
		writeSpend(t, db, []gateway.SpendLog{twice, twice}, gateway.BudgetSpend{BudgetID: budget.ID, Micros: 20})
		if got := budgetSpend(t, db, a, gateway.BudgetTenant, ""); got != 1010 {
			t.Errorf("budget after partly stored batches: %d, want 1010", got)
		}
		if got := daily(t, db, a); len(got) != 1 || got[0].Requests != 7 || got[0].CostMicros != 1010 {
			t.Errorf("rollup after partly stored batches: %+v", got)
		}
		if page, _, err := db.ListSpend(a.ctx, gateway.SpendFilter{}, "", 100); err != nil || len(page) != 7 {
			t.Errorf("ListSpend: %d rows, %v; want 7", len(page), err)
		}
	})
}

func TestGatewayWriteSpendRows(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		// A row round-trips, with text PostgreSQL could not store made
		// storable rather than failing the batch.
		l := spendLog(a.id, "", spendDay, 42)
		l.EndUser, l.TraceID, l.ClientRequestID = "ab\x00c\xff", "trace-1", "client-7"
		l.UsageEstimated, l.TTFT, l.CallType = true, 1250*time.Millisecond, "messages"
		l.Metadata = map[string]json.RawMessage{"team": json.RawMessage(`"search"`)}
		writeSpend(t, db, []gateway.SpendLog{l})
		page, _, err := db.ListSpend(a.ctx, gateway.SpendFilter{}, "", 10)
		l.EndUser = "abc\uFFFD"
		if err != nil || len(page) != 1 || !reflect.DeepEqual(page[0], l) {
			t.Fatalf("ListSpend = %+v, %v; want %+v", page, err, l)
		}
		for id, want := range map[string]int{"client-7": 1, "client-8": 0} {
			if page, _, err := db.ListSpend(a.ctx, gateway.SpendFilter{ClientRequestID: id}, "", 10); err != nil || len(page) != want {
				t.Errorf("ListSpend by client request id %s: %d rows, %v; want %d", id, len(page), err, want)
			}
		}

		// A batch larger than one statement (256 + 256 + 64 + 16 + 8 rows),
		// across a UTC midnight, with a budget each for key and user.
		kb, ub := newBudget(b.id, gateway.BudgetKey, "key-b", 1e9), newBudget(b.id, gateway.BudgetUser, "user-1", 1e9)
		for _, bg := range []gateway.Budget{kb, ub} {
			if err := db.CreateBudget(b.ctx, bg); err != nil {
				t.Fatal(err)
			}
		}
		midnight := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
		var logs []gateway.SpendLog
		var total int64
		for i := range 600 {
			at := midnight.Add(time.Duration(i-300) * time.Second)
			logs = append(logs, spendLog(b.id, "key-b", at, int64(i)))
			total += int64(i)
		}
		writeSpend(t, db, logs, gateway.BudgetSpend{BudgetID: kb.ID, Micros: total},
			gateway.BudgetSpend{BudgetID: ub.ID, Micros: total})
		days, err := db.ListDailySpend(b.ctx, "2025-06-01", "2025-06-02")
		if err != nil || len(days) != 2 || days[0].Day != "2025-06-01" || days[0].Requests != 300 ||
			days[1].Requests != 300 || days[0].CostMicros+days[1].CostMicros != total {
			t.Fatalf("rollups across midnight: %+v, %v", days, err)
		}
		for _, s := range []struct{ scope, subject string }{{gateway.BudgetKey, "key-b"}, {gateway.BudgetUser, "user-1"}} {
			if got := budgetSpend(t, db, b, s.scope, s.subject); got != total {
				t.Errorf("%s budget: %d, want %d", s.scope, got, total)
			}
		}
		if days, err := db.ListDailySpend(b.ctx, "2025-06-02", ""); err != nil || len(days) != 1 {
			t.Errorf("open-ended days: %+v, %v", days, err)
		}
		if _, err := db.ListDailySpend(b.ctx, "June", ""); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("bad day: %v", err)
		}
		// Each tenant sees only its own rollups.
		if got := daily(t, db, a); len(got) != 1 || got[0].TenantID != a.id || got[0].CostMicros != 42 {
			t.Errorf("A's rollups: %+v", got)
		}
	})
}

func TestGatewayWriteSpendConcurrent(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, _ tenantScope) {
		budget := newBudget(a.id, gateway.BudgetKey, "k", 1e12)
		if err := db.CreateBudget(a.ctx, budget); err != nil {
			t.Fatal(err)
		}
		const writers, batches, rows = 8, 5, 20
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for n := range batches {
					var logs []gateway.SpendLog
					var sum int64
					for i := range rows {
						cost := int64(w*1000 + n*100 + i)
						logs = append(logs, spendLog(a.id, "k", spendDay, cost))
						sum += cost
					}
					if err := db.WriteSpend(ctx, logs, []gateway.BudgetSpend{{BudgetID: budget.ID, Micros: sum}}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		var want int64
		for w := range writers {
			for n := range batches {
				for i := range rows {
					want += int64(w*1000 + n*100 + i)
				}
			}
		}
		got := daily(t, db, a)
		if len(got) != 1 || got[0].Requests != writers*batches*rows || got[0].CostMicros != want {
			t.Errorf("rollup after concurrent writes: %+v, want %d requests costing %d", got, writers*batches*rows, want)
		}
		if spend := budgetSpend(t, db, a, gateway.BudgetKey, "k"); spend != want {
			t.Errorf("budget after concurrent writes: %d, want %d", spend, want)
		}
	})
}

func TestGatewayListSpend(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		var logs []gateway.SpendLog
		for i := range 7 {
			l := spendLog(a.id, fmt.Sprintf("key-%d", i%2), spendDay.Add(time.Duration(i)*time.Minute), int64(i))
			if i == 4 {
				l.StartedAt = logs[3].StartedAt // a tie, broken by request id
			}
			if i == 5 {
				l.Status, l.UserID, l.Model = gateway.StatusError, "user-2", "claude"
			}
			logs = append(logs, l)
		}
		writeSpend(t, db, append(logs, spendLog(b.id, "key-0", spendDay, 1), spendLog(b.id, "key-0", spendDay, 2)))
		newest := slices.Clone(logs)
		slices.SortFunc(newest, func(x, y gateway.SpendLog) int {
			return cmp.Or(y.StartedAt.Compare(x.StartedAt), cmp.Compare(y.RequestID, x.RequestID))
		})
		ids := func(ls []gateway.SpendLog) []string {
			var out []string
			for _, l := range ls {
				out = append(out, l.RequestID)
			}
			return out
		}

		// Pages of three walk every row once, newest first.
		var all []gateway.SpendLog
		cursor, pages := "", 0
		for {
			page, next, err := db.ListSpend(a.ctx, gateway.SpendFilter{}, cursor, 3)
			if err != nil {
				t.Fatal(err)
			}
			all, cursor, pages = append(all, page...), next, pages+1
			if cursor == "" || pages > 5 {
				break
			}
		}
		if pages != 3 || !slices.Equal(ids(all), ids(newest)) {
			t.Fatalf("%d pages: %v, want %v", pages, ids(all), ids(newest))
		}

		filtered := func(keep func(l gateway.SpendLog) bool) []string {
			var out []gateway.SpendLog
			for _, l := range newest {
				if keep(l) {
					out = append(out, l)
				}
			}
			return ids(out)
		}
		for _, c := range []struct {
			name string
			f    gateway.SpendFilter
			keep func(l gateway.SpendLog) bool
		}{
			{"key", gateway.SpendFilter{KeyID: "key-1"}, func(l gateway.SpendLog) bool { return l.KeyID == "key-1" }},
			{"user", gateway.SpendFilter{UserID: "user-2"}, func(l gateway.SpendLog) bool { return l.UserID == "user-2" }},
			{"model", gateway.SpendFilter{Model: "gpt-4o"}, func(l gateway.SpendLog) bool { return l.Model == "gpt-4o" }},
			{"status", gateway.SpendFilter{Status: gateway.StatusError}, func(l gateway.SpendLog) bool { return l.Status == gateway.StatusError }},
			{"window", gateway.SpendFilter{From: logs[2].StartedAt, To: logs[5].StartedAt}, func(l gateway.SpendLog) bool {
				return !l.StartedAt.Before(logs[2].StartedAt) && l.StartedAt.Before(logs[5].StartedAt)
			}},
		} {
			page, next, err := db.ListSpend(a.ctx, c.f, "", 100)
			if want := filtered(c.keep); err != nil || next != "" || len(want) == 0 || !slices.Equal(ids(page), want) {
				t.Errorf("filter %s: %v, %v; want %v", c.name, ids(page), err, want)
			}
		}

		if page, _, err := db.ListSpend(b.ctx, gateway.SpendFilter{}, "", 100); err != nil || len(page) != 2 || page[0].TenantID != b.id {
			t.Errorf("B lists %d rows, %v", len(page), err)
		}
		for _, bad := range []string{"x", "eHg", "MjAyNS0wNi0wMQ"} {
			if _, _, err := db.ListSpend(a.ctx, gateway.SpendFilter{}, bad, 3); nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("cursor %q: %v", bad, err)
			}
		}
	})
}

func TestGatewayDeleteSpendBefore(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		cut := spendDay.Add(time.Hour)
		var logs []gateway.SpendLog
		for i := range 5 {
			logs = append(logs, spendLog(a.id, "k", spendDay.Add(time.Duration(i)*time.Minute), 1))
		}
		recent := spendLog(a.id, "k", cut, 1)
		otherOld := spendLog(b.id, "k", spendDay, 1)
		writeSpend(t, db, append(logs, recent, otherOld))

		// Retention in chunks of two: 2, 2, 1, then nothing.
		for i, want := range []int{2, 2, 1, 0} {
			if n, err := db.DeleteSpendBefore(a.ctx, cut, 2); err != nil || n != want {
				t.Fatalf("round %d: deleted %d, %v; want %d", i, n, err, want)
			}
		}
		if page, _, _ := db.ListSpend(a.ctx, gateway.SpendFilter{}, "", 10); len(page) != 1 || page[0].RequestID != recent.RequestID {
			t.Errorf("A keeps %+v, want only the recent row", page)
		}
		if page, _, _ := db.ListSpend(b.ctx, gateway.SpendFilter{}, "", 10); len(page) != 1 {
			t.Errorf("B's old row was deleted by A's retention")
		}
		if got := daily(t, db, a); len(got) != 1 || got[0].Requests != 6 {
			t.Errorf("rollups after retention: %+v, want them kept", got)
		}
		if _, err := db.DeleteSpendBefore(a.ctx, cut, 0); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("limit 0: %v", err)
		}
	})
}

func TestGatewayDeleteTenant(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		keys := map[string]gateway.Key{}
		for _, s := range []tenantScope{a, b} {
			now := nodus.SystemClock{}.Now()
			k := newKey(s.id, "k")
			keys[s.id] = k
			budget := newBudget(s.id, gateway.BudgetTenant, "", 10)
			for _, err := range []error{
				db.CreateDeployment(s.ctx, newDeployment(s.id, "gpt-4o")),
				db.UpdateRouterSettings(s.ctx, gateway.RouterSettings{Strategy: "weighted", UpdatedAt: now}),
				db.CreateKey(s.ctx, k),
				db.CreateBudget(s.ctx, budget),
				db.SetPriceOverride(s.ctx, gateway.PriceOverride{Model: "gpt-4o", UpdatedAt: now}),
				db.WriteSpend(ctx, []gateway.SpendLog{spendLog(s.id, k.ID, spendDay, 5)}, nil),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := db.DeleteGatewayTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "platform scope", db.DeleteGatewayTenant(platform), nodus.EINTERNAL)

		// counts returns how many records of each kind s sees.
		counts := func(s tenantScope) []int {
			deps, err1 := db.ListDeployments(s.ctx)
			_, err2 := db.FindRouterSettings(s.ctx)
			ks, _, err3 := db.ListKeys(s.ctx, "", 10)
			budgets, err4 := db.ListBudgets(s.ctx)
			prices, err5 := db.ListPriceOverrides(s.ctx)
			logs, _, err6 := db.ListSpend(s.ctx, gateway.SpendFilter{}, "", 10)
			for _, err := range []error{err1, err3, err4, err5, err6} {
				if err != nil {
					t.Fatal(err)
				}
			}
			settings := 1
			if nodus.ErrorCode(err2) == nodus.ENOTFOUND {
				settings = 0
			}
			return []int{len(deps), settings, len(ks), len(budgets), len(prices), len(logs), len(daily(t, db, s))}
		}
		if got := counts(a); !slices.Equal(got, []int{0, 0, 0, 0, 0, 0, 0}) {
			t.Errorf("A after delete: %v, want nothing left", got)
		}
		if got := counts(b); !slices.Equal(got, []int{1, 1, 1, 1, 1, 1, 1}) {
			t.Errorf("B after A's delete: %v, want everything kept", got)
		}
		if _, err := db.FindKeyByHash(ctx, keys[a.id].Hash); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A's key still signs in: %v", err)
		}
		if k, err := db.FindKeyByHash(ctx, keys[b.id].Hash); err != nil || k.TenantID != b.id {
			t.Errorf("B's key: %+v, %v", k, err)
		}
	})
}
