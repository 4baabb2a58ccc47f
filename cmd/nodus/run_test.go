package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// syncBuffer is an io.Writer the server logs to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is a Nodus started by run, as main would start it.
type instance struct {
	base   string // http://127.0.0.1:port
	addr   string
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
	out    *syncBuffer // stdout: the one-time administrator password
}

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// startNodus runs `nodus serve` on 127.0.0.1:0 and waits until it listens.
func startNodus(t *testing.T, vars map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}, out: &syncBuffer{}}
	argv := append([]string{"nodus", "serve", "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)
	go func() { in.done <- run(ctx, argv, env(vars), strings.NewReader(""), in.out, in.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(30 * time.Second):
			t.Error("nodus did not stop")
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(in.logs.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				in.base = line.Addr
				in.addr = strings.TrimPrefix(line.Addr, "http://")
				return in
			}
		}
		select {
		case err := <-in.done:
			t.Fatalf("nodus exited before listening: %v\n%s", err, in.logs.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("nodus did not listen within 20s:\n%s", in.logs.String())
	return nil
}

// stop cancels run's context, as SIGTERM would, and returns run's error.
func (in *instance) stop(t *testing.T) error {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("nodus did not stop within 30s")
		return nil
	}
}

type envelope struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

func getJSON(t *testing.T, method, url string, body io.Reader, into any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" && into != nil {
		t.Fatalf("%s %s: Content-Type %q", method, url, ct)
	}
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return resp
}

// nodusEnv gives each database its place: a temp data directory on SQLite,
// a fresh schema on PostgreSQL.
func nodusEnv(t *testing.T, databaseURL string) map[string]string {
	vars := map[string]string{"NODUS_DATA_DIR": t.TempDir()}
	if strings.HasPrefix(databaseURL, "postgres") {
		vars["DATABASE_URL"] = databaseURL
	}
	return vars
}

func TestServeEndToEnd(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		in := startNodus(t, vars, "--max-body-bytes", "1024")

		var health struct{ Status string }
		if resp := getJSON(t, "GET", in.base+"/health", nil, &health); resp.StatusCode != 200 || health.Status != "ok" {
			t.Fatalf("/health = %d %+v", resp.StatusCode, health)
		}
		if resp := getJSON(t, "GET", in.base+"/health", nil, &health); resp.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id on the response")
		}

		var ready struct {
			Ready  bool
			Checks []struct{ Name, Status string }
		}
		if resp := getJSON(t, "GET", in.base+"/ready", nil, &ready); resp.StatusCode != 200 || !ready.Ready {
			t.Fatalf("/ready = %d %+v", resp.StatusCode, ready)
		}
		names := map[string]bool{}
		for _, c := range ready.Checks {
			names[c.Name] = true
		}
		for _, want := range []string{"database:main", "migrations:main", "migrations:auth", "migrations:gateway", "migrations:tracing", "migrations:vault", "migrations:jobs"} {
			if !names[want] {
				t.Errorf("/ready lacks check %s: %+v", want, ready.Checks)
			}
		}

		var env envelope
		resp := getJSON(t, "GET", in.base+"/api/v1/no-such-thing", nil, &env)
		if resp.StatusCode != 404 || env.Error.Code != "not_found" || env.Error.Message == "" || env.Error.RequestID == "" {
			t.Fatalf("unknown route = %d %+v", resp.StatusCode, env)
		}
		resp = getJSON(t, "DELETE", in.base+"/health", nil, &env)
		if resp.StatusCode != 405 || env.Error.Code != "method_not_allowed" || resp.Header.Get("Allow") == "" {
			t.Fatalf("wrong method = %d %+v allow=%q", resp.StatusCode, env, resp.Header.Get("Allow"))
		}
		resp = getJSON(t, "POST", in.base+"/api/v1/anything", bytes.NewReader(make([]byte, 4096)), &env)
		if resp.StatusCode != 413 || env.Error.Code != "too_large" {
			t.Fatalf("oversized body = %d %+v", resp.StatusCode, env)
		}

		req, _ := http.NewRequest("GET", in.base+"/metrics", nil)
		mresp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(mresp.Body)
		mresp.Body.Close()
		for _, want := range []string{
			`nodus_http_requests_total{method="GET",route="GET /health",status="200"} 2`,
			`nodus_http_requests_total{method="POST",route="unmatched",status="413"} 1`,
			`nodus_db_connections_max{database="main",pool=`,
			`nodus_jobs{state="available"} `,
			`nodus_vector_cache_bytes{index="exact"} 0` + "\n",
			`nodus_vector_sets{index="building"} 0` + "\n",
			`nodus_vector_graph_saves_total{result="failed"} 0` + "\n",
			`nodus_vector_graph_loads_total{result="loaded"} 0` + "\n",
			"nodus_tracing_recorder_dropped_total 0\n",
			"nodus_tracing_recorder_queued ",
			"process_resident_memory_bytes ",
		} {
			if !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}

		testGracefulShutdown(t, in, vars)
	})
}

// holdLock blocks what /ready reads until the returned func is called:
// SQLite's write lock on the main file, or an exclusive lock on PostgreSQL's
// migration history.
func holdLock(t *testing.T, vars map[string]string) (release func()) {
	t.Helper()
	if url := vars["DATABASE_URL"]; url != "" {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := conn.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(context.Background(), "LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		return func() { tx.Rollback(context.Background()); conn.Close(context.Background()) }
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(vars["NODUS_DATA_DIR"], "main.db")+"?_txlock=immediate&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	return func() { tx.Rollback(); db.Close() }
}

// testGracefulShutdown stops Nodus while a request is inside its handler
// and checks that the server stops accepting connections, answers that
// request in full, and only then returns.
func testGracefulShutdown(t *testing.T, in *instance, vars map[string]string) {
	release := holdLock(t, vars)
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get(in.base + "/ready")
		if err != nil {
			t.Errorf("request in flight: %v", err)
			answered <- nil
			return
		}
		answered <- resp
	}()
	select {
	case <-answered:
		t.Fatal("/ready answered while the database was locked; the test cannot hold a request in flight")
	case <-time.After(300 * time.Millisecond):
	}

	stopped := make(chan error, 1)
	go func() { stopped <- in.stop(t) }()

	// The listener closes first: new connections are refused while the
	// request in flight is still being served.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", in.addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepts connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("run returned (%v) before the request in flight was answered", err)
	case <-answered:
		t.Fatal("the request in flight was answered before the lock was released")
	default:
	}

	release()
	resp := <-answered
	if resp == nil {
		t.FailNow()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ready":true`) {
		t.Fatalf("request in flight = %d %s", resp.StatusCode, body)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v after a graceful shutdown", err)
	}
	if logs := in.logs.String(); !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no 'stopped' log line:\n%s", logs)
	}
}

func TestServeNotReadyUntilMigrated(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_AUTO_MIGRATE"] = "false"
		in := startNodus(t, vars)

		var health struct{ Status string }
		if resp := getJSON(t, "GET", in.base+"/health", nil, &health); resp.StatusCode != 200 {
			t.Fatalf("/health = %d while unmigrated", resp.StatusCode)
		}
		var ready struct {
			Ready  bool
			Checks []struct{ Name, Status, Detail string }
		}
		resp := getJSON(t, "GET", in.base+"/ready", nil, &ready)
		if resp.StatusCode != 503 || ready.Ready {
			t.Fatalf("/ready = %d %+v, want 503", resp.StatusCode, ready)
		}
		failed := false
		for _, c := range ready.Checks {
			if c.Name == "migrations:jobs" && c.Status == "failed" && strings.Contains(c.Detail, "pending") {
				failed = true
			}
		}
		if !failed {
			t.Errorf("/ready does not name the pending job migrations: %+v", ready.Checks)
		}
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}

		// Migrating by command makes the next start ready.
		var out bytes.Buffer
		if err := run(context.Background(), []string{"nodus", "migrate", "up"}, env(vars), nil, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		in = startNodus(t, vars)
		if resp := getJSON(t, "GET", in.base+"/ready", nil, &ready); resp.StatusCode != 200 {
			t.Fatalf("/ready after migrate up = %d %+v", resp.StatusCode, ready)
		}
	})
}

func TestMigrateCommand(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		migrate := func(args ...string) string {
			t.Helper()
			var out bytes.Buffer
			var errOut bytes.Buffer
			if err := run(context.Background(), append([]string{"nodus", "migrate"}, args...), env(vars), nil, &out, &errOut); err != nil {
				t.Fatalf("migrate %v: %v\n%s", args, err, errOut.String())
			}
			return out.String()
		}

		if out := migrate("version"); !strings.Contains(out, "jobs     0 (") {
			t.Fatalf("version before up:\n%s", out)
		}
		out := migrate("up")
		if !strings.Contains(out, "jobs     applied [1 2 3") {
			t.Fatalf("up:\n%s", out)
		}
		if out := migrate("up"); !strings.Contains(out, "jobs     nothing to do") {
			t.Fatalf("second up:\n%s", out)
		}
		status := migrate("status")
		for _, set := range []string{"main", "auth", "gateway", "tracing", "vault", "jobs"} {
			if !strings.Contains(status, "\n"+set+" ") {
				t.Errorf("status lacks set %s:\n%s", set, status)
			}
		}
		pendingRow := regexp.MustCompile(`(?m)\spending\s+-\s*$`)
		if pendingRow.MatchString(status) || !strings.Contains(status, "applied") {
			t.Errorf("status after up:\n%s", status)
		}
		if out := migrate("down", "2", "--set", "jobs"); !strings.Contains(out, "rolled back [") {
			t.Fatalf("down:\n%s", out)
		}
		if out := migrate("version"); !strings.Contains(out, "(2 pending)") {
			t.Fatalf("version after down 2:\n%s", out)
		}
		if status := migrate("status"); len(pendingRow.FindAllString(status, -1)) != 2 {
			t.Errorf("status after down 2:\n%s", status)
		}
		migrate("up")
	})
}

func TestRunUsage(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"NODUS_DATA_DIR": dir}
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nodus"}, 2, "no command"},
		{[]string{"nodus", "frobnicate"}, 2, "unknown command"},
		{[]string{"nodus", "migrate"}, 2, "subcommand"},
		{[]string{"nodus", "migrate", "sideways"}, 2, "unknown migrate subcommand"},
		{[]string{"nodus", "migrate", "down", "zero"}, 2, "positive number"},
		{[]string{"nodus", "migrate", "down", "1", "--set", "nope"}, 2, "unknown migration set"},
		{[]string{"nodus", "serve", "--no-such-flag"}, 2, "not defined"},
		{[]string{"nodus", "serve", "extra"}, 2, "no arguments"},
	}
	for _, tt := range tests {
		err := run(context.Background(), tt.args, env(vars), nil, io.Discard, io.Discard)
		if err == nil || exitCode(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%v: err %v (exit %d), want exit %d with %q", tt.args, err, exitCode(err), tt.code, tt.msg)
		}
	}
	for _, cmd := range []string{"serve", "migrate"} {
		var help bytes.Buffer
		if err := run(context.Background(), []string{"nodus", cmd, "-h"}, env(vars), nil, io.Discard, &help); err != nil {
			t.Errorf("%s -h: %v, want success", cmd, err)
		}
		if !strings.Contains(help.String(), "DATABASE_POOL_SIZE") {
			t.Errorf("%s -h does not list the environment variables:\n%s", cmd, help.String())
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"nodus", "version"}, env(vars), nil, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "nodus ") {
		t.Errorf("version: %q, %v", out.String(), err)
	}
	if _, err := filepath.Glob(filepath.Join(dir, "*.db")); err != nil {
		t.Fatal(err)
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	vars := map[string]string{"NODUS_DATA_DIR": t.TempDir()}
	err = run(context.Background(), []string{"nodus", "serve", "--addr", ln.Addr().String()}, env(vars), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("listen on %s", ln.Addr())) {
		t.Fatalf("serve on a taken port: %v", err)
	}
}

// TestSlowClientsAreCut opens connections that send their headers a byte
// at a time and checks that the server closes them after the header
// timeout while answering other clients at once (SECURITY.md check 27).
func TestSlowClientsAreCut(t *testing.T) {
	in := startNodus(t, map[string]string{"NODUS_DATA_DIR": t.TempDir()}, "--read-header-timeout", "300ms")
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", in.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	start := time.Now()
	resp, err := http.Get(in.base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); resp.StatusCode != 200 || d > time.Second {
		t.Fatalf("/health beside slow clients: %d in %v", resp.StatusCode, d)
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		var err error
		for err == nil {
			_, err = c.Read(buf) // the server may write a 408 before closing
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("a slow client was still connected after %v", time.Since(start))
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("slow clients were cut after %v, want about the 300ms header timeout", d)
	}
}
