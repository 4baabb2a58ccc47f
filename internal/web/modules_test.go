package web

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file tests the traces, gateway and memories pages and the
// conversation actions: their rendering with stored XSS, the trace
// page's layout and the filters' parsing. Access, CSRF and the services
// behind them are tested over a real server in cmd/nodus/web_test.go.

// xssTrace is a trace whose every user-controlled field holds xssName:
// the name, ids, tags, inputs and outputs (as JSON and as a JSON string),
// an observation's name, model and status, and a score.
func xssTrace() tracing.PublicTrace {
	t0 := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	end := func(d time.Duration) *time.Time { e := t0.Add(d); return &e }
	payload, _ := json.Marshal(map[string]string{"question": xssName})
	str, _ := json.Marshal(xssName + "\n</pre><script>alert(1)</script>")
	v := 0.5
	return tracing.PublicTrace{
		Trace: tracing.Trace{ID: "tr-1/x?y", Name: xssName, UserID: xssName, SessionID: xssName, Tags: []string{xssName},
			Input: payload, Output: str, Metadata: payload, Timestamp: t0, TotalCost: 0.000123, LatencyMS: 1500,
			Level: tracing.LevelError, ObservationCount: 3, Environment: xssName, Release: xssName},
		Observations: []tracing.Observation{
			{ID: "root", TraceID: "tr-1/x?y", Type: tracing.TypeSpan, Name: xssName, StartTime: t0, EndTime: end(time.Second)},
			{ID: "gen", TraceID: "tr-1/x?y", ParentObservationID: "root", Type: tracing.TypeGeneration, Name: "llm " + xssName,
				Model: xssName, StartTime: t0.Add(500 * time.Millisecond), EndTime: end(1500 * time.Millisecond), Input: payload, Output: str,
				ModelParameters: payload, UsageDetails: map[string]int64{"input": 10, "output": 5},
				CostDetails: map[string]float64{"input": 0.0001, "output": 0.000023}, Level: tracing.LevelError, StatusMessage: xssName},
			{ID: "open", TraceID: "tr-1/x?y", ParentObservationID: "gen", Type: tracing.TypeEvent, Name: xssName, StartTime: t0.Add(1500 * time.Millisecond)},
		},
		Scores: []tracing.ScoreView{{Score: tracing.Score{ID: "s1", TraceID: "tr-1/x?y", Name: xssName, Value: &v, DataType: tracing.DataNumeric,
			Comment: xssName, Source: tracing.SourceAnnotation, Timestamp: t0}}},
	}
}

// modulePages are this file's pages for TestPagesRenderStoredXSSInert,
// every field a user controls holding the payload.
func modulePages(base pageBase) map[string]pageData {
	now := time.Now()
	tabs := gatewayBase{pageBase: base, Tabs: []gatewayTab{{Label: "Keys", Path: "/gateway/keys", Current: true}}}
	key := gateway.Key{ID: "k1", Name: xssName, Prefix: "sk-nodus-ab", UserID: xssName, Models: []string{xssName}, Status: gateway.KeyBlocked}
	ferr := &formError{Message: xssName, Fields: map[string]string{"name": xssName}}
	return map[string]pageData{
		"traces": &tracesPage{pageBase: base, Levels: traceLevels(), Filter: traceFilterForm{Name: xssName, Tags: xssName},
			Traces: []traceRow{{Trace: xssTrace().Trace, URL: traceURL("tr-1/x?y"), Cost: "$1", Latency: "1 s"}}, Next: pageURL(url.Values{"name": {xssName}}, "c"),
			Error: ferr, Filtered: true},
		"trace": viewTrace(base, xssTrace()),
		"gateway_models": &gatewayModelsPage{gatewayBase: tabs, Admin: true, Providers: []string{"openai"}, Error: ferr,
			Form:        deploymentForm{ModelName: xssName, UpstreamModel: xssName, BaseURL: xssName},
			Deployments: []deploymentRow{{Deployment: gateway.Deployment{ID: "d1", ModelName: xssName, UpstreamModel: xssName, BaseURL: xssName, APIKeyHandle: xssName}}}},
		"gateway_keys": &gatewayKeysPage{gatewayBase: tabs, Admin: true, Keys: []keyRow{{Key: key, Blocked: true}}, Form: keyForm{Name: xssName, Models: xssName},
			Periods: budgetPeriods(), Error: ferr, Secret: "sk-nodus-secret", Created: &key},
		"gateway_budgets": &gatewayBudgetsPage{gatewayBase: tabs, Keys: []gateway.Key{key}, Form: budgetForm{SubjectID: xssName, Max: xssName},
			Scopes: []string{"tenant"}, Periods: budgetPeriods(), Error: ferr,
			Budgets: []budgetRow{{Budget: gateway.Budget{ID: "b1", Scope: gateway.BudgetKey, SubjectID: "k1"}, Subject: xssName, Max: "$1", Spent: "$2", Over: true}}},
		"gateway_spend": &gatewaySpendPage{gatewayBase: tabs, Admin: true, Filter: spendForm{Model: xssName, User: xssName}, Keys: []gateway.Key{key},
			CSV: "/api/v1/spend?format=csv", Error: ferr, Rows: []spendRow{{SpendLog: gateway.SpendLog{Model: xssName, UserID: xssName, KeyID: "k1",
				ErrorClass: xssName, StartedAt: now}, KeyName: xssName, Cost: "$0", Failed: true, TraceURL: traceURL(xssName)}}},
		"memories": &memoriesPage{pageBase: base, App: xssName, AppName: xssName, CanEdit: true, Editing: "m1", Form: "</textarea>" + xssName,
			Apps: []memoryApp{{ID: "b1", Name: xssName, Current: true}}, Error: ferr,
			Memories: []memory.Memory{{ID: "m1", Text: xssName, Categories: []string{xssName}, UpdatedAt: now},
				{ID: "m2", Text: "</textarea>" + xssName, UpdatedAt: now}}},
	}
}

func TestTracePageLayout(t *testing.T) {
	s := newTestServer(t)
	p := viewTrace(pageBase{Title: "t", CSRF: "tok"}, xssTrace())
	if len(p.Observations) != 3 {
		t.Fatalf("observations = %+v", p.Observations)
	}
	// Tree order with depths: the span, its generation, the event under it.
	for i, want := range []struct {
		id    string
		depth int
		x, w  float64
		open  bool
	}{{"root", 0, 0, 666.7, false}, {"gen", 1, 333.3, 666.7, false}, {"open", 2, 996, 4, true}} {
		o := p.Observations[i]
		if o.ID != want.id || o.Depth != want.depth || o.Bar.Open != want.open ||
			abs(o.Bar.X-want.x) > 0.1 || abs(o.Bar.W-want.w) > 0.1 {
			t.Errorf("row %d = %s depth %d bar %+v, want %+v", i, o.ID, o.Depth, o.Bar, want)
		}
	}
	gen := p.Observations[1]
	if gen.Usage != "input 10 · output 5 · total 15" || gen.Cost != "$0.000123" || gen.Duration != "1.00 s" {
		t.Errorf("generation = usage %q cost %q duration %q", gen.Usage, gen.Cost, gen.Duration)
	}
	if !strings.Contains(gen.Input.Text, "\n  \"question\"") {
		t.Errorf("input is not pretty-printed: %q", gen.Input.Text)
	}
	if !strings.HasPrefix(gen.Output.Text, xssName+"\n") {
		t.Errorf("a JSON string is not shown as its text: %q", gen.Output.Text)
	}
	if p.URL != "/traces/tr-1%2Fx%3Fy" {
		t.Errorf("trace URL %q: the id is not one escaped segment", p.URL)
	}
	out := render(t, s, "trace", p)
	assertInertPage(t, "trace", out)
	for _, want := range []string{`class="obs d1 level-ERROR"`, `class="obs d2 level-DEFAULT"`, `width="666.7"`, `class="span open"`,
		"&lt;/pre&gt;&lt;script&gt;", `<td>0.5</td>`} {
		if !strings.Contains(out, want) {
			t.Errorf("the trace page lacks %s", want)
		}
	}
	if len(out) > 150<<10 {
		t.Errorf("trace page is %d bytes", len(out))
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// TestTracePageStaysSmall gives a trace far more observations and JSON
// than a page should carry: it is cut, and says so.
func TestTracePageStaysSmall(t *testing.T) {
	s := newTestServer(t)
	tr := xssTrace()
	big, _ := json.Marshal(strings.Repeat("ü", 50_000)) // two bytes a rune: the cut must not split one
	t0 := tr.Trace.Timestamp
	tr.Observations = nil
	for i := range 1000 {
		tr.Observations = append(tr.Observations, tracing.Observation{ID: "o" + strconv.Itoa(i),
			Type: tracing.TypeSpan, Name: "step", StartTime: t0.Add(time.Duration(i) * time.Millisecond), Input: big})
	}
	p := viewTrace(pageBase{Title: "big"}, tr)
	if len(p.Observations) != maxShownObservations || p.Hidden != 1000-maxShownObservations {
		t.Errorf("shown %d, hidden %d", len(p.Observations), p.Hidden)
	}
	if !p.Observations[0].Input.Cut || !strings.HasSuffix(p.Observations[0].Input.Text, "ü") {
		t.Errorf("a big input is not cut at a rune: %q…", p.Observations[0].Input.Text[len(p.Observations[0].Input.Text)-4:])
	}
	out := render(t, s, "trace", p)
	if len(out) > 150<<10 {
		t.Errorf("a huge trace's page is %d bytes, over 150 KB", len(out))
	}
	if !strings.Contains(out, strconv.Itoa(1000-maxShownObservations)+" more steps are not shown") {
		t.Error("the page does not say steps were left out")
	}
}

func TestTraceFilter(t *testing.T) {
	q := url.Values{"from": {"2026-03-01"}, "to": {"2026-03-14"}, "tags": {" a, b ,,"}, "level": {"WARNING"},
		"min_cost": {"$0.5"}, "user": {" u1 "}, "model": {"gpt"}}
	form, f, err := traceFilter(q)
	if err != nil {
		t.Fatal(err)
	}
	if !f.From.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || !f.To.Equal(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("range = %v .. %v: to must include its whole day", f.From, f.To)
	}
	if len(f.Tags) != 2 || f.Tags[1] != "b" || f.Level != "WARNING" || f.MinCost == nil || *f.MinCost != 0.5 || f.MaxCost != nil ||
		f.UserID != "u1" || f.Model != "gpt" || form.User != "u1" {
		t.Errorf("filter = %+v, form = %+v", f, form)
	}
	_, _, err = traceFilter(url.Values{"from": {"yesterday"}, "level": {"LOUD"}, "max_cost": {"-1"}})
	fe := toFormError(err)
	if fe == nil || fe.Fields["from"] == "" || fe.Fields["level"] == "" || fe.Fields["max_cost"] == "" {
		t.Errorf("bad filters: %+v", fe)
	}
	// The next page keeps the filters and replaces the cursor.
	next := pageURL(url.Values{"name": {"a b"}, "cursor": {"old"}, "empty": {""}}, "new")
	if next != "?cursor=new&name=a+b" {
		t.Errorf("pageURL = %q", next)
	}
}

// TestGatewayKeysSecretShownOnce: the created key's answer carries its
// secret in a read-only field; the list page without it has no secret.
func TestGatewayKeysSecretShownOnce(t *testing.T) {
	s := newTestServer(t)
	base := pageBase{Title: "Keys", CSRF: "tok", User: &identity.User{ID: "u1", Role: identity.RoleUser}}
	k := gateway.Key{ID: "k1", Name: "ci", Prefix: "sk-nodus-ab12", UserID: "u1", Status: gateway.KeyActive}
	with := render(t, s, "gateway_keys", &gatewayKeysPage{gatewayBase: gatewayBase{pageBase: base}, Keys: []keyRow{{Key: k}},
		Periods: budgetPeriods(), Secret: "sk-nodus-ab12-the-whole-secret", Created: &k})
	if !regexp.MustCompile(`<input id="secret" class="mono" readonly value="sk-nodus-ab12-the-whole-secret">`).MatchString(with) {
		t.Errorf("the new key's secret is not shown:\n%s", with)
	}
	without := render(t, s, "gateway_keys", &gatewayKeysPage{gatewayBase: gatewayBase{pageBase: base}, Keys: []keyRow{{Key: k}}, Periods: budgetPeriods()})
	if strings.Contains(without, "the-whole-secret") || strings.Contains(without, `id="secret"`) {
		t.Error("the key list shows a secret")
	}
	// A user's page has no owner field or column: only admins choose one.
	if strings.Contains(without, `name="user_id"`) || strings.Contains(without, "<th scope=\"col\">Owner") {
		t.Error("a user's key form offers another owner")
	}
}

func TestFormMicros(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "25": 25_000_000, "$0.50": 500_000, " 1.234567 ": 1_234_567} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(url.Values{"max": {in}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		fields := map[string]string{}
		if got := formMicros(r, "max", fields); got != want || len(fields) != 0 {
			t.Errorf("formMicros(%q) = %d %v, want %d", in, got, fields, want)
		}
	}
	for _, in := range []string{"-1", "ten", "NaN", "1e12"} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(url.Values{"max": {in}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		fields := map[string]string{}
		if formMicros(r, "max", fields); fields["max"] == "" {
			t.Errorf("formMicros(%q) accepted", in)
		}
	}
}

// TestConversationActionsRender: the owner gets rename and archive forms
// (with the CSRF token), and a link from each traced answer to its trace.
func TestConversationActionsRender(t *testing.T) {
	s := newTestServer(t)
	base := pageBase{Title: xssName, CSRF: "tok", User: &identity.User{ID: "u1", Role: identity.RoleUser}}
	bot := chat.Chatbot{ID: "b1", Name: "Bot"}
	conv := chat.Conversation{ID: "c1", ChatbotID: "b1", UserID: "u1", Title: xssName, Archived: true}
	answer := chat.Message{ID: "m2", ConversationID: "c1", Role: chat.RoleAssistant, Content: "Hi",
		Metadata: []byte(`{"trace_id":"0123456789abcdef0123456789abcdef"}`)}
	out := render(t, s, "conversation", &conversationPage{pageBase: base, Bot: &bot, Conversation: &conv, CanManage: true,
		Messages: []messageView{viewMessage(&answer, "tok")}})
	assertInertPage(t, "conversation", out)
	for _, want := range []string{`action="/chat/c/c1/update"`, `name="title" value="&lt;img`, `name="archived" value="false"`,
		`<input type="hidden" name="csrf" value="tok">`, `href="/traces/0123456789abcdef0123456789abcdef"`, "This conversation is archived"} {
		if !strings.Contains(out, want) {
			t.Errorf("the conversation page lacks %s", want)
		}
	}
	list := render(t, s, "conversations", &conversationsPage{pageBase: base, Archived: true,
		Conversations: []conversationRow{{Conversation: conv, BotName: "Bot"}}})
	for _, want := range []string{`name="next" value="/chat?archived=1"`, `name="archived" value="false"`, "Restore"} {
		if !strings.Contains(list, want) {
			t.Errorf("the archived list lacks %s", want)
		}
	}
	// Another's conversation (an admin's review) offers neither.
	review := render(t, s, "conversation", &conversationPage{pageBase: base, Bot: &bot, Conversation: &conv})
	if strings.Contains(review, "/update") {
		t.Error("a reviewed conversation offers rename or archive")
	}
}

func TestUnescapeHTMLSafe(t *testing.T) {
	for in, want := range map[string]string{
		`{"a": "\u003cb\u003e \u0026"}`: `{"a": "<b> &"}`,
		`"\\u003c"`:                     `"\\u003c"`, // an escaped backslash, then text
		`"\u00e9 \n"`:                   `"\u00e9 \n"`,
		`\`:                             `\`,
	} {
		if got := unescapeHTMLSafe(in); got != want {
			t.Errorf("unescapeHTMLSafe(%s) = %s, want %s", in, got, want)
		}
	}
}
