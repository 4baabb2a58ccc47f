package store_test

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

func sessionIDs(ss []tracing.Session) []string {
	out := make([]string, len(ss))
	for i := range ss {
		out[i] = ss[i].ID
	}
	return out
}

// TestTracingSessions: sessions and users are kept by ingestion (first
// and last seen widening, never narrowing), listed newest activity first
// by keyset and by page, counted per page, kept apart per tenant, settled
// when traces are deleted or pruned, and purged with the tenant.
func TestTracingSessions(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a, b := newTenantScope(), newTenantScope()
		t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		publicWorld(t, db, a, b, t0)

		// A trace updated to an earlier time widens its session; one
		// updated later than before widens its end; a repeat changes
		// nothing.
		early, late := t0.Add(-time.Hour), t0.Add(10*time.Minute)
		ingest(t, db, a,
			tracing.Event{ID: "e-early", Timestamp: early, Trace: &tracing.TracePatch{ID: "tr-4", SessionID: strp("s-2"),
				UserID: strp("u-3"), Timestamp: &early}},
			tracing.Event{ID: "e-late", Timestamp: late, Trace: &tracing.TracePatch{ID: "tr-2", Timestamp: &late}},
			tracing.Event{ID: "e-late-again", Timestamp: late, Trace: &tracing.TracePatch{ID: "tr-2", Timestamp: &late}})

		got, next, err := db.ListTraceSessions(a.ctx, "", 1)
		if err != nil || !reflect.DeepEqual(sessionIDs(got), []string{"s-1"}) || next == "" {
			t.Fatalf("first page = %v, %q, %v", sessionIDs(got), next, err)
		}
		s1 := got[0]
		if !s1.FirstSeen.Equal(t0) || !s1.LastSeen.Equal(late) || s1.TraceCount != 2 || math.Abs(s1.TotalCost-0.06) > 1e-12 ||
			!reflect.DeepEqual(s1.UserIDs, []string{"u-1", "u-2"}) || s1.Environment != "prod" {
			t.Errorf("s-1 = %+v", s1)
		}
		got, next, err = db.ListTraceSessions(a.ctx, next, 1)
		if err != nil || !reflect.DeepEqual(sessionIDs(got), []string{"s-2"}) || next != "" {
			t.Fatalf("second page = %v, %q, %v", sessionIDs(got), next, err)
		}
		if s2 := got[0]; !s2.FirstSeen.Equal(early) || !s2.LastSeen.Equal(t0.Add(2*time.Minute)) || s2.TraceCount != 2 ||
			!reflect.DeepEqual(s2.UserIDs, []string{"u-1", "u-3"}) {
			t.Errorf("s-2 = %+v", s2)
		}
		if _, _, err := db.ListTraceSessions(a.ctx, "not a cursor", 1); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("bad cursor: %v", err)
		}

		// Langfuse's page: by first seen, newest first, with its bounds.
		page, total, err := db.PageTraceSessions(a.ctx, time.Time{}, time.Time{}, 1, 10)
		if err != nil || total != 2 || !reflect.DeepEqual(sessionIDs(page), []string{"s-1", "s-2"}) {
			t.Errorf("page = %v of %d, %v", sessionIDs(page), total, err)
		}
		page, total, err = db.PageTraceSessions(a.ctx, early, t0, 1, 10)
		if err != nil || total != 1 || !reflect.DeepEqual(sessionIDs(page), []string{"s-2"}) {
			t.Errorf("bounded page = %v of %d, %v", sessionIDs(page), total, err)
		}

		// B's session with the same id is B's: one trace, its own user.
		bs, err := db.FindTraceSession(b.ctx, "s-1")
		if err != nil || bs.TraceCount != 1 || !reflect.DeepEqual(bs.UserIDs, []string{"u-1"}) {
			t.Errorf("B's s-1 = %+v, %v", bs, err)
		}
		if _, err := db.FindTraceSession(b.ctx, "s-2"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's s-2: %v", err)
		}

		users, next, err := db.ListTraceUsers(a.ctx, "", 10)
		if err != nil || next != "" || len(users) != 3 {
			t.Fatalf("users = %+v, %q, %v", users, next, err)
		}
		byID := map[string]tracing.TraceUser{}
		for _, u := range users {
			byID[u.ID] = u
		}
		if users[0].ID != "u-2" || byID["u-1"].TraceCount != 2 || math.Abs(byID["u-1"].TotalCost-0.06) > 1e-12 ||
			byID["u-3"].TotalCost != 0 || !byID["u-1"].FirstSeen.Equal(t0) ||
			!byID["u-1"].LastSeen.Equal(t0.Add(2*time.Minute)) || byID["u-3"].TraceCount != 1 {
			t.Errorf("users = %+v", users)
		}

		// Deleting a session's last trace removes it; deleting one of two
		// narrows it to the trace left.
		if err := db.DeleteTrace(a.ctx, "tr-4"); err != nil {
			t.Fatal(err)
		}
		if s2, err := db.FindTraceSession(a.ctx, "s-2"); err != nil || s2.TraceCount != 1 || !s2.FirstSeen.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("s-2 after deleting tr-4 = %+v, %v", s2, err)
		}
		if err := db.DeleteTrace(a.ctx, "tr-3"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindTraceSession(a.ctx, "s-2"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("s-2 without traces: %v", err)
		}
		if users, _, _ := db.ListTraceUsers(a.ctx, "", 10); len(users) != 2 {
			t.Errorf("users after deletes = %+v", users)
		}

		// Retention prunes tr-1 (older than a day) but keeps tr-2: s-1
		// stays, narrowed to tr-2; u-1 loses its last trace.
		if err := db.SetTracingRetention(a.ctx, 1, t0); err != nil {
			t.Fatal(err)
		}
		if n, err := db.PruneTraces(nodus.WithAllTenants(context.Background()), t0.Add(24*time.Hour+5*time.Minute),
			t0.Add(-time.Hour)); err != nil || n != 1 {
			t.Fatalf("pruned %d, %v", n, err)
		}
		if s1, err := db.FindTraceSession(a.ctx, "s-1"); err != nil || s1.TraceCount != 1 || !s1.FirstSeen.Equal(late) ||
			!reflect.DeepEqual(s1.UserIDs, []string{"u-2"}) {
			t.Errorf("s-1 after pruning = %+v, %v", s1, err)
		}
		if users, _, _ := db.ListTraceUsers(a.ctx, "", 10); len(users) != 1 || users[0].ID != "u-2" {
			t.Errorf("users after pruning = %+v", users)
		}

		// The purge takes both tables, and only the tenant's rows.
		if err := db.DeleteTracingTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"trace_sessions", "trace_users"} {
			if n := countRows(t, db, table, a.id); n != 0 {
				t.Errorf("%d rows of %s left after the purge", n, table)
			}
			if n := countRows(t, db, table, b.id); n != 1 {
				t.Errorf("B has %d rows of %s, want 1", n, table)
			}
		}
	})
}

// TestTracingSessionsFollowMovedTraces: a trace moved to another session
// and user leaves nothing behind in the old ones: an emptied session or
// user goes, and one that keeps traces is narrowed to them.
func TestTracingSessionsFollowMovedTraces(t *testing.T) {
	storetest.RunMigrated(t, store.SetTracing, func(t *testing.T, db *store.DB) {
		a := newTenantScope()
		t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		trace := func(id, session, user string, at time.Time) tracing.Event {
			return tracing.Event{ID: "e-" + id + at.String() + session, Timestamp: at, Trace: &tracing.TracePatch{ID: id,
				SessionID: strp(session), UserID: strp(user), Timestamp: &at}}
		}
		ingest(t, db, a, trace("tr-1", "s-old", "u-old", t0), trace("tr-2", "s-kept", "u-kept", t0.Add(time.Minute)),
			trace("tr-3", "s-kept", "u-kept", t0.Add(2*time.Minute)))
		// tr-1 moves to s-new and u-new; tr-3, the later of s-kept's two,
		// moves too.
		ingest(t, db, a, trace("tr-1", "s-new", "u-new", t0), trace("tr-3", "s-new", "u-new", t0.Add(2*time.Minute)))

		got, _, err := db.ListTraceSessions(a.ctx, "", 10)
		if err != nil || !reflect.DeepEqual(sessionIDs(got), []string{"s-new", "s-kept"}) {
			t.Fatalf("sessions = %v, %v; want s-new and s-kept, s-old gone", sessionIDs(got), err)
		}
		if kept := got[1]; kept.TraceCount != 1 || !kept.FirstSeen.Equal(t0.Add(time.Minute)) || !kept.LastSeen.Equal(t0.Add(time.Minute)) {
			t.Errorf("s-kept = %+v, want narrowed to tr-2", kept)
		}
		users, _, err := db.ListTraceUsers(a.ctx, "", 10)
		var ids []string
		for _, u := range users {
			ids = append(ids, u.ID)
		}
		if err != nil || !reflect.DeepEqual(ids, []string{"u-new", "u-kept"}) {
			t.Errorf("users = %v, %v; want u-new and u-kept", ids, err)
		}
	})
}
