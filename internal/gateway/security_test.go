package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// This file holds the end-to-end tests of SECURITY.md checks 28 to 31 and
// 33 through the gateway's HTTP API, on SQLite and PostgreSQL: a real
// store, a real egress client and one or two fake upstreams, with raw HTTP
// clients so every status, header and body the caller gets can be checked.
// Check 32 needs the whole server: cmd/nodus/gateway_security_test.go.

// secProviderKey is the provider key the deployments' handle resolves to:
// a canary that must reach the fake upstream and nothing else.
const secProviderKey = "sk-provider-CANARY-7f3a9c1e5b2d40865e1f"

// secSecrets resolves the one handle of the tests to the canary key.
type secSecrets struct{}

func (secSecrets) ResolveKey(_ context.Context, _, handleID string) (string, []string, error) {
	if handleID != "handle-canary" {
		return "", nil, nodus.Errorf(nodus.ENOTFOUND, "no handle %s", handleID)
	}
	return secProviderKey, []string{"127.0.0.1"}, nil
}

// secAudit keeps the audit entries the gateway records.
type secAudit struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (a *secAudit) Record(_ context.Context, e audit.Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, e)
	return nil
}

// lockedBuffer is a log destination read while the service writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// secDep is a deployment of a test: its id orders it within its group
// (the router's randomness is pinned to the first eligible deployment).
type secDep struct {
	id, model string
	onB       bool // served by fake B rather than A
	anthropic bool // an anthropic deployment rather than an openai one
	timeout   time.Duration
}

type secOptions struct {
	deps     []secDep
	settings *gateway.RouterSettings
	// budgets are created before the service starts, which loads them.
	budgets func(w *secWorld) []gateway.Budget
	// keys are created before the budgets, so a budget can name them.
	keys int
	// shared makes the service share budgets and limits through the
	// store, as replicas do (quota.go).
	shared bool
}

// secWorld is a gateway over a real store and egress client, with two
// fake upstreams, its logs in a buffer and its audit entries kept.
type secWorld struct {
	db      *store.DB
	svc     *gateway.Service
	eg      *egress.Service
	a, b    *gatewaytest.Upstream
	srv     *httptest.Server
	hc      *http.Client
	reg     *metrics.Registry
	tenant  string
	user    string
	tctx    context.Context
	logs    *lockedBuffer
	audit   *secAudit
	keys    []string // secrets of opts.keys keys, in order
	keyIDs  []string
	nextReq atomic.Int64
	opts    secOptions
}

// config is the service configuration of the world, with its own metrics.
func (w *secWorld) config(reg *metrics.Registry) gateway.Config {
	cfg := gateway.Config{Store: w.db, Secrets: secSecrets{}, Egress: w.eg, Audit: w.audit,
		Logger: slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Metrics: reg,
		Spend: gateway.SpendWriterOptions{FlushEvery: 10 * time.Millisecond},
		// The first eligible deployment is always picked, and backoffs
		// are zero unless an upstream's Retry-After says otherwise.
		Router: gateway.RouterOptions{IntN: func(int) int { return 0 }}}
	if w.opts.shared {
		cfg.Quotas = w.db
	}
	return cfg
}

func newSecWorld(t *testing.T, db *store.DB, opts secOptions) *secWorld {
	t.Helper()
	ctx := context.Background()
	m, err := store.NewMigrator(store.SetGateway, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	w := &secWorld{db: db, tenant: nodus.NewID(), user: nodus.NewID(), logs: &lockedBuffer{}, audit: &secAudit{},
		reg: metrics.NewRegistry()}
	w.tctx = nodus.WithTenant(ctx, w.tenant)
	w.a = gatewaytest.NewUpstream(gatewaytest.Script{APIKey: secProviderKey})
	t.Cleanup(w.a.Close)
	w.b = gatewaytest.NewUpstream(gatewaytest.Script{APIKey: secProviderKey})
	t.Cleanup(w.b.Close)
	w.eg, err = egress.NewService(loopbackEgress{ports: []int{fakePort(t, w.a), fakePort(t, w.b)}}, egress.Options{Audit: discardAudit{}})
	if err != nil {
		t.Fatal(err)
	}
	w.opts = opts
	w.svc, err = gateway.NewService(w.config(w.reg))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, sd := range opts.deps {
		base := w.a.URL
		if sd.onB {
			base = w.b.URL
		}
		d := gateway.Deployment{ID: sd.id, TenantID: w.tenant, ModelName: sd.model, Provider: gateway.ProviderOpenAI,
			UpstreamModel: "gpt-4o", BaseURL: base + "/v1", APIKeyHandle: "handle-canary", Mode: gateway.ModeChat,
			Weight: 1, IsActive: true, Timeout: sd.timeout, CreatedAt: now, UpdatedAt: now}
		if sd.anthropic {
			d.Provider, d.UpstreamModel, d.BaseURL = gateway.ProviderAnthropic, "claude-sonnet-4-5", base
		}
		if d.Timeout == 0 {
			d.Timeout = 5 * time.Second
		}
		if err := db.CreateDeployment(w.tctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if opts.settings != nil {
		s := *opts.settings
		s.TenantID, s.UpdatedAt = w.tenant, now
		if err := db.UpdateRouterSettings(w.tctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for range opts.keys {
		secret, id := w.addKey(t, func(*gateway.Key) {})
		w.keys, w.keyIDs = append(w.keys, secret), append(w.keyIDs, id)
	}
	if opts.budgets != nil {
		for _, b := range opts.budgets(w) {
			b.ID, b.TenantID, b.UpdatedAt = nodus.NewID(), w.tenant, now
			if err := db.CreateBudget(w.tctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := w.svc.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.svc.Close(context.Background()) })
	mux := http.NewServeMux()
	for pattern, h := range w.svc.Routes() {
		mux.Handle(pattern, h)
	}
	w.srv = httptest.NewServer(mux)
	t.Cleanup(w.srv.Close)
	w.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	t.Cleanup(w.hc.CloseIdleConnections)
	return w
}

func fakePort(t *testing.T, u *gatewaytest.Upstream) int {
	t.Helper()
	pu, err := url.Parse(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(pu.Port())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// addKey stores an active key of the world's user; edit adjusts it.
func (w *secWorld) addKey(t *testing.T, edit func(*gateway.Key)) (secret, id string) {
	t.Helper()
	secret, hash := gateway.NewKeySecret()
	now := time.Now().UTC().Truncate(time.Millisecond)
	k := gateway.Key{ID: nodus.NewID(), TenantID: w.tenant, Name: "security", Hash: hash, Prefix: secret[:13], UserID: w.user,
		Status: gateway.KeyActive, CreatedAt: now, UpdatedAt: now}
	edit(&k)
	if err := w.db.CreateKey(w.tctx, k); err != nil {
		t.Fatal(err)
	}
	return secret, k.ID
}

// secResponse is everything a caller received.
type secResponse struct {
	reqID  string
	status int
	header http.Header
	body   []byte
	took   time.Duration
	err    error // a transport error (the caller went away)
}

// post sends a chat request with key and a fresh X-Request-Id, and reads
// the whole answer.
func (w *secWorld) post(ctx context.Context, key, body string) secResponse {
	r := secResponse{reqID: fmt.Sprintf("sec%d", w.nextReq.Add(1))}
	req, err := http.NewRequestWithContext(ctx, "POST", w.srv.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-Id", r.reqID)
	start := time.Now()
	resp, err := w.hc.Do(req)
	if err != nil {
		r.err, r.took = err, time.Since(start)
		return r
	}
	defer resp.Body.Close()
	r.status, r.header = resp.StatusCode, resp.Header
	r.body, r.err = io.ReadAll(resp.Body)
	r.took = time.Since(start)
	return r
}

func chatBody(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"stream":%t,"max_tokens":50,"messages":[{"role":"user","content":"Say hello"}]}`, model, stream)
}

// openAIError decodes an OpenAI-shaped error body, failing the test when
// the body is not one.
func openAIError(t *testing.T, b []byte) gateway.Error {
	t.Helper()
	var env struct {
		Error *struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Error == nil || env.Error.Message == "" || env.Error.Type == "" {
		t.Fatalf("not an OpenAI error body: %s", b)
	}
	code, _ := env.Error.Code.(string)
	return gateway.Error{Message: env.Error.Message, Type: env.Error.Type, Code: code}
}

// sseData returns the data of each event of an SSE body, in order.
func sseData(body []byte) []string {
	var out []string
	for _, ev := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n\n") {
		for _, line := range strings.Split(ev, "\n") {
			if d, ok := strings.CutPrefix(line, "data:"); ok {
				out = append(out, strings.TrimSpace(d))
			}
		}
	}
	return out
}

// streamed splits a stream's events into the content received, the
// number of content chunks, the error event if any, and whether [DONE]
// ended it.
func streamed(t *testing.T, body []byte) (content string, chunks int, errEvent []byte, done bool) {
	t.Helper()
	for _, d := range sseData(body) {
		if d == "[DONE]" {
			done = true
			continue
		}
		var ev struct {
			Error   json.RawMessage `json:"error"`
			Choices []struct {
				Delta struct {
					Content *string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(d), &ev); err != nil {
			t.Fatalf("stream event %q: %v", d, err)
		}
		if len(ev.Error) > 0 {
			errEvent = []byte(d)
			continue
		}
		for _, c := range ev.Choices {
			if c.Delta.Content != nil && *c.Delta.Content != "" {
				content += *c.Delta.Content
				chunks++
			}
		}
	}
	return content, chunks, errEvent, done
}

// spend flushes the spend writer and returns the tenant's rows by the
// X-Request-Id their calls were sent with (post sends a fresh one).
func (w *secWorld) spend(t *testing.T) map[string][]gateway.SpendLog {
	t.Helper()
	if err := w.svc.FlushSpend(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, _, err := w.db.ListSpend(w.tctx, gateway.SpendFilter{}, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]gateway.SpendLog{}
	for _, r := range rows {
		out[r.ClientRequestID] = append(out[r.ClientRequestID], r)
	}
	return out
}

// closeIdle drops every idle connection the test can reach, so counting
// goroutines counts calls, not pools.
func (w *secWorld) closeIdle() {
	w.hc.CloseIdleConnections()
	w.eg.Client(w.tenant).CloseIdleConnections()
}

// settleGoroutines waits for the goroutine count to come back to base.
func settleGoroutines(t *testing.T, base int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines after %s, %d before:\n%s", runtime.NumGoroutine(), what, base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGatewayUpstreamSilenceEndsInBoundedTime: an upstream that never
// answers, answers its headers and then nothing, or stalls mid-stream
// ends every call with an OpenAI-shaped error well within a second of the
// deployment's 300ms timeout; the upstream request is cancelled, the
// spend log records each failure, and no goroutine is left behind
// (SECURITY.md check 28).
func TestGatewayUpstreamSilenceEndsInBoundedTime(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newSecWorld(t, db, secOptions{keys: 1,
			deps: []secDep{{id: "dep-silent", model: "silent", timeout: 300 * time.Millisecond}},
			// No cooldown: every call meets the silence itself (three
			// times: an attempt and two retries), so each can be timed.
			settings: &gateway.RouterSettings{AllowedFails: 1000}})
		ctx := context.Background()
		key := w.keys[0]

		// A first call starts the pools' own goroutines.
		if r := w.post(ctx, key, chatBody("silent", true)); r.status != 200 {
			t.Fatalf("warm-up: %d %s", r.status, r.body)
		}
		w.closeIdle()
		base := runtime.NumGoroutine()

		const parallel = 4
		tests := []struct {
			name   string
			script gatewaytest.Script
			stream bool
			chunks int // content chunks delivered before the error event; -1: not a stream answer
		}{
			{"never answers", gatewaytest.Script{Hang: gatewaytest.HangBeforeHeaders}, false, -1},
			{"headers then silence", gatewaytest.Script{Hang: gatewaytest.HangAfterHeaders}, false, -1},
			{"stream never answers", gatewaytest.Script{Hang: gatewaytest.HangBeforeHeaders}, true, -1},
			{"stream headers then silence", gatewaytest.Script{Hang: gatewaytest.HangAfterHeaders}, true, -1},
			{"stream stalls mid-stream", gatewaytest.Script{Chunks: 6, BreakAfter: 2, Break: gatewaytest.BreakStall}, true, 2},
		}
		var ids []string
		for _, tt := range tests {
			s := tt.script
			s.APIKey = secProviderKey
			w.a.SetScript(s)
			cancelledBefore, servedBefore := w.a.Cancelled(), w.a.Served()
			results := make([]secResponse, parallel)
			var wg sync.WaitGroup
			for i := range parallel {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = w.post(ctx, key, chatBody("silent", tt.stream))
				}()
			}
			wg.Wait()
			for _, r := range results {
				ids = append(ids, r.reqID)
				if r.err != nil {
					t.Fatalf("%s: %v", tt.name, r.err)
				}
				// Up to three attempts of 300ms, plus scheduling on a busy
				// machine.
				if r.took > 4*time.Second {
					t.Errorf("%s: the caller waited %v for a 300ms timeout", tt.name, r.took)
				}
				if tt.chunks < 0 {
					if r.status != http.StatusGatewayTimeout && r.status != http.StatusBadGateway {
						t.Errorf("%s: %d %s, want 504 or 502", tt.name, r.status, r.body)
						continue
					}
					if e := openAIError(t, r.body); e.Type != gateway.ErrorTypeServer {
						t.Errorf("%s: error type %q", tt.name, e.Type)
					}
					continue
				}
				content, chunks, errEvent, done := streamed(t, r.body)
				if r.status != 200 || chunks != tt.chunks || content == "" || done || errEvent == nil {
					t.Errorf("%s: %d, %d chunks %q, [DONE] %v, error event %s; want the %d chunks sent, then an error event",
						tt.name, r.status, chunks, content, done, errEvent, tt.chunks)
					continue
				}
				if e := openAIError(t, errEvent); e.Type != gateway.ErrorTypeServer {
					t.Errorf("%s: error event type %q", tt.name, e.Type)
				}
			}
			// The gateway hung up on the upstream: every silent request
			// was cancelled there, none left running.
			attempts := w.a.Served() - servedBefore
			if attempts < parallel || !w.a.WaitCancelled(cancelledBefore+attempts, 5*time.Second) {
				t.Errorf("%s: %d of %d upstream requests cancelled", tt.name, w.a.Cancelled()-cancelledBefore, attempts)
			}
			// Nothing is retried once a stream has sent its first bytes.
			if tt.chunks > 0 && attempts != parallel {
				t.Errorf("%s: %d upstream requests for %d streams", tt.name, attempts, parallel)
			}
		}

		logs := w.spend(t)
		for i, id := range ids {
			rows := logs[id]
			if len(rows) != 1 {
				t.Errorf("request %s: %d spend rows, want 1", id, len(rows))
				continue
			}
			r := rows[0]
			if r.Status != gateway.StatusError || r.ErrorClass != gateway.ErrClassTimeout || r.StatusCode != http.StatusGatewayTimeout ||
				r.DeploymentID != "dep-silent" {
				t.Errorf("request %s: spend row %+v, want an upstream timeout", id, r)
			}
			// The stall streamed content: it is billed.
			if stalled := i >= len(ids)-parallel; stalled && (r.CompletionTokens == 0 || r.CostMicros == 0) {
				t.Errorf("stalled stream %s: billed %d completion tokens, %d µ$", id, r.CompletionTokens, r.CostMicros)
			}
		}

		w.a.SetScript(gatewaytest.Script{APIKey: secProviderKey})
		w.closeIdle()
		settleGoroutines(t, base, fmt.Sprintf("%d silent upstream calls", parallel*len(tests)))
	})
}

// TestGatewayRetriesAndFallbacks: through /v1/chat/completions, a 429 with
// Retry-After is retried after that wait; a 5xx falls back to the group's
// other deployment, before or after a stream's headers would have been
// sent; a 400 is tried exactly once; and a stream cut after its first
// bytes reached the client is not retried (SECURITY.md check 29).
func TestGatewayRetriesAndFallbacks(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		// Each scenario has its own group, so no cooldown or Retry-After
		// of one reaches the next; within a pair, A (dep-*-a) is tried
		// first.
		var deps []secDep
		for _, g := range []string{"r429", "r500", "r500s", "r400", "rbreak"} {
			deps = append(deps, secDep{id: "dep-" + g + "-a", model: g}, secDep{id: "dep-" + g + "-b", model: g, onB: true})
		}
		deps = append(deps, secDep{id: "dep-solo", model: "solo"})
		w := newSecWorld(t, db, secOptions{keys: 1, deps: deps})
		ctx := context.Background()
		key := w.keys[0]
		script := func(u *gatewaytest.Upstream, s gatewaytest.Script) {
			s.APIKey = secProviderKey
			u.SetScript(s)
		}
		served := func() (a, b int64) { return w.a.Served(), w.b.Served() }
		var checks []func(map[string][]gateway.SpendLog)

		// 429 with Retry-After on the only deployment: waited out, then
		// the same deployment answers.
		script(w.a, gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 429, RetryAfter: "1"}}})
		a0, b0 := served()
		r := w.post(ctx, key, chatBody("solo", false))
		if a, b := served(); r.status != 200 || a-a0 != 2 || b != b0 {
			t.Errorf("429 then success: %d %s; A served %d, B %d; want 200 after 2 calls on A", r.status, r.body, a-a0, b-b0)
		}
		if r.took < 900*time.Millisecond || r.took > 5*time.Second {
			t.Errorf("429 with Retry-After: 1 was retried after %v, want about 1s", r.took)
		}
		checks = append(checks, wantDeployment(t, "429", r.reqID, "dep-solo"))

		// 429 in a pair: B, free, answers at once; A is not retried.
		script(w.a, gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 429, RetryAfter: "20"}}})
		a0, b0 = served()
		r = w.post(ctx, key, chatBody("r429", false))
		if a, b := served(); r.status != 200 || a-a0 != 1 || b-b0 != 1 || r.took > 3*time.Second {
			t.Errorf("429 in a pair: %d in %v; A served %d, B %d; want B at once", r.status, r.took, a-a0, b-b0)
		}
		checks = append(checks, wantDeployment(t, "429 pair", r.reqID, "dep-r429-b"))

		// 500 falls back to B, for a plain call and a stream.
		for _, stream := range []bool{false, true} {
			model := map[bool]string{false: "r500", true: "r500s"}[stream]
			script(w.a, gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 500, Message: "boom"}}})
			a0, b0 = served()
			r = w.post(ctx, key, chatBody(model, stream))
			a, b := served()
			if r.status != 200 || a-a0 != 1 || b-b0 != 1 {
				t.Errorf("500 (stream %v): %d %s; A served %d, B %d; want one call each", stream, r.status, r.body, a-a0, b-b0)
			}
			if stream {
				if content, _, errEvent, done := streamed(t, r.body); content != gatewaytest.DefaultText || errEvent != nil || !done {
					t.Errorf("500 then B's stream: %q, error %s, [DONE] %v", content, errEvent, done)
				}
			} else if !bytes.Contains(r.body, []byte(gatewaytest.DefaultText)) {
				t.Errorf("500 then B: %s", r.body)
			}
			checks = append(checks, wantDeployment(t, "500", r.reqID, "dep-"+model+"-b"))
		}

		// 400 is the request's fault: tried once, passed to the caller.
		script(w.a, gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 400, Message: "max_tokens is too large"}}})
		a0, b0 = served()
		r = w.post(ctx, key, chatBody("r400", false))
		if a, b := served(); r.status != 400 || a-a0 != 1 || b != b0 {
			t.Errorf("400: %d %s; A served %d, B %d; want 400 after one call", r.status, r.body, a-a0, b-b0)
		}
		if e := openAIError(t, r.body); e.Type != gateway.ErrorTypeInvalidRequest || !strings.Contains(e.Message, "max_tokens") {
			t.Errorf("400 relayed as %+v", e)
		}

		// A stream that breaks after its first chunks reached the client
		// is not retried: the caller gets what was sent and an error.
		script(w.a, gatewaytest.Script{Chunks: 5, BreakAfter: 1, Break: gatewaytest.BreakError})
		a0, b0 = served()
		r = w.post(ctx, key, chatBody("rbreak", true))
		content, chunks, errEvent, done := streamed(t, r.body)
		if a, b := served(); r.status != 200 || a-a0 != 1 || b != b0 || chunks != 1 || content == "" || errEvent == nil || done {
			t.Errorf("broken stream: %d; A served %d, B %d; %d chunks, error %s, [DONE] %v; want one call, 1 chunk, an error event",
				r.status, a-a0, b-b0, chunks, errEvent, done)
		}
		brokenID := r.reqID

		logs := w.spend(t)
		for _, c := range checks {
			c(logs)
		}
		if rows := logs[brokenID]; len(rows) != 1 || rows[0].Status != gateway.StatusError || rows[0].DeploymentID != "dep-rbreak-a" ||
			rows[0].CompletionTokens == 0 {
			t.Errorf("broken stream's spend rows: %+v, want one error row billing what streamed", rows)
		}
	})
}

func wantDeployment(t *testing.T, what, reqID, dep string) func(map[string][]gateway.SpendLog) {
	return func(logs map[string][]gateway.SpendLog) {
		t.Helper()
		rows := logs[reqID]
		if len(rows) != 1 || rows[0].Status != gateway.StatusSuccess || rows[0].DeploymentID != dep {
			t.Errorf("%s: spend rows %+v, want one success on %s", what, rows, dep)
		}
	}
}

// TestGatewayClientDisconnectMidStream: a caller that goes away after two
// chunks cancels the upstream request, and the tokens streamed so far are
// billed once: one spend row, marked cancelled, with completion tokens,
// and every budget that applies charged exactly that row's cost
// (SECURITY.md check 30).
func TestGatewayClientDisconnectMidStream(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newSecWorld(t, db, secOptions{keys: 1, deps: []secDep{{id: "dep-slow", model: "slow"}},
			budgets: func(w *secWorld) []gateway.Budget {
				return []gateway.Budget{
					{Scope: gateway.BudgetTenant, MaxMicros: 1_000_000_000},
					{Scope: gateway.BudgetUser, SubjectID: w.user, MaxMicros: 1_000_000_000},
					{Scope: gateway.BudgetKey, SubjectID: w.keyIDs[0], MaxMicros: 1_000_000_000},
				}
			}})
		w.a.SetScript(gatewaytest.Script{APIKey: secProviderKey, Chunks: 40, ChunkInterval: 50 * time.Millisecond,
			Text: strings.Repeat("All work and no play makes Jack a dull boy. ", 20)})

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", w.srv.URL+"/v1/chat/completions", strings.NewReader(chatBody("slow", true)))
		req.Header.Set("Authorization", "Bearer "+w.keys[0])
		req.Header.Set("X-Request-Id", "disconnect-1")
		resp, err := w.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("stream: %d %s", resp.StatusCode, b)
		}
		// Read until two content chunks have arrived, then hang up.
		buf := make([]byte, 0, 4096)
		chunk := make([]byte, 512)
		for {
			n, err := resp.Body.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if _, chunks, _, _ := streamed(t, completeEvents(buf)); chunks >= 2 {
				break
			}
			if err != nil {
				t.Fatalf("stream ended before two chunks: %v\n%s", err, buf)
			}
		}
		cancel()
		resp.Body.Close()
		if !w.a.WaitCancelled(1, 5*time.Second) {
			t.Fatal("the upstream request was not cancelled after the caller went away")
		}
		if got := w.a.Served(); got != 1 {
			t.Errorf("the upstream served %d requests, want the one stream", got)
		}

		// The spend row is added when the call unwinds; wait for it.
		var rows []gateway.SpendLog
		deadline := time.Now().Add(5 * time.Second)
		for len(rows) == 0 && time.Now().Before(deadline) {
			rows = w.spend(t)["disconnect-1"]
			if len(rows) == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		// Anything late — a second settlement — would land now.
		time.Sleep(300 * time.Millisecond)
		all := w.spend(t)
		rows = all["disconnect-1"]
		if len(all) != 1 || len(rows) != 1 {
			t.Fatalf("%d spend rows for the request (%d in all), want exactly 1", len(rows), len(all))
		}
		r := rows[0]
		if r.Status != gateway.StatusCancelled || r.ErrorClass != gateway.ErrClassCancelled || r.CompletionTokens == 0 ||
			r.CompletionTokens >= 100 || !r.UsageEstimated || r.CostMicros <= 0 || r.KeyID != w.keyIDs[0] {
			t.Fatalf("spend row %+v: want cancelled by the client, billing the part streamed (estimated, 0 < tokens < 100 of the ~220 in the answer)", r)
		}
		for _, scope := range []struct{ scope, subject string }{
			{gateway.BudgetTenant, ""}, {gateway.BudgetUser, w.user}, {gateway.BudgetKey, w.keyIDs[0]},
		} {
			b, err := db.FindBudget(w.tctx, scope.scope, scope.subject)
			if err != nil {
				t.Fatal(err)
			}
			if b.Spend != r.CostMicros {
				t.Errorf("%s budget spent %d µ$, the row costs %d: want billed exactly once", scope.scope, b.Spend, r.CostMicros)
			}
		}
		m := gateway.Manager{TenantID: w.tenant, UserID: w.user, Admin: true}
		budgets, err := w.svc.ListBudgets(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range budgets {
			if b.Spend != r.CostMicros {
				t.Errorf("the service's %s budget shows %d µ$ spent, the row costs %d", b.Scope, b.Spend, r.CostMicros)
			}
		}
	})
}

// completeEvents cuts b after its last complete SSE event.
func completeEvents(b []byte) []byte {
	if i := bytes.LastIndex(b, []byte("\n\n")); i >= 0 {
		return b[:i+2]
	}
	return nil
}

// TestGatewayRateLimitsUnderConcurrency: 100 concurrent requests on a key
// with rpm 10 let exactly 10 through; the other 90 get 429 with an integer
// Retry-After of at least a second and an OpenAI-shaped body. The same
// for max_parallel 3 with upstream calls held in flight: exactly 3 reach
// the upstream (SECURITY.md check 31).
func TestGatewayRateLimitsUnderConcurrency(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newSecWorld(t, db, secOptions{deps: []secDep{{id: "dep-limits", model: "limits"}}})
		ctx := context.Background()

		// burst sends n requests at once; during runs while they are out,
		// with the count of those answered so far.
		burst := func(key string, n int, during func(answered *atomic.Int64)) []secResponse {
			out := make([]secResponse, n)
			var wg sync.WaitGroup
			var answered atomic.Int64
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					out[i] = w.post(ctx, key, chatBody("limits", false))
					answered.Add(1)
				}()
			}
			close(start)
			if during != nil {
				during(&answered)
			}
			wg.Wait()
			return out
		}
		check := func(name string, rs []secResponse, wantOK int, wantCode string) {
			t.Helper()
			ok := 0
			for _, r := range rs {
				switch r.status {
				case 200:
					ok++
				case 429:
					ra, err := strconv.Atoi(r.header.Get("Retry-After"))
					if err != nil || ra < 1 {
						t.Errorf("%s: 429 with Retry-After %q, want whole seconds ≥ 1", name, r.header.Get("Retry-After"))
					}
					if e := openAIError(t, r.body); e.Type != gateway.ErrorTypeRateLimit || e.Code != wantCode {
						t.Errorf("%s: 429 body %s", name, r.body)
					}
				default:
					t.Errorf("%s: %d %s (%v)", name, r.status, r.body, r.err)
				}
			}
			if ok != wantOK {
				t.Errorf("%s: %d of %d requests passed, want exactly %d", name, ok, len(rs), wantOK)
			}
		}

		rpmKey, _ := w.addKey(t, func(k *gateway.Key) { k.RPM = 10 })
		before := w.a.Served()
		check("rpm 10", burst(rpmKey, 100, nil), 10, "rate_limit_exceeded")
		if got := w.a.Served() - before; got != 10 {
			t.Errorf("rpm 10: the upstream saw %d calls", got)
		}

		// max_parallel 3: the upstream holds every call until the other 97
		// have been answered, so "in parallel" is certain, not a race.
		hold := make(chan struct{})
		w.a.SetScript(gatewaytest.Script{APIKey: secProviderKey, Hold: hold})
		parKey, _ := w.addKey(t, func(k *gateway.Key) { k.MaxParallel = 3 })
		before = w.a.Served()
		rs := burst(parKey, 100, func(answered *atomic.Int64) {
			deadline := time.Now().Add(10 * time.Second)
			for w.a.InFlight() < 3 || answered.Load() < 97 {
				if time.Now().After(deadline) {
					break // the count below says what went wrong
				}
				time.Sleep(5 * time.Millisecond)
			}
			if got := w.a.InFlight(); got != 3 {
				t.Errorf("max_parallel 3: %d calls in flight upstream", got)
			}
			close(hold)
		})
		check("max_parallel 3", rs, 3, "rate_limit_exceeded")
		if got := w.a.Served() - before; got != 3 {
			t.Errorf("max_parallel 3: the upstream saw %d calls", got)
		}
		// The slots are free again once the calls end.
		w.a.SetScript(gatewaytest.Script{APIKey: secProviderKey})
		check("max_parallel 3 after", burst(parKey, 3, nil), 3, "")
	})
}

// TestGatewayUserAndKeyBudgetsUnderConcurrency: two keys of one user, each
// with a key budget, share the user's smaller budget. 100 concurrent
// requests spread over both keys never overspend any of the three: the
// user's budget is the one that stops them (SECURITY.md check 31; the
// tenant budget alone is covered by TestGatewayBudgetHoldsUnderConcurrency).
func TestGatewayUserAndKeyBudgetsUnderConcurrency(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		// Worst case per call: ~10 prompt tokens at $2.50/M + 50 output
		// tokens at $10/M ≈ 525 µ$. The user's 3,000 fits 5; each key's
		// 2,500 fits 4, so the keys' together would allow 8.
		w := newSecWorld(t, db, secOptions{keys: 2, deps: []secDep{{id: "dep-budget", model: "budget"}},
			budgets: func(w *secWorld) []gateway.Budget {
				return []gateway.Budget{
					{Scope: gateway.BudgetUser, SubjectID: w.user, MaxMicros: 3000},
					{Scope: gateway.BudgetKey, SubjectID: w.keyIDs[0], MaxMicros: 2500},
					{Scope: gateway.BudgetKey, SubjectID: w.keyIDs[1], MaxMicros: 2500},
				}
			}})
		ctx := context.Background()
		var wg sync.WaitGroup
		var ok, refused atomic.Int64
		var userRefusals atomic.Int64
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := w.post(ctx, w.keys[i%2], chatBody("budget", false))
				switch r.status {
				case 200:
					ok.Add(1)
				case 429:
					refused.Add(1)
					if e := openAIError(t, r.body); e.Code == "budget_exceeded" && strings.Contains(e.Message, "user") {
						userRefusals.Add(1)
					}
				default:
					t.Errorf("unexpected: %d %s", r.status, r.body)
				}
			}()
		}
		wg.Wait()
		if ok.Load() == 0 || ok.Load()+refused.Load() != 100 || userRefusals.Load() == 0 {
			t.Fatalf("%d passed, %d refused (%d by the user budget)", ok.Load(), refused.Load(), userRefusals.Load())
		}
		logs := w.spend(t)
		var total int64
		perKey := map[string]int64{}
		for _, rows := range logs {
			for _, r := range rows {
				total += r.CostMicros
				perKey[r.KeyID] += r.CostMicros
			}
		}
		budgets, err := db.ListBudgets(w.tctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range budgets {
			if b.Spend > b.MaxMicros || b.Spend == 0 {
				t.Errorf("%s budget %s: spent %d of %d", b.Scope, b.SubjectID, b.Spend, b.MaxMicros)
			}
			want := total
			if b.Scope == gateway.BudgetKey {
				want = perKey[b.SubjectID]
			}
			if b.Spend != want {
				t.Errorf("%s budget %s: spent %d, the spend log says %d", b.Scope, b.SubjectID, b.Spend, want)
			}
		}
	})
}

// TestGatewayReusedRequestIDsAreBilled: the X-Request-Id a client sends
// is its own label, not the spend log's key. Calls that reuse one (by
// mistake, or to have their spend dropped as repeats of a stored row) are
// each logged and each counted in the budgets and rollups the store keeps,
// the budgets that replicas reload (check 31).
func TestGatewayReusedRequestIDsAreBilled(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		for _, shared := range []bool{false, true} {
			w := newSecWorld(t, db, secOptions{keys: 1, shared: shared, deps: []secDep{{id: "dep-reuse-" + strconv.FormatBool(shared), model: "reuse"}},
				budgets: func(w *secWorld) []gateway.Budget {
					return []gateway.Budget{{Scope: gateway.BudgetKey, SubjectID: w.keyIDs[0], MaxMicros: 1_000_000}}
				}})
			send := func(reqID string) {
				req, _ := http.NewRequest("POST", w.srv.URL+"/v1/chat/completions", strings.NewReader(chatBody("reuse", false)))
				req.Header.Set("Authorization", "Bearer "+w.keys[0])
				req.Header.Set("X-Request-Id", reqID)
				resp, err := w.hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %s", reqID, resp.StatusCode, b)
				}
			}
			// Three calls under one id, the first two in one spend batch
			// and the third in the next.
			send("same-id")
			send("same-id")
			w.spend(t)
			send("same-id")
			rows := w.spend(t)["same-id"]
			var total int64
			ids := map[string]bool{}
			for _, r := range rows {
				if !strings.HasPrefix(r.RequestID, "req_") || ids[r.RequestID] {
					t.Errorf("shared %t: spend log id %q, want a server-made id per call", shared, r.RequestID)
				}
				ids[r.RequestID] = true
				total += r.CostMicros
			}
			if len(rows) != 3 || total == 0 {
				t.Fatalf("shared %t: %d spend rows under the client's id, costing %d; want 3 calls billed", shared, len(rows), total)
			}
			budget, err := db.FindBudget(w.tctx, gateway.BudgetKey, w.keyIDs[0])
			if err != nil {
				t.Fatal(err)
			}
			if budget.Spend != total {
				t.Errorf("shared %t: the stored budget counts %d, the three calls cost %d", shared, budget.Spend, total)
			}
			day, err := db.ListDailySpend(w.tctx, "", "9999-12-31")
			if err != nil {
				t.Fatal(err)
			}
			var requests int64
			for _, d := range day {
				requests += d.Requests
			}
			if requests != 3 {
				t.Errorf("shared %t: the daily rollups count %d calls, want 3", shared, requests)
			}
		}
	})
}

// TestGatewayCanariesStayHidden: a scenario of successes, upstream errors
// that quote the provider key back (401, 500, a 400 with the key in its
// param and code, a non-OpenAI error shape), a bad virtual key, a blocked
// key, an exhausted budget and key management leaves neither the provider
// key nor any virtual key secret in any log line, response header or
// body, audit entry, spend row or metric (SECURITY.md check 33).
func TestGatewayCanariesStayHidden(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newSecWorld(t, db, secOptions{keys: 2, deps: []secDep{{id: "dep-canary", model: "canary"},
			{id: "dep-canary-anthropic", model: "canary-anthropic", onB: true, anthropic: true}},
			settings: &gateway.RouterSettings{AllowedFails: 1000},
			budgets: func(w *secWorld) []gateway.Budget {
				return []gateway.Budget{{Scope: gateway.BudgetKey, SubjectID: w.keyIDs[1], MaxMicros: 1}}
			}})
		ctx := context.Background()
		key, broke := w.keys[0], w.keys[1]
		canaries := map[string]string{"provider key": secProviderKey, "virtual key": key, "virtual key with no budget": broke}
		var seen []secResponse
		send := func(what, secret, body string, want int) secResponse {
			t.Helper()
			r := w.post(ctx, secret, body)
			if r.status != want {
				t.Errorf("%s: %d %s, want %d", what, r.status, r.body, want)
			}
			seen = append(seen, r)
			return r
		}
		script := func(f ...gatewaytest.Failure) {
			w.a.SetScript(gatewaytest.Script{APIKey: secProviderKey, Failures: f})
		}

		send("success", key, chatBody("canary", false), 200)
		send("stream", key, chatBody("canary", true), 200)
		script(gatewaytest.Failure{Status: 401, Message: "Incorrect API key provided: ", EchoHeader: "Authorization"})
		r := send("upstream 401 quoting the key", key, chatBody("canary", false), http.StatusBadGateway)
		if !strings.Contains(string(r.body), "Incorrect API key provided") {
			t.Errorf("the upstream's 401 message is not passed on at all: %s", r.body)
		}
		fail500 := gatewaytest.Failure{Status: 500, Message: "internal error for ", EchoHeader: "Authorization"}
		script(fail500, fail500, fail500)
		send("upstream 500 quoting the key", key, chatBody("canary", false), http.StatusBadGateway)
		script(gatewaytest.Failure{Status: 400, EchoHeader: "Authorization",
			Body: `{"error":{"message":"bad request from {echo}","type":"invalid_request_error","param":"{echo}","code":"{echo}"}}`})
		send("upstream 400 with the key in param and code", key, chatBody("canary", false), 400)
		script(gatewaytest.Failure{Status: 422, EchoHeader: "Authorization", Body: `{"detail":"cannot use {echo}"}`})
		send("upstream 422 in another shape", key, chatBody("canary", false), 422)
		script(gatewaytest.Failure{Status: 401, EchoHeader: "Authorization", Body: `{"error":"unauthorized: {echo}"}`})
		send("upstream 401 with a string error", key, chatBody("canary", true), http.StatusBadGateway)
		w.a.SetScript(gatewaytest.Script{APIKey: secProviderKey, Break: gatewaytest.BreakError, BreakAfter: 1,
			BreakEchoHeader: "Authorization"})
		r = send("stream error event quoting the key", key, chatBody("canary", true), 200)
		if _, _, errEvent, _ := streamed(t, r.body); errEvent == nil {
			t.Errorf("no error event in the broken stream: %s", r.body)
		}
		script()

		// An Anthropic upstream's errors, which quote the key it was sent
		// in x-api-key, pass on without it too.
		scriptB := func(s gatewaytest.Script) {
			s.APIKey = secProviderKey
			w.b.SetScript(s)
		}
		send("anthropic success", key, chatBody("canary-anthropic", false), 200)
		scriptB(gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 400, Message: "invalid x-api-key: ",
			EchoHeader: "X-Api-Key"}}})
		r = send("anthropic 400 quoting the key", key, chatBody("canary-anthropic", false), 400)
		if !strings.Contains(string(r.body), "invalid x-api-key") {
			t.Errorf("the upstream's 400 message is not passed on at all: %s", r.body)
		}
		scriptB(gatewaytest.Script{Failures: []gatewaytest.Failure{{Status: 401, Message: "invalid x-api-key: ",
			EchoHeader: "X-Api-Key"}}})
		send("anthropic 401 quoting the key", key, chatBody("canary-anthropic", true), http.StatusBadGateway)
		scriptB(gatewaytest.Script{Break: gatewaytest.BreakError, BreakAfter: 1, BreakEchoHeader: "X-Api-Key"})
		r = send("anthropic stream error event quoting the key", key, chatBody("canary-anthropic", true), 200)
		if _, _, errEvent, _ := streamed(t, r.body); errEvent == nil {
			t.Errorf("no error event in the broken anthropic stream: %s", r.body)
		}
		scriptB(gatewaytest.Script{})
		if req, ok := w.b.LastRequest(); !ok || req.Header.Get("X-Api-Key") != secProviderKey {
			t.Fatal("the anthropic fake did not receive the provider key; the scan would prove nothing")
		}

		near := key[:len(key)-4] + "AAAA"
		canaries["presented wrong key"] = near
		send("bad virtual key", near, chatBody("canary", false), 401)
		send("budget exhausted", broke, chatBody("canary", false), 429)
		m := gateway.Manager{TenantID: w.tenant, UserID: w.user, Admin: true}
		blocked := true
		if _, err := w.svc.UpdateKey(ctx, m, w.keyIDs[0], gateway.KeyPatch{Blocked: &blocked}); err != nil {
			t.Fatal(err)
		}
		send("blocked key", key, chatBody("canary", false), 401)
		// Key management: the one answer that shows a secret is the
		// creation's, to its creator; the audit entry must not.
		k, secret, err := w.svc.CreateKey(ctx, m, gateway.KeyInput{Name: "rotated", MaxBudgetMicros: 1000})
		if err != nil {
			t.Fatal(err)
		}
		_, rotated, err := w.svc.RotateKey(ctx, m, k.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		canaries["created key"], canaries["rotated key"] = secret, rotated
		send("rotated key", rotated, chatBody("canary", false), 200)
		send("key before rotation, in its grace period", secret, chatBody("canary", false), 200)

		// What was sent upstream is the key itself: the canary is live.
		if req, ok := w.a.LastRequest(); !ok || req.Header.Get("Authorization") != "Bearer "+secProviderKey {
			t.Fatal("the fake did not receive the provider key; the scan would prove nothing")
		}
		var scan []struct{ where, text string }
		add := func(where string, v any) {
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case []byte:
				s = string(v)
			default:
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				s = string(b)
			}
			scan = append(scan, struct{ where, text string }{where, s})
		}
		for _, r := range seen {
			add("response body of "+r.reqID, r.body)
			add("response headers of "+r.reqID, r.header)
		}
		for _, rows := range w.spend(t) {
			add("spend rows", rows)
		}
		w.audit.mu.Lock()
		add("audit entries", w.audit.entries)
		w.audit.mu.Unlock()
		var metricsText bytes.Buffer
		_ = w.reg.WriteText(&metricsText)
		add("metrics", metricsText.String())
		add("log", w.logs.String())
		if len(w.audit.entries) == 0 || !strings.Contains(w.logs.String(), "stream ended by an error") {
			t.Fatalf("nothing to scan: %d audit entries, log %q", len(w.audit.entries), w.logs.String())
		}
		for name, canary := range canaries {
			for _, s := range scan {
				if strings.Contains(s.text, canary) {
					t.Errorf("the %s appears in the %s: %s", name, s.where, excerpt(s.text, canary))
				}
			}
		}
	})
}

// excerpt shows where canary occurs in s.
func excerpt(s, canary string) string {
	i := strings.Index(s, canary)
	lo, hi := max(i-120, 0), min(i+len(canary)+60, len(s))
	return "…" + s[lo:hi] + "…"
}
