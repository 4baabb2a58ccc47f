package httpapi

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

// authFixture is a Server with a real identity service and vault over a
// fresh SQLite database holding one super_admin and, in tenant, one
// machine identity.
type authFixture struct {
	s            *Server
	secret, hash string // the super_admin's API token and its stored hash
	machineToken string // an access token of the machine identity, without limits
	tenant       string // the machine identity's tenant
}

// newAuthServer builds an authFixture.
func newAuthServer(tb testing.TB) *authFixture {
	tb.Helper()
	ctx := context.Background()
	db := storetest.OpenSQLite(tb)
	for _, set := range []string{store.SetAuth, store.SetMain, store.SetVault} {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	clock := nodus.SystemClock{}
	aud := audit.NewService(db, clock)
	ids := identity.NewService(db, identity.NewHasher(identity.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0),
		identity.NewThrottle(20, 100, 15*time.Minute), aud, clock)
	u, _, err := ids.Bootstrap(ctx, "root@example.test", "a long enough password")
	if err != nil {
		tb.Fatal(err)
	}
	k, secret, err := ids.CreateToken(nodus.WithAllTenants(ctx), u, "fuzz", "", 0, identity.Client{})
	if err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, keyring.KeySize)
	_, _ = rand.Read(key)
	ring, err := keyring.NewKeys(map[byte][]byte{1: key}, 0, "test")
	if err != nil {
		tb.Fatal(err)
	}
	v, err := vault.NewService(vault.Config{Store: db, Handles: db, Keyring: ring, Audit: aud})
	if err != nil {
		tb.Fatal(err)
	}
	if err := v.Unseal(ctx); err != nil {
		tb.Fatal(err)
	}
	tenant := nodus.NewID()
	m, machineSecret, err := v.CreateMachine(nodus.WithTenant(ctx, tenant), vault.System(), vault.MachineInput{Name: "fuzz"})
	if err != nil {
		tb.Fatal(err)
	}
	login, err := v.Login(ctx, m.ClientID, machineSecret.Reveal(), "192.0.2.1")
	if err != nil {
		tb.Fatal(err)
	}
	s := NewServer(Deps{
		Logger:   slog.New(slog.DiscardHandler),
		Metrics:  metrics.NewRegistry(),
		Ready:    func(context.Context) Readiness { return Readiness{Ready: true} },
		Identity: ids,
		Audit:    aud,
		Vault:    v,
	}, Config{})
	return &authFixture{s: s, secret: secret, hash: k.Hash, machineToken: login.Token.Reveal(), tenant: tenant}
}

// FuzzAuthorizationHeader sends arbitrary Authorization headers to an
// authenticated route: every one is a 401 with the error envelope, never a
// 500 and never a success, except the real token itself (SECURITY.md
// check 10). The seeds are the attacks the check names: the stored hash,
// a truncated key, injection strings. Run it longer with
// `make fuzz` (go test -fuzz=FuzzAuthorizationHeader ./internal/httpapi/).
func FuzzAuthorizationHeader(f *testing.F) {
	fx := newAuthServer(f)
	secret, hash, machine := fx.secret, fx.hash, fx.machineToken
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "Bearer  ", "bearer " + secret, "Bearer " + secret,
		"Bearer " + hash, hash, secret, "Bearer " + secret[:len(secret)-1], "Bearer " + secret[:12],
		"Bearer " + secret + "A", "Bearer " + secret + " x", "Bearer " + strings.ToUpper(secret),
		"Bearer nds_" + strings.Repeat("A", 43), "Bearer nds_" + strings.Repeat("=", 43),
		"Bearer ' OR '1'='1", "Bearer nds_' OR 1=1 --" + strings.Repeat("a", 22), "Bearer \x00", "Bearer %00",
		"Basic YWRtaW46cGFzc3dvcmQ=", "Token " + secret, "Bearer " + strings.Repeat("x", 10000),
		"Bearer " + secret + "\t", "Bearer\t" + secret, "Bearer " + secret + ", Bearer " + secret,
		// Machine tokens: the real one (valid on vault reads only), its
		// stored hash, cut, extended, case-changed, unknown, and junk
		// behind the prefix.
		"Bearer " + machine, "bearer " + machine, "Bearer " + vault.HashCredential(machine), "Bearer " + machine[:len(machine)-1],
		"Bearer " + machine + "A", "Bearer " + strings.ToUpper(machine), "Bearer ndm_", "Bearer ndm_" + strings.Repeat("A", 43),
		"Bearer ndm_" + strings.Repeat("=", 43), "Bearer ndm_' OR 1=1 --" + strings.Repeat("a", 22), "Bearer ndm_\x00",
		"Bearer ndm_" + strings.Repeat("x", 10000), "Bearer " + machine + ", Bearer " + machine, machine,
	} {
		f.Add(seed)
	}
	vaultRoute := "/api/v1/vault/environments?tenant_id=" + fx.tenant
	f.Fuzz(func(t *testing.T, header string) {
		scheme, cred, _ := strings.Cut(header, " ")
		bearer := strings.EqualFold(scheme, "Bearer")
		user := bearer && strings.TrimSpace(cred) == secret
		isMachine := bearer && strings.TrimSpace(cred) == machine
		for _, tc := range []struct {
			path  string
			valid bool
		}{{"/api/v1/me", user}, {vaultRoute, user || isMachine}} {
			r := httptest.NewRequest("GET", tc.path, nil)
			r.Header.Set("Authorization", header)
			w := httptest.NewRecorder()
			fx.s.ServeHTTP(w, r)
			switch {
			case tc.valid && w.Code != http.StatusOK:
				t.Fatalf("GET %s with a real token answered %d: %s", tc.path, w.Code, w.Body)
			case !tc.valid && w.Code != http.StatusUnauthorized:
				t.Fatalf("GET %s with Authorization %q answered %d, want 401: %s", tc.path, header, w.Code, w.Body)
			case !tc.valid && !strings.Contains(w.Body.String(), `"code":"unauthorized"`):
				t.Fatalf("GET %s with Authorization %q: body %s is not the error envelope", tc.path, header, w.Body)
			}
		}
	})
}

// TestMachineTokenOnlyOnVaultRoutes walks the route table with a machine
// identity's token: every route whose action is not vault.read,
// vault.reveal or vault.write answers 401 (the token is no credential
// there), and those that are never do.
func TestMachineTokenOnlyOnVaultRoutes(t *testing.T) {
	fx := newAuthServer(t)
	ts := serve(t, fx.s)
	n := 0
	for _, rt := range Routes() {
		if rt.Public {
			continue
		}
		path := strings.ReplaceAll(rt.Path, "{id}", nodus.NewID())
		req, err := http.NewRequest(rt.Method, ts.URL+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+fx.machineToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		allowed := slices.Contains(machineActions, rt.Action)
		switch {
		case allowed && res.StatusCode == http.StatusUnauthorized:
			t.Errorf("%s %s (%s) refused the machine token: %s", rt.Method, rt.Path, rt.Action, body)
		case !allowed && (res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"code":"unauthorized"`)):
			t.Errorf("%s %s (%s) with a machine token: %d %s, want 401", rt.Method, rt.Path, rt.Action, res.StatusCode, body)
		}
		if allowed {
			n++
		}
	}
	if n < 8 {
		t.Errorf("only %d routes accept machine tokens; the vault's read, reveal and write routes are missing", n)
	}
	// The token's tenant is the only one it reaches.
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/vault/environments?tenant_id="+nodus.NewID(), nil)
	req.Header.Set("Authorization", "Bearer "+fx.machineToken)
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("a machine token naming another tenant: %d, want 404", res.StatusCode)
	}
}

// TestPathConfusionNeverSkipsAuth sends an authenticated route's path in
// every disguise (doubled slashes, dot segments plain and escaped, case,
// trailing slash, encoded letters, odd Host headers) without credentials:
// each answer is a 401, a 404 or a redirect to the clean path, never the
// resource (SECURITY.md check 11). Redirects are what a client would
// follow, and following one lands on the 401.
func TestPathConfusionNeverSkipsAuth(t *testing.T) {
	ts := serve(t, newAuthServer(t).s)
	paths := []string{
		"/api/v1/users", "//api/v1/users", "/api//v1/users", "/api/v1/./users", "/api/v1/x/../users",
		"/%2e%2e/api/v1/users", "/api/v1/%2e%2e/v1/users", "/api/v1/users/", "/API/v1/users", "/api/v1/Users",
		"/api/v1/%75sers", "/api/v1/users%2f", "/api/v1/users;x", "/api/v1/users?x=/../health", "/api/v1/users#frag",
		"/health/../api/v1/users", "/api/v1/users/..", "/api/v1/me", "/api/v1/me/", "/api/v1/tenants/%2e%2e",
	}
	hosts := []string{"nodus.test", "localhost:80@evil.test", "127.0.0.1", "[::1]", "evil.test:99999", "NODUS.TEST."}
	for _, path := range paths {
		for _, host := range hosts {
			res, body := rawRequest(t, ts, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
			if path == "/api/v1/users" && host == "nodus.test" && res.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s (Host %s): %d, want 401", path, host, res.StatusCode)
			}
			switch res.StatusCode {
			case http.StatusUnauthorized, http.StatusNotFound, http.StatusBadRequest:
			case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
				loc := res.Header.Get("Location")
				if loc == "" || strings.Contains(loc, "..") || strings.HasPrefix(loc, "//") {
					t.Errorf("GET %s (Host %s): redirect to %q", path, host, loc)
				}
			default:
				t.Errorf("GET %s (Host %s) without credentials: %d %s", path, host, res.StatusCode, body)
			}
		}
	}
}

// TestClientAddress checks whose address throttling and the audit log see:
// the peer's, unless the peer is a trusted proxy, and then the first
// address from the right of X-Forwarded-For that is not a trusted proxy,
// so a client cannot choose its address by sending the header itself.
func TestClientAddress(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}}
	none := &Server{}
	tests := []struct {
		name, peer string
		xff        []string
		want       string
		server     *Server
	}{
		{"no proxies configured: the header is ignored", "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5", none},
		{"untrusted peer: the header is ignored", "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5", s},
		{"trusted peer, one hop", "10.0.0.2:80", []string{"198.51.100.1"}, "198.51.100.1", s},
		{"spoofed entries left of the real client are ignored", "10.0.0.2:80", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1", s},
		{"two trusted proxies", "10.0.0.2:80", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1", s},
		{"header split over lines", "10.0.0.2:80", []string{"1.1.1.1", "198.51.100.1"}, "198.51.100.1", s},
		{"all hops trusted: the leftmost", "10.0.0.2:80", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1", s},
		{"malformed hop stops at the last real address", "10.0.0.2:80", []string{"evil, 10.3.3.3"}, "10.3.3.3", s},
		{"no header from a trusted peer", "10.0.0.2:80", nil, "10.0.0.2", s},
		{"IPv6 proxy, IPv4-mapped client", "[fd00::1]:80", []string{"::ffff:198.51.100.9"}, "198.51.100.9", s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/me", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := tt.server.clientAddress(r); got != tt.want {
				t.Errorf("client address %q, want %q", got, tt.want)
			}
		})
	}
}
