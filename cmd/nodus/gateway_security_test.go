package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/httpapi"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// This file holds the gateway's whole-server tests of SECURITY.md checks
// 32 and 33: `nodus serve` with a fake upstream reached through the vault
// and egress, as an operator would set it up over the API.

// Canaries: distinctive values that must never show up where they do not
// belong.
const (
	canaryAdminPassword = "canary-admin-PASSWORD-4d1f8e2b"
	canaryOrgPassword   = "canary-org-PASSWORD-93b7c0aa"
	canaryProviderKey   = "sk-canary-PROVIDER-KEY-5e6a9d3c7b21f804"
)

// gwWorld is a running Nodus with a tenant whose org_admin configured a
// gateway deployment on the fake upstream.
type gwWorld struct {
	in       *instance
	vars     map[string]string
	fake     *gatewaytest.Upstream
	admin    *client
	orgAdmin *client
	key      string // a virtual key of the org_admin
	keyID    string
	handle   string // the vault handle of the provider key
	// canaries are the secrets of the scenario, by name.
	canaries map[string]string
	// seen is every answer a caller got that must hold no secret.
	mu   sync.Mutex
	seen []string
}

// gwSignIn signs in with a password and mints an API token, like signIn,
// and returns the session cookie as well: both are canaries.
func gwSignIn(t *testing.T, base, login, password string) (*client, string) {
	t.Helper()
	resp, body := call(t, "POST", base+"/api/v1/auth/login", jsonBody(map[string]string{"login": login, "password": password}))
	if resp.StatusCode != 200 {
		t.Fatalf("sign in as %s: %d %s", login, resp.StatusCode, body)
	}
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := json.Unmarshal(body, &me); err != nil {
		t.Fatal(err)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == httpapi.SessionCookie {
			cookie = ck
		}
	}
	if cookie == nil || len(cookie.Value) < 16 {
		t.Fatalf("sign in as %s: no session cookie", login)
	}
	c := signIn(t, base, login, password)
	return c, cookie.Value
}

// record keeps an answer for the canary scan.
func (w *gwWorld) record(resp *http.Response, body []byte) {
	h, _ := json.Marshal(resp.Header)
	w.mu.Lock()
	w.seen = append(w.seen, fmt.Sprintf("%s %s -> %d %s %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, h, body))
	w.mu.Unlock()
}

// do calls the API as c and records the answer.
func (w *gwWorld) do(t *testing.T, c *client, method, path string, body any, want int, into any) []byte {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = jsonBody(body)
	}
	resp, b := call(t, method, c.base+path, r, withBearer(c.token))
	w.record(resp, b)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return b
}

// chat posts a chat completion with a virtual key and records the answer.
func (w *gwWorld) chat(t *testing.T, key, model string, stream bool, reqID string) (int, http.Header, []byte) {
	t.Helper()
	body := map[string]any{"model": model, "stream": stream, "max_tokens": 50,
		"messages": []map[string]any{{"role": "user", "content": "Say hello"}}}
	resp, b := call(t, "POST", w.in.base+"/v1/chat/completions", jsonBody(body), withBearer(key), withHeader("X-Request-Id", reqID))
	w.record(resp, b)
	return resp.StatusCode, resp.Header, b
}

// newGatewayWorld starts Nodus and sets up, over the API: a tenant and its
// org_admin, the platform's egress exception for the fake, the provider
// key in the vault behind a handle, a deployment and a virtual key.
func newGatewayWorld(t *testing.T, databaseURL string, script gatewaytest.Script) *gwWorld {
	t.Helper()
	return newGatewayWorldVars(t, databaseURL, script, nil)
}

// newGatewayWorldVars is newGatewayWorld with extra environment for nodus.
func newGatewayWorldVars(t *testing.T, databaseURL string, script gatewaytest.Script, extra map[string]string) *gwWorld {
	t.Helper()
	w := &gwWorld{vars: nodusEnv(t, databaseURL), canaries: map[string]string{
		"admin password": canaryAdminPassword, "org_admin password": canaryOrgPassword, "provider key": canaryProviderKey}}
	maps.Copy(w.vars, extra)
	w.vars["NODUS_ADMIN_PASSWORD"] = canaryAdminPassword
	w.vars["NODUS_LOG_LEVEL"] = "debug"
	script.APIKey = canaryProviderKey
	w.fake = gatewaytest.NewUpstream(script)
	t.Cleanup(w.fake.Close)
	w.in = startNodus(t, w.vars)

	var cookie string
	w.admin, cookie = gwSignIn(t, w.in.base, "admin", canaryAdminPassword)
	w.canaries["admin session cookie"], w.canaries["admin API token"] = cookie, w.admin.token
	var tenant struct{ Tenant struct{ ID string } }
	w.do(t, w.admin, "POST", "/api/v1/tenants", map[string]any{"name": "Tenant G", "max_users": 10}, 201, &tenant)
	w.do(t, w.admin, "POST", "/api/v1/users", map[string]any{"email": "g-admin@example.test", "username": "g-admin",
		"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": canaryOrgPassword}, 201, nil)
	w.orgAdmin, cookie = gwSignIn(t, w.in.base, "g-admin", canaryOrgPassword)
	w.canaries["org_admin session cookie"], w.canaries["org_admin API token"] = cookie, w.orgAdmin.token

	u, _ := url.Parse(w.fake.URL)
	port := 0
	fmt.Sscan(u.Port(), &port)
	w.do(t, w.admin, "PUT", "/api/v1/egress/platform", map[string]any{
		"rules":              []map[string]any{{"host": "127.0.0.1", "port": port, "comment": "the fake upstream"}},
		"address_exceptions": []map[string]any{{"ip": "127.0.0.1", "port": port, "comment": "the fake upstream"}}}, 200, nil)
	w.do(t, w.orgAdmin, "PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/llm",
		"key": "OPENAI_API_KEY", "value": canaryProviderKey}, 200, nil)
	var handle struct{ Handle struct{ ID string } }
	w.do(t, w.orgAdmin, "POST", "/api/v1/vault/handles", map[string]any{"environment": "prod", "path": "/llm",
		"key": "OPENAI_API_KEY", "allowed_hosts": []string{"127.0.0.1"}, "purpose": "gateway.provider_key"}, 201, &handle)
	w.handle = handle.Handle.ID
	w.do(t, w.orgAdmin, "POST", "/api/v1/gateway/deployments", map[string]any{"model_name": "fake", "provider": "openai",
		"upstream_model": "gpt-4o", "base_url": w.fake.URL + "/v1", "api_key_handle": handle.Handle.ID, "timeout_seconds": 5}, 201, nil)
	// The error scenarios have a deployment of their own: the cooldown
	// their failures cause must not stop the others.
	w.do(t, w.orgAdmin, "POST", "/api/v1/gateway/deployments", map[string]any{"model_name": "fake-errors", "provider": "openai",
		"upstream_model": "gpt-4o", "base_url": w.fake.URL + "/v1", "api_key_handle": handle.Handle.ID, "timeout_seconds": 5}, 201, nil)
	w.key, w.keyID = w.createKey(t, map[string]any{"name": "canary"}, "virtual key")
	return w
}

// createKey creates a virtual key; its creation answer is the one place
// its secret may appear, so that answer is not scanned.
func (w *gwWorld) createKey(t *testing.T, in map[string]any, canary string) (secret, id string) {
	t.Helper()
	status, b := w.orgAdmin.do("POST", "/api/v1/gateway/keys", in)
	if status != 201 {
		t.Fatalf("create key: %d %s", status, b)
	}
	var key struct{ Key struct{ ID, Key string } }
	if err := json.Unmarshal(b, &key); err != nil || key.Key.Key == "" {
		t.Fatalf("create key: %s", b)
	}
	w.canaries[canary] = key.Key.Key
	return key.Key.Key, key.Key.ID
}

// scan fails the test for every canary found in what.
func (w *gwWorld) scan(t *testing.T, where, what string) {
	t.Helper()
	for name, canary := range w.canaries {
		if i := strings.Index(what, canary); i >= 0 {
			lo, hi := max(i-200, 0), min(i+len(canary)+80, len(what))
			t.Errorf("the %s appears in %s: …%s…", name, where, what[lo:hi])
		}
	}
}

// TestGatewayServeCanariesAndDrain runs a full `nodus serve` on SQLite and
// PostgreSQL through a scenario of gateway successes and failures — upstream
// 401 and 500 answers that quote the provider key back, a wrong virtual
// key, a blocked key, an exhausted budget — then stops it while a stream
// is in flight.
//
// Check 33: no canary (the passwords, the session cookies, the API tokens,
// the provider key stored in the vault, the virtual keys) appears in any
// log line (debug level), response header or body, audit entry, spend row
// or metric. Check 32: the graceful shutdown lets the stream finish, and
// its spend row is in the database afterwards.
func TestGatewayServeCanariesAndDrain(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{})
		broke, _ := w.createKey(t, map[string]any{"name": "no budget", "max_budget_micros": 1}, "virtual key without budget")
		blocked, blockedID := w.createKey(t, map[string]any{"name": "blocked"}, "blocked virtual key")
		w.do(t, w.orgAdmin, "PATCH", "/api/v1/gateway/keys/"+blockedID, map[string]any{"blocked": true}, 200, nil)

		expect := func(what string, status, want int, body []byte) {
			t.Helper()
			if status != want {
				t.Errorf("%s: %d %s, want %d", what, status, body, want)
			}
		}
		status, _, b := w.chat(t, w.key, "fake", false, "canary-ok")
		expect("success", status, 200, b)
		if !strings.Contains(string(b), gatewaytest.DefaultText) {
			t.Fatalf("the fake's answer did not come through: %s", b)
		}
		status, _, b = w.chat(t, w.key, "fake", true, "canary-stream")
		expect("stream", status, 200, b)
		w.fake.SetScript(gatewaytest.Script{APIKey: canaryProviderKey, Failures: []gatewaytest.Failure{
			{Status: 401, Message: "Incorrect API key provided: ", EchoHeader: "Authorization"}}})
		status, _, b = w.chat(t, w.key, "fake-errors", false, "canary-401")
		expect("upstream 401", status, http.StatusBadGateway, b)
		fail := gatewaytest.Failure{Status: 500, Message: "upstream failure for ", EchoHeader: "Authorization"}
		w.fake.SetScript(gatewaytest.Script{APIKey: canaryProviderKey, Failures: []gatewaytest.Failure{fail, fail, fail}})
		status, _, b = w.chat(t, w.key, "fake-errors", false, "canary-500")
		expect("upstream 500", status, http.StatusBadGateway, b)
		w.fake.SetScript(gatewaytest.Script{APIKey: canaryProviderKey})
		status, _, b = w.chat(t, w.key[:len(w.key)-4]+"AAAA", "fake", false, "canary-badkey")
		expect("wrong virtual key", status, 401, b)
		status, _, b = w.chat(t, broke, "fake", false, "canary-budget")
		expect("budget exhausted", status, 429, b)
		status, _, b = w.chat(t, blocked, "fake", false, "canary-blocked")
		expect("blocked key", status, 401, b)
		if req, ok := w.fake.LastRequest(); !ok || req.Header.Get("Authorization") != "Bearer "+canaryProviderKey {
			t.Fatal("the fake never received the provider key from the vault; the scan would prove nothing")
		}

		// Check 32: stop Nodus once a slow stream has sent its first chunk.
		w.fake.SetScript(gatewaytest.Script{APIKey: canaryProviderKey, Chunks: 8, ChunkInterval: 100 * time.Millisecond})
		req, _ := http.NewRequest("POST", w.in.base+"/v1/chat/completions", jsonBody(map[string]any{"model": "fake", "stream": true,
			"messages": []map[string]any{{"role": "user", "content": "Say hello"}}}))
		req.Header.Set("Authorization", "Bearer "+w.key)
		req.Header.Set("X-Request-Id", "drain-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(resp.Body)
		var stream strings.Builder
		for !strings.Contains(stream.String(), `"content":"`) || !strings.Contains(stream.String(), "\n\n") {
			line, err := rd.ReadString('\n')
			stream.WriteString(line)
			if err != nil {
				t.Fatalf("stream ended before its first chunk: %v\n%s", err, stream.String())
			}
		}
		stopped := make(chan error, 1)
		stopAt := time.Now()
		go func() { stopped <- w.in.stop(t) }()
		rest, err := io.ReadAll(rd)
		resp.Body.Close()
		stream.Write(rest)
		if err != nil || resp.StatusCode != 200 || !strings.HasSuffix(stream.String(), "data: [DONE]\n\n") {
			t.Fatalf("the stream in flight at shutdown: %d, %v\n%s", resp.StatusCode, err, stream.String())
		}
		var text strings.Builder
		for _, line := range strings.Split(stream.String(), "\n") {
			var ev struct {
				Choices []struct{ Delta struct{ Content string } }
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok && json.Unmarshal([]byte(d), &ev) == nil {
				for _, c := range ev.Choices {
					text.WriteString(c.Delta.Content)
				}
			}
		}
		if text.String() != gatewaytest.DefaultText {
			t.Errorf("the stream in flight at shutdown delivered %q, want the whole answer", text.String())
		}
		if err := <-stopped; err != nil {
			t.Fatalf("graceful shutdown: %v", err)
		}
		if took := time.Since(stopAt); took < 300*time.Millisecond {
			t.Errorf("nodus stopped %v after the signal: it cannot have waited for the stream", took)
		}

		// Restart: the spend rows are in the database, the drained
		// stream's included, and so are the audit entries.
		firstRun := w.in.logs.String()
		w.in = startNodus(t, w.vars)
		w.admin.base, w.orgAdmin.base = w.in.base, w.in.base
		var spend struct {
			Spend []struct {
				ClientRequestID  string `json:"client_request_id"`
				Status           string
				CompletionTokens int64 `json:"completion_tokens"`
			}
		}
		w.do(t, w.orgAdmin, "GET", "/api/v1/spend?limit=500", nil, 200, &spend)
		byID := map[string]string{} // by the X-Request-Id the calls were sent with
		for _, s := range spend.Spend {
			byID[s.ClientRequestID] = s.Status
			if s.ClientRequestID == "drain-stream" && s.CompletionTokens == 0 {
				t.Errorf("the drained stream's spend row bills no completion tokens: %+v", s)
			}
		}
		for id, want := range map[string]string{"drain-stream": "success", "canary-ok": "success", "canary-stream": "success",
			"canary-401": "error", "canary-500": "error"} {
			if byID[id] != want {
				t.Errorf("spend row of %s after shutdown: %q, want %q (rows: %v)", id, byID[id], want, byID)
			}
		}
		w.do(t, w.admin, "GET", "/api/v1/audit?limit=500", nil, 200, nil)
		w.do(t, w.orgAdmin, "GET", "/api/v1/gateway/keys", nil, 200, nil)
		mresp, mbody := call(t, "GET", w.in.base+"/metrics", nil)
		w.record(mresp, mbody)
		if err := w.in.stop(t); err != nil {
			t.Fatal(err)
		}

		w.mu.Lock()
		for _, s := range w.seen {
			w.scan(t, "an answer: "+s[:min(len(s), 60)], s)
		}
		w.mu.Unlock()
		if !strings.Contains(firstRun, "/v1/chat/completions") || !strings.Contains(firstRun, "stopped") {
			t.Fatalf("the log holds no model calls to scan:\n%.3000s", firstRun)
		}
		w.scan(t, "the log of the first run", firstRun)
		w.scan(t, "the log of the second run", w.in.logs.String())
	})
}

// gatewayChildEnv makes the test binary run `nodus serve` as the child of
// TestGatewayServeSurvivesSIGKILL, with the variables JSON-encoded in it.
const gatewayChildEnv = "NODUS_TEST_GATEWAY_SERVE_CHILD"

// TestGatewayServeChild is not a test: it is `nodus serve` in a process of
// its own, run by TestGatewayServeSurvivesSIGKILL, which kills it. Without
// its variable it returns at once.
func TestGatewayServeChild(t *testing.T) {
	raw := os.Getenv(gatewayChildEnv)
	if raw == "" {
		return
	}
	var vars map[string]string
	if err := json.Unmarshal([]byte(raw), &vars); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	err := run(context.Background(), []string{"nodus", "serve", "--addr", "127.0.0.1:0", "--log-format", "json"},
		env(vars), strings.NewReader(""), os.Stdout, os.Stderr)
	fmt.Fprintln(os.Stderr, "serve returned:", err)
	os.Exit(4)
}

// TestGatewayServeSurvivesSIGKILL kills a `nodus serve` that is creating
// virtual keys and answering chat completions as fast as it can, then
// reopens its databases (SECURITY.md check 32).
//
// What "acknowledged" means here: a management write (a key's creation)
// is acknowledged by its 201, which Nodus sends only after the write's
// transaction has committed — each of those must be present after the
// kill. A spend row is not acknowledged to anyone: the 200 of a model call
// is sent before its row is written, and rows reach the database in
// batches every 200 ms, so the last batch before a SIGKILL may be lost;
// the test counts them but does not require them. On SQLite every
// database file must pass PRAGMA integrity_check; on both, the databases
// must open and migrate, and Nodus must serve again.
func TestGatewayServeSurvivesSIGKILL(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = canaryAdminPassword
		raw, _ := json.Marshal(vars)
		cmd := exec.Command(os.Args[0], "-test.run=^TestGatewayServeChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), gatewayChildEnv+"="+string(raw))
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		t.Cleanup(func() {
			if !killed {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		addr := make(chan string, 1)
		var childLog syncBuffer
		go func() {
			sc := bufio.NewScanner(stderr)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				childLog.Write(append(sc.Bytes(), '\n'))
				var line struct{ Msg, Addr string }
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
					addr <- line.Addr
				}
			}
		}()
		var base string
		select {
		case base = <-addr:
		case <-time.After(30 * time.Second):
			t.Fatalf("the child did not listen within 30s:\n%s", childLog.String())
		}

		admin := signIn(t, base, "admin", canaryAdminPassword)
		var tenant struct{ Tenant struct{ ID string } }
		admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Tenant K", "max_users": 10}, 201, &tenant)
		admin.must("POST", "/api/v1/users", map[string]any{"email": "k-admin@example.test", "username": "k-admin",
			"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": canaryOrgPassword}, 201, nil)
		orgAdmin := signIn(t, base, "k-admin", canaryOrgPassword)
		var first struct{ Key struct{ ID, Key string } }
		orgAdmin.must("POST", "/api/v1/gateway/keys", map[string]any{"name": "caller"}, 201, &first)

		// Writers run until the kill; they record only what was answered.
		var (
			mu       sync.Mutex
			ackedKey = []string{first.Key.ID}
			answered atomic.Int64
			wg       sync.WaitGroup
		)
		stop := make(chan struct{})
		hc := &http.Client{Timeout: 10 * time.Second}
		post := func(path, token string, body any) (int, []byte) {
			req, _ := http.NewRequest("POST", base+path, jsonBody(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := hc.Do(req)
			if err != nil {
				return 0, nil
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return 0, nil
			}
			return resp.StatusCode, b
		}
		for i := range 2 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					status, b := post("/api/v1/gateway/keys", orgAdmin.token, map[string]any{"name": fmt.Sprintf("k%d-%d", i, n)})
					var key struct{ Key struct{ ID string } }
					if status == 201 && json.Unmarshal(b, &key) == nil && key.Key.ID != "" {
						mu.Lock()
						ackedKey = append(ackedKey, key.Key.ID)
						mu.Unlock()
					}
				}
			}()
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					status, _ := post("/v1/chat/completions", first.Key.Key, map[string]any{"model": "nodus/extractive",
						"messages": []map[string]any{{"role": "system", "content": "[1] Refunds take 14 days."},
							{"role": "user", "content": "How long do refunds take?"}}})
					if status == 200 {
						answered.Add(1)
					}
				}
			}()
		}
		// At least 800ms of load: several spend batches (every 200ms) have
		// committed before the kill, and more are on their way.
		minUntil, deadline := time.Now().Add(800*time.Millisecond), time.Now().Add(20*time.Second)
		for {
			mu.Lock()
			n := len(ackedKey)
			mu.Unlock()
			if n >= 40 && answered.Load() >= 40 && time.Now().After(minUntil) || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-write
			t.Fatal(err)
		}
		killed = true
		_ = cmd.Wait()
		close(stop)
		wg.Wait()
		mu.Lock()
		acked := slices.Clone(ackedKey)
		mu.Unlock()
		if len(acked) < 10 || answered.Load() < 10 {
			t.Fatalf("only %d keys and %d calls acknowledged before the kill:\n%s", len(acked), answered.Load(), childLog.String())
		}

		ctx := context.Background()
		if !strings.HasPrefix(databaseURL, "postgres") {
			files, _ := filepath.Glob(filepath.Join(vars["NODUS_DATA_DIR"], "*.db"))
			if len(files) < 2 {
				t.Fatalf("database files after the kill: %v", files)
			}
			for _, f := range files {
				db, err := store.Open(ctx, storetest.Config("sqlite:"+f))
				if err != nil {
					t.Fatalf("open %s after SIGKILL: %v", f, err)
				}
				var check string
				err = db.Read(ctx, func(tx *store.Tx) error { return tx.QueryRow(ctx, "PRAGMA integrity_check").Scan(&check) })
				db.Close()
				if err != nil || check != "ok" {
					t.Fatalf("integrity_check of %s after SIGKILL: %q, %v", filepath.Base(f), check, err)
				}
			}
		}
		var out strings.Builder
		if err := run(ctx, []string{"nodus", "migrate", "up"}, env(vars), nil, &out, io.Discard); err != nil {
			t.Fatalf("migrate up after SIGKILL: %v\n%s", err, out.String())
		}

		in := startNodus(t, vars)
		orgAdmin.base = in.base
		present := map[string]bool{}
		cursor := ""
		for {
			var page struct {
				Keys       []struct{ ID string }
				NextCursor string `json:"next_cursor"`
			}
			orgAdmin.must("GET", "/api/v1/gateway/keys?limit=100&cursor="+url.QueryEscape(cursor), nil, 200, &page)
			for _, k := range page.Keys {
				present[k.ID] = true
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		missing := 0
		for _, id := range acked {
			if !present[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%d of %d acknowledged key creations lost after SIGKILL", missing, len(acked))
		}
		var spend struct{ Spend []struct{ Status string } }
		orgAdmin.must("GET", "/api/v1/spend?limit=1000", nil, 200, &spend)
		// The caller key still works after the restart.
		caller := &client{t: t, base: in.base, token: first.Key.Key}
		caller.must("POST", "/v1/chat/completions", map[string]any{"model": "nodus/extractive",
			"messages": []map[string]any{{"role": "user", "content": "hello"}}}, 200, nil)
		// Batches committed long before the kill are on disk.
		if len(spend.Spend) == 0 {
			t.Errorf("no spend row survived %d answered calls over 800ms of load", answered.Load())
		}
		t.Logf("after SIGKILL: %d of %d acknowledged keys present; %d spend rows (one page) of %d answered calls (not acknowledged, may trail)",
			len(acked)-missing, len(acked), len(spend.Spend), answered.Load())
	})
}
