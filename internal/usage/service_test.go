package usage

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// fakeStore keeps the replaced days; fakeGateway answers from fields.
type fakeStore struct {
	act  Activity
	days map[string][]Row
}

func (f *fakeStore) UsageActivity(context.Context, time.Time, time.Time, time.Time) (Activity, error) {
	return f.act, nil
}
func (f *fakeStore) ReplaceUsageDay(_ context.Context, day string, rows []Row) error {
	f.days[day] = rows
	return nil
}
func (f *fakeStore) ListUsage(context.Context, Query, int) ([]Row, error) { return nil, nil }
func (f *fakeStore) DeleteUsageTenant(context.Context) error              { return nil }

type fakeGateway struct {
	totals []Row
	calls  []Call
}

func (f fakeGateway) DailyGatewayUsage(context.Context, string) ([]Row, error) { return f.totals, nil }
func (f fakeGateway) GatewayCalls(_ context.Context, ids []string) ([]Call, error) {
	var out []Call
	for _, c := range f.calls {
		for _, id := range ids {
			if c.RequestID == id {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// TestRollupDayMovesChatCalls: a chat's calls move from chatbot ” to
// the chatbot, a call whose turn is another tenant's (or of another day)
// does not, and the day's sum stays the gateway's total.
func TestRollupDayMovesChatCalls(t *testing.T) {
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	st := &fakeStore{days: map[string][]Row{}, act: Activity{Turns: []Turn{
		{TenantID: "a", ChatbotID: "bot", UserID: "u", Model: "m", RequestID: "r1", At: day.Add(time.Hour)},
		{TenantID: "b", ChatbotID: "bot-b", UserID: "u", Model: "m", RequestID: "r2", At: day.Add(time.Hour)}, // r2 is A's call
		{TenantID: "a", ChatbotID: "bot", UserID: "u", Model: "m", RequestID: "r3", At: day.Add(2 * time.Hour)},
	}}}
	gw := fakeGateway{
		totals: []Row{{TenantID: "a", UserID: "u", Model: "m", Requests: 3, Errors: 1, PromptTokens: 30, CostMicros: 300}},
		calls: []Call{
			{RequestID: "r1", TenantID: "a", UserID: "u", Model: "m", PromptTokens: 10, CostMicros: 100, Failed: true, StartedAt: day.Add(time.Hour)},
			{RequestID: "r2", TenantID: "a", UserID: "u", Model: "m", PromptTokens: 10, CostMicros: 100, StartedAt: day.Add(time.Hour)},
			{RequestID: "r3", TenantID: "a", UserID: "u", Model: "m", PromptTokens: 10, CostMicros: 100, StartedAt: day.Add(-time.Hour)},
		},
	}
	s, err := NewService(Config{Store: st, Gateway: gw})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RollupDay(context.Background(), "2026-03-10"); err != nil {
		t.Fatal(err)
	}
	got := map[string]Row{}
	var sum Row
	for _, r := range st.days["2026-03-10"] {
		got[r.TenantID+"/"+r.ChatbotID] = r
		sum.add(r)
	}
	want := map[string]Row{
		"a/":      {TenantID: "a", Day: "2026-03-10", UserID: "u", Model: "m", Requests: 2, PromptTokens: 20, CostMicros: 200},
		"a/bot":   {TenantID: "a", Day: "2026-03-10", ChatbotID: "bot", UserID: "u", Model: "m", Requests: 1, Errors: 1, PromptTokens: 10, CostMicros: 100, ChatTurns: 2},
		"b/bot-b": {TenantID: "b", Day: "2026-03-10", ChatbotID: "bot-b", UserID: "u", Model: "m", ChatTurns: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows:\n got %+v\nwant %+v", got, want)
	}
	if sum.Requests != 3 || sum.CostMicros != 300 || sum.Errors != 1 {
		t.Errorf("sum %+v is not the gateway's total", sum)
	}
	if _, err := s.RollupDay(context.Background(), "10/03/2026"); nodus.ErrorCode(err) != nodus.EINVALID {
		t.Errorf("a bad day: %v", err)
	}
}
