package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/agent"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// runAgent runs fn on both databases with the main set applied, with a
// service over the store and two tenants' contexts.
func runAgent(t *testing.T, fn func(t *testing.T, db *store.DB, svc *agent.Service, a, b tenantScope)) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		svc, err := agent.NewService(agent.Config{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, db, svc, a, b)
	})
}

func mustCreateSession(t *testing.T, svc *agent.Service, ctx context.Context, req agent.CreateRequest) *agent.Session {
	t.Helper()
	s, err := svc.Create(ctx, req)
	if err != nil {
		t.Fatalf("create session %+v: %v", req, err)
	}
	return s
}

func mustAppend(t *testing.T, svc *agent.Service, ctx context.Context, k agent.Key, e agent.Event) (*agent.Event, *agent.Session) {
	t.Helper()
	ev, s, err := svc.Append(ctx, agent.AppendRequest{Key: k, Event: e})
	if err != nil {
		t.Fatalf("append %+v: %v", e, err)
	}
	return ev, s
}

func TestAgentSessions(t *testing.T) {
	runAgent(t, func(t *testing.T, db *store.DB, svc *agent.Service, a, b tenantScope) {
		s := mustCreateSession(t, svc, a.ctx, agent.CreateRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1",
			DisplayName: "First", State: map[string]any{"topic": "refunds", "app:tone": "formal", "user:lang": "ca", "temp:x": 1}})
		want := map[string]any{"topic": "refunds", "app:tone": "formal", "user:lang": "ca"}
		if fmt.Sprint(s.State) != fmt.Sprint(want) || s.ID != "s1" || s.DisplayName != "First" || s.EventSequence != 0 ||
			s.LastUpdateTime.IsZero() || len(s.Events) != 0 {
			t.Fatalf("created: %+v", s)
		}
		if _, err := svc.Create(a.ctx, agent.CreateRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1"}); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("second create: %v, want conflict", err)
		}
		// A generated id; the user's and app's state show in every session.
		s2 := mustCreateSession(t, svc, a.ctx, agent.CreateRequest{AppName: "helpdesk", UserID: "u1"})
		if !nodus.ValidID(s2.ID) || s2.State["user:lang"] != "ca" || s2.State["app:tone"] != "formal" || s2.State["topic"] != nil {
			t.Errorf("second session: %+v", s2)
		}
		other := mustCreateSession(t, svc, a.ctx, agent.CreateRequest{AppName: "helpdesk", UserID: "u2", SessionID: "s1"})
		if other.State["user:lang"] != nil || other.State["app:tone"] != "formal" {
			t.Errorf("another user's session: %+v", other.State)
		}

		// Appends: each scope goes to its table, temp: keys nowhere.
		k := s.Key()
		ev, after := mustAppend(t, svc, a.ctx, k, agent.Event{InvocationID: "inv1", Author: "user",
			Timestamp: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
			Content:   []byte(`{"role":"user","parts":[{"text":"hola"}]}`),
			Actions: agent.EventActions{StateDelta: map[string]any{"step": 1.0, "user:lang": "es", "app:tone": "warm", "temp:scratch": "x"},
				ArtifactDelta: map[string]int64{"report.pdf": 2}}})
		if ev.ID == "" || ev.Actions.StateDelta["temp:scratch"] != nil || after.EventSequence != 1 ||
			after.State["step"] != 1.0 || after.State["user:lang"] != "es" || after.State["app:tone"] != "warm" || after.State["temp:scratch"] != nil {
			t.Fatalf("append: %+v, session %+v", ev, after)
		}
		got, err := svc.Get(a.ctx, agent.GetRequest{AppName: "helpdesk", UserID: "u2", SessionID: "s1"})
		if err != nil || got.State["app:tone"] != "warm" || got.State["user:lang"] != nil {
			t.Errorf("u2 after u1's append: %+v %v", got, err)
		}
		for i := 2; i <= 5; i++ {
			mustAppend(t, svc, a.ctx, k, agent.Event{Author: "agent", InvocationID: fmt.Sprintf("inv%d", i),
				Timestamp: time.Date(2026, 1, i, 0, 0, 0, 0, time.UTC)})
		}
		full, err := svc.Get(a.ctx, agent.GetRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1"})
		if err != nil || len(full.Events) != 5 || full.EventSequence != 5 || full.Events[0].ID != ev.ID ||
			string(full.Events[0].Content) != `{"role":"user","parts":[{"text":"hola"}]}` ||
			full.Events[0].Actions.ArtifactDelta["report.pdf"] != 2 || full.Events[4].InvocationID != "inv5" {
			t.Fatalf("get: %+v %v", full, err)
		}
		recent, err := svc.Get(a.ctx, agent.GetRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1", NumRecentEvents: 2})
		if err != nil || len(recent.Events) != 2 || recent.Events[0].InvocationID != "inv4" || recent.Events[1].InvocationID != "inv5" {
			t.Errorf("2 recent: %+v %v", recent.Events, err)
		}
		since, err := svc.Get(a.ctx, agent.GetRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1",
			After: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)})
		if err != nil || len(since.Events) != 3 || since.Events[0].InvocationID != "inv3" {
			t.Errorf("after Jan 3: %+v %v", since.Events, err)
		}

		// List: the user's sessions of the app, without events, paged.
		list, next, err := svc.List(a.ctx, agent.ListRequest{AppName: "helpdesk", UserID: "u1", Limit: 1})
		if err != nil || len(list) != 1 || next == "" || list[0].Events != nil {
			t.Fatalf("list page 1: %+v %q %v", list, next, err)
		}
		rest, next2, err := svc.List(a.ctx, agent.ListRequest{AppName: "helpdesk", UserID: "u1", Cursor: next})
		if err != nil || len(rest) != 1 || next2 != "" || rest[0].ID == list[0].ID {
			t.Fatalf("list page 2: %+v %q %v", rest, next2, err)
		}

		// Tenant isolation: B sees none of it and cannot touch it.
		if _, err := svc.Get(b.ctx, agent.GetRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1"}); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B reads A's session: %v", err)
		}
		if l, _, err := svc.List(b.ctx, agent.ListRequest{AppName: "helpdesk", UserID: "u1"}); err != nil || len(l) != 0 {
			t.Errorf("B lists A's sessions: %+v %v", l, err)
		}
		if _, _, err := svc.Append(b.ctx, agent.AppendRequest{Key: k, Event: agent.Event{Author: "x"}}); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B appends to A's session: %v", err)
		}
		if err := svc.Delete(b.ctx, k); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B deletes A's session: %v", err)
		}
		// B's session of the same key is its own, and sees none of A's shared state.
		bs := mustCreateSession(t, svc, b.ctx, agent.CreateRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1"})
		if len(bs.State) != 0 {
			t.Errorf("B's session shows A's state: %+v", bs.State)
		}
		// No scope, or every tenant, fails closed.
		if _, err := db.FindAgentSession(context.Background(), k, agent.EventFilter{}); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("no scope: %v", err)
		}
		if _, _, err := db.ListAgentSessions(nodus.WithAllTenants(context.Background()), "helpdesk", "u1", "", 0); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("all tenants: %v", err)
		}

		// Delete takes the events; the shared state stays.
		if err := svc.Delete(a.ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Get(a.ctx, agent.GetRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1"}); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("deleted session: %v", err)
		}
		if err := svc.Delete(a.ctx, k); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("second delete: %v", err)
		}
		if n := countRows(t, db, "agent_events", a.id); n != 0 {
			t.Errorf("%d events left after delete", n)
		}
		// Re-creating the id starts afresh.
		again := mustCreateSession(t, svc, a.ctx, agent.CreateRequest{AppName: "helpdesk", UserID: "u1", SessionID: "s1"})
		if again.EventSequence != 0 || again.State["step"] != nil || again.State["user:lang"] != "es" {
			t.Errorf("re-created: %+v", again)
		}

		// Purge: every row of A goes, B's stay.
		if err := svc.PurgeTenant(context.Background(), a.id); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"agent_sessions", "agent_events", "agent_app_states", "agent_user_states"} {
			if n := countRows(t, db, table, a.id); n != 0 {
				t.Errorf("%s: %d rows of A after purge", table, n)
			}
		}
		if n := countRows(t, db, "agent_sessions", b.id); n != 1 {
			t.Errorf("B's sessions after A's purge: %d", n)
		}
		if err := svc.PurgeTenant(context.Background(), a.id); err != nil {
			t.Errorf("second purge: %v", err)
		}
	})
}

func TestAgentAppendConcurrency(t *testing.T) {
	runAgent(t, func(t *testing.T, db *store.DB, svc *agent.Service, a, _ tenantScope) {
		s := mustCreateSession(t, svc, a.ctx, agent.CreateRequest{AppName: "app", UserID: "u", SessionID: "s"})
		k := s.Key()

		// Two appends from the same read: the second is stale.
		seen := s.EventSequence
		if _, _, err := svc.Append(a.ctx, agent.AppendRequest{Key: k, ExpectedSequence: &seen,
			Event: agent.Event{Author: "a", Actions: agent.EventActions{StateDelta: map[string]any{"x": "first"}}}}); err != nil {
			t.Fatal(err)
		}
		_, _, err := svc.Append(a.ctx, agent.AppendRequest{Key: k, ExpectedSequence: &seen,
			Event: agent.Event{Author: "b", Actions: agent.EventActions{StateDelta: map[string]any{"x": "second"}}}})
		if nodus.ErrorCode(err) != nodus.ECONFLICT || !errors.Is(err, agent.ErrStale) {
			t.Fatalf("stale append: %v", err)
		}
		got, err := svc.Get(a.ctx, agent.GetRequest{AppName: "app", UserID: "u", SessionID: "s"})
		if err != nil || got.State["x"] != "first" || len(got.Events) != 1 {
			t.Fatalf("after the stale append: %+v %v", got, err)
		}
		// ADK's form updates the session it was given.
		e := agent.Event{Author: "c", Actions: agent.EventActions{StateDelta: map[string]any{"y": true}}}
		if err := svc.AppendEvent(a.ctx, got, &e); err != nil || got.EventSequence != 2 || len(got.Events) != 2 ||
			got.State["y"] != true || e.ID == "" {
			t.Fatalf("AppendEvent: %v %+v", err, got)
		}
		if _, _, err := svc.Append(a.ctx, agent.AppendRequest{Key: k, Event: e}); nodus.ErrorCode(err) != nodus.ECONFLICT ||
			errors.Is(err, agent.ErrStale) {
			t.Errorf("the same event id again: %v", err)
		}

		// Racing conditional appends from one read: exactly one wins.
		at := got.EventSequence
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, stale := 0, 0
		for i := range 8 {
			wg.Go(func() {
				_, _, err := svc.Append(a.ctx, agent.AppendRequest{Key: k, ExpectedSequence: &at,
					Event: agent.Event{Author: fmt.Sprintf("racer%d", i)}})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, agent.ErrStale):
					stale++
				default:
					t.Errorf("racer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || stale != 7 {
			t.Errorf("conditional race: %d won, %d stale", wins, stale)
		}

		// Unconditional appends from goroutines: none is lost, each key
		// of every delta is kept, and the sequence has no gaps.
		const n = 20
		for i := range n {
			wg.Go(func() {
				_, _, err := svc.Append(a.ctx, agent.AppendRequest{Key: k, Event: agent.Event{Author: "w",
					Actions: agent.EventActions{StateDelta: map[string]any{fmt.Sprintf("k%d", i): i, fmt.Sprintf("user:k%d", i): i}}}})
				if err != nil {
					t.Errorf("append %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		final, err := svc.Get(a.ctx, agent.GetRequest{AppName: "app", UserID: "u", SessionID: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if want := 3 + n; len(final.Events) != want || final.EventSequence != int64(want) {
			t.Errorf("%d events, sequence %d, want %d", len(final.Events), final.EventSequence, want)
		}
		for i := range n {
			if final.State[fmt.Sprintf("k%d", i)] == nil || final.State[fmt.Sprintf("user:k%d", i)] == nil {
				t.Errorf("key %d lost: %+v", i, final.State)
			}
		}
	})
}
