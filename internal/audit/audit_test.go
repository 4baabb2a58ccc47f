package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

var ctx = context.Background()

// memStore is an in-memory Store that behaves like the real ones: it
// chains entries and keeps Changes in their stored (canonical) form.
type memStore struct {
	mu         sync.Mutex
	rows       []audit.Entry
	lastFilter audit.Filter
}

func (m *memStore) AppendAudit(_ context.Context, e *audit.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := audit.MarshalChanges(e.Changes)
	if err != nil {
		return err
	}
	row := *e
	if row.Changes, err = audit.UnmarshalChanges(b); err != nil {
		return err
	}
	row.Seq, row.PrevHash = int64(len(m.rows))+1, audit.GenesisHash
	if len(m.rows) > 0 {
		row.PrevHash = m.rows[len(m.rows)-1].Hash
	}
	row.Hash = row.ComputeHash()
	m.rows = append(m.rows, row)
	e.Seq, e.PrevHash, e.Hash = row.Seq, row.PrevHash, row.Hash
	return nil
}

func (m *memStore) ListAudit(_ context.Context, f audit.Filter) ([]audit.Entry, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastFilter = f
	var out []audit.Entry
	for i := len(m.rows) - 1; i >= 0 && len(out) < f.Limit; i-- {
		out = append(out, m.rows[i])
	}
	return out, "", nil
}

func (m *memStore) WalkAudit(_ context.Context, fn func(audit.Entry) error) error {
	m.mu.Lock()
	rows := append([]audit.Entry(nil), m.rows...)
	m.mu.Unlock()
	for _, e := range rows {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
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
	st := &memStore{}
	clock := newClock()
	svc := audit.NewService(st, clock)
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
	if len(st.rows) != 3 {
		t.Fatalf("%d rows stored", len(st.rows))
	}
	wantKinds := []string{audit.ActorAnonymous, audit.ActorUser, audit.ActorSystem}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, e := range st.rows {
		if !nodus.ValidID(e.ID) || e.ID == "caller-id" {
			t.Errorf("row %d: id %q", i, e.ID)
		}
		wantTime := start.Add(time.Duration(i+1) * 1500 * time.Microsecond)
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
	if st.rows[0].PrevHash != audit.GenesisHash || st.rows[1].PrevHash != st.rows[0].Hash {
		t.Error("rows are not chained")
	}
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
		{"target id too long", audit.Entry{Action: "user.update", TargetID: strings.Repeat("x", 201)}, "target_id"},
		{"tenant id with NUL", audit.Entry{Action: "user.update", TenantID: "t\x00"}, "tenant_id"},
		{"actor id not UTF-8", audit.Entry{Action: "user.update", ActorID: "\xff"}, "actor_id"},
		{"changes not JSON", audit.Entry{Action: "user.update", Changes: map[string]audit.Change{"x": {After: math.Inf(1)}}}, "changes"},
		{"changes too large", audit.Entry{Action: "user.update",
			Changes: map[string]audit.Change{"x": {After: strings.Repeat("x", 70_000)}}}, "changes"},
	}
	for _, tt := range tests {
		st := &memStore{}
		err := audit.NewService(st, newClock()).Record(ctx, tt.e)
		if nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("%s: %v, want EINVALID", tt.name, err)
			continue
		}
		if _, ok := nodus.ErrorFields(err)[tt.field]; !ok {
			t.Errorf("%s: fields %v, want %s", tt.name, nodus.ErrorFields(err), tt.field)
		}
		if len(st.rows) != 0 {
			t.Errorf("%s: an invalid entry was stored", tt.name)
		}
	}
}

// TestRecordCleansHeaders checks that client-controlled header values are
// made storable instead of failing the record.
func TestRecordCleansHeaders(t *testing.T) {
	st := &memStore{}
	ua := "bad\x00agent\xff" + strings.Repeat("é", 400)
	if err := audit.NewService(st, newClock()).Record(ctx, audit.Entry{Action: "auth.login_failed", UserAgent: ua}); err != nil {
		t.Fatal(err)
	}
	got := st.rows[0].UserAgent
	if len(got) > 512 || strings.ContainsRune(got, 0) || !strings.HasPrefix(got, "badagent\uFFFDé") || !utf8Valid(got) {
		t.Errorf("user agent stored as %q (%d bytes)", got, len(got))
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestList(t *testing.T) {
	st := &memStore{}
	svc := audit.NewService(st, newClock())
	for _, tt := range []struct{ limit, want int }{{0, 50}, {-3, 50}, {7, 7}, {500, 500}, {10_000, 500}} {
		if _, _, err := svc.List(ctx, audit.Filter{Limit: tt.limit}); err != nil {
			t.Fatal(err)
		}
		if st.lastFilter.Limit != tt.want {
			t.Errorf("Limit %d reached the store as %d, want %d", tt.limit, st.lastFilter.Limit, tt.want)
		}
	}
	now := time.Now()
	_, _, err := svc.List(ctx, audit.Filter{Since: now, Until: now.Add(-time.Hour)})
	if nodus.ErrorCode(err) != nodus.EINVALID {
		t.Errorf("until before since: %v, want EINVALID", err)
	}
}

func TestVerify(t *testing.T) {
	// record fills a store with n chained entries.
	record := func(t *testing.T, n int) *memStore {
		t.Helper()
		st := &memStore{}
		svc := audit.NewService(st, newClock())
		for i := range n {
			if err := svc.Record(ctx, audit.Entry{Action: "user.update", TenantID: "t1", ActorID: "u1",
				TargetType: "user", TargetID: "u2", Changes: map[string]audit.Change{"n": {After: i}}}); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	rehash := func(e *audit.Entry) { e.Hash = e.ComputeHash() }
	tests := []struct {
		name    string
		tamper  func(rows []audit.Entry) []audit.Entry
		seq     int64
		problem string
	}{
		{"edited action", func(r []audit.Entry) []audit.Entry { r[2].Action = "user.read"; return r }, 3, audit.ProblemHash},
		{"edited changes", func(r []audit.Entry) []audit.Entry {
			r[1].Changes = map[string]audit.Change{"n": {After: json.Number("42")}}
			return r
		}, 2, audit.ProblemHash},
		{"edited hash", func(r []audit.Entry) []audit.Entry { r[4].Hash = strings.Repeat("0", 64); return r }, 5, audit.ProblemHash},
		{"edited and rehashed", func(r []audit.Entry) []audit.Entry {
			r[2].Action = "user.read"
			rehash(&r[2])
			return r
		}, 4, audit.ProblemLink},
		{"deleted middle", func(r []audit.Entry) []audit.Entry { return append(r[:2], r[3:]...) }, 3, audit.ProblemMissing},
		{"deleted first", func(r []audit.Entry) []audit.Entry { return r[1:] }, 1, audit.ProblemMissing},
		{"deleted and renumbered", func(r []audit.Entry) []audit.Entry {
			r = append(r[:2], r[3:]...)
			for i := 2; i < len(r); i++ {
				r[i].Seq--
				rehash(&r[i])
			}
			return r
		}, 3, audit.ProblemLink},
		{"swapped seqs", func(r []audit.Entry) []audit.Entry {
			r[1].Seq, r[2].Seq = 3, 2
			r[1], r[2] = r[2], r[1]
			return r
		}, 2, audit.ProblemHash},
		{"swapped and rehashed", func(r []audit.Entry) []audit.Entry {
			r[1].Seq, r[2].Seq = 3, 2
			r[1], r[2] = r[2], r[1]
			rehash(&r[1])
			rehash(&r[2])
			return r
		}, 2, audit.ProblemLink},
		{"duplicated", func(r []audit.Entry) []audit.Entry {
			return append(append([]audit.Entry(nil), r[:3]...), r[2:]...)
		}, 4, audit.ProblemOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := record(t, 6)
			svc := audit.NewService(st, newClock())
			if n, err := svc.Verify(ctx); n != 6 || err != nil {
				t.Fatalf("before tampering: %d, %v", n, err)
			}
			st.rows = tt.tamper(st.rows)
			n, err := svc.Verify(ctx)
			var ce *audit.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify = %d, %v; want a *ChainError", n, err)
			}
			if ce.Seq != tt.seq || ce.Problem != tt.problem {
				t.Errorf("break at seq %d (%s), want %d (%s): %v", ce.Seq, ce.Problem, tt.seq, tt.problem, err)
			}
			if n != tt.seq-1 {
				t.Errorf("checked %d entries, want %d", n, tt.seq-1)
			}
			if !strings.Contains(err.Error(), "seq ") {
				t.Errorf("message %q does not name the seq", err)
			}
		})
	}

	if n, err := audit.NewService(&memStore{}, nil).Verify(ctx); n != 0 || err != nil {
		t.Errorf("empty log: %d, %v", n, err)
	}
}

func TestVerifyStoreError(t *testing.T) {
	boom := errors.New("disk on fire")
	svc := audit.NewService(failingWalk{boom}, nil)
	_, err := svc.Verify(ctx)
	var ce *audit.ChainError
	if !errors.Is(err, boom) || errors.As(err, &ce) {
		t.Errorf("Verify = %v, want the store's error, not a chain break", err)
	}
}

type failingWalk struct{ err error }

func (failingWalk) AppendAudit(context.Context, *audit.Entry) error { return nil }
func (failingWalk) ListAudit(context.Context, audit.Filter) ([]audit.Entry, string, error) {
	return nil, "", nil
}
func (f failingWalk) WalkAudit(context.Context, func(audit.Entry) error) error { return f.err }
