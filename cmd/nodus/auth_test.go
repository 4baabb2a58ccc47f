package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

type reqOpt func(*http.Request)

func withCookie(c *http.Cookie) reqOpt { return func(r *http.Request) { r.AddCookie(c) } }
func withHeader(k, v string) reqOpt    { return func(r *http.Request) { r.Header.Set(k, v) } }
func withBearer(token string) reqOpt   { return withHeader("Authorization", "Bearer "+token) }
func jsonBody(v any) io.Reader         { b, _ := json.Marshal(v); return strings.NewReader(string(b)) }
func call(t *testing.T, method, url string, body io.Reader, opts ...reqOpt) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestSessionAndTokenAuth signs in over HTTP and checks the session
// cookie's attributes, /me, CSRF on logout, logout, and bearer tokens,
// including junk bearers that must answer 401, never 500 (SECURITY.md
// checks 8-10).
func TestSessionAndTokenAuth(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "correct horse battery"
		in := startNodus(t, vars)
		login := in.base + "/api/v1/auth/login"

		resp, body := call(t, "POST", login, jsonBody(map[string]string{"login": "admin", "password": "wrong password"}))
		if resp.StatusCode != 401 || !strings.Contains(string(body), `"code":"unauthorized"`) {
			t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
		}
		resp, body = call(t, "POST", login, jsonBody(map[string]string{"login": "admin", "password": "correct horse battery"}))
		if resp.StatusCode != 200 {
			t.Fatalf("login: %d %s", resp.StatusCode, body)
		}
		var me struct {
			User      struct{ ID, Role, Username string }
			CSRFToken string `json:"csrf_token"`
		}
		if err := json.Unmarshal(body, &me); err != nil || me.User.Role != "super_admin" || me.CSRFToken == "" {
			t.Fatalf("login answer %s (%v)", body, err)
		}
		if strings.Contains(string(body), "argon2") || strings.Contains(string(body), "password") {
			t.Fatalf("login answer leaks the password hash: %s", body)
		}
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "nodus_session" {
				cookie = c
			}
		}
		if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || len(cookie.Value) < 43 {
			t.Fatalf("session cookie %+v: want HttpOnly; Secure; SameSite=Lax; Path=/ and 256 random bits", cookie)
		}
		session := &http.Cookie{Name: cookie.Name, Value: cookie.Value}

		if resp, body := call(t, "GET", in.base+"/api/v1/me", nil, withCookie(session)); resp.StatusCode != 200 || !strings.Contains(string(body), me.User.ID) {
			t.Fatalf("/me with the session: %d %s", resp.StatusCode, body)
		}
		if resp, _ := call(t, "GET", in.base+"/api/v1/me", nil); resp.StatusCode != 401 {
			t.Fatalf("/me signed out: %d", resp.StatusCode)
		}

		// CSRF: a cookie-authenticated state change needs the token and
		// a same-origin request.
		logout := in.base + "/api/v1/auth/logout"
		if resp, _ := call(t, "POST", logout, nil, withCookie(session)); resp.StatusCode != 403 {
			t.Fatalf("logout without the CSRF token: %d, want 403", resp.StatusCode)
		}
		if resp, _ := call(t, "POST", logout, nil, withCookie(session), withHeader("X-CSRF-Token", me.CSRFToken),
			withHeader("Origin", "https://evil.example")); resp.StatusCode != 403 {
			t.Fatalf("logout from another origin: %d, want 403", resp.StatusCode)
		}
		if resp, _ := call(t, "POST", logout, nil, withCookie(session), withHeader("X-CSRF-Token", me.CSRFToken)); resp.StatusCode != 204 {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if resp, _ := call(t, "GET", in.base+"/api/v1/me", nil, withCookie(session)); resp.StatusCode != 401 {
			t.Fatalf("/me after logout: %d, want 401", resp.StatusCode)
		}

		// Bearer tokens: a real one works (and needs no CSRF token); junk,
		// the stored hash, a truncated token and injection strings are 401.
		secret, hash := identity.NewSecret(identity.TokenPrefix)
		ctx := context.Background()
		dbs, _ := instanceDatabases(t, vars)
		tok := &identity.Token{ID: nodus.NewID(), UserID: me.User.ID, Name: "test", Prefix: secret[:12], Hash: hash,
			CreatedAt: nodus.SystemClock{}.Now()}
		if err := dbs.DB(store.SetAuth).CreateToken(nodus.WithAllTenants(ctx), tok); err != nil {
			t.Fatal(err)
		}
		if resp, body := call(t, "GET", in.base+"/api/v1/me", nil, withBearer(secret)); resp.StatusCode != 200 || !strings.Contains(string(body), me.User.ID) {
			t.Fatalf("/me with a bearer token: %d %s", resp.StatusCode, body)
		}
		if resp, _ := call(t, "POST", logout, nil, withBearer(secret)); resp.StatusCode != 204 {
			t.Fatalf("state change with a bearer token and no CSRF token: %d, want 204", resp.StatusCode)
		}
		for _, junk := range []string{hash, secret[:len(secret)-1], secret + "x", "nds_' OR '1'='1", "nds_" + strings.Repeat("A", 5000),
			"null", "Bearer", "nds_\tx", "nds_%00%00"} {
			resp, body := call(t, "GET", in.base+"/api/v1/me", nil, withBearer(junk))
			if resp.StatusCode != 401 || !strings.Contains(string(body), `"code":"unauthorized"`) {
				t.Errorf("bearer %.20q: %d %s, want 401", junk, resp.StatusCode, body)
			}
		}
		if resp, _ := call(t, "GET", in.base+"/api/v1/me", nil, withHeader("Authorization", "Basic YWRtaW46eA==")); resp.StatusCode != 401 {
			t.Errorf("Basic auth: %d, want 401", resp.StatusCode)
		}
		if strings.Contains(in.logs.String(), secret) || strings.Contains(in.logs.String(), cookie.Value) ||
			strings.Contains(in.logs.String(), "correct horse") {
			t.Error("a token, session id or password appears in the log")
		}
	})
}

// TestTokenAPI mints a personal token through the API, uses it, lists it
// (without its secret) and revokes it, after which it is refused at once.
func TestTokenAPI(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "correct horse battery"
		in := startNodus(t, vars)
		resp, body := call(t, "POST", in.base+"/api/v1/auth/login", jsonBody(map[string]string{"login": "admin", "password": "correct horse battery"}))
		if resp.StatusCode != 200 {
			t.Fatalf("login: %d %s", resp.StatusCode, body)
		}
		var me struct {
			CSRFToken string `json:"csrf_token"`
		}
		_ = json.Unmarshal(body, &me)
		session := withCookie(&http.Cookie{Name: "nodus_session", Value: resp.Cookies()[0].Value})
		csrf := withHeader("X-CSRF-Token", me.CSRFToken)
		tokens := in.base + "/api/v1/tokens"

		if resp, body := call(t, "POST", tokens, jsonBody(map[string]any{"name": ""}), session, csrf); resp.StatusCode != 400 ||
			!strings.Contains(string(body), `"name"`) {
			t.Fatalf("token without a name: %d %s", resp.StatusCode, body)
		}
		if resp, _ := call(t, "POST", tokens, jsonBody(map[string]any{"name": "ci"}), session); resp.StatusCode != 403 {
			t.Fatalf("minting with the cookie but no CSRF token: %d, want 403", resp.StatusCode)
		}
		resp, body = call(t, "POST", tokens, jsonBody(map[string]any{"name": "ci", "expires_in_days": 30}), session, csrf)
		if resp.StatusCode != 201 {
			t.Fatalf("mint: %d %s", resp.StatusCode, body)
		}
		var minted struct {
			Token struct {
				ID, Prefix string
				ExpiresAt  *string `json:"expires_at"`
			}
			Secret string
		}
		if err := json.Unmarshal(body, &minted); err != nil || !strings.HasPrefix(minted.Secret, "nds_") ||
			!strings.HasPrefix(minted.Secret, minted.Token.Prefix) || minted.Token.ExpiresAt == nil {
			t.Fatalf("minted %s (%v)", body, err)
		}
		bearer := withBearer(minted.Secret)
		if resp, _ := call(t, "GET", in.base+"/api/v1/me", nil, bearer); resp.StatusCode != 200 {
			t.Fatalf("/me with the new token: %d", resp.StatusCode)
		}
		resp, body = call(t, "GET", tokens, nil, bearer)
		if resp.StatusCode != 200 || !strings.Contains(string(body), minted.Token.ID) || strings.Contains(string(body), minted.Secret[len("nds_"):]) {
			t.Fatalf("list: %d %s (must not hold the secret)", resp.StatusCode, body)
		}
		if resp, _ := call(t, "DELETE", tokens+"/"+nodus.NewID(), nil, bearer); resp.StatusCode != 404 {
			t.Fatalf("revoking an unknown token: %d, want 404", resp.StatusCode)
		}
		if resp, _ := call(t, "DELETE", tokens+"/not-an-id", nil, bearer); resp.StatusCode != 404 {
			t.Fatalf("revoking a malformed id: %d, want 404", resp.StatusCode)
		}
		if resp, _ := call(t, "DELETE", tokens+"/"+minted.Token.ID, nil, bearer); resp.StatusCode != 204 {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		if resp, _ := call(t, "GET", in.base+"/api/v1/me", nil, bearer); resp.StatusCode != 401 {
			t.Fatalf("/me with a revoked token: %d, want 401", resp.StatusCode)
		}
	})
}

// TestPasswordChangeEndsOtherSessions signs in twice, changes the password
// from one session and checks that the other session ended while this one
// lives, and that the new password signs in (SECURITY.md check 8).
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "correct horse battery"
		in := startNodus(t, vars)
		signIn := func(password string) (reqOpt, reqOpt, int) {
			resp, body := call(t, "POST", in.base+"/api/v1/auth/login", jsonBody(map[string]string{"login": "admin", "password": password}))
			if resp.StatusCode != 200 {
				return nil, nil, resp.StatusCode
			}
			var me struct {
				CSRFToken string `json:"csrf_token"`
			}
			_ = json.Unmarshal(body, &me)
			return withCookie(&http.Cookie{Name: "nodus_session", Value: resp.Cookies()[0].Value}), withHeader("X-CSRF-Token", me.CSRFToken), 200
		}
		first, csrf1, _ := signIn("correct horse battery")
		second, _, _ := signIn("correct horse battery")
		change := in.base + "/api/v1/me/password"

		if resp, body := call(t, "POST", change, jsonBody(map[string]string{"current_password": "nope", "new_password": "a new long password"}), first, csrf1); resp.StatusCode != 400 ||
			!strings.Contains(string(body), "current_password") {
			t.Fatalf("wrong current password: %d %s", resp.StatusCode, body)
		}
		if resp, body := call(t, "POST", change, jsonBody(map[string]string{"current_password": "correct horse battery", "new_password": "short"}), first, csrf1); resp.StatusCode != 400 ||
			!strings.Contains(string(body), "new_password") {
			t.Fatalf("too-short new password: %d %s", resp.StatusCode, body)
		}
		if resp, body := call(t, "POST", change, jsonBody(map[string]string{"current_password": "correct horse battery", "new_password": "a new long password"}), first, csrf1); resp.StatusCode != 204 {
			t.Fatalf("change: %d %s", resp.StatusCode, body)
		}
		if resp, _ := call(t, "GET", in.base+"/api/v1/me", nil, second); resp.StatusCode != 401 {
			t.Errorf("the other session after a password change: %d, want 401", resp.StatusCode)
		}
		if resp, _ := call(t, "GET", in.base+"/api/v1/me", nil, first); resp.StatusCode != 200 {
			t.Errorf("the session that changed the password: %d, want 200", resp.StatusCode)
		}
		if _, _, code := signIn("correct horse battery"); code != 401 {
			t.Errorf("old password: %d, want 401", code)
		}
		if _, _, code := signIn("a new long password"); code != 200 {
			t.Errorf("new password: %d, want 200", code)
		}
	})
}

// TestAuditAPI lists the audit log over the API with filters and paging.
func TestAuditAPI(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "correct horse battery"
		in := startNodus(t, vars)
		for range 3 {
			call(t, "POST", in.base+"/api/v1/auth/login", jsonBody(map[string]string{"login": "admin", "password": "wrong password"}))
		}
		resp, _ := call(t, "POST", in.base+"/api/v1/auth/login", jsonBody(map[string]string{"login": "admin", "password": "correct horse battery"}))
		session := withCookie(&http.Cookie{Name: "nodus_session", Value: resp.Cookies()[0].Value})

		var page struct {
			Entries []struct {
				Seq    int64
				Action string
			}
			NextCursor string `json:"next_cursor"`
		}
		resp, body := call(t, "GET", in.base+"/api/v1/audit?action=auth.login_failed&limit=2", nil, session)
		if resp.StatusCode != 200 || json.Unmarshal(body, &page) != nil || len(page.Entries) != 2 || page.NextCursor == "" {
			t.Fatalf("first page: %d %s", resp.StatusCode, body)
		}
		first := slices.Clone(page.Entries)
		resp, body = call(t, "GET", in.base+"/api/v1/audit?action=auth.login_failed&limit=2&cursor="+page.NextCursor, nil, session)
		page.NextCursor = ""
		if resp.StatusCode != 200 || json.Unmarshal(body, &page) != nil || len(page.Entries) != 1 || page.NextCursor != "" {
			t.Fatalf("second page: %d %s", resp.StatusCode, body)
		}
		if !(first[0].Seq > first[1].Seq && first[1].Seq > page.Entries[0].Seq) {
			t.Fatalf("pages not newest first without overlap: %v then %v", first, page.Entries)
		}
		for _, bad := range []string{"since=yesterday", "limit=-1", "cursor=garbage"} {
			if resp, _ := call(t, "GET", in.base+"/api/v1/audit?"+bad, nil, session); resp.StatusCode != 400 {
				t.Errorf("audit?%s: %d, want 400", bad, resp.StatusCode)
			}
		}
		if resp, _ := call(t, "GET", in.base+"/api/v1/audit", nil); resp.StatusCode != 401 {
			t.Errorf("audit signed out: %d, want 401", resp.StatusCode)
		}
	})
}
