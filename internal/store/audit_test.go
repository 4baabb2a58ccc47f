package store_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

var allTenants = nodus.WithAllTenants(ctx)

// auditClock starts at a fixed time and advances by a millisecond and some
// nanoseconds per call; the store keeps microseconds.
type auditClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *auditClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond + 789)
	return c.t
}

func newAuditService(t *testing.T, db *store.DB) *audit.Service {
	t.Helper()
	m, err := store.NewMigrator(store.SetMain, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	return audit.NewService(db, &auditClock{t: time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)})
}

func mustRecord(t *testing.T, svc *audit.Service, entries ...audit.Entry) {
	t.Helper()
	for _, e := range entries {
		if err := svc.Record(ctx, e); err != nil {
			t.Fatalf("record %s: %v", e.Action, err)
		}
	}
}

func mustList(t *testing.T, svc *audit.Service, c context.Context, f audit.Filter) ([]audit.Entry, string) {
	t.Helper()
	got, next, err := svc.List(c, f)
	if err != nil {
		t.Fatalf("list %+v: %v", f, err)
	}
	return got, next
}

func seqs(entries []audit.Entry) []int64 {
	out := make([]int64, len(entries))
	for i, e := range entries {
		out[i] = e.Seq
	}
	return out
}

func walkSeqs(t *testing.T, db *store.DB) []int64 {
	t.Helper()
	var out []int64
	if err := db.WalkAudit(ctx, func(e audit.Entry) error {
		out = append(out, e.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func oneToN(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// dropAuditTriggers lifts the append-only guard, as an attacker with
// administrative access to the database could.
func dropAuditTriggers(t *testing.T, db *store.DB) {
	t.Helper()
	on := ""
	if db.Dialect() == store.Postgres {
		on = " ON audit_log"
	}
	mustExec(t, db, "DROP TRIGGER audit_log_no_update"+on)
	mustExec(t, db, "DROP TRIGGER audit_log_no_delete"+on)
}

func TestAuditRecordAndVerify(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := newAuditService(t, db)
		if n, err := svc.Verify(ctx); n != 0 || err != nil {
			t.Fatalf("empty log: %d, %v", n, err)
		}
		mustRecord(t, svc,
			audit.Entry{Action: "auth.login_failed", Address: "203.0.113.9", UserAgent: "curl/8.5"},
			audit.Entry{Action: "user.create", TenantID: "tenant-a", ActorID: "u1", ActorKind: audit.ActorUser,
				TargetType: "user", TargetID: "u2", Address: "2001:db8::1", UserAgent: "Mozilla/5.0",
				Changes: map[string]audit.Change{"email": {After: "b@example.com"}, "role": {After: "viewer"}}},
			audit.Entry{Action: "token.create", TenantID: "tenant-b", ActorID: "u3", ActorKind: audit.ActorToken,
				TargetType: "token", TargetID: "tok1"},
		)
		if n, err := svc.Verify(ctx); n != 3 || err != nil {
			t.Fatalf("Verify = %d, %v; want 3, nil", n, err)
		}

		got, next := mustList(t, svc, allTenants, audit.Filter{})
		if !slices.Equal(seqs(got), []int64{3, 2, 1}) || next != "" {
			t.Fatalf("list = %v next %q, want [3 2 1] and no next page", seqs(got), next)
		}
		start := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
		for _, e := range got {
			want := start.Add(time.Duration(e.Seq) * (time.Millisecond + 789)).Truncate(time.Microsecond)
			if !e.Time.Equal(want) || e.Time.Location() != time.UTC {
				t.Errorf("seq %d: time %v, want %v in UTC", e.Seq, e.Time, want)
			}
			if e.Hash != e.ComputeHash() || !nodus.ValidID(e.ID) {
				t.Errorf("seq %d: hash %s id %s", e.Seq, e.Hash, e.ID)
			}
		}
		if got[2].PrevHash != audit.GenesisHash || got[1].PrevHash != got[2].Hash || got[0].PrevHash != got[1].Hash {
			t.Error("entries are not chained")
		}
		u := got[1]
		want := audit.Entry{ID: u.ID, Seq: 2, Time: u.Time, TenantID: "tenant-a", ActorID: "u1", ActorKind: "user",
			Action: "user.create", TargetType: "user", TargetID: "u2", Address: "2001:db8::1", UserAgent: "Mozilla/5.0",
			Changes:  map[string]audit.Change{"email": {After: "b@example.com"}, "role": {After: "viewer"}},
			PrevHash: got[2].Hash, Hash: u.Hash}
		if !reflect.DeepEqual(u, want) {
			t.Errorf("stored entry\n got %+v\nwant %+v", u, want)
		}
		if got[2].TenantID != "" || got[2].ActorKind != audit.ActorAnonymous || got[2].Changes != nil {
			t.Errorf("platform entry read back as %+v", got[2])
		}
	})
}

func TestAuditConcurrentRecord(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := newAuditService(t, db)
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- svc.Record(ctx, audit.Entry{Action: "auth.login", TenantID: "t1", ActorID: fmt.Sprintf("u%d", i)})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n, err := svc.Verify(ctx); n != 50 || err != nil {
			t.Fatalf("Verify = %d, %v; want 50, nil", n, err)
		}
		if got := walkSeqs(t, db); !slices.Equal(got, oneToN(n)) {
			t.Fatalf("seqs = %v, want 1..%d", got, n)
		}
	})
}

// TestAuditWalkBatches checks that WalkAudit joins its batches up: more
// rows than one batch, every one seen once, in order.
func TestAuditWalkBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("appends over a thousand entries")
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := newAuditService(t, db)
		const n = 2003
		work := make(chan int)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range work {
					errs <- svc.Record(ctx, audit.Entry{Action: "secret.read", TenantID: "t1", ActorKind: audit.ActorSystem})
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := walkSeqs(t, db); !slices.Equal(got, oneToN(n)) {
			t.Fatalf("walk saw %d entries, want 1..%d in order", len(got), n)
		}
		if n2, err := svc.Verify(ctx); n2 != n || err != nil {
			t.Fatalf("Verify = %d, %v", n2, err)
		}
	})
}

func TestAuditAppendOnly(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := newAuditService(t, db)
		mustRecord(t, svc, audit.Entry{Action: "user.create", TenantID: "t1", ActorID: "u1"},
			audit.Entry{Action: "user.delete", TenantID: "t1", ActorID: "u1"})
		refused := []string{
			"UPDATE audit_log SET action = 'user.read' WHERE seq = 1",
			"UPDATE audit_log SET hash = hash",
			"DELETE FROM audit_log WHERE seq = 2",
			"DELETE FROM audit_log",
		}
		if db.Dialect() == store.Postgres {
			refused = append(refused, "TRUNCATE audit_log")
		}
		for _, q := range refused {
			err := db.Write(platformCtx, func(tx *store.Tx) error {
				_, err := tx.Exec(platformCtx, q)
				return err
			})
			if err == nil {
				t.Errorf("%s: succeeded on an append-only table", q)
			}
		}
		if n, err := svc.Verify(ctx); n != 2 || err != nil {
			t.Fatalf("Verify after refused edits = %d, %v; want 2, nil", n, err)
		}
	})
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	later := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		tamper  func(t *testing.T, db *store.DB)
		seq     int64
		problem string
	}{
		{"edited action", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "UPDATE audit_log SET action = 'user.read' WHERE seq = 3")
		}, 3, audit.ProblemHash},
		{"edited time", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "UPDATE audit_log SET created_at = ? WHERE seq = 4", later)
		}, 4, audit.ProblemHash},
		{"platform entry moved to a tenant", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "UPDATE audit_log SET tenant_id = 'evil' WHERE seq = 5")
		}, 5, audit.ProblemHash},
		{"edited changes", func(t *testing.T, db *store.DB) {
			mustExec(t, db, `UPDATE audit_log SET changes = '{"n":{"after":42}}' WHERE seq = 2`)
		}, 2, audit.ProblemHash},
		{"changes not canonical", func(t *testing.T, db *store.DB) {
			mustExec(t, db, `UPDATE audit_log SET changes = '{"n": {"after": 1}}' WHERE seq = 2`)
		}, 2, audit.ProblemUnreadable},
		{"deleted middle row", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "DELETE FROM audit_log WHERE seq = 3")
		}, 3, audit.ProblemMissing},
		{"deleted first row", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "DELETE FROM audit_log WHERE seq = 1")
		}, 1, audit.ProblemMissing},
		{"reordered rows", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "UPDATE audit_log SET seq = 1000 WHERE seq = 2")
			mustExec(t, db, "UPDATE audit_log SET seq = 2 WHERE seq = 4")
			mustExec(t, db, "UPDATE audit_log SET seq = 4 WHERE seq = 1000")
		}, 2, audit.ProblemHash},
		{"edited and rehashed", func(t *testing.T, db *store.DB) {
			// An attacker who knows the encoding recomputes the row's hash;
			// the next row's link still points at the original.
			var e audit.Entry
			err := db.WalkAudit(ctx, func(x audit.Entry) error {
				if x.Seq == 3 {
					e = x
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			e.Action = "user.read"
			mustExec(t, db, "UPDATE audit_log SET action = ?, hash = ? WHERE seq = 3", e.Action, e.ComputeHash())
		}, 4, audit.ProblemLink},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, db *store.DB) {
				svc := newAuditService(t, db)
				for i := range 6 {
					tenant := "t1"
					if i == 4 {
						tenant = ""
					}
					mustRecord(t, svc, audit.Entry{Action: "user.update", TenantID: tenant, ActorID: "u1",
						TargetType: "user", TargetID: "u2", Changes: map[string]audit.Change{"n": {After: i}}})
				}
				if n, err := svc.Verify(ctx); n != 6 || err != nil {
					t.Fatalf("before tampering: %d, %v", n, err)
				}
				dropAuditTriggers(t, db)
				tt.tamper(t, db)

				n, err := svc.Verify(ctx)
				var ce *audit.ChainError
				if !errors.As(err, &ce) {
					t.Fatalf("Verify = %d, %v; want a *ChainError", n, err)
				}
				if ce.Seq != tt.seq || ce.Problem != tt.problem {
					t.Errorf("break at seq %d (%s), want seq %d (%s): %v", ce.Seq, ce.Problem, tt.seq, tt.problem, err)
				}
				if n != tt.seq-1 {
					t.Errorf("checked %d entries before the break, want %d", n, tt.seq-1)
				}
			})
		})
	}
}

func TestAuditListTenantScope(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := newAuditService(t, db)
		mustRecord(t, svc,
			audit.Entry{Action: "user.create", TenantID: "tenant-a", ActorID: "ua"},
			audit.Entry{Action: "user.create", TenantID: "tenant-b", ActorID: "ub"},
			audit.Entry{Action: "auth.login_failed"},
			audit.Entry{Action: "user.update", TenantID: "tenant-a", ActorID: "ua"},
		)
		tests := []struct {
			name string
			ctx  context.Context
			f    audit.Filter
			want []int64
		}{
			{"tenant a", nodus.WithTenant(ctx, "tenant-a"), audit.Filter{}, []int64{4, 1}},
			{"tenant b", nodus.WithTenant(ctx, "tenant-b"), audit.Filter{}, []int64{2}},
			{"tenant without entries", nodus.WithTenant(ctx, "tenant-c"), audit.Filter{}, nil},
			{"tenant a asking for b", nodus.WithTenant(ctx, "tenant-a"), audit.Filter{TenantID: "tenant-b"}, nil},
			{"all tenants", allTenants, audit.Filter{}, []int64{4, 3, 2, 1}},
			{"all tenants, filtered to b", allTenants, audit.Filter{TenantID: "tenant-b"}, []int64{2}},
		}
		for _, tt := range tests {
			got, _ := mustList(t, svc, tt.ctx, tt.f)
			if !slices.Equal(seqs(got), tt.want) {
				t.Errorf("%s: %v, want %v", tt.name, seqs(got), tt.want)
			}
		}
		if _, _, err := svc.List(ctx, audit.Filter{}); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("list without a scope: %v, want ErrNoScope", err)
		}
		if _, _, err := db.ListAudit(ctx, audit.Filter{}); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("store list without a scope: %v, want ErrNoScope", err)
		}
	})
}

func TestAuditListFilters(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := newAuditService(t, db)
		mustRecord(t, svc,
			audit.Entry{Action: "auth.login", TenantID: "t1", ActorID: "u1", TargetType: "user", TargetID: "u1"},
			audit.Entry{Action: "user.update", TenantID: "t1", ActorID: "u2", TargetType: "user", TargetID: "u3"},
			audit.Entry{Action: "user.update", TenantID: "t2", ActorID: "u4", TargetType: "user", TargetID: "u5"},
			audit.Entry{Action: "auth.login_failed"},
			audit.Entry{Action: "user.update", TenantID: "t1", ActorID: "u1", TargetType: "user", TargetID: "u3"},
			audit.Entry{Action: "menu.update", TenantID: "t1", ActorID: "u1", TargetType: "menu", TargetID: "u3"},
		)
		all, _ := mustList(t, svc, allTenants, audit.Filter{})
		at := map[int64]time.Time{}
		for _, e := range all {
			at[e.Seq] = e.Time
		}
		t1 := nodus.WithTenant(ctx, "t1")
		tests := []struct {
			name string
			ctx  context.Context
			f    audit.Filter
			want []int64
		}{
			{"action", allTenants, audit.Filter{Action: "user.update"}, []int64{5, 3, 2}},
			{"actor", allTenants, audit.Filter{ActorID: "u1"}, []int64{6, 5, 1}},
			{"target type", allTenants, audit.Filter{TargetType: "user"}, []int64{5, 3, 2, 1}},
			{"target", allTenants, audit.Filter{TargetType: "user", TargetID: "u3"}, []int64{5, 2}},
			{"target id alone", allTenants, audit.Filter{TargetID: "u3"}, []int64{6, 5, 2}},
			{"tenant", allTenants, audit.Filter{TenantID: "t1"}, []int64{6, 5, 2, 1}},
			{"since (inclusive)", allTenants, audit.Filter{Since: at[4]}, []int64{6, 5, 4}},
			{"until (exclusive)", allTenants, audit.Filter{Until: at[3]}, []int64{2, 1}},
			{"since and until", allTenants, audit.Filter{Since: at[2], Until: at[5]}, []int64{4, 3, 2}},
			{"since in another zone", allTenants, audit.Filter{Since: at[5].In(time.FixedZone("X", -7*3600))}, []int64{6, 5}},
			{"combined", allTenants, audit.Filter{Action: "user.update", ActorID: "u1"}, []int64{5}},
			{"under a tenant scope", t1, audit.Filter{Action: "user.update"}, []int64{5, 2}},
			{"nothing", allTenants, audit.Filter{Action: "tenant.delete"}, nil},
		}
		for _, tt := range tests {
			got, next := mustList(t, svc, tt.ctx, tt.f)
			if !slices.Equal(seqs(got), tt.want) || next != "" {
				t.Errorf("%s: %v next %q, want %v", tt.name, seqs(got), next, tt.want)
			}
		}
	})
}

func TestAuditListPagination(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := newAuditService(t, db)
		for i := range 23 {
			action := "user.update"
			if i%3 == 0 {
				action = "auth.login"
			}
			mustRecord(t, svc, audit.Entry{Action: action, TenantID: "t1", ActorID: "u1"})
		}
		// pages lists every page of f, recording more entries after the
		// first page: they are newer, so they must not shift later pages.
		pages := func(c context.Context, f audit.Filter, appendAfterFirst int) (got []int64, n int) {
			for {
				page, next := mustList(t, svc, c, f)
				if len(page) > f.Limit {
					t.Fatalf("page of %d entries for limit %d", len(page), f.Limit)
				}
				got = append(got, seqs(page)...)
				n++
				if n == 1 {
					for range appendAfterFirst {
						mustRecord(t, svc, audit.Entry{Action: "auth.login", TenantID: "t1", ActorID: "u1"})
					}
				}
				if next == "" {
					return got, n
				}
				f.Cursor = next
			}
		}

		got, n := pages(allTenants, audit.Filter{Limit: 5}, 2)
		want := oneToN(23)
		slices.Reverse(want)
		if !slices.Equal(got, want) || n != 5 {
			t.Fatalf("pages of 5 = %v in %d pages, want 23..1 in 5", got, n)
		}

		// auth.login: seqs 1, 4, …, 22 and the 2 appended (24, 25): 10 entries,
		// so with limit 5 the second page is full and also the last.
		got, n = pages(nodus.WithTenant(ctx, "t1"), audit.Filter{Action: "auth.login", Limit: 5}, 0)
		if !slices.Equal(got, []int64{25, 24, 22, 19, 16, 13, 10, 7, 4, 1}) || n != 2 {
			t.Fatalf("filtered pages = %v in %d pages", got, n)
		}

		b64 := base64.RawURLEncoding.EncodeToString
		for _, c := range []string{"nonsense!", b64([]byte("a1:0")), b64([]byte("a1:-3")), b64([]byte("x:1")), b64([]byte("a1:1x"))} {
			if _, _, err := svc.List(allTenants, audit.Filter{Cursor: c}); nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("cursor %q: %v, want EINVALID", c, err)
			}
		}
	})
}

func TestAuditChangesRoundTrip(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := newAuditService(t, db)
		type limits struct {
			MaxUsers int     `json:"max_users"`
			Ratio    float64 `json:"ratio"`
		}
		changes := map[string]audit.Change{
			"name":     {Before: "Zoë", After: "名前 🚀 <b>&amp;\u2028"},
			"control":  {Before: "", After: "tab\tnl\nnul\x00end"},
			"quota":    {Before: int64(1)<<60 + 1, After: 0},
			"flag":     {Before: false, After: true},
			"deleted":  {Before: "gone"},
			"limits":   {Before: limits{MaxUsers: 10, Ratio: 0.1}, After: nil},
			"settings": {After: map[string]any{"z": []any{1, 2.5, "x", nil, true}, "a": map[string]any{"deep": map[string]any{}}}},
		}
		mustRecord(t, svc, audit.Entry{Action: "setting.update", TenantID: "t1", ActorID: "u1", Changes: changes})

		got, _ := mustList(t, svc, nodus.WithTenant(ctx, "t1"), audit.Filter{})
		if len(got) != 1 {
			t.Fatalf("%d entries", len(got))
		}
		want := map[string]audit.Change{
			"name":     {Before: "Zoë", After: "名前 🚀 <b>&amp;\u2028"},
			"control":  {Before: "", After: "tab\tnl\nnul\x00end"},
			"quota":    {Before: json.Number("1152921504606846977"), After: json.Number("0")},
			"flag":     {Before: false, After: true},
			"deleted":  {Before: "gone"},
			"limits":   {Before: map[string]any{"max_users": json.Number("10"), "ratio": json.Number("0.1")}},
			"settings": {After: map[string]any{"z": []any{json.Number("1"), json.Number("2.5"), "x", nil, true}, "a": map[string]any{"deep": map[string]any{}}}},
		}
		if !reflect.DeepEqual(got[0].Changes, want) {
			t.Fatalf("changes read back as\n%#v\nwant\n%#v", got[0].Changes, want)
		}

		// The column holds exactly the canonical bytes the hash covers.
		canon, err := audit.MarshalChanges(changes)
		if err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := db.Read(platformCtx, func(tx *store.Tx) error {
			return tx.QueryRow(platformCtx, "SELECT changes FROM audit_log WHERE seq = 1").Scan(&stored)
		}); err != nil {
			t.Fatal(err)
		}
		if stored != string(canon) {
			t.Errorf("stored changes\n%s\nwant\n%s", stored, canon)
		}
		if n, err := svc.Verify(ctx); n != 1 || err != nil {
			t.Fatalf("Verify = %d, %v", n, err)
		}
	})
}

// TestAuditAppendStoreDirectly checks the store's own contract: it fills
// Seq, PrevHash and Hash into the caller's entry and truncates Time.
func TestAuditAppendStoreDirectly(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		newAuditService(t, db)
		at := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600))
		e := audit.Entry{ID: nodus.NewID(), Time: at, ActorKind: audit.ActorSystem, Action: "tenant.delete", Seq: 77, PrevHash: "x"}
		if err := db.AppendAudit(ctx, &e); err != nil {
			t.Fatal(err)
		}
		if e.Seq != 1 || e.PrevHash != audit.GenesisHash || e.Hash != e.ComputeHash() ||
			!e.Time.Equal(at.Truncate(time.Microsecond)) || e.Time.Location() != time.UTC {
			t.Errorf("after append: %+v", e)
		}
		dup := e
		if err := db.AppendAudit(ctx, &dup); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("same id again: %v, want ECONFLICT", err)
		}
		if got := walkSeqs(t, db); !slices.Equal(got, []int64{1}) {
			t.Errorf("seqs after a failed append = %v", got)
		}
	})
}
