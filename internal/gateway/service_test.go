package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// upstreamKey is the provider key the deployment's handle resolves to; it
// must never reach a client, a log or a spend row.
const upstreamKey = "sk-upstream-canary-e2e-0123456789"

// loopbackEgress is an egress store whose platform allows the fakes' ports
// on loopback and nothing else, as an operator allows a local Ollama.
type loopbackEgress struct{ ports []int }

func (loopbackEgress) FindEgressPolicy(_ context.Context, tenantID string) (*egress.Policy, error) {
	return &egress.Policy{TenantID: tenantID, Mode: egress.ModeEnforce}, nil
}

func (s loopbackEgress) FindEgressPlatform(context.Context) (*egress.Platform, error) {
	p := &egress.Platform{}
	for _, port := range s.ports {
		p.Rules = append(p.Rules, egress.Rule{Host: "127.0.0.1", Port: port})
		p.Exceptions = append(p.Exceptions, egress.AddressException{IP: "127.0.0.1", Port: port, Comment: "a fake upstream"})
	}
	return p, nil
}

func (loopbackEgress) UpdateEgressPolicy(context.Context, string, func(*egress.Policy) error) (*egress.Policy, *egress.Policy, error) {
	return nil, nil, errors.New("read-only")
}

func (loopbackEgress) DeleteEgressTenant(context.Context, string) (int64, error) {
	return 0, errors.New("read-only")
}

func (loopbackEgress) UpdateEgressPlatform(context.Context, func(*egress.Platform) error) (*egress.Platform, *egress.Platform, error) {
	return nil, nil, errors.New("read-only")
}

type discardAudit struct{}

func (discardAudit) Record(context.Context, audit.Entry) error { return nil }

// handleSecrets resolves the one handle the test's deployments use.
type handleSecrets struct{ resolved atomic.Int64 }

func (h *handleSecrets) ResolveKey(_ context.Context, _, handleID string) (string, []string, error) {
	if handleID != "handle-1" {
		return "", nil, nodus.Errorf(nodus.ENOTFOUND, "no handle %s", handleID)
	}
	h.resolved.Add(1)
	return upstreamKey, []string{"127.0.0.1"}, nil
}

// world is a gateway over a real store, a real egress client and a fake
// upstream, served on loopback.
type world struct {
	db      *store.DB
	svc     *gateway.Service
	fake    *gatewaytest.Upstream
	srv     *httptest.Server
	tenant  string
	user    string
	key     string // a virtual key of the tenant
	keyID   string
	tctx    context.Context
	secrets *handleSecrets
	reg     *metrics.Registry
}

func newWorld(t testing.TB, db *store.DB) *world { return newWorldWith(t, db, nil) }

// newWorldWith is newWorld with edit applied to the service's
// configuration first.
func newWorldWith(t testing.TB, db *store.DB, edit func(*gateway.Config)) *world {
	t.Helper()
	ctx := context.Background()
	m, err := store.NewMigrator(store.SetGateway, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	w := &world{db: db, tenant: nodus.NewID(), user: nodus.NewID(), secrets: &handleSecrets{}, reg: metrics.NewRegistry()}
	w.tctx = nodus.WithTenant(ctx, w.tenant)
	w.fake = gatewaytest.NewUpstream(gatewaytest.Script{APIKey: upstreamKey})
	t.Cleanup(w.fake.Close)
	u, _ := url.Parse(w.fake.URL)
	port, _ := strconv.Atoi(u.Port())
	eg, err := egress.NewService(loopbackEgress{ports: []int{port}}, egress.Options{Audit: discardAudit{}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{Store: db, Secrets: w.secrets, Egress: eg, Metrics: w.reg,
		Spend: gateway.SpendWriterOptions{FlushEvery: 10 * time.Millisecond}}
	if edit != nil {
		edit(&cfg)
	}
	w.svc, err = gateway.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, d := range []gateway.Deployment{
		{ModelName: "gpt-4o", UpstreamModel: "gpt-4o-2024-08-06", Mode: gateway.ModeChat},
		{ModelName: "embed", UpstreamModel: "text-embedding-3-small", Mode: gateway.ModeEmbedding},
		{ModelName: "whisper", UpstreamModel: "whisper-1", Mode: gateway.ModeTranscription},
	} {
		d.ID, d.TenantID, d.Provider, d.BaseURL, d.APIKeyHandle = "dep-"+strconv.Itoa(i), w.tenant, gateway.ProviderOpenAI, w.fake.URL+"/v1", "handle-1"
		d.Weight, d.IsActive, d.Timeout, d.CreatedAt, d.UpdatedAt = 1, true, 5*time.Second, now, now
		if err := db.CreateDeployment(w.tctx, d); err != nil {
			t.Fatal(err)
		}
	}
	w.key, w.keyID = w.addKey(t, nil)
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
	return w
}

// addKey stores a virtual key of the tenant allowed models (nil: all).
func (w *world) addKey(t testing.TB, models []string) (secret, id string) {
	t.Helper()
	secret, hash := gateway.NewKeySecret()
	now := time.Now().UTC().Truncate(time.Millisecond)
	k := gateway.Key{ID: nodus.NewID(), TenantID: w.tenant, Name: "test", Hash: hash, Prefix: secret[:13], UserID: w.user,
		Models: models, Status: gateway.KeyActive, CreatedAt: now, UpdatedAt: now}
	if err := w.db.CreateKey(w.tctx, k); err != nil {
		t.Fatal(err)
	}
	return secret, k.ID
}

func (w *world) client(key string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(w.srv.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

func apiStatus(t *testing.T, err error) int {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("want an API error, got %v", err)
	}
	return e.StatusCode
}

func TestGatewayWithOpenAIClient(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		c := w.client(w.key)

		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Choices[0].Message.Content; got != gatewaytest.DefaultText {
			t.Errorf("content %q", got)
		}
		seen, _ := w.fake.LastRequest()
		if !strings.Contains(string(seen.Body), `"gpt-4o-2024-08-06"`) || seen.Header.Get("Authorization") != "Bearer "+upstreamKey {
			t.Errorf("upstream saw model/key wrong: %s / %q", seen.Body, seen.Header.Get("Authorization"))
		}

		stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "gpt-4o",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.Choices[0].Message.Content != gatewaytest.DefaultText || acc.Usage.TotalTokens == 0 {
			t.Errorf("stream: %q usage %+v", acc.Choices[0].Message.Content, acc.Usage)
		}

		tools := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris?")},
			Tools: []openai.ChatCompletionToolParam{{Function: openai.FunctionDefinitionParam{Name: "weather",
				Parameters: openai.FunctionParameters{"type": "object"}}}},
		})
		w.fake.SetScript(gatewaytest.Script{APIKey: upstreamKey, ToolCall: &gatewaytest.ToolCall{Arguments: `{"city":"Paris"}`}})
		acc = openai.ChatCompletionAccumulator{}
		for tools.Next() {
			acc.AddChunk(tools.Current())
		}
		if err := tools.Err(); err != nil {
			t.Fatal(err)
		}
		_ = acc
		w.fake.SetScript(gatewaytest.Script{APIKey: upstreamKey, ToolCall: &gatewaytest.ToolCall{Arguments: `{"city":"Paris"}`}})
		tr, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris?")},
			Tools: []openai.ChatCompletionToolParam{{Function: openai.FunctionDefinitionParam{Name: "weather",
				Parameters: openai.FunctionParameters{"type": "object"}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Choices[0].Message.ToolCalls) != 1 || tr.Choices[0].Message.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` {
			t.Errorf("tool call: %+v", tr.Choices[0].Message)
		}
		w.fake.SetScript(gatewaytest.Script{APIKey: upstreamKey})

		emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed",
			Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")}})
		if err != nil {
			t.Fatal(err)
		}
		if len(emb.Data) != 1 || len(emb.Data[0].Embedding) == 0 {
			t.Errorf("embeddings: %+v", emb)
		}

		models, err := c.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range models.Data {
			names = append(names, m.ID)
		}
		if strings.Join(names, ",") != "embed,gpt-4o,nodus/extractive,whisper" {
			t.Errorf("models: %v", names)
		}

		tx, err := c.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{Model: "whisper",
			File: openai.File(strings.NewReader("RIFF....WAVEfmt "), "a.wav", "audio/wav")})
		if err != nil {
			t.Fatal(err)
		}
		if tx.Text != gatewaytest.DefaultTranscript {
			t.Errorf("transcript %q", tx.Text)
		}
		// The answer's type follows the format asked for, never sniffed.
		for format, want := range map[string]string{"json": "application/json", "text": "text/plain; charset=utf-8",
			"vtt": "text/plain; charset=utf-8"} {
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			_ = mw.WriteField("model", "whisper")
			_ = mw.WriteField("response_format", format)
			fw, _ := mw.CreateFormFile("file", "a.wav")
			_, _ = fw.Write([]byte("RIFF....WAVEfmt "))
			_ = mw.Close()
			req, _ := http.NewRequest("POST", w.srv.URL+"/v1/audio/transcriptions", &body)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			req.Header.Set("Authorization", "Bearer "+w.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("transcription as %s: %d %q %q", format, resp.StatusCode, resp.Header.Get("Content-Type"),
					resp.Header.Get("X-Content-Type-Options"))
			}
		}

		ext, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: gateway.ExtractiveModel,
			Messages: []openai.ChatCompletionMessageParamUnion{
				openai.SystemMessage("Answer from the sources.\n[1] Refunds take 14 days.\n[2] Shipping is free."),
				openai.UserMessage("How long do refunds take?")}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ext.Choices[0].Message.Content, "Refunds take 14 days") {
			t.Errorf("extractive: %q", ext.Choices[0].Message.Content)
		}

		// Refusals.
		_, err = w.client(gateway.KeyPrefix+strings.Repeat("A", 43)).Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
		if st := apiStatus(t, err); st != http.StatusUnauthorized {
			t.Errorf("bad key: %d", st)
		}
		narrow, _ := w.addKey(t, []string{"embed"})
		_, err = w.client(narrow).Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
		if st := apiStatus(t, err); st != http.StatusForbidden {
			t.Errorf("disallowed model: %d", st)
		}
		_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "no-such-model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
		if st := apiStatus(t, err); st != http.StatusNotFound {
			t.Errorf("unknown model: %d", st)
		}
		_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}},
			option.WithJSONSet("api_base", "http://169.254.169.254/"))
		if st := apiStatus(t, err); st != http.StatusBadRequest {
			t.Errorf("api_base in the body: %d", st)
		}

		// Spend: every call above that reached a deployment is logged once.
		if err := w.svc.FlushSpend(ctx); err != nil {
			t.Fatal(err)
		}
		logs, _, err := db.ListSpend(w.tctx, gateway.SpendFilter{}, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		ok := 0
		for _, l := range logs {
			if l.Status == gateway.StatusSuccess {
				ok++
			}
			if l.KeyID != w.keyID && l.Status == gateway.StatusSuccess {
				t.Errorf("spend row of another key: %+v", l)
			}
		}
		if ok != 10 { // 7, and the 3 transcriptions by format
			t.Errorf("%d successful spend rows, want 10", ok)
		}
	})
}

// TestGatewayBudgetHoldsUnderConcurrency: 100 parallel requests against a
// tenant budget that fits a few never overspend (SECURITY.md check 31).
func TestGatewayBudgetHoldsUnderConcurrency(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		// Worst case per call: ~10 prompt tokens at $2.50/M + 100 output
		// tokens at $10/M ≈ 1,025 µ$. A budget of 5,000 µ$ fits 4.
		now := time.Now().UTC().Truncate(time.Millisecond)
		b := gateway.Budget{ID: nodus.NewID(), TenantID: w.tenant, Scope: gateway.BudgetTenant, MaxMicros: 5000, UpdatedAt: now}
		if err := db.CreateBudget(w.tctx, b); err != nil {
			t.Fatal(err)
		}
		// A fresh service loads the budget at start.
		w2 := w.restart(t)
		c := w2.client(w.key)
		var wg sync.WaitGroup
		var okCount, refused atomic.Int64
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
					Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
					MaxTokens: openai.Int(100)})
				switch {
				case err == nil:
					okCount.Add(1)
				case apiStatus(t, err) == http.StatusTooManyRequests:
					refused.Add(1)
				default:
					t.Errorf("unexpected: %v", err)
				}
			}()
		}
		wg.Wait()
		if okCount.Load() == 0 || okCount.Load()+refused.Load() != 100 {
			t.Fatalf("%d passed, %d refused", okCount.Load(), refused.Load())
		}
		if err := w2.svc.FlushSpend(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindBudget(w.tctx, gateway.BudgetTenant, "")
		if err != nil {
			t.Fatal(err)
		}
		if got.Spend > got.MaxMicros || got.Spend == 0 {
			t.Errorf("budget spend %d of %d after %d calls", got.Spend, got.MaxMicros, okCount.Load())
		}
	})
}

// restart builds a second service over the same store and fake, as after
// a restart, served on its own listener.
func (w *world) restart(t *testing.T) *world {
	t.Helper()
	return w.restartWith(t, egress.Options{})
}

// restartWith is restart with an egress service of the given options.
func (w *world) restartWith(t *testing.T, opts egress.Options) *world {
	t.Helper()
	u, _ := url.Parse(w.fake.URL)
	port, _ := strconv.Atoi(u.Port())
	opts.Audit = discardAudit{}
	eg, err := egress.NewService(loopbackEgress{ports: []int{port}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := gateway.NewService(gateway.Config{Store: w.db, Secrets: w.secrets, Egress: eg})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := svc.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	mux := http.NewServeMux()
	for pattern, h := range svc.Routes() {
		mux.Handle(pattern, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cp := *w
	cp.svc, cp.srv = svc, srv
	return &cp
}
