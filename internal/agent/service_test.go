package agent_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/agent"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// newService is a service over a real SQLite database, in a tenant's
// context; the contract on both databases is internal/store's.
func newService(t *testing.T) (*agent.Service, context.Context) {
	t.Helper()
	db := storetest.OpenSQLite(t)
	m, err := store.NewMigrator(store.SetMain, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	svc, err := agent.NewService(agent.Config{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	return svc, nodus.WithTenant(context.Background(), nodus.NewID())
}

func TestValidation(t *testing.T) {
	svc, ctx := newService(t)
	deep := any("leaf")
	for range agent.MaxJSONDepth + 1 {
		deep = []any{deep}
	}
	creates := []struct {
		name  string
		req   agent.CreateRequest
		field string
	}{
		{"no app", agent.CreateRequest{UserID: "u"}, "app_name"},
		{"no user", agent.CreateRequest{AppName: "a"}, "user_id"},
		{"long app", agent.CreateRequest{AppName: strings.Repeat("a", 129), UserID: "u"}, "app_name"},
		{"control in user", agent.CreateRequest{AppName: "a", UserID: "u\n1"}, "user_id"},
		{"bad UTF-8 session", agent.CreateRequest{AppName: "a", UserID: "u", SessionID: "\xff"}, "session_id"},
		{"state too large", agent.CreateRequest{AppName: "a", UserID: "u",
			State: map[string]any{"big": strings.Repeat("x", agent.MaxStateBytes)}}, "state"},
		{"state too deep", agent.CreateRequest{AppName: "a", UserID: "u", State: map[string]any{"d": deep}}, "state"},
		{"empty state key", agent.CreateRequest{AppName: "a", UserID: "u", State: map[string]any{"": 1}}, "state"},
		{"display name", agent.CreateRequest{AppName: "a", UserID: "u", DisplayName: "a\x00b"}, "display_name"},
	}
	for _, tt := range creates {
		_, err := svc.Create(ctx, tt.req)
		if nodus.ErrorCode(err) != nodus.EINVALID || nodus.ErrorFields(err)[tt.field] == "" {
			t.Errorf("%s: %v, want invalid %s", tt.name, err, tt.field)
		}
	}
	if _, err := svc.Create(context.Background(), agent.CreateRequest{AppName: "a", UserID: "u"}); err == nil {
		t.Error("create without a tenant succeeded")
	}

	s, err := svc.Create(ctx, agent.CreateRequest{AppName: "a", UserID: "u", SessionID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	events := []struct {
		name  string
		e     agent.Event
		field string
	}{
		{"no author", agent.Event{}, "author"},
		{"bad id", agent.Event{ID: strings.Repeat("i", 200), Author: "a"}, "id"},
		{"content not an object", agent.Event{Author: "a", Content: json.RawMessage(`"hi"`)}, "content"},
		{"negative artifact version", agent.Event{Author: "a", Actions: agent.EventActions{ArtifactDelta: map[string]int64{"f": -1}}},
			"actions.artifact_delta"},
		{"delta too large", agent.Event{Author: "a", Actions: agent.EventActions{
			StateDelta: map[string]any{"big": strings.Repeat("x", agent.MaxStateBytes)}}}, "actions.state_delta"},
		{"event too large", agent.Event{Author: "a",
			Content: json.RawMessage(`{"parts":[{"text":"` + strings.Repeat("x", agent.MaxEventBytes) + `"}]}`)}, "event"},
	}
	for _, tt := range events {
		_, _, err := svc.Append(ctx, agent.AppendRequest{Key: s.Key(), Event: tt.e})
		if nodus.ErrorCode(err) != nodus.EINVALID || nodus.ErrorFields(err)[tt.field] == "" {
			t.Errorf("%s: %v, want invalid %s", tt.name, err, tt.field)
		}
	}
	// A key that is no valid name is simply not found.
	if _, err := svc.Get(ctx, agent.GetRequest{AppName: "a", UserID: "u", SessionID: "bad\x01"}); nodus.ErrorCode(err) != nodus.ENOTFOUND {
		t.Errorf("get of an invalid id: %v", err)
	}
	if _, err := svc.Get(ctx, agent.GetRequest{AppName: "a", UserID: "u", SessionID: "s", NumRecentEvents: -1}); nodus.ErrorCode(err) != nodus.EINVALID {
		t.Errorf("negative num_recent_events: %v", err)
	}
}

func TestTempKeysAndPartialEvents(t *testing.T) {
	svc, ctx := newService(t)
	s, err := svc.Create(ctx, agent.CreateRequest{AppName: "a", UserID: "u", SessionID: "s",
		State: map[string]any{"temp:boot": true, "kept": "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.State["temp:boot"]; ok || s.State["kept"] != "yes" {
		t.Fatalf("created state: %+v", s.State)
	}

	// temp: keys are stripped from the stored event and the state, but the
	// session held in memory keeps its own for the invocation.
	s.State["temp:inv"] = "scratch"
	e := agent.Event{Author: "agent", Actions: agent.EventActions{StateDelta: map[string]any{"temp:x": 1, "answer": 42.0}}}
	if err := svc.AppendEvent(ctx, s, &e); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Actions.StateDelta["temp:x"]; ok || e.Actions.StateDelta["answer"] != 42.0 {
		t.Errorf("event as stored: %+v", e.Actions.StateDelta)
	}
	if s.State["temp:inv"] != "scratch" || s.State["temp:x"] != nil || s.State["answer"] != 42.0 || s.EventSequence != 1 {
		t.Errorf("session in memory: %+v", s)
	}
	got, err := svc.Get(ctx, agent.GetRequest{AppName: "a", UserID: "u", SessionID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.State["temp:inv"]; ok || len(got.Events) != 1 {
		t.Errorf("stored session: %+v", got)
	}
	if _, ok := got.Events[0].Actions.StateDelta["temp:x"]; ok {
		t.Errorf("stored event keeps a temp: key: %+v", got.Events[0].Actions.StateDelta)
	}
	// Only temp: keys: no delta is stored at all.
	_, _, err = svc.Append(ctx, agent.AppendRequest{Key: s.Key(), Event: agent.Event{Author: "agent",
		Actions: agent.EventActions{StateDelta: map[string]any{"temp:only": 1}}}})
	if err != nil {
		t.Fatal(err)
	}

	// A partial event is neither stored nor applied.
	before := s.EventSequence + 1
	p := agent.Event{Author: "agent", Partial: true, Actions: agent.EventActions{StateDelta: map[string]any{"streamed": true}}}
	ev, after, err := svc.Append(ctx, agent.AppendRequest{Key: s.Key(), Event: p})
	if err != nil || after != nil || ev == nil || !ev.Partial {
		t.Fatalf("partial append: %+v %+v %v", ev, after, err)
	}
	got, err = svc.Get(ctx, agent.GetRequest{AppName: "a", UserID: "u", SessionID: "s"})
	if err != nil || got.EventSequence != before || got.State["streamed"] != nil || len(got.Events) != int(before) {
		t.Errorf("after a partial event: %+v %v", got, err)
	}
	if got.Events[1].Actions.StateDelta != nil {
		t.Errorf("a delta of temp: keys only was stored: %+v", got.Events[1].Actions)
	}
}

func TestSplitAndMergeState(t *testing.T) {
	sc := agent.SplitState(map[string]any{"a": 1, "app:b": 2, "user:c": 3, "temp:d": 4})
	if len(sc.Session) != 1 || sc.Session["a"] != 1 || sc.App["b"] != 2 || sc.User["c"] != 3 {
		t.Fatalf("split: %+v", sc)
	}
	m := agent.MergeState(sc.App, sc.User, sc.Session)
	if len(m) != 3 || m["app:b"] != 2 || m["user:c"] != 3 || m["a"] != 1 {
		t.Errorf("merge: %+v", m)
	}
}
