package egress_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestForbiddenAddressesRefusedAtDial is SECURITY.md check 18: every
// denied range, and every spelling of loopback, is refused both by the
// client and by its dialer alone, while a trap listening on loopback
// counts the connections that got through: none. The tenant is in report
// mode, so no allow-list stands in the way and only the address checks
// can refuse.
func TestForbiddenAddressesRefusedAtDial(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testForbiddenAddressesRefusedAtDial(t, db) })
}

func testForbiddenAddressesRefusedAtDial(t *testing.T, db *store.DB) {
	trap4 := newTrap(t, "tcp", "127.0.0.1:0")
	port := trap4.port()
	var trap6 *trap
	if ln, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
		trap6 = &trap{ln: ln}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				trap6.hits.Add(1)
				c.Close()
			}
		}()
		t.Cleanup(func() { ln.Close() })
	}
	r := hosts(map[string]string{
		"localhost":         "127.0.0.1,::1",
		"metadata.internal": "169.254.169.254",
		"mixed.test":        "8.8.8.8,127.0.0.1",
		"mapped.test":       "::ffff:127.0.0.1",
		"nat64.test":        "64:ff9b::7f00:1",
		"zero.test":         "0.0.0.0",
		"ula.test":          "fd00:ec2::254",
		"public.test":       "8.8.8.8",
	})
	w := newWorld(t, db, r)
	w.setPolicy(w.a, egress.ModeReport)

	forbidden := []string{
		"127.0.0.1", "127.0.0.2", "127.255.255.254", "2130706433", "127.1", "127.0.1", "0177.0.0.1", "0x7f.1",
		"0x7f000001", "017700000001", "0x7F.0x0.0x0.0x1", "0177.1", "127.0.0.1.",
		"::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:7f00:1", "64:ff9b::7f00:1", "64:ff9b:1::7f00:1",
		"2002:7f00:1::", "2001:0:808:808::80ff:fffe", "::127.0.0.1",
		"0.0.0.0", "0", "0.0", "::",
		"localhost", "localhost.", "LOCALHOST", "mixed.test", "mapped.test", "nat64.test", "zero.test", "ula.test",
		"metadata.internal",
		"10.0.0.1", "10.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "2852039166", "0251.0376.0251.0376",
		"0xa9.0xfe.0xa9.0xfe", "fd00:ec2::254", "fe80::1", "fc00::1", "100.64.0.1", "224.0.0.1", "ff02::1",
		"255.255.255.255", "240.0.0.1", "192.0.2.1",
	}
	for _, host := range forbidden {
		address := net.JoinHostPort(host, strconv.Itoa(port))
		_, err := w.get(bg, w.a, "http://"+address+"/")
		if r := deniedReason(err); r == "" || r == egress.ReasonNotAllowed {
			t.Errorf("GET http://%s/: %v, want an address refusal", address, err)
		}
		// The dialer alone refuses it too: the check does not depend on
		// the request having been checked first.
		conn, err := w.svc.DialChecked(bg, w.a, "tcp", address)
		if conn != nil {
			conn.Close()
		}
		if r := deniedReason(err); r == "" || r == egress.ReasonNotAllowed {
			t.Errorf("dial %s: %v, want an address refusal", address, err)
		}
		conn, err = w.svc.Dial(bg, w.a, "tcp", address)
		if conn != nil {
			conn.Close()
		}
		if deniedReason(err) == "" {
			t.Errorf("Dial %s: %v, want a refusal", address, err)
		}
	}
	if n := trap4.hits.Load(); n != 0 {
		t.Errorf("the trap on 127.0.0.1 accepted %d connections", n)
	}
	if trap6 != nil && trap6.hits.Load() != 0 {
		t.Errorf("the trap on ::1 accepted %d connections", trap6.hits.Load())
	}
	if got := w.denied(egress.ReasonLoopback); got == 0 {
		t.Error("no loopback refusal counted")
	}

	// The trap does count what gets through: with a rule and an exception
	// for its address and port, the standard spelling reaches it and no
	// other does.
	w.setPlatform([]egress.RuleInput{{Host: "127.0.0.1", Port: port}}, loopbackException(port))
	_, _ = w.get(bg, w.a, fmt.Sprintf("http://127.0.0.1:%d/", port))
	if trap4.hits.Load() != 1 {
		t.Fatalf("with an exception the trap counted %d connections, want 1", trap4.hits.Load())
	}
	for _, host := range []string{"2130706433", "127.1", "0x7f.1", "localhost", "::ffff:127.0.0.1", "127.0.0.2"} {
		if _, err := w.get(bg, w.a, "http://"+net.JoinHostPort(host, strconv.Itoa(port))+"/"); deniedReason(err) == "" {
			t.Errorf("with an exception for 127.0.0.1, %s: %v, want a refusal", host, err)
		}
	}
	if trap4.hits.Load() != 1 {
		t.Errorf("the trap counted %d connections, want 1", trap4.hits.Load())
	}
}

// recordingConnect replaces the service's connect: it records each
// address dialed and connects to the upstream instead, so a test can use
// public addresses without reaching them.
type recordingConnect struct {
	mu     sync.Mutex
	dialed []netip.AddrPort
	to     string
}

func (c *recordingConnect) connect(ctx context.Context, network string, ap netip.AddrPort) (net.Conn, error) {
	c.mu.Lock()
	c.dialed = append(c.dialed, ap)
	c.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, c.to)
}

func (c *recordingConnect) addresses() []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]netip.AddrPort(nil), c.dialed...)
}

// TestDNSRebinding is SECURITY.md check 19: a resolver that answers a
// public address, then loopback. The name is resolved once per
// connection, the connection goes to the address that was checked, and
// the loopback answer is refused without a connection.
func TestDNSRebinding(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testDNSRebinding(t, db) })
}

func testDNSRebinding(t *testing.T, db *store.DB) {
	up := newUpstream(t, nil)
	trap := newTrap(t, "tcp", "127.0.0.1:0")
	public := netip.MustParseAddr("93.184.215.14")
	r := &resolver{answer: func(host string, call int64) []netip.Addr {
		if call == 1 {
			return []netip.Addr{public}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}}
	w := newWorld(t, db, r)
	rec := &recordingConnect{to: up.Listener.Addr().String()}
	w.svc.SetConnect(rec.connect)
	w.setPolicy(w.a, egress.ModeEnforce, egress.RuleInput{Host: "rebind.test", Port: trap.port()})

	target := fmt.Sprintf("http://rebind.test:%d/", trap.port())
	resp, err := w.get(bg, w.a, target)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	}
	want := netip.AddrPortFrom(public, uint16(trap.port()))
	if got := rec.addresses(); len(got) != 1 || got[0] != want {
		t.Fatalf("dialed %v, want exactly the checked %v", got, want)
	}
	if r.calls.Load() != 1 {
		t.Errorf("the name was resolved %d times for one connection", r.calls.Load())
	}
	// A new connection resolves again and gets loopback: refused, and
	// nothing is dialed.
	w.svc.Client(w.a).CloseIdleConnections()
	_, err = w.get(bg, w.a, target)
	if deniedReason(err) != egress.ReasonLoopback {
		t.Fatalf("after rebinding: %v, want a loopback refusal", err)
	}
	if got := rec.addresses(); len(got) != 1 {
		t.Errorf("dialed %v after the rebinding answer", got)
	}
	if trap.hits.Load() != 0 || up.hits.Load() != 1 {
		t.Errorf("trap %d, upstream %d requests; want 0 and 1", trap.hits.Load(), up.hits.Load())
	}

	// The real connect refuses to open a socket to anything but the
	// address it was given. (A second service over the same database, as
	// another replica would be.)
	w2 := newWorld(t, db, hosts(map[string]string{"up.test": "127.0.0.1"}))
	w2.setPlatform([]egress.RuleInput{{Host: "up.test", Port: up.port}}, loopbackException(up.port))
	if resp, err := w2.get(bg, w2.a, up.url("up.test", "/")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("through the real connect: %v", err)
	}
}

// TestRedirects is SECURITY.md check 20: every hop is checked again, to
// the addresses, the rules and the scheme, and the hops are bounded.
func TestRedirects(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testRedirects(t, db) })
}

func testRedirects(t *testing.T, db *store.DB) {
	trap := newTrap(t, "tcp", "127.0.0.1:0")
	var up *upstream
	up = newUpstream(t, func(rw http.ResponseWriter, r *http.Request) {
		to := map[string]string{
			"/to-loopback": fmt.Sprintf("http://127.0.0.1:%d/", trap.port()),
			"/to-spelled":  fmt.Sprintf("http://2130706433:%d/", trap.port()),
			"/to-metadata": "http://169.254.169.254/latest/meta-data/",
			"/to-other":    up.url("other.test", "/ok"),
			"/to-allowed":  up.url("api2.test", "/ok"),
			"/to-ftp":      "ftp://api.test/file",
			"/to-file":     "file:///etc/passwd",
			"/to-gopher":   "gopher://api.test:70/",
		}[r.URL.Path]
		if n, ok := strings.CutPrefix(r.URL.Path, "/hop/"); ok {
			i, _ := strconv.Atoi(n)
			to = fmt.Sprintf("/hop/%d", i+1)
		}
		if to != "" {
			http.Redirect(rw, r, to, http.StatusFound)
			return
		}
		fmt.Fprint(rw, "ok")
	})
	w := newWorld(t, db, hosts(map[string]string{"api.test": "127.0.0.1", "api2.test": "127.0.0.1", "other.test": "127.0.0.1"}))
	w.setPlatform(nil, loopbackException(up.port))
	w.setPolicy(w.a, egress.ModeEnforce, egress.RuleInput{Host: "api.test", Port: up.port}, egress.RuleInput{Host: "api2.test", Port: up.port})

	tests := []struct {
		path string
		want egress.Reason
	}{
		{"/to-loopback", egress.ReasonLoopback},
		{"/to-spelled", egress.ReasonLoopback},
		{"/to-metadata", egress.ReasonLinkLocal},
		{"/to-other", egress.ReasonNotAllowed},
		{"/to-ftp", egress.ReasonScheme},
		{"/to-file", egress.ReasonScheme},
		{"/to-gopher", egress.ReasonScheme},
		{"/hop/0", egress.ReasonRedirects},
		{"/to-allowed", ""},
	}
	for _, tt := range tests {
		before := up.hits.Load()
		resp, err := w.get(bg, w.a, up.url("api.test", tt.path))
		if got := deniedReason(err); got != tt.want {
			t.Errorf("%s: %v, want reason %q", tt.path, err, tt.want)
		}
		if tt.want == "" && (err != nil || resp.StatusCode != 200) {
			t.Errorf("%s: %v", tt.path, err)
		}
		hits := up.hits.Load() - before
		switch tt.path {
		case "/hop/0":
			if max := w.svc.MaxRedirects(); max < 1 || hits != int64(1+max) {
				t.Errorf("the redirect loop made %d requests, want %d", hits, 1+max)
			}
		case "/to-allowed":
			if hits != 2 {
				t.Errorf("%s: %d requests reached the upstream, want 2", tt.path, hits)
			}
		default:
			if hits != 1 {
				t.Errorf("%s: %d requests reached the upstream, want 1 (the redirect)", tt.path, hits)
			}
		}
	}
	if trap.hits.Load() != 0 {
		t.Errorf("the trap accepted %d connections", trap.hits.Load())
	}
	// The refused hops are audited by host and port, never by path.
	targets := map[string]bool{}
	for _, e := range w.actions("egress.denied") {
		targets[e.TargetID] = true
	}
	for _, want := range []string{fmt.Sprintf("127.0.0.1:%d", trap.port()), "169.254.169.254:80", "api.test",
		"api.test:70", fmt.Sprintf("other.test:%d", up.port), fmt.Sprintf("api.test:%d", up.port)} {
		if !targets[want] {
			t.Errorf("no egress.denied entry for %s in %v", want, targets)
		}
	}
}

// TestHostConfusionAndTenantIsolation is SECURITY.md check 21 through real
// requests: a rule for api.example.com lets nothing else through, and
// tenant B's rules never apply to tenant A, nor A's to B.
func TestHostConfusionAndTenantIsolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testHostConfusionAndTenantIsolation(t, db) })
}

func testHostConfusionAndTenantIsolation(t *testing.T, db *store.DB) {
	up := newUpstream(t, nil)
	names := []string{"api.example.com", "api.example.com.evil.test", "evilapi.example.com", "x.api.example.com",
		"b.example.com", "eu.b-corp.example"}
	m := map[string]string{}
	for _, n := range names {
		m[n] = "127.0.0.1"
	}
	w := newWorld(t, db, hosts(m))
	w.setPlatform(nil, loopbackException(up.port))
	w.setPolicy(w.a, egress.ModeEnforce, egress.RuleInput{Host: "api.example.com", Port: up.port})
	w.setPolicy(w.b, egress.ModeEnforce, egress.RuleInput{Host: "b.example.com", Port: up.port}, egress.RuleInput{Host: "*.b-corp.example", Port: up.port})

	tests := []struct {
		tenant, host string
		allowed      bool
	}{
		{w.a, "api.example.com", true},
		{w.a, "API.Example.com.", true},
		{w.a, "api.example.com.evil.test", false},
		{w.a, "evilapi.example.com", false},
		{w.a, "x.api.example.com", false},
		{w.a, "b.example.com", false},
		{w.a, "eu.b-corp.example", false},
		{w.b, "b.example.com", true},
		{w.b, "eu.b-corp.example", true},
		{w.b, "api.example.com", false},
	}
	allowed := 0
	for _, tt := range tests {
		resp, err := w.get(bg, tt.tenant, up.url(tt.host, "/"))
		switch {
		case tt.allowed && (err != nil || resp.StatusCode != 200):
			t.Errorf("tenant %s to %s: %v, want allowed", tt.tenant, tt.host, err)
		case !tt.allowed && deniedReason(err) != egress.ReasonNotAllowed:
			t.Errorf("tenant %s to %s: %v, want not_allowed", tt.tenant, tt.host, err)
		}
		if tt.allowed {
			allowed++
		}
	}
	if up.hits.Load() != int64(allowed) {
		t.Errorf("the upstream served %d requests, want %d", up.hits.Load(), allowed)
	}
	// B's refusals are B's: every refusal above is audited under the
	// tenant that asked.
	for _, e := range w.actions("egress.denied") {
		if e.TargetID == fmt.Sprintf("b.example.com:%d", up.port) && e.TenantID != w.a {
			t.Errorf("refusal of b.example.com recorded for tenant %s", e.TenantID)
		}
	}
	// A client of A used under B's scope is refused: a tenant's client
	// never serves another tenant's request.
	if _, err := w.get(nodus.WithTenant(bg, w.b), w.a, up.url("api.example.com", "/")); deniedReason(err) != egress.ReasonTenant {
		t.Errorf("A's client in B's scope: %v, want tenant_mismatch", err)
	}
}

// TestReportMode: a destination no rule allows goes out and is recorded;
// the address checks and credential binding still refuse.
func TestReportMode(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testReportMode(t, db) })
}

func testReportMode(t *testing.T, db *store.DB) {
	up := newUpstream(t, nil)
	trap := newTrap(t, "tcp", "127.0.0.1:0")
	// unlisted.test is a public address, which the connection reaches
	// through the test's upstream; listed.test the excepted loopback one.
	w := newWorld(t, db, hosts(map[string]string{"unlisted.test": "93.184.215.14", "listed.test": "127.0.0.1",
		"sneaky.test": "127.0.0.1"}))
	w.svc.SetConnect((&recordingConnect{to: up.Listener.Addr().String()}).connect)
	w.setPlatform([]egress.RuleInput{{Host: "listed.test", Port: up.port}}, loopbackException(up.port))
	w.setPolicy(w.a, egress.ModeReport)

	resp, err := w.get(bg, w.a, up.url("unlisted.test", "/v1?key=SECRET"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("report mode: %v, want the request through", err)
	}
	rep := w.actions("egress.reported")
	if len(rep) != 1 || rep[0].TenantID != w.a || rep[0].TargetType != "url" ||
		rep[0].TargetID != fmt.Sprintf("unlisted.test:%d", up.port) || rep[0].Changes["reason"].After != "not_allowed" {
		t.Fatalf("egress.reported entries = %+v", rep)
	}
	if w.reported(egress.ReasonNotAllowed) != 1 {
		t.Error("the report was not counted")
	}
	if !strings.Contains(w.logs.String(), `"msg":"egress reported"`) || strings.Contains(w.logs.String(), "SECRET") {
		t.Errorf("logs: %s", w.logs.String())
	}
	// Allowed by a rule: nothing to report.
	if _, err := w.get(bg, w.a, up.url("listed.test", "/")); err != nil {
		t.Fatal(err)
	}
	if len(w.actions("egress.reported")) != 1 {
		t.Error("a request a rule allows was reported")
	}
	// B enforces: the same destination is refused for B.
	if _, err := w.get(bg, w.b, up.url("unlisted.test", "/")); deniedReason(err) != egress.ReasonNotAllowed {
		t.Errorf("tenant B (enforce): %v, want not_allowed", err)
	}
	if _, err := w.get(bg, w.a, fmt.Sprintf("http://127.0.0.1:%d/", trap.port())); deniedReason(err) != egress.ReasonLoopback {
		t.Errorf("report mode to loopback: %v, want refused", err)
	}
	// The platform's exception holds for what a rule allows, not for what
	// report mode lets through: another name of the excepted address is
	// refused.
	if _, err := w.get(bg, w.a, up.url("sneaky.test", "/")); deniedReason(err) != egress.ReasonLoopback {
		t.Errorf("report mode to the excepted address under a name no rule allows: %v, want refused", err)
	}
	cred := egress.WithCredentialHosts(bg, "listed.test")
	if _, err := w.get(cred, w.a, up.url("unlisted.test", "/")); deniedReason(err) != egress.ReasonCredentialHost {
		t.Errorf("report mode with a bound credential: %v, want refused", err)
	}
	if trap.hits.Load() != 0 {
		t.Error("the trap was reached")
	}
}

// TestAddressException: an exception lets exactly its address and port
// through, for every tenant, and only with a rule that allows the
// destination.
func TestAddressException(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testAddressException(t, db) })
}

func testAddressException(t *testing.T, db *store.DB) {
	up := newUpstream(t, nil)
	trap := newTrap(t, "tcp", "127.0.0.1:0")
	w := newWorld(t, db, hosts(map[string]string{"localhost": "127.0.0.1,::1", "ollama.internal": "127.0.0.1",
		"evil.test": "127.0.0.1"}))
	w.setPlatform([]egress.RuleInput{
		{Host: "127.0.0.1", Port: up.port, Comment: "local Ollama"},
		{Host: "127.0.0.1", Port: trap.port()},
		{Host: "localhost", Port: up.port},
		{Host: "ollama.internal", Port: up.port},
	}, loopbackException(up.port))

	for _, tenant := range []string{w.a, w.b} {
		if resp, err := w.get(bg, tenant, up.url("127.0.0.1", "/api/tags")); err != nil || resp.StatusCode != 200 {
			t.Errorf("tenant %s to the excepted address: %v", tenant, err)
		}
		if resp, err := w.get(bg, tenant, up.url("ollama.internal", "/")); err != nil || resp.StatusCode != 200 {
			t.Errorf("tenant %s to a name of the excepted address: %v", tenant, err)
		}
	}
	refused := []string{
		fmt.Sprintf("http://127.0.0.1:%d/", trap.port()), // a rule, but no exception for this port
		up.url("127.0.0.2", "/"),                         // another loopback address
		up.url("::1", "/"),
		up.url("2130706433", "/"), // the excepted address, misspelled
		up.url("127.1", "/"),
		up.url("::ffff:127.0.0.1", "/"),
		up.url("localhost", "/"), // also resolves to ::1, which has no exception
	}
	for _, u := range refused {
		if _, err := w.get(bg, w.a, u); deniedReason(err) == "" {
			t.Errorf("%s: %v, want refused", u, err)
		}
	}
	// Without a platform rule the exception allows nothing: the address
	// is refused as any loopback address is.
	w.setPlatform(nil, loopbackException(up.port))
	if _, err := w.get(bg, w.a, up.url("127.0.0.1", "/")); deniedReason(err) != egress.ReasonLoopback {
		t.Errorf("exception without a rule: %v, want loopback", err)
	}
	if trap.hits.Load() != 0 || up.hits.Load() != 4 {
		t.Errorf("trap %d, upstream %d; want 0 and 4", trap.hits.Load(), up.hits.Load())
	}

	// The exception holds only for what a rule allows: report mode lets a
	// tenant with no rule for it (A) reach nothing of the excepted address,
	// over HTTP or a raw connection, under any name, even once a request a
	// rule allows has left a connection to it in the pool.
	w.setPlatform([]egress.RuleInput{{Host: "ollama.internal", Port: up.port, PathPrefix: "/v1"}}, loopbackException(up.port))
	w.setPolicy(w.a, egress.ModeReport)
	hits := up.hits.Load()
	if resp, err := w.get(bg, w.a, up.url("ollama.internal", "/v1/models")); err != nil || resp.StatusCode != 200 {
		t.Errorf("report mode, the platform-allowed path: %v", err)
	}
	for _, u := range []string{up.url("ollama.internal", "/admin"), up.url("127.0.0.1", "/v1/models"),
		up.url("127.0.0.1", "/admin"), up.url("evil.test", "/v1/models")} {
		if _, err := w.get(bg, w.a, u); deniedReason(err) != egress.ReasonLoopback {
			t.Errorf("report mode, %s: %v, want a loopback refusal", u, err)
		}
	}
	conn, err := w.svc.Dial(bg, w.a, "tcp", fmt.Sprintf("127.0.0.1:%d", up.port))
	if conn != nil {
		conn.Close()
	}
	if deniedReason(err) != egress.ReasonLoopback {
		t.Errorf("report mode, a raw connection to the excepted address: %v, want a loopback refusal", err)
	}
	// A rule of the tenant's own for a name of the address is a rule: the
	// exception holds for it (operations.md: an exception opens the
	// address to the rules of every tenant).
	w.setPolicy(w.b, egress.ModeEnforce, egress.RuleInput{Host: "evil.test", Port: up.port})
	if resp, err := w.get(bg, w.b, up.url("evil.test", "/v1/models")); err != nil || resp.StatusCode != 200 {
		t.Errorf("a tenant rule for a name of the excepted address: %v", err)
	}
	if got := up.hits.Load() - hits; got != 2 {
		t.Errorf("the excepted upstream answered %d requests, want the 2 a platform rule allows", got)
	}
}

// TestCredentialBinding: a request carrying a credential goes only to the
// hosts it is bound to, redirects included.
func TestCredentialBinding(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testCredentialBinding(t, db) })
}

func testCredentialBinding(t *testing.T, db *store.DB) {
	var up *upstream
	var mu sync.Mutex
	var auth []string
	up = newUpstream(t, func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Host+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/to-other" {
			http.Redirect(rw, r, up.url("other.test", "/"), http.StatusTemporaryRedirect)
			return
		}
		fmt.Fprint(rw, "ok")
	})
	w := newWorld(t, db, hosts(map[string]string{"api.test": "127.0.0.1", "other.test": "127.0.0.1"}))
	w.setPlatform([]egress.RuleInput{{Host: "api.test", Port: up.port}, {Host: "other.test", Port: up.port}}, loopbackException(up.port))

	// send carries the credential on every context but bg, all of which
	// bind it to hosts.
	send := func(ctx context.Context, url string) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if ctx != bg {
			req.Header.Set("Authorization", "Bearer sk-secret")
		}
		resp, err := w.svc.Client(w.a).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	ctx := egress.WithCredentialHosts(bg, "API.test.")
	if err := send(ctx, up.url("api.test", "/")); err != nil {
		t.Fatalf("to the bound host: %v", err)
	}
	if err := send(ctx, up.url("other.test", "/")); deniedReason(err) != egress.ReasonCredentialHost {
		t.Errorf("to another allowed host: %v, want credential_host", err)
	}
	if err := send(ctx, up.url("api.test", "/to-other")); deniedReason(err) != egress.ReasonCredentialHost {
		t.Errorf("redirected to another host: %v, want credential_host", err)
	}
	if err := send(egress.WithCredentialHosts(egress.WithCredentialHosts(bg, "api.test", "other.test"), "other.test"),
		up.url("api.test", "/")); deniedReason(err) != egress.ReasonCredentialHost {
		t.Errorf("narrowed binding: %v, want credential_host", err)
	}
	if err := send(egress.WithCredentialHosts(bg), up.url("api.test", "/")); deniedReason(err) != egress.ReasonCredentialHost {
		t.Errorf("bound to no host: %v, want credential_host", err)
	}
	// Wildcards as secret handles write them: names below the domain only.
	if err := send(egress.WithCredentialHosts(bg, "*.TEST"), up.url("api.test", "/")); err != nil {
		t.Errorf("bound to *.test, to api.test: %v", err)
	}
	if err := send(egress.WithCredentialHosts(bg, "*.api.test"), up.url("api.test", "/")); deniedReason(err) != egress.ReasonCredentialHost {
		t.Errorf("bound to *.api.test, to api.test itself: %v, want credential_host", err)
	}
	if err := send(egress.WithCredentialHosts(egress.WithCredentialHosts(bg, "*.test"), "other.test"), up.url("api.test", "/")); deniedReason(err) != egress.ReasonCredentialHost {
		t.Errorf("*.test narrowed to other.test, to api.test: %v, want credential_host", err)
	}
	if err := send(egress.WithCredentialHosts(bg, "*.127.0.0.1"), up.url("api.test", "/")); deniedReason(err) != egress.ReasonCredentialHost {
		t.Errorf("a wildcard over an address allows nothing: %v", err)
	}
	if err := send(bg, up.url("other.test", "/")); err != nil {
		t.Errorf("without a binding: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	sent := 0
	for _, a := range auth {
		if strings.Contains(a, "sk-secret") {
			sent++
			if !strings.HasPrefix(a, "api.test:") {
				t.Errorf("the credential reached another host than api.test: %q", a)
			}
		}
	}
	// api.test /, api.test /to-other and api.test under *.test carried it;
	// other.test without a binding did not.
	if len(auth) != 4 || sent != 3 {
		t.Errorf("upstream saw %q", auth)
	}
}

// TestRefusalIsRecorded: a refusal is logged without path, query or user
// info, counted by reason, and audited with host:port only.
func TestRefusalIsRecorded(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testRefusalIsRecorded(t, db) })
}

func testRefusalIsRecorded(t *testing.T, db *store.DB) {
	w := newWorld(t, db, hosts(nil))
	_, err := w.get(bg, w.a, "http://user:s3cret@10.0.0.1:8080/v1/keys/sk-path?api_key=SECRET")
	if deniedReason(err) != egress.ReasonPrivate || nodus.ErrorCode(err) != nodus.EFORBIDDEN {
		t.Fatalf("err = %v", err)
	}
	var d *egress.DeniedError
	if !errors.As(err, &d) || d.Target != "10.0.0.1:8080" {
		t.Errorf("egress.DeniedError = %+v", d)
	}
	logs := w.logs.String()
	if !strings.Contains(logs, `"msg":"egress denied"`) || !strings.Contains(logs, `"target":"10.0.0.1:8080"`) ||
		!strings.Contains(logs, `"reason":"private"`) || !strings.Contains(logs, `"tenant_id":"`+w.a) {
		t.Errorf("log: %s", logs)
	}
	for _, secret := range []string{"s3cret", "SECRET", "api_key", "sk-path", "/v1"} {
		if strings.Contains(logs, secret) || strings.Contains(nodus.ErrorMessage(err), secret) {
			t.Errorf("%q leaked into the log or the error: %s / %s", secret, logs, nodus.ErrorMessage(err))
		}
	}
	entries := w.actions("egress.denied")
	if len(entries) != 1 {
		t.Fatalf("egress.denied entries: %+v", entries)
	}
	e := entries[0]
	if e.TenantID != w.a || e.TargetType != "url" || e.TargetID != "10.0.0.1:8080" || e.ActorKind != "system" ||
		e.Changes["reason"].After != "private" || e.Changes["mode"].After != "enforce" {
		t.Errorf("audit entry = %+v", e)
	}
	if w.denied(egress.ReasonPrivate) != 1 {
		t.Error("not counted")
	}
}

func TestDial(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testDial(t, db) })
}

func testDial(t *testing.T, db *store.DB) {
	up := newUpstream(t, nil)
	w := newWorld(t, db, hosts(map[string]string{"mail.test": "127.0.0.1", "web.test": "127.0.0.1"}))
	w.setPlatform([]egress.RuleInput{{Host: "mail.test", Port: up.port}, {Host: "web.test"}, {Host: "mail.test", Port: 25, PathPrefix: "/x"}},
		loopbackException(up.port), loopbackException(25))
	conn, err := w.svc.Dial(bg, w.a, "tcp", net.JoinHostPort("mail.test", strconv.Itoa(up.port)))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: mail.test\r\n\r\n")
	b, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.Contains(string(b), "200 OK") {
		t.Errorf("answer: %q", b)
	}
	// A port-0 rule means an HTTP default, and a path rule is HTTP only.
	for _, address := range []string{"web.test:80", "web.test:443", "mail.test:25"} {
		if _, err := w.svc.Dial(bg, w.a, "tcp", address); deniedReason(err) != egress.ReasonNotAllowed {
			t.Errorf("Dial %s: %v, want not_allowed", address, err)
		}
	}
	if _, err := w.svc.Dial(bg, w.a, "udp", net.JoinHostPort("mail.test", strconv.Itoa(up.port))); err == nil {
		t.Error("Dial udp succeeded")
	}
}

// TestTLSNameVerified: the connection goes to the checked address, but
// TLS verifies the URL's name, not the address.
func TestTLSNameVerified(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { fmt.Fprint(rw, "ok") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	w := newWorld(t, storetest.OpenSQLite(t), hosts(map[string]string{"example.com": "127.0.0.1", "other.test": "127.0.0.1"}),
		func(o *egress.Options) { o.TLSConfig = &tls.Config{RootCAs: roots} })
	w.setPlatform([]egress.RuleInput{{Host: "example.com", Port: port}, {Host: "other.test", Port: port}}, loopbackException(port))
	if resp, err := w.get(bg, w.a, fmt.Sprintf("https://example.com:%d/", port)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("https to a name the certificate holds: %v", err)
	}
	_, err := w.get(bg, w.a, fmt.Sprintf("https://other.test:%d/", port))
	var certErr *tls.CertificateVerificationError
	if !errors.As(err, &certErr) {
		t.Errorf("https to a name the certificate lacks: %v, want a verification error", err)
	}
}

func TestTimeoutsAndBodyLimit(t *testing.T) {
	up := newUpstream(t, func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second)
		}
		fmt.Fprint(rw, strings.Repeat("x", 100))
	})
	w := newWorld(t, storetest.OpenSQLite(t), hosts(map[string]string{"api.test": "127.0.0.1"}),
		func(o *egress.Options) { o.ResponseHeaderTimeout = 100 * time.Millisecond })
	w.setPlatform([]egress.RuleInput{{Host: "api.test", Port: up.port}}, loopbackException(up.port))

	if _, err := w.get(bg, w.a, up.url("api.test", "/slow")); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("slow headers: %v, want a timeout", err)
	}
	fetch := func() *http.Response {
		resp, err := w.svc.Client(w.a).Get(up.url("api.test", "/"))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if _, err := egress.ReadBody(fetch(), 99); nodus.ErrorCode(err) != nodus.ETOOLARGE {
		t.Errorf("egress.ReadBody over the limit: %v", err)
	}
	if b, err := egress.ReadBody(fetch(), 100); err != nil || len(b) != 100 {
		t.Errorf("egress.ReadBody at the limit: %d, %v", len(b), err)
	}
	resp := fetch()
	egress.LimitBody(resp, 10)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if nodus.ErrorCode(err) != nodus.ETOOLARGE || len(b) != 10 {
		t.Errorf("egress.LimitBody: %d bytes, %v", len(b), err)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestPolicyCache: decisions read the cache; a write here clears it at
// once, and a write by another replica shows once the cache expires, 30
// seconds (the default CacheTTL) after the load.
func TestPolicyCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) { testPolicyCache(t, db) })
}

func testPolicyCache(t *testing.T, db *store.DB) {
	up := newUpstream(t, nil)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	w := newWorld(t, db, hosts(map[string]string{"api.test": "127.0.0.1", "new.test": "127.0.0.1", "plat.test": "127.0.0.1"}),
		func(o *egress.Options) { o.Clock = clock })
	w.setPlatform(nil, loopbackException(up.port))
	w.setPolicy(w.a, egress.ModeEnforce, egress.RuleInput{Host: "api.test", Port: up.port})
	inA := nodus.WithTenant(bg, w.a)
	allowed := func(host string) error {
		t.Helper()
		_, err := w.get(bg, w.a, up.url(host, "/"))
		return err
	}

	for range 3 {
		if err := allowed("api.test"); err != nil {
			t.Fatal(err)
		}
	}
	loads := w.store.loads.Load()
	if err := allowed("api.test"); err != nil {
		t.Fatal(err)
	}
	if w.store.loads.Load() != loads {
		t.Error("a cached policy was loaded again")
	}
	// A write through the service applies to the next request.
	w.setPolicy(w.a, egress.ModeEnforce, egress.RuleInput{Host: "new.test", Port: up.port})
	if err := allowed("new.test"); err != nil {
		t.Errorf("after the update: %v", err)
	}
	if w.store.loads.Load() == loads {
		t.Error("the update did not clear the cached policy")
	}
	if err := allowed("api.test"); deniedReason(err) != egress.ReasonNotAllowed {
		t.Errorf("a removed rule still applies: %v", err)
	}
	// So does a write of the platform's rules.
	w.setPlatform([]egress.RuleInput{{Host: "plat.test", Port: up.port}}, loopbackException(up.port))
	if err := allowed("plat.test"); err != nil {
		t.Errorf("after the platform update: %v", err)
	}
	w.setPlatform(nil, loopbackException(up.port))
	if err := allowed("plat.test"); deniedReason(err) != egress.ReasonNotAllowed {
		t.Errorf("a removed platform rule still applies: %v", err)
	}

	// A write by another replica (another service over the same database)
	// shows once the cached policy expires.
	replica, err := egress.NewService(w.db, egress.Options{Audit: w.audit, Clock: clock, Resolver: hosts(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replica.UpdatePolicy(inA, w.a, egress.ModeEnforce,
		[]egress.RuleInput{{Host: "new.test", Port: up.port}, {Host: "api.test", Port: up.port}},
		audit.Entry{ActorKind: audit.ActorUser, ActorID: "admin-elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if err := allowed("api.test"); deniedReason(err) != egress.ReasonNotAllowed {
		t.Errorf("right after the other replica's write: %v, want the cached policy", err)
	}
	loads = w.store.loads.Load()
	clock.add(30*time.Second - time.Nanosecond)
	if err := allowed("api.test"); deniedReason(err) != egress.ReasonNotAllowed {
		t.Errorf("just before 30 seconds: %v, want the cached policy", err)
	}
	if w.store.loads.Load() != loads {
		t.Error("the policy was loaded again before it expired")
	}
	clock.add(time.Nanosecond)
	if err := allowed("api.test"); err != nil {
		t.Errorf("after 30 seconds: %v", err)
	}

	// Purging the tenant clears its cached policy at once.
	if err := w.svc.PurgeTenant(inA, w.a); err != nil {
		t.Fatal(err)
	}
	if err := allowed("api.test"); deniedReason(err) != egress.ReasonNotAllowed {
		t.Errorf("after the purge: %v, want not_allowed", err)
	}
	if v, err := w.svc.Policy(inA, w.a); err != nil || len(v.Rules) != 0 || !v.UpdatedAt.IsZero() {
		t.Errorf("the purged policy: %+v, %v", v, err)
	}
}
