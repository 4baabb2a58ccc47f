package egress_test

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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// These tests run the service over the real store (*store.DB) and the real
// audit log, in a database migrated with the main set. They live in
// package egress_test because internal/store imports egress; the few
// internals they need are lent by export_test.go. A test whose outcome
// rests on what the store keeps (policies, exceptions, tenant scopes, audit
// entries, cache loads) runs on SQLite and PostgreSQL through
// storetest.Run; one that only needs some rules in place (TLS, timeouts,
// the benchmarks) runs on SQLite.

var bg = context.Background()

// migrate brings db to the latest version of the main set, which holds the
// egress tables and the audit log.
func migrate(t testing.TB, db *store.DB) {
	t.Helper()
	m, err := store.NewMigrator(store.SetMain, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(bg); err != nil {
		t.Fatal(err)
	}
}

// countingStore is the real store with a count of the policy loads, so a
// test sees when the service reads its cache rather than the database.
// Every call goes to the database.
type countingStore struct {
	*store.DB
	loads atomic.Int64 // FindEgressPolicy and FindEgressPlatform calls
}

func (c *countingStore) FindEgressPolicy(ctx context.Context, tenantID string) (*egress.Policy, error) {
	c.loads.Add(1)
	return c.DB.FindEgressPolicy(ctx, tenantID)
}

func (c *countingStore) FindEgressPlatform(ctx context.Context) (*egress.Platform, error) {
	c.loads.Add(1)
	return c.DB.FindEgressPlatform(ctx)
}

// resolver answers from a function, counting lookups. It stands for DNS,
// which lies outside Nodus.
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

// hosts is a resolver that answers the same addresses every time: m maps a
// name to its addresses, separated by commas.
func hosts(m map[string]string) *resolver {
	return &resolver{answer: func(host string, _ int64) []netip.Addr {
		v, ok := m[host]
		if !ok {
			return nil
		}
		var out []netip.Addr
		for _, s := range strings.Split(v, ",") {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}}
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

// world is a Service over a real database, with two tenants.
type world struct {
	t        testing.TB
	db       *store.DB
	store    *countingStore
	svc      *egress.Service
	audit    *audit.Service
	metrics  *metrics.Registry
	logs     *syncBuffer
	a, b     string // tenant ids
	platform context.Context
}

// newWorld migrates db and builds a Service over it. Worlds may share a
// database, as replicas do.
func newWorld(t testing.TB, db *store.DB, r egress.Resolver, opts ...func(*egress.Options)) *world {
	t.Helper()
	migrate(t, db)
	w := &world{t: t, db: db, store: &countingStore{DB: db}, audit: audit.NewService(db, nil),
		metrics: metrics.NewRegistry(), logs: &syncBuffer{},
		a: nodus.NewID(), b: nodus.NewID(), platform: nodus.WithAllTenants(bg)}
	o := egress.Options{Audit: w.audit, Resolver: r, Metrics: w.metrics,
		Logger: slog.New(slog.NewJSONHandler(w.logs, nil)), ConnectTimeout: 2 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	svc, err := egress.NewService(w.store, o)
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc
	return w
}

func (w *world) setPolicy(tenantID string, mode egress.Mode, rules ...egress.RuleInput) {
	w.t.Helper()
	if _, err := w.svc.UpdatePolicy(nodus.WithTenant(bg, tenantID), tenantID, mode, rules,
		audit.Entry{ActorKind: audit.ActorUser, ActorID: "admin-of-" + tenantID}); err != nil {
		w.t.Fatalf("set policy of %s: %v", tenantID, err)
	}
}

func (w *world) setPlatform(rules []egress.RuleInput, exceptions ...egress.ExceptionInput) {
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

// actions returns the audit log's entries of one action, oldest first, as
// the all-tenants scope lists them.
func (w *world) actions(action string) []audit.Entry {
	w.t.Helper()
	var out []audit.Entry
	f := audit.Filter{Action: action, Limit: audit.MaxLimit}
	for {
		page, next, err := w.audit.List(w.platform, f)
		if err != nil {
			w.t.Fatalf("list %s entries: %v", action, err)
		}
		out = append(out, page...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	slices.Reverse(out)
	return out
}

// counter reads a series of a counter vector labelled by reason from the
// registry's exposition, as a scrape would; 0 when it is absent.
func (w *world) counter(name string, reason egress.Reason) float64 {
	w.t.Helper()
	var b bytes.Buffer
	if err := w.metrics.WriteText(&b); err != nil {
		w.t.Fatal(err)
	}
	prefix := fmt.Sprintf("%s{reason=%q} ", name, string(reason))
	for line := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				w.t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

func (w *world) denied(r egress.Reason) float64   { return w.counter("nodus_egress_denied_total", r) }
func (w *world) reported(r egress.Reason) float64 { return w.counter("nodus_egress_reported_total", r) }

// changeList reads an audit change's list of rules or exceptions, which
// comes back from the database as a JSON array.
func changeList(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// deniedReason returns the reason of a refusal, or "" when err is not one.
func deniedReason(err error) egress.Reason {
	var d *egress.DeniedError
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
func loopbackException(port int) egress.ExceptionInput {
	return egress.ExceptionInput{IP: "127.0.0.1", Port: port, Comment: "the test's upstream"}
}
