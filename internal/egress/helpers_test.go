package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
)

// The store is faked here because internal/store imports this package;
// internal/store/egress_test.go tests the real one on both engines with
// the same scope rules, and cmd/nodus/egress_test.go runs the two together.

// memStore keeps policies in memory, scoped as the real store scopes them.
type memStore struct {
	mu       sync.Mutex
	policies map[string]Policy
	platform Platform
	loads    atomic.Int64 // FindEgressPolicy and FindEgressPlatform calls
}

func newMemStore() *memStore { return &memStore{policies: map[string]Policy{}} }

func (m *memStore) FindEgressPolicy(ctx context.Context, tenantID string) (*Policy, error) {
	if err := inScope(ctx, tenantID); err != nil {
		return nil, err
	}
	m.loads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.policies[tenantID]
	if !ok {
		p = Policy{TenantID: tenantID, Mode: ModeEnforce}
	}
	p.Rules = slices.Clone(p.Rules)
	return &p, nil
}

func (m *memStore) DeleteEgressTenant(ctx context.Context, tenantID string) (int64, error) {
	if err := inScope(ctx, tenantID); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int64(len(m.policies[tenantID].Rules))
	delete(m.policies, tenantID)
	return n, nil
}

func (m *memStore) FindEgressPlatform(ctx context.Context) (*Platform, error) {
	_, all, ok := nodus.TenantScope(ctx)
	if !ok {
		return nil, nodus.ErrNoScope
	}
	m.loads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	p := Platform{Rules: slices.Clone(m.platform.Rules)}
	if all {
		p.Exceptions = slices.Clone(m.platform.Exceptions)
	}
	return &p, nil
}

func (m *memStore) UpdateEgressPolicy(ctx context.Context, tenantID string, change func(*Policy) error) (*Policy, *Policy, error) {
	before, err := m.FindEgressPolicy(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	after := *before
	after.Rules = slices.Clone(before.Rules)
	if err := change(&after); err != nil {
		return nil, nil, err
	}
	if after.SameAs(before) {
		return before, before, nil
	}
	m.policies[tenantID] = after
	return before, &after, nil
}

func (m *memStore) UpdateEgressPlatform(ctx context.Context, change func(*Platform) error) (*Platform, *Platform, error) {
	if err := requirePlatform(ctx); err != nil {
		return nil, nil, err
	}
	before, _ := m.FindEgressPlatform(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	after := Platform{Rules: slices.Clone(before.Rules), Exceptions: slices.Clone(before.Exceptions)}
	if err := change(&after); err != nil {
		return nil, nil, err
	}
	if after.SameAs(before) {
		return before, before, nil
	}
	m.platform = after
	return before, &after, nil
}

// fakeAudit keeps what is recorded.
type fakeAudit struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (a *fakeAudit) Record(_ context.Context, e audit.Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, e)
	return nil
}

func (a *fakeAudit) actions(action string) []audit.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Entry
	for _, e := range a.entries {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// resolver answers from a function, counting lookups.
type resolver struct {
	calls  atomic.Int64
	answer func(host string, call int64) []netip.Addr
}

func (r *resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	n := r.calls.Add(1)
	addrs := r.answer(host, n)
	if addrs == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

// hosts is a resolver that answers the same addresses every time.
func hosts(m map[string]string) *resolver {
	return &resolver{answer: func(host string, _ int64) []netip.Addr {
		v, ok := m[host]
		if !ok {
			return nil
		}
		var out []netip.Addr
		for _, s := range splitComma(v) {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// world is a Service over the fakes, with two tenants.
type world struct {
	t        testing.TB
	svc      *Service
	store    *memStore
	audit    *fakeAudit
	logs     *syncBuffer
	a, b     string // tenant ids
	platform context.Context
}

func newWorld(t testing.TB, r Resolver, opts ...func(*Options)) *world {
	t.Helper()
	w := &world{t: t, store: newMemStore(), audit: &fakeAudit{}, logs: &syncBuffer{},
		a: nodus.NewID(), b: nodus.NewID(), platform: nodus.WithAllTenants(context.Background())}
	o := Options{Audit: w.audit, Resolver: r, Metrics: metrics.NewRegistry(),
		Logger: slog.New(slog.NewJSONHandler(w.logs, nil)), ConnectTimeout: 2 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	svc, err := NewService(w.store, o)
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc
	return w
}

func (w *world) setPolicy(tenantID string, mode Mode, rules ...RuleInput) {
	w.t.Helper()
	if _, err := w.svc.UpdatePolicy(nodus.WithTenant(context.Background(), tenantID), tenantID, mode, rules,
		audit.Entry{ActorKind: audit.ActorUser, ActorID: "admin-of-" + tenantID}); err != nil {
		w.t.Fatalf("set policy of %s: %v", tenantID, err)
	}
}

func (w *world) setPlatform(rules []RuleInput, exceptions ...ExceptionInput) {
	w.t.Helper()
	if _, err := w.svc.UpdatePlatform(w.platform, rules, exceptions,
		audit.Entry{ActorKind: audit.ActorUser, ActorID: "root"}); err != nil {
		w.t.Fatalf("set platform rules: %v", err)
	}
}

// get sends GET url with tenantID's client in ctx.
func (w *world) get(ctx context.Context, tenantID, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	resp, err := w.svc.Client(tenantID).Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

// deniedReason returns the reason of a refusal, or "" when err is not one.
func deniedReason(err error) Reason {
	var d *DeniedError
	if errors.As(err, &d) {
		return d.Reason
	}
	return ""
}

// trap is a listener that counts the connections it accepts: a test
// expects it to stay at zero.
type trap struct {
	ln   net.Listener
	hits atomic.Int64
}

func newTrap(t *testing.T, network, address string) *trap {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", address, err)
	}
	tr := &trap{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.hits.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tr
}

func (tr *trap) port() int { return tr.ln.Addr().(*net.TCPAddr).Port }

// upstream is a real loopback server whose requests the test reads.
type upstream struct {
	*httptest.Server
	port int
	hits atomic.Int64
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		if h != nil {
			h(rw, r)
			return
		}
		fmt.Fprint(rw, "ok")
	}))
	t.Cleanup(u.Close)
	u.port = u.Listener.Addr().(*net.TCPAddr).Port
	return u
}

func (u *upstream) url(host, path string) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(u.port)) + path
}

// loopbackException lets 127.0.0.1:port through the address checks.
func loopbackException(port int) ExceptionInput {
	return ExceptionInput{IP: "127.0.0.1", Port: port, Comment: "the test's upstream"}
}
