package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// newAuthServer returns a Server with a real identity service over a
// fresh SQLite database holding one super_admin, and that user's API
// token secret and its stored hash.
func newAuthServer(tb testing.TB) (s *Server, secret, hash string) {
	tb.Helper()
	ctx := context.Background()
	db := storetest.OpenSQLite(tb)
	for _, set := range []string{store.SetAuth, store.SetMain} {
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
	s = NewServer(Deps{
		Logger:   slog.New(slog.DiscardHandler),
		Metrics:  metrics.NewRegistry(),
		Ready:    func(context.Context) Readiness { return Readiness{Ready: true} },
		Identity: ids,
		Audit:    aud,
	}, Config{})
	return s, secret, k.Hash
}

// FuzzAuthorizationHeader sends arbitrary Authorization headers to an
// authenticated route: every one is a 401 with the error envelope, never a
// 500 and never a success, except the real token itself (SECURITY.md
// check 10). The seeds are the attacks the check names: the stored hash,
// a truncated key, injection strings. Run it longer with
// `make fuzz` (go test -fuzz=FuzzAuthorizationHeader ./internal/httpapi/).
func FuzzAuthorizationHeader(f *testing.F) {
	s, secret, hash := newAuthServer(f)
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "Bearer  ", "bearer " + secret, "Bearer " + secret,
		"Bearer " + hash, hash, secret, "Bearer " + secret[:len(secret)-1], "Bearer " + secret[:12],
		"Bearer " + secret + "A", "Bearer " + secret + " x", "Bearer " + strings.ToUpper(secret),
		"Bearer nds_" + strings.Repeat("A", 43), "Bearer nds_" + strings.Repeat("=", 43),
		"Bearer ' OR '1'='1", "Bearer nds_' OR 1=1 --" + strings.Repeat("a", 22), "Bearer \x00", "Bearer %00",
		"Basic YWRtaW46cGFzc3dvcmQ=", "Token " + secret, "Bearer " + strings.Repeat("x", 10000),
		"Bearer " + secret + "\t", "Bearer\t" + secret, "Bearer " + secret + ", Bearer " + secret,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/api/v1/me", nil)
		r.Header.Set("Authorization", header)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		scheme, cred, _ := strings.Cut(header, " ")
		valid := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(cred) == secret
		switch {
		case valid && w.Code != http.StatusOK:
			t.Fatalf("the real token answered %d: %s", w.Code, w.Body)
		case !valid && w.Code != http.StatusUnauthorized:
			t.Fatalf("Authorization %q answered %d, want 401: %s", header, w.Code, w.Body)
		case !valid && !strings.Contains(w.Body.String(), `"code":"unauthorized"`):
			t.Fatalf("Authorization %q: body %s is not the error envelope", header, w.Body)
		}
	})
}

// TestPathConfusionNeverSkipsAuth sends an authenticated route's path in
// every disguise (doubled slashes, dot segments plain and escaped, case,
// trailing slash, encoded letters, odd Host headers) without credentials:
// each answer is a 401, a 404 or a redirect to the clean path, never the
// resource (SECURITY.md check 11). Redirects are what a client would
// follow, and following one lands on the 401.
func TestPathConfusionNeverSkipsAuth(t *testing.T) {
	s, _, _ := newAuthServer(t)
	ts := serve(t, s)
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
