package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

var ctx = context.Background()

// allTenants is for a test's own SQL that inspects or tampers with tenant
// rows directly: with row-level security in force (storetest.RLSEnv) an
// unscoped transaction sees none of them.
var allTenants = nodus.WithAllTenants(ctx)

// migrate gives db the main schema, which holds audit_log, and returns it.
func migrate(t *testing.T, db *store.DB) *store.DB {
	t.Helper()
	m, err := store.NewMigrator(store.SetMain, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// recordingStore is the real store noting what the service hands it: each
// entry as it arrives, before the store fills in Seq and the hashes, and
// the filter of the last list. The store truncates times and caps limits
// itself, so only this shows that the service does too.
type recordingStore struct {
	*store.DB
	mu       sync.Mutex
	appended []audit.Entry
	lists    []audit.Filter
}

func (r *recordingStore) AppendAudit(ctx context.Context, e *audit.Entry) error {
	r.mu.Lock()
	r.appended = append(r.appended, *e)
	r.mu.Unlock()
	return r.DB.AppendAudit(ctx, e)
}

func (r *recordingStore) ListAudit(ctx context.Context, f audit.Filter) ([]audit.Entry, string, error) {
	r.mu.Lock()
	r.lists = append(r.lists, f)
	r.mu.Unlock()
	return r.DB.ListAudit(ctx, f)
}

// stored returns every row of the log, in Seq order, as the store reads it.
func stored(t *testing.T, db *store.DB) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	if err := db.WalkAudit(ctx, func(e audit.Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func seqs(entries []audit.Entry) []int64 {
	var out []int64
	for _, e := range entries {
		out = append(out, e.Seq)
	}
	return out
}

func mustExec(t *testing.T, db *store.DB, query string, args ...any) {
	t.Helper()
	err := db.Write(allTenants, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, query, args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// dropTriggers lifts the append-only guard, as someone with administrative
// access to the database could, so that rows can be edited and deleted.
func dropTriggers(t *testing.T, db *store.DB) {
	t.Helper()
	on := ""
	if db.Dialect() == store.Postgres {
		on = " ON audit_log"
	}
	mustExec(t, db, "DROP TRIGGER audit_log_no_update"+on)
	mustExec(t, db, "DROP TRIGGER audit_log_no_delete"+on)
}

// rewrite reads the row at seq, lets edit change it and writes the
// changed columns back over it, as a tamperer would.
func rewrite(t *testing.T, db *store.DB, seq int64, edit func(e *audit.Entry)) {
	t.Helper()
	var e audit.Entry
	for _, row := range stored(t, db) {
		if row.Seq == seq {
			e = row
		}
	}
	if e.ID == "" {
		t.Fatalf("no row at seq %d", seq)
	}
	edit(&e)
	changes, err := audit.MarshalChanges(e.Changes)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "UPDATE audit_log SET seq = ?, action = ?, changes = ?, prev_hash = ?, hash = ? WHERE seq = ?",
		e.Seq, e.Action, string(changes), e.PrevHash, e.Hash, seq)
}

// insert writes e into the table as it is, bypassing the store's chaining.
func insert(t *testing.T, db *store.DB, e audit.Entry) {
	t.Helper()
	changes, err := audit.MarshalChanges(e.Changes)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `INSERT INTO audit_log (id, seq, created_at, tenant_id, actor_id, actor_kind, action,
		target_type, target_id, address, user_agent, changes, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Seq, e.Time, e.TenantID, e.ActorID, e.ActorKind, e.Action,
		e.TargetType, e.TargetID, e.Address, e.UserAgent, string(changes), e.PrevHash, e.Hash)
}

// stepClock starts at a fixed time and advances 1.5ms (and some
// nanoseconds, which the log must drop) on every call.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *stepClock {
	return &stepClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(1500*time.Microsecond + 7)
	return c.t
}

func baseEntry() audit.Entry {
	return audit.Entry{
		ID:         "0190f5a8-7a1e-7c3b-9d2e-4f5a6b7c8d9e",
		Seq:        3,
		Time:       time.Date(2026, 11, 23, 10, 11, 12, 123456000, time.UTC),
		TenantID:   "t1",
		ActorID:    "u1",
		ActorKind:  audit.ActorUser,
		Action:     "user.update",
		TargetType: "user",
		TargetID:   "u2",
		Address:    "192.0.2.1",
		UserAgent:  "test/1",
		Changes:    map[string]audit.Change{"role": {Before: "user", After: "org_admin"}},
		PrevHash:   strings.Repeat("ab", 32),
	}
}

func TestComputeHashCoversEveryField(t *testing.T) {
	base := baseEntry()
	h0 := base.ComputeHash()
	if len(h0) != 64 || strings.Trim(h0, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not lowercase hex SHA-256", h0)
	}
	if h := base.ComputeHash(); h != h0 {
		t.Fatal("ComputeHash is not deterministic")
	}
	tests := []struct {
		name   string
		change func(e *audit.Entry)
	}{
		{"id", func(e *audit.Entry) { e.ID = "0190f5a8-7a1e-7c3b-9d2e-4f5a6b7c8d9f" }},
		{"seq", func(e *audit.Entry) { e.Seq = 4 }},
		{"time", func(e *audit.Entry) { e.Time = e.Time.Add(time.Microsecond) }},
		{"tenant id", func(e *audit.Entry) { e.TenantID = "t2" }},
		{"tenant id to platform", func(e *audit.Entry) { e.TenantID = "" }},
		{"actor id", func(e *audit.Entry) { e.ActorID = "u9" }},
		{"actor kind", func(e *audit.Entry) { e.ActorKind = audit.ActorToken }},
		{"action", func(e *audit.Entry) { e.Action = "user.delete" }},
		{"target type", func(e *audit.Entry) { e.TargetType = "tenant" }},
		{"target id", func(e *audit.Entry) { e.TargetID = "u3" }},
		{"address", func(e *audit.Entry) { e.Address = "192.0.2.2" }},
		{"user agent", func(e *audit.Entry) { e.UserAgent = "test/2" }},
		{"prev hash", func(e *audit.Entry) { e.PrevHash = strings.Repeat("ac", 32) }},
		{"change value", func(e *audit.Entry) { e.Changes = map[string]audit.Change{"role": {Before: "user", After: "viewer"}} }},
		{"change swapped", func(e *audit.Entry) {
			e.Changes = map[string]audit.Change{"role": {Before: "org_admin", After: "user"}}
		}},
		{"change type", func(e *audit.Entry) { e.Changes = map[string]audit.Change{"role": {Before: "user", After: 1}} }},
		{"change added", func(e *audit.Entry) {
			e.Changes = map[string]audit.Change{"role": {Before: "user", After: "org_admin"}, "name": {After: "x"}}
		}},
		{"changes removed", func(e *audit.Entry) { e.Changes = nil }},
		// Text moved across a field boundary must not hash alike.
		{"boundary target", func(e *audit.Entry) { e.TargetType, e.TargetID = "useru", "2" }},
		{"boundary actor", func(e *audit.Entry) { e.ActorID, e.ActorKind = "u1u", "ser" }},
	}
	seen := map[string]string{h0: "base"}
	for _, tt := range tests {
		e := baseEntry()
		tt.change(&e)
		h := e.ComputeHash()
		if prev, dup := seen[h]; dup {
			t.Errorf("%s: hash equals that of %s", tt.name, prev)
		}
		seen[h] = tt.name
	}

	e := baseEntry()
	e.Hash = "anything"
	if e.ComputeHash() != h0 {
		t.Error("Hash itself is part of the hash")
	}
	e.Time = base.Time.In(time.FixedZone("CET", 3600))
	if e.ComputeHash() != h0 {
		t.Error("the same instant in another zone hashes differently")
	}
}

func TestComputeHashCanonicalChanges(t *testing.T) {
	type pair struct {
		Z int    `json:"z"`
		A string `json:"a"`
	}
	var nilPtr *int
	tests := []struct {
		name string
		a, b map[string]audit.Change
	}{
		{"nil and empty", nil, map[string]audit.Change{}},
		{"struct and map", map[string]audit.Change{"x": {After: pair{Z: 1, A: "b"}}},
			map[string]audit.Change{"x": {After: map[string]any{"a": "b", "z": 1}}}},
		{"int and float", map[string]audit.Change{"n": {After: 2}}, map[string]audit.Change{"n": {After: 2.0}}},
		{"nil pointer and absent", map[string]audit.Change{"x": {Before: nilPtr, After: "v"}},
			map[string]audit.Change{"x": {After: "v"}}},
	}
	for _, tt := range tests {
		a, b := baseEntry(), baseEntry()
		a.Changes, b.Changes = tt.a, tt.b
		if a.ComputeHash() != b.ComputeHash() {
			t.Errorf("%s: hashes differ", tt.name)
		}
	}
}

func TestMarshalChanges(t *testing.T) {
	big := int64(1)<<60 + 1
	tests := []struct {
		name string
		in   map[string]audit.Change
		want string
	}{
		{"none", nil, `{}`},
		{"sorted keys", map[string]audit.Change{"b": {After: 1}, "a": {Before: true}}, `{"a":{"before":true},"b":{"after":1}}`},
		{"nested sorted", map[string]audit.Change{"m": {After: map[string]any{"y": []any{map[string]any{"d": 1, "c": 2}}, "x": nil}}},
			`{"m":{"after":{"x":null,"y":[{"c":2,"d":1}]}}}`},
		{"html and unicode kept", map[string]audit.Change{"n": {After: "<b>&\"é\u2028"}}, `{"n":{"after":"<b>&\"é\u2028"}}`},
		{"big int exact", map[string]audit.Change{"n": {After: big}}, `{"n":{"after":1152921504606846977}}`},
		{"empty string and zero kept", map[string]audit.Change{"s": {Before: "", After: 0}}, `{"s":{"before":"","after":0}}`},
		{"empty change", map[string]audit.Change{"s": {}}, `{"s":{}}`},
	}
	for _, tt := range tests {
		got, err := audit.MarshalChanges(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
		back, err := audit.UnmarshalChanges(got)
		if err != nil {
			t.Errorf("%s: unmarshal: %v", tt.name, err)
			continue
		}
		again, _ := audit.MarshalChanges(back)
		if string(again) != tt.want {
			t.Errorf("%s: after a round trip %s, want %s", tt.name, again, tt.want)
		}
	}
	for name, in := range map[string]map[string]audit.Change{
		"NaN":     {"n": {After: math.NaN()}},
		"channel": {"c": {After: make(chan int)}},
	} {
		if _, err := audit.MarshalChanges(in); err == nil {
			t.Errorf("%s: encoded without error", name)
		}
	}
}

func TestUnmarshalChanges(t *testing.T) {
	got, err := audit.UnmarshalChanges([]byte(`{"n":{"before":1152921504606846977,"after":[1.5,"ü",{"k":null}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]audit.Change{"n": {
		Before: json.Number("1152921504606846977"),
		After:  []any{json.Number("1.5"), "ü", map[string]any{"k": nil}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	if got, err := audit.UnmarshalChanges([]byte(`{}`)); err != nil || got != nil {
		t.Errorf("{} = %v, %v; want nil", got, err)
	}
	// Anything a hand edit could produce that MarshalChanges never does.
	for _, in := range []string{
		``, `null`, `[]`, `{ }`, `{"a":{"after":1}} `, `{"a":{"after":1}}{}`,
		`{"b":{"after":1},"a":{"after":1}}`, `{"a":{"After":1}}`, `{"a":{"after":1,"extra":2}}`,
		`{"a":{"after":1},"a":{"after":2}}`, `{"a":{"before":null,"after":1}}`,
		`{"a":{"after":"\u00e9"}}`,
	} {
		if _, err := audit.UnmarshalChanges([]byte(in)); err == nil {
			t.Errorf("%q decoded without error", in)
		}
	}
}

func TestRecord(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		rs := &recordingStore{DB: migrate(t, db)}
		svc := audit.NewService(rs, newClock())
		if err := svc.Record(ctx, audit.Entry{Action: "auth.login_failed", Address: "198.51.100.7",
			ID: "caller-id", Seq: 99, Hash: "forged", PrevHash: "forged"}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Record(ctx, audit.Entry{Action: "user.create", TenantID: "t1", ActorID: "u1",
			Changes: map[string]audit.Change{"email": {After: "a@example.com"}}}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Record(ctx, audit.Entry{Action: "tenant.delete", ActorKind: audit.ActorSystem}); err != nil {
			t.Fatal(err)
		}

		rows := stored(t, db)
		if len(rows) != 3 || len(rs.appended) != 3 {
			t.Fatalf("%d rows stored, %d handed to the store", len(rows), len(rs.appended))
		}
		wantKinds := []string{audit.ActorAnonymous, audit.ActorUser, audit.ActorSystem}
		start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		for i, e := range rows {
			wantTime := start.Add(time.Duration(i+1) * 1500 * time.Microsecond)
			// What the service set, before the store could truncate it.
			if h := rs.appended[i]; h.ID != e.ID || h.Time != wantTime {
				t.Errorf("row %d: the service handed over id %q time %v, want id %q time %v (UTC, microseconds)",
					i, h.ID, h.Time, e.ID, wantTime)
			}
			if !nodus.ValidID(e.ID) || e.ID == "caller-id" {
				t.Errorf("row %d: id %q", i, e.ID)
			}
			if !e.Time.Equal(wantTime) || e.Time.Location() != time.UTC {
				t.Errorf("row %d: time %v, want %v (UTC, microseconds)", i, e.Time, wantTime)
			}
			if e.Seq != int64(i+1) || e.Hash != e.ComputeHash() {
				t.Errorf("row %d: seq %d hash %s", i, e.Seq, e.Hash)
			}
			if e.ActorKind != wantKinds[i] {
				t.Errorf("row %d: actor kind %q, want %q", i, e.ActorKind, wantKinds[i])
			}
		}
		if rows[0].PrevHash != audit.GenesisHash || rows[1].PrevHash != rows[0].Hash || rows[2].PrevHash != rows[1].Hash {
			t.Error("rows are not chained")
		}
		if n, err := svc.Verify(ctx); n != 3 || err != nil {
			t.Errorf("Verify = %d, %v; want 3, nil", n, err)
		}
	})
}

func TestRecordValidation(t *testing.T) {
	tests := []struct {
		name  string
		e     audit.Entry
		field string
	}{
		{"no action", audit.Entry{}, "action"},
		{"action not domain.verb", audit.Entry{Action: "User Create"}, "action"},
		{"action too long", audit.Entry{Action: "a." + strings.Repeat("b", 100)}, "action"},
		{"unknown actor kind", audit.Entry{Action: "auth.login", ActorKind: "robot"}, "actor_kind"},
		{"token without actor", audit.Entry{Action: "token.create", ActorKind: audit.ActorToken}, "actor_id"},
		{"machine without actor", audit.Entry{Action: "secret.read", ActorKind: audit.ActorMachine}, "actor_id"},
		{"target id too long", audit.Entry{Action: "user.update", TargetID: strings.Repeat("x", 201)}, "target_id"},
		{"tenant id with NUL", audit.Entry{Action: "user.update", TenantID: "t\x00"}, "tenant_id"},
		{"actor id not UTF-8", audit.Entry{Action: "user.update", ActorID: "\xff"}, "actor_id"},
		{"changes not JSON", audit.Entry{Action: "user.update", Changes: map[string]audit.Change{"x": {After: math.Inf(1)}}}, "changes"},
		{"changes too large", audit.Entry{Action: "user.update",
			Changes: map[string]audit.Change{"x": {After: strings.Repeat("x", 70_000)}}}, "changes"},
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		rs := &recordingStore{DB: migrate(t, db)}
		svc := audit.NewService(rs, newClock())
		for _, tt := range tests {
			err := svc.Record(ctx, tt.e)
			if nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("%s: %v, want EINVALID", tt.name, err)
				continue
			}
			if _, ok := nodus.ErrorFields(err)[tt.field]; !ok {
				t.Errorf("%s: fields %v, want %s", tt.name, nodus.ErrorFields(err), tt.field)
			}
			if len(rs.appended) != 0 {
				t.Fatalf("%s: an invalid entry reached the store", tt.name)
			}
		}
		if rows := stored(t, db); len(rows) != 0 {
			t.Errorf("%d invalid entries were stored", len(rows))
		}
	})
}

// TestRecordCleansHeaders checks that client-controlled header values are
// made storable instead of failing the record: PostgreSQL refuses NUL in
// text, so the row only exists on both engines if the service cleaned it.
func TestRecordCleansHeaders(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := audit.NewService(migrate(t, db), newClock())
		ua := "bad\x00agent\xff" + strings.Repeat("é", 400)
		addr := "198.51.100.7\x00\xfe" + strings.Repeat("1", 200)
		if err := svc.Record(ctx, audit.Entry{Action: "auth.login_failed", UserAgent: ua, Address: addr}); err != nil {
			t.Fatal(err)
		}
		rows := stored(t, db)
		if len(rows) != 1 {
			t.Fatalf("%d rows stored", len(rows))
		}
		got := rows[0].UserAgent
		if len(got) > 512 || strings.ContainsRune(got, 0) || !strings.HasPrefix(got, "badagent\uFFFDé") || !utf8Valid(got) {
			t.Errorf("user agent stored as %q (%d bytes)", got, len(got))
		}
		got = rows[0].Address
		if len(got) > 100 || !strings.HasPrefix(got, "198.51.100.7\uFFFD1") || !utf8Valid(got) {
			t.Errorf("address stored as %q (%d bytes)", got, len(got))
		}
		if n, err := svc.Verify(ctx); n != 1 || err != nil {
			t.Errorf("Verify = %d, %v", n, err)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestListLimit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		rs := &recordingStore{DB: migrate(t, db)}
		svc := audit.NewService(rs, newClock())
		for _, tt := range []struct{ limit, want int }{{0, 50}, {-3, 50}, {7, 7}, {500, 500}, {10_000, 500}} {
			rs.lists = nil
			if _, _, err := svc.List(nodus.WithAllTenants(ctx), audit.Filter{Limit: tt.limit}); err != nil {
				t.Fatal(err)
			}
			if len(rs.lists) != 1 || rs.lists[0].Limit != tt.want {
				t.Errorf("Limit %d reached the store as %v, want %d", tt.limit, rs.lists, tt.want)
			}
		}
		rs.lists = nil
		now := time.Now()
		for _, until := range []time.Time{now.Add(-time.Hour), now} {
			_, _, err := svc.List(nodus.WithAllTenants(ctx), audit.Filter{Since: now, Until: until})
			if nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("until %v before or at since: %v, want EINVALID", until.Sub(now), err)
			}
		}
		if len(rs.lists) != 0 {
			t.Errorf("an invalid filter reached the store: %v", rs.lists)
		}
	})
}

func TestList(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := audit.NewService(migrate(t, db), newClock())
		for _, e := range []audit.Entry{
			{Action: "auth.login", TenantID: "t1", ActorID: "u1", TargetType: "user", TargetID: "u1"},
			{Action: "user.update", TenantID: "t1", ActorID: "u2", TargetType: "user", TargetID: "u3"},
			{Action: "user.update", TenantID: "t2", ActorID: "u4", TargetType: "user", TargetID: "u5"},
			{Action: "auth.login_failed"},
			{Action: "user.update", TenantID: "t1", ActorID: "u1", TargetType: "user", TargetID: "u3"},
		} {
			if err := svc.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		all := nodus.WithAllTenants(ctx)
		t1 := nodus.WithTenant(ctx, "t1")
		at := map[int64]time.Time{}
		for _, e := range stored(t, db) {
			at[e.Seq] = e.Time
		}
		tests := []struct {
			name string
			ctx  context.Context
			f    audit.Filter
			want []int64
		}{
			{"all tenants", all, audit.Filter{}, []int64{5, 4, 3, 2, 1}},
			{"tenant t1", t1, audit.Filter{}, []int64{5, 2, 1}},
			{"tenant t2", nodus.WithTenant(ctx, "t2"), audit.Filter{}, []int64{3}},
			{"tenant without entries", nodus.WithTenant(ctx, "t3"), audit.Filter{}, nil},
			{"t1 asking for t2", t1, audit.Filter{TenantID: "t2"}, nil},
			{"all tenants filtered to t2", all, audit.Filter{TenantID: "t2"}, []int64{3}},
			{"action", all, audit.Filter{Action: "user.update"}, []int64{5, 3, 2}},
			{"action under t1", t1, audit.Filter{Action: "user.update"}, []int64{5, 2}},
			{"actor", all, audit.Filter{ActorID: "u1"}, []int64{5, 1}},
			{"target", all, audit.Filter{TargetType: "user", TargetID: "u3"}, []int64{5, 2}},
			{"since inclusive, until exclusive", all, audit.Filter{Since: at[2], Until: at[4]}, []int64{3, 2}},
			{"nothing", all, audit.Filter{Action: "tenant.delete"}, nil},
		}
		for _, tt := range tests {
			got, next, err := svc.List(tt.ctx, tt.f)
			if err != nil || next != "" || !slices.Equal(seqs(got), tt.want) {
				t.Errorf("%s: %v next %q err %v, want %v", tt.name, seqs(got), next, err, tt.want)
			}
		}
		if _, _, err := svc.List(ctx, audit.Filter{}); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("list without a scope: %v, want ErrNoScope", err)
		}

		// Pages of two follow each other through the cursor to the end.
		var got []int64
		f := audit.Filter{Limit: 2}
		for pages := 1; ; pages++ {
			page, next, err := svc.List(all, f)
			if err != nil || len(page) > 2 || pages > 3 {
				t.Fatalf("page %d: %v, %v", pages, seqs(page), err)
			}
			got = append(got, seqs(page)...)
			if next == "" {
				if pages != 3 {
					t.Errorf("%d pages, want 3", pages)
				}
				break
			}
			f.Cursor = next
		}
		if !slices.Equal(got, []int64{5, 4, 3, 2, 1}) {
			t.Errorf("pages of two = %v, want 5..1", got)
		}
	})
}

// TestRecordConcurrent checks that concurrent appenders produce one
// unbroken chain, every entry in it once.
func TestRecordConcurrent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := audit.NewService(migrate(t, db), newClock())
		const n = 40
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
		if got, err := svc.Verify(ctx); got != n || err != nil {
			t.Fatalf("Verify = %d, %v; want %d, nil", got, err, n)
		}
		actors := map[string]bool{}
		for i, e := range stored(t, db) {
			if e.Seq != int64(i+1) || actors[e.ActorID] {
				t.Errorf("row %d: seq %d actor %s", i, e.Seq, e.ActorID)
			}
			actors[e.ActorID] = true
		}
		if len(actors) != n {
			t.Errorf("%d distinct actors stored, want %d", len(actors), n)
		}
	})
}

func TestVerify(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		if n, err := audit.NewService(migrate(t, db), nil).Verify(ctx); n != 0 || err != nil {
			t.Errorf("empty log: %d, %v", n, err)
		}
	})

	rehash := func(e *audit.Entry) { e.Hash = e.ComputeHash() }
	renumber := func(seq int64, rehashed bool) func(e *audit.Entry) {
		return func(e *audit.Entry) {
			e.Seq = seq
			if rehashed {
				rehash(e)
			}
		}
	}
	// forge builds an entry at seq, linked to prev, with a valid hash of
	// its own, as someone who knows the encoding could.
	forge := func(seq int64, prev string) audit.Entry {
		e := audit.Entry{ID: nodus.NewID(), Seq: seq, Time: time.Date(2026, 3, 1, 12, 0, 0, 1000, time.UTC),
			TenantID: "t1", ActorID: "u1", ActorKind: audit.ActorUser, Action: "user.update",
			TargetType: "user", TargetID: "u2", Changes: map[string]audit.Change{"n": {After: json.Number("99")}},
			PrevHash: prev}
		rehash(&e)
		return e
	}
	// insertAt moves the rows from seq on one place up (rehashing them if
	// asked) and inserts a forged entry, well linked to the row before it,
	// into the gap.
	insertAt := func(seq int64, rehashed bool) func(t *testing.T, db *store.DB) {
		return func(t *testing.T, db *store.DB) {
			for s := int64(6); s >= seq; s-- {
				rewrite(t, db, s, renumber(s+1, rehashed))
			}
			insert(t, db, forge(seq, stored(t, db)[seq-2].Hash))
		}
	}
	tests := []struct {
		name    string
		tamper  func(t *testing.T, db *store.DB)
		seq     int64
		problem string
	}{
		{"edited action", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "UPDATE audit_log SET action = 'user.read' WHERE seq = 3")
		}, 3, audit.ProblemHash},
		{"edited changes", func(t *testing.T, db *store.DB) {
			mustExec(t, db, `UPDATE audit_log SET changes = '{"n":{"after":42}}' WHERE seq = 2`)
		}, 2, audit.ProblemHash},
		{"changes not canonical", func(t *testing.T, db *store.DB) {
			mustExec(t, db, `UPDATE audit_log SET changes = '{"n": {"after": 1}}' WHERE seq = 2`)
		}, 2, audit.ProblemUnreadable},
		{"edited hash", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "UPDATE audit_log SET hash = ? WHERE seq = 5", strings.Repeat("0", 64))
		}, 5, audit.ProblemHash},
		{"edited and rehashed", func(t *testing.T, db *store.DB) {
			rewrite(t, db, 3, func(e *audit.Entry) { e.Action = "user.read"; rehash(e) })
		}, 4, audit.ProblemLink},
		{"deleted middle", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "DELETE FROM audit_log WHERE seq = 3")
		}, 3, audit.ProblemMissing},
		{"deleted first", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "DELETE FROM audit_log WHERE seq = 1")
		}, 1, audit.ProblemMissing},
		{"deleted and renumbered", func(t *testing.T, db *store.DB) {
			mustExec(t, db, "DELETE FROM audit_log WHERE seq = 3")
			for s := int64(4); s <= 6; s++ {
				rewrite(t, db, s, renumber(s-1, true))
			}
		}, 3, audit.ProblemLink},
		{"swapped seqs", func(t *testing.T, db *store.DB) {
			rewrite(t, db, 2, renumber(1000, false))
			rewrite(t, db, 3, renumber(2, false))
			rewrite(t, db, 1000, renumber(3, false))
		}, 2, audit.ProblemHash},
		{"swapped and rehashed", func(t *testing.T, db *store.DB) {
			rewrite(t, db, 2, renumber(1000, false))
			rewrite(t, db, 3, renumber(2, true))
			rewrite(t, db, 1000, renumber(3, true))
		}, 2, audit.ProblemLink},
		{"inserted", insertAt(4, false), 5, audit.ProblemHash},
		{"inserted and the rest rehashed", insertAt(4, true), 5, audit.ProblemLink},
		{"appended with a bad link", func(t *testing.T, db *store.DB) {
			insert(t, db, forge(7, audit.GenesisHash))
		}, 7, audit.ProblemLink},
		{"appended after a gap", func(t *testing.T, db *store.DB) {
			insert(t, db, forge(8, stored(t, db)[5].Hash))
		}, 7, audit.ProblemMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, db *store.DB) {
				svc := recordSix(t, migrate(t, db))
				dropTriggers(t, db)
				tt.tamper(t, db)
				checkBreak(t, svc, tt.seq, tt.problem)
			})
		})
	}
}

// recordSix records six chained entries and checks that they verify.
func recordSix(t *testing.T, db *store.DB) *audit.Service {
	t.Helper()
	svc := audit.NewService(db, newClock())
	for i := range 6 {
		if err := svc.Record(ctx, audit.Entry{Action: "user.update", TenantID: "t1", ActorID: "u1",
			TargetType: "user", TargetID: "u2", Changes: map[string]audit.Change{"n": {After: i}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := svc.Verify(ctx); n != 6 || err != nil {
		t.Fatalf("before tampering: %d, %v", n, err)
	}
	return svc
}

// checkBreak checks that Verify reports the first break at seq, with
// problem, having passed every entry before it.
func checkBreak(t *testing.T, svc *audit.Service, seq int64, problem string) {
	t.Helper()
	n, err := svc.Verify(ctx)
	var ce *audit.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("Verify = %d, %v; want a *ChainError", n, err)
	}
	if ce.Seq != seq || ce.Problem != problem {
		t.Errorf("break at seq %d (%s), want %d (%s): %v", ce.Seq, ce.Problem, seq, problem, err)
	}
	if n != seq-1 {
		t.Errorf("checked %d entries, want %d", n, seq-1)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("seq %d", seq)) {
		t.Errorf("message %q does not name seq %d", err, seq)
	}
}

// replayingStore is the real store walking the row at seq twice. The
// database cannot hold two rows with one seq and walks in seq order, so
// this stands in for a misbehaving store: Verify must not trust the order
// it is given.
type replayingStore struct {
	*store.DB
	seq int64
}

func (r replayingStore) WalkAudit(ctx context.Context, fn func(audit.Entry) error) error {
	return r.DB.WalkAudit(ctx, func(e audit.Entry) error {
		if err := fn(e); err != nil || e.Seq != r.seq {
			return err
		}
		return fn(e)
	})
}

func TestVerifyOutOfOrder(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		recordSix(t, migrate(t, db))
		checkBreak(t, audit.NewService(replayingStore{DB: db, seq: 3}, nil), 4, audit.ProblemOrder)
	})
}

// TestVerifyStoreError checks that a failure to read the log is returned
// as such, not as a break in the chain.
func TestVerifyStoreError(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		svc := recordSix(t, migrate(t, db))
		var ce *audit.ChainError

		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		n, err := svc.Verify(cancelled)
		if !errors.Is(err, context.Canceled) || errors.As(err, &ce) || n != 0 {
			t.Errorf("Verify with a cancelled context = %d, %v; want 0 and the context's error, not a chain break", n, err)
		}

		// A time neither engine can read back into a time.Time: the rows
		// before it are checked, then the read error is returned.
		bad := "not a time"
		if db.Dialect() == store.Postgres {
			bad = "infinity"
		}
		dropTriggers(t, db)
		mustExec(t, db, "UPDATE audit_log SET created_at = '"+bad+"' WHERE seq = 4")
		n, err = svc.Verify(ctx)
		if err == nil || errors.As(err, &ce) || n != 3 || !strings.Contains(err.Error(), "after seq 3") {
			t.Errorf("Verify over an unreadable row = %d, %v; want 3 and the read error, not a chain break", n, err)
		}
	})
}
