package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodus-os/nodus/internal/procstat"
)

// child is a nodus serve process started by the bench on loopback with a
// fresh SQLite data directory.
type child struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:port
	logs string // file the child's stderr goes to
	done chan error
}

// moduleRoot is the directory of the go.mod the go command sees from the
// working directory, so `go run ./bench` and `go test ./bench` both build
// ./cmd/nodus of the same module.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the nodus module: run the bench from the repository")
	}
	return filepath.Dir(mod), nil
}

// buildNodusIn builds cmd/nodus of the module into dir.
func buildNodusIn(dir string, stderr io.Writer) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nodus")
	build := exec.Command("go", "build", "-o", bin, "./cmd/nodus")
	build.Dir = root
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build nodus: %w", err)
	}
	return bin, nil
}

// childEnv is the bench's environment without any setting that would point
// the child at another database or change how it runs, plus vars.
// NODUS_DEBUG_ADDR passes, so the child can be profiled while it is measured
// (go tool pprof http://$NODUS_DEBUG_ADDR/debug/pprof/profile).
func childEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "NODUS_DEBUG_ADDR" && strings.HasPrefix(k, "NODUS_") || strings.HasSuffix(k, "DATABASE_URL") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// startChild runs bin serve on a free loopback port with dataDir and waits
// for /ready.
func startChild(ctx context.Context, bin, dataDir, adminPassword, traceCalls string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logs := filepath.Join(filepath.Dir(dataDir), "nodus.log")
	f, err := os.Create(logs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = childEnv(map[string]string{
		"NODUS_ADDR":                addr,
		"NODUS_DATA_DIR":            dataDir,
		"NODUS_LOG_LEVEL":           "warn",
		"NODUS_ADMIN_PASSWORD":      adminPassword,
		"NODUS_TRACE_GATEWAY_CALLS": traceCalls,
	})
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C in the terminal reaches the bench,
	// which then stops the child itself after the measurements in flight.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nodus: %w", err)
	}
	c := &child{cmd: cmd, base: "http://" + addr, logs: logs, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-c.done:
			c.done <- err
			return nil, fmt.Errorf("nodus exited before it was ready (%v):\n%s", err, c.tail())
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		default:
		}
		if resp, err := client.Get(c.base + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		if time.Since(start) > 60*time.Second {
			c.stop()
			return nil, fmt.Errorf("nodus not ready after 60s:\n%s", c.tail())
		}
	}
}

// stop sends SIGTERM, waits up to 15 s, then kills.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		c.done <- err
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		c.done <- <-c.done
	}
}

// tail is the end of the child's log, for error messages.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.logs)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// apiClient calls the Nodus management API with a bearer token.
type apiClient struct {
	base, token string
	http        *http.Client
}

// call sends body as JSON and decodes a want answer into into.
func (a *apiClient) call(method, path string, body any, want int, into any, headers ...string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s (want %d)", method, path, resp.StatusCode, bytes.TrimSpace(got), want)
	}
	if into != nil {
		if err := json.Unmarshal(got, into); err != nil {
			return nil, fmt.Errorf("%s %s: decode %s: %w", method, path, got, err)
		}
	}
	return resp, nil
}

// signIn signs in with a password and mints an API token with the session.
func signIn(base, login, password string) (*apiClient, error) {
	a := &apiClient{base: base, http: &http.Client{Timeout: 30 * time.Second}}
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	resp, err := a.call("POST", "/api/v1/auth/login", map[string]string{"login": login, "password": password}, 200, &me)
	if err != nil {
		return nil, fmt.Errorf("sign in as %s: %w", login, err)
	}
	var cookies []string
	for _, ck := range resp.Cookies() {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	var minted struct{ Secret string }
	if _, err := a.call("POST", "/api/v1/tokens", map[string]any{"name": "bench"}, 201, &minted,
		"Cookie", strings.Join(cookies, "; "), "X-CSRF-Token", me.CSRFToken); err != nil {
		return nil, fmt.Errorf("mint a token as %s: %w", login, err)
	}
	a.token = minted.Secret
	return a, nil
}

// Names the setup gives things.
const (
	benchModel       = "bench-model"
	benchUpstreamKey = "sk-bench-upstream"
	benchAdminPass   = "bench administrator password"
	benchOrgPass     = "bench org admin password"
)

// setupGateway does over HTTP what an operator would: as the super_admin,
// allow the loopback upstream (a platform rule and address exception) and
// create a tenant and its org_admin; as the org_admin, store the provider
// key in the vault, give it a handle for the upstream's host, create a
// deployment that uses the handle, and mint a virtual key, which it
// returns.
func setupGateway(base, upstreamURL string) (string, error) {
	host, portText, ok := strings.Cut(strings.TrimPrefix(upstreamURL, "http://"), ":")
	port, err := strconv.Atoi(portText)
	if !ok || err != nil {
		return "", fmt.Errorf("upstream URL %q has no port", upstreamURL)
	}
	admin, err := signIn(base, "admin", benchAdminPass)
	if err != nil {
		return "", err
	}
	if _, err := admin.call("PUT", "/api/v1/egress/platform", map[string]any{
		"rules":              []map[string]any{{"host": host, "port": port, "comment": "bench: fake upstream"}},
		"address_exceptions": []map[string]any{{"ip": host, "port": port, "comment": "bench: fake upstream"}},
	}, 200, nil); err != nil {
		return "", err
	}
	var tenant struct{ Tenant struct{ ID string } }
	if _, err := admin.call("POST", "/api/v1/tenants", map[string]any{"name": "Bench", "max_users": 10}, 201, &tenant); err != nil {
		return "", err
	}
	if _, err := admin.call("POST", "/api/v1/users", map[string]any{"email": "bench-admin@example.test", "username": "bench-admin",
		"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": benchOrgPass}, 201, nil); err != nil {
		return "", err
	}
	org, err := signIn(base, "bench-admin", benchOrgPass)
	if err != nil {
		return "", err
	}
	if _, err := org.call("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/llm",
		"key": "OPENAI_API_KEY", "value": benchUpstreamKey}, 200, nil); err != nil {
		return "", err
	}
	var handle struct{ Handle struct{ ID string } }
	if _, err := org.call("POST", "/api/v1/vault/handles", map[string]any{"environment": "prod", "path": "/llm",
		"key": "OPENAI_API_KEY", "allowed_hosts": []string{host}, "purpose": "gateway.provider_key"}, 201, &handle); err != nil {
		return "", err
	}
	if _, err := org.call("POST", "/api/v1/gateway/deployments", map[string]any{"model_name": benchModel, "provider": "openai",
		"upstream_model": benchModel, "base_url": upstreamURL + "/v1", "api_key_handle": handle.Handle.ID,
		"timeout_seconds": 120}, 201, nil); err != nil {
		return "", err
	}
	var key struct{ Key struct{ Key string } }
	if _, err := org.call("POST", "/api/v1/gateway/keys", map[string]any{"name": "bench"}, 201, &key); err != nil {
		return "", err
	}
	if key.Key.Key == "" {
		return "", errors.New("POST /api/v1/gateway/keys answered no secret")
	}
	return key.Key.Key, nil
}

// rss reads the resident set (VmRSS) and its peak (VmHWM) of a process.
func (c *child) rss() (rss, peak int64) {
	rss, peak, _ = memory(c.cmd.Process.Pid)
	return rss, peak
}

// cpu is the CPU time (user and system, all threads) the process has
// used so far, to the kernel's clock tick (10 ms at the usual 100 Hz);
// zero if it cannot be read.
func (c *child) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	utime, err1 := procstat.Int(b, 14)
	stime, err2 := procstat.Int(b, 15)
	if err1 != nil || err2 != nil {
		return 0
	}
	const clockTick = 10 * time.Millisecond // USER_HZ, 100 on Linux
	return time.Duration(utime+stime) * clockTick
}

// perRequest is d spread over n requests; zero for none.
func perRequest(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// recorder reads nodus's tracing recorder counters from /metrics: the
// records (one per gateway call) written to tracing, dropped for a full
// buffer, and waiting.
func (c *child) recorder() (written, dropped, queued int64, err error) {
	resp, err := http.Get(c.base + "/metrics")
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, 0, err
	}
	found := 0
	for line := range strings.Lines(string(body)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "nodus_tracing_recorder_written_total":
			dst = &written
		case "nodus_tracing_recorder_dropped_total":
			dst = &dropped
		case "nodus_tracing_recorder_queued":
			dst = &queued
		default:
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("/metrics: %s: %w", name, err)
		}
		*dst, found = int64(f), found+1
	}
	if found != 3 {
		return 0, 0, 0, errors.New("/metrics has no tracing recorder counters")
	}
	return written, dropped, queued, nil
}

// drainRecorder waits (up to 30 s) until nodus's tracing recorder has
// written what it buffered, and returns its counters then.
func (c *child) drainRecorder() (written, dropped int64, err error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		written, dropped, queued, err := c.recorder()
		if err != nil || queued == 0 || time.Now().After(deadline) {
			return written, dropped, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
