package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

const (
	handleA = "0190a1b2-0000-7000-8000-00000000000a"
	handleB = "0190a1b2-0000-7000-8000-00000000000b"
)

// goodList uses every field the import knows.
const goodList = `
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: vault:` + handleA + `
      rpm: 600
      tpm: 100000
      weight: 3
      timeout: 30
    model_info:
      id: primary
      input_cost_per_token: 2.5e-06
      output_cost_per_token: 0.00001
      cache_read_input_token_cost: 1.25e-06
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt4o-eu
      api_base: https://eu.example.test
      api_version: "2024-10-21"
      api_key: vault:` + handleB + `
      max_parallel_requests: 8
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-20250514
      api_key: vault:` + handleA + `
  - model_name: local
    litellm_params:
      model: ollama/llama3.1
      api_base: http://127.0.0.1:11434
  - model_name: embed
    litellm_params:
      model: hosted_vllm/bge-m3
      api_base: http://vllm.internal:8000/v1
    model_info:
      mode: embedding
      input_cost_per_token: 1e-08
router_settings:
  routing_strategy: least-busy
  num_retries: 1
  allowed_fails: 5
  cooldown_time: 120
  fallbacks:
    - gpt-4o: [claude, local]
`

func TestParseModelList(t *testing.T) {
	l, err := gateway.ParseModelList(strings.NewReader(goodList))
	if err != nil {
		t.Fatal(err)
	}
	want := []gateway.ImportedDeployment{
		{Entry: "model_list[0] (gpt-4o)", ID: "primary", Input: gateway.DeploymentInput{ModelName: "gpt-4o", Provider: "openai",
			UpstreamModel: "gpt-4o", BaseURL: "https://api.openai.com/v1", APIKeyHandle: handleA, Mode: "chat", Weight: 3,
			RPM: 600, TPM: 100000, TimeoutSeconds: 30}},
		{Entry: "model_list[1] (gpt-4o)", Input: gateway.DeploymentInput{ModelName: "gpt-4o", Provider: "azure",
			UpstreamModel: "gpt4o-eu", BaseURL: "https://eu.example.test", APIKeyHandle: handleB, APIVersion: "2024-10-21",
			Mode: "chat", Weight: 1, MaxConcurrency: 8}},
		{Entry: "model_list[2] (claude)", Input: gateway.DeploymentInput{ModelName: "claude", Provider: "anthropic",
			UpstreamModel: "claude-sonnet-4-20250514", APIKeyHandle: handleA, Mode: "chat", Weight: 1}},
		{Entry: "model_list[3] (local)", Input: gateway.DeploymentInput{ModelName: "local", Provider: "openai",
			UpstreamModel: "llama3.1", BaseURL: "http://127.0.0.1:11434/v1", Mode: "chat", Weight: 1}},
		{Entry: "model_list[4] (embed)", Input: gateway.DeploymentInput{ModelName: "embed", Provider: "openai",
			UpstreamModel: "bge-m3", BaseURL: "http://vllm.internal:8000/v1", Mode: "embedding", Weight: 1}},
	}
	if !slices.Equal(l.Deployments, want) {
		t.Errorf("deployments:\n got %+v\nwant %+v", l.Deployments, want)
	}
	// Dollars per token, exactly, as micro-dollars per million tokens; no
	// cache price means no discount.
	wantPrices := map[string]gateway.Price{
		"gpt-4o": {Input: 2_500_000, CachedInput: 1_250_000, Output: 10_000_000},
		"bge-m3": {Input: 10_000, CachedInput: 10_000},
	}
	if len(l.Prices) != len(wantPrices) || l.Prices["gpt-4o"] != wantPrices["gpt-4o"] || l.Prices["bge-m3"] != wantPrices["bge-m3"] {
		t.Errorf("prices %+v, want %+v", l.Prices, wantPrices)
	}
	rs := l.RouterSettings
	if rs == nil || rs.Strategy != gateway.StrategyLeastBusy || rs.NumRetries == nil || *rs.NumRetries != 1 ||
		rs.AllowedFails != 5 || rs.CooldownSeconds != 120 || !slices.Equal(rs.Fallbacks["gpt-4o"], []string{"claude", "local"}) {
		t.Errorf("router settings %+v", rs)
	}

	l, err = gateway.ParseModelList(strings.NewReader("model_list:\n  - model_name: a\n    litellm_params: {model: openai/gpt-4o-mini}\n" +
		"router_settings: {routing_strategy: simple-shuffle}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l.RouterSettings.Strategy != gateway.StrategyWeighted || l.RouterSettings.NumRetries != nil || len(l.Prices) != 0 {
		t.Errorf("simple-shuffle: %+v, prices %v", l.RouterSettings, l.Prices)
	}
}

func TestParseModelListErrors(t *testing.T) {
	entry := func(params string) string {
		return "model_list:\n  - model_name: ok\n    litellm_params: {model: openai/gpt-4o}\n" +
			"  - model_name: bad-one\n    litellm_params: {" + params + "}\n"
	}
	tests := []struct {
		name string
		file string
		code string
		want []string // in the message or a field
	}{
		{"unknown field", entry("model: openai/gpt-4o, api_keyy: x"), nodus.EINVALID,
			[]string{"model_list[1] (bad-one)", `unknown field "api_keyy"`, "line 5"}},
		{"unknown model_info field", "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x}\n" +
			"    model_info: {supports_vision: true}\n", nodus.EINVALID, []string{"model_list[0] (m)", `unknown field "supports_vision"`}},
		{"unknown top-level key", "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x}\nlitellm_settings: {drop_params: true}\n",
			nodus.EINVALID, []string{"line 4", `unknown field "litellm_settings"`}},
		{"wrong type", entry("model: openai/gpt-4o, rpm: lots"), nodus.EINVALID, []string{"model_list[1] (bad-one)", "line 5"}},
		{"literal key", entry("model: openai/gpt-4o, api_key: sk-live-canary-0123456789"), nodus.EINVALID,
			[]string{"model_list[1] (bad-one)", "litellm_params.api_key", "literal key is not accepted", "vault:<handle-id>"}},
		{"environment key", entry("model: azure/x, api_base: https://a.example.test, api_key: os.environ/AZURE_API_KEY"),
			nodus.EINVALID, []string{"model_list[1] (bad-one)", "os.environ/", "vault secret handles"}},
		{"handle not an id", entry("model: openai/gpt-4o, api_key: 'vault:sk-live-canary-0123456789'"), nodus.EINVALID,
			[]string{"model_list[1] (bad-one)", "a UUID"}},
		{"no provider prefix", entry("model: gpt-4o"), nodus.EINVALID, []string{"model_list[1] (bad-one)", "<provider>/<model>"}},
		{"unsupported provider", entry("model: bedrock/anthropic.claude-v2"), nodus.EINVALID, []string{"model_list[1] (bad-one)", `"bedrock" is not supported`}},
		{"compatible without api_base", entry("model: hosted_vllm/llama"), nodus.EINVALID, []string{"model_list[1] (bad-one)", "api_base: required for hosted_vllm"}},
		{"azure without api_base", entry("model: azure/gpt4"), nodus.EINVALID, []string{"api_base: required for azure"}},
		{"api_base with credentials", entry("model: openai/x, api_base: 'https://u:p@a.example.test/v1'"), nodus.EINVALID,
			[]string{"model_list[1] (bad-one)", "litellm_params.api_base"}},
		{"negative limit", entry("model: openai/gpt-4o, rpm: -1"), nodus.EINVALID, []string{"model_list[1] (bad-one)", "must not be negative"}},
		{"timeout too long", entry("model: openai/gpt-4o, timeout: 7200"), nodus.EINVALID, []string{"timeout at most 3600"}},
		{"bad mode", "model_list:\n  - model_name: m\n    litellm_params: {model: openai/dall-e-3}\n    model_info: {mode: image_generation}\n",
			nodus.EINVALID, []string{"model_list[0] (m)", "model_info.mode"}},
		{"no model name", "model_list:\n  - litellm_params: {model: openai/x}\n", nodus.EINVALID, []string{"model_list[0]", "model_name"}},
		{"negative cost", "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x}\n    model_info: {input_cost_per_token: -1e-06}\n",
			nodus.EINVALID, []string{"model_list[0] (m)", "dollars per token"}},
		{"cost not a number", "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x}\n    model_info: {output_cost_per_token: cheap}\n",
			nodus.EINVALID, []string{"model_list[0] (m)", "dollars per token"}},
		{"duplicate id", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n    model_info: {id: same}\n" +
			"  - model_name: b\n    litellm_params: {model: openai/y}\n    model_info: {id: same}\n", nodus.EINVALID,
			[]string{"model_list[1] (b)", "also the id of model_list[0] (a)"}},
		{"conflicting prices", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n    model_info: {input_cost_per_token: 1e-06}\n" +
			"  - model_name: b\n    litellm_params: {model: openai/x}\n    model_info: {input_cost_per_token: 2e-06}\n", nodus.EINVALID,
			[]string{"model_list[1] (b)", "differs from the one in model_list[0] (a)"}},
		{"routing strategy", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\nrouter_settings: {routing_strategy: latency-based-routing}\n",
			nodus.EINVALID, []string{"router_settings", "latency-based-routing"}},
		{"retries", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\nrouter_settings: {num_retries: 11}\n",
			nodus.EINVALID, []string{"router_settings", "num_retries"}},
		{"fallback to itself", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\nrouter_settings: {fallbacks: [{a: [b, a]}]}\n",
			nodus.EINVALID, []string{"router_settings", "cannot fall back to itself"}},
		{"fallback item with two models", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\nrouter_settings: {fallbacks: [{a: [b], c: [d]}]}\n",
			nodus.EINVALID, []string{"router_settings", "one model per item"}},
		{"unknown router setting", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\nrouter_settings: {redis_host: r}\n",
			nodus.EINVALID, []string{"line 4", `unknown field "redis_host"`}},
		{"syntax error", "model_list:\n  - model_name: a\n   litellm_params: [\n", nodus.EINVALID, []string{"line"}},
		{"empty", "", nodus.EINVALID, []string{"empty"}},
		{"no models", "router_settings: {num_retries: 1}\n", nodus.EINVALID, []string{"no models"}},
		{"two documents", "model_list: []\n---\nmodel_list: []\n", nodus.EINVALID, []string{"single YAML document"}},
		{"too large", "model_list: []\n#" + strings.Repeat("x", gateway.MaxModelListBytes), nodus.ETOOLARGE, []string{"larger than"}},
		{"too many models", "model_list:\n" + strings.Repeat("  - {model_name: m, litellm_params: {model: openai/x}}\n", gateway.MaxModelListEntries+1),
			nodus.EINVALID, []string{"at most 1000"}},
		{"several problems at once", "model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o}\n" +
			"  - model_name: b\n    litellm_params: {model: openai/x, api_key: sk-live-canary-0123456789}\n", nodus.EINVALID,
			[]string{"model_list[0] (a)", "model_list[1] (b)", "and 1 more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := gateway.ParseModelList(strings.NewReader(tt.file))
			if err == nil {
				t.Fatalf("accepted: %+v", l)
			}
			if code := nodus.ErrorCode(err); code != tt.code {
				t.Fatalf("code %s (%v), want %s", code, err, tt.code)
			}
			all := nodus.ErrorMessage(err)
			for k, v := range nodus.ErrorFields(err) {
				all += "\n" + k + ": " + v
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("%q not in\n%s", w, all)
				}
			}
			// A key written into the file never comes back in an error.
			if strings.Contains(all, "canary") || strings.Contains(err.Error(), "canary") {
				t.Errorf("the error echoes the key: %s", all)
			}
		})
	}
}

// recorder is an Auditor that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (r *recorder) Record(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	return nil
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.entries {
		out = append(out, e.Action)
	}
	return out
}

// plainClients serves management tests, which call no upstream.
type plainClients struct{}

func (plainClients) Client(string) *http.Client { return http.DefaultClient }

// importWorld is a gateway over a real store with an audit recorder.
type importWorld struct {
	svc    *gateway.Service
	rec    *recorder
	admin  gateway.Manager
	tenant string
	tctx   context.Context
	db     *store.DB
}

func newImportWorld(t *testing.T, db *store.DB) *importWorld {
	t.Helper()
	m, err := store.NewMigrator(store.SetGateway, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := &importWorld{rec: &recorder{}, tenant: nodus.NewID(), db: db}
	w.svc, err = gateway.NewService(gateway.Config{Store: db, Egress: plainClients{}, Audit: w.rec})
	if err != nil {
		t.Fatal(err)
	}
	w.admin = gateway.Manager{TenantID: w.tenant, UserID: nodus.NewID(), Admin: true}
	w.tctx = nodus.WithTenant(context.Background(), w.tenant)
	return w
}

func (w *importWorld) importFile(t *testing.T, file string, opts gateway.ImportOptions) *gateway.ImportResult {
	t.Helper()
	l, err := gateway.ParseModelList(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.svc.ImportModelList(context.Background(), w.admin, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// state is the tenant's gateway configuration as text, to compare.
func (w *importWorld) state(t *testing.T) string {
	t.Helper()
	deps, err := w.db.ListDeployments(w.tctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, d := range deps {
		d.CreatedAt, d.UpdatedAt = time.Time{}, time.Time{}
		fmt.Fprintf(&b, "%+v\n", d)
	}
	prices, err := w.db.ListPriceOverrides(w.tctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prices {
		fmt.Fprintf(&b, "%s %+v\n", p.Model, p.Price)
	}
	rs, err := w.svc.FindRouterSettings(context.Background(), w.admin)
	if err != nil {
		t.Fatal(err)
	}
	in := rs.Input()
	fmt.Fprintf(&b, "%s %v %d %d %d %v\n", in.Strategy, rs.NumRetries, in.AllowedFails, in.FailWindowSeconds, in.CooldownSeconds, in.Fallbacks)
	return b.String()
}

func TestImportModelList(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newImportWorld(t, db)
		ctx := context.Background()
		caller := gateway.Caller{TenantID: w.tenant}
		// A deployment made by hand, which only a prune removes.
		manual, err := w.svc.CreateDeployment(ctx, w.admin, gateway.DeploymentInput{ModelName: "manual", Provider: "openai",
			UpstreamModel: "gpt-4o-mini", BaseURL: "https://api.openai.com/v1"})
		if err != nil {
			t.Fatal(err)
		}

		// A dry run reports everything and writes nothing.
		before := w.state(t)
		audited := len(w.rec.actions())
		dry := w.importFile(t, goodList, gateway.ImportOptions{DryRun: true})
		if !dry.DryRun || dry.Created != 7 || dry.Updated != 1 || dry.Deleted != 0 || w.state(t) != before ||
			len(w.rec.actions()) != audited {
			t.Fatalf("dry run: %+v; state changed: %v", dry, w.state(t) != before)
		}

		// Load the tenant's configuration into the cache: the import must
		// drop it for the new models to show.
		if models, err := w.svc.Models(ctx, caller); err != nil || !slices.Equal(models, []string{"manual", gateway.ExtractiveModel}) {
			t.Fatalf("models before: %v, %v", models, err)
		}
		res := w.importFile(t, goodList, gateway.ImportOptions{})
		if res.DryRun || res.Created != 7 || res.Updated != 1 || res.Deleted != 0 || res.Unchanged != 0 {
			t.Fatalf("import: %+v", res)
		}
		if !sameChanges(dry, res) || dry.Changes[0].ID == "" || dry.Changes[1].ID != "" {
			t.Errorf("the dry run said %+v, the import did %+v", dry.Changes, res.Changes)
		}
		deps, err := db.ListDeployments(w.tctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(deps) != 6 {
			t.Fatalf("%d deployments, want 5 imported and the manual one", len(deps))
		}
		var primary gateway.Deployment
		for _, d := range deps {
			if d.Provider == "openai" && d.UpstreamModel == "gpt-4o" {
				primary = d
			}
		}
		if primary.APIKeyHandle != handleA || primary.Weight != 3 || primary.RPM != 600 || primary.TPM != 100000 ||
			primary.Timeout != 30*time.Second || !primary.IsActive || primary.CreatedBy != w.admin.UserID || !nodus.ValidID(primary.ID) {
			t.Errorf("primary deployment %+v", primary)
		}
		models, err := w.svc.Models(ctx, caller)
		if err != nil || !slices.Equal(models, []string{"claude", "embed", "gpt-4o", "local", "manual", gateway.ExtractiveModel}) {
			t.Errorf("models after the import: %v, %v (a stale cache?)", models, err)
		}
		prices, err := w.svc.ListPrices(ctx, w.admin)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(prices, func(p gateway.PriceEntry) bool { return p.Model == "gpt-4o" })
		if i < 0 || !prices[i].Override || prices[i].Price != (gateway.Price{Input: 2_500_000, CachedInput: 1_250_000, Output: 10_000_000}) ||
			prices[i].Builtin == nil || *prices[i].Builtin != gateway.Catalogue()["gpt-4o"] {
			t.Errorf("gpt-4o's price %+v", prices[i])
		}
		rs, err := w.svc.FindRouterSettings(ctx, w.admin)
		if err != nil || rs.Strategy != gateway.StrategyLeastBusy || rs.NumRetries != 1 || rs.AllowedFails != 5 ||
			rs.CooldownTime != 2*time.Minute || !slices.Equal(rs.Fallbacks["gpt-4o"], []string{"claude", "local"}) {
			t.Errorf("router settings %+v, %v", rs, err)
		}
		// One audit entry per change, named as the same change by hand.
		got := w.rec.actions()[audited:]
		count := func(action string) int {
			return len(slices.DeleteFunc(slices.Clone(got), func(a string) bool { return a != action }))
		}
		if count("gateway.deployment_create") != 5 || count("gateway.price_put") != 2 || count("gateway.router_settings_update") != 1 || len(got) != 8 {
			t.Errorf("audit entries %v", got)
		}

		// Again: nothing changes, nothing is audited.
		imported := w.state(t)
		audited = len(w.rec.actions())
		again := w.importFile(t, goodList, gateway.ImportOptions{})
		if again.Created+again.Updated+again.Deleted != 0 || again.Unchanged != 8 || len(again.Changes) != 0 {
			t.Errorf("second import: %+v", again)
		}
		if w.state(t) != imported || len(w.rec.actions()) != audited {
			t.Errorf("the second import changed something:\n%s\n%s", imported, w.state(t))
		}

		// model_info.id keeps the deployment across a change of its model;
		// an entry without one is matched by what it points at.
		changed := strings.Replace(goodList, "model: openai/gpt-4o\n", "model: openai/gpt-4.1\n", 1)
		changed = strings.Replace(changed, "max_parallel_requests: 8", "max_parallel_requests: 16", 1)
		res = w.importFile(t, changed, gateway.ImportOptions{})
		// The price moves with the model: gpt-4.1 gets one too.
		if res.Created != 1 || res.Updated != 2 || res.Deleted != 0 || res.Changes[2].Kind != "price" || res.Changes[2].Name != "gpt-4.1" {
			t.Fatalf("changed import: %+v", res)
		}
		if c := res.Changes[0]; c.ID != primary.ID || !slices.Equal(c.Fields, []string{"upstream_model"}) {
			t.Errorf("first change %+v, want an update of %s's upstream_model", c, primary.ID)
		}
		if c := res.Changes[1]; c.Kind != "deployment" || !slices.Equal(c.Fields, []string{"max_concurrency"}) {
			t.Errorf("second change %+v", c)
		}

		// A prune removes what the file does not list: the manual one.
		res = w.importFile(t, changed, gateway.ImportOptions{Prune: true})
		if res.Deleted != 1 || res.Changes[0].ID != manual.ID || res.Created+res.Updated != 0 {
			t.Fatalf("prune: %+v", res)
		}
		if _, err := db.FindDeployment(w.tctx, manual.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("the manual deployment after a prune: %v", err)
		}
		if n := len(slices.DeleteFunc(w.rec.actions(), func(a string) bool { return a != "gateway.deployment_delete" })); n != 1 {
			t.Errorf("%d delete entries, want 1", n)
		}
	})
}

// sameChanges compares a dry run's changes with the import's. A new
// deployment without a model_info.id has no id in a dry run: it gets one
// only when it is made.
func sameChanges(dry, real *gateway.ImportResult) bool {
	return slices.EqualFunc(dry.Changes, real.Changes, func(d, r gateway.ImportChange) bool {
		if d.Action == gateway.ImportCreate && d.ID == "" {
			r.ID = ""
		}
		return d.Action == r.Action && d.Kind == r.Kind && d.ID == r.ID && d.Name == r.Name && slices.Equal(d.Fields, r.Fields)
	})
}

// TestImportIsAllOrNothing: a file with one change the import must refuse
// writes none of its other changes.
func TestImportIsAllOrNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newImportWorld(t, db)
		w.importFile(t, goodList, gateway.ImportOptions{})
		before, audited := w.state(t), len(w.rec.actions())
		// The deployment with model_info.id "primary" moves to another URL
		// with the same key handle (refused: the key would follow the URL),
		// while a new model is added and a price changes.
		bad := strings.Replace(goodList, "model: openai/gpt-4o\n", "model: openai/gpt-4o\n      api_base: https://attacker.example.test/v1\n", 1)
		bad = strings.Replace(bad, "input_cost_per_token: 1e-08", "input_cost_per_token: 2e-08", 1)
		bad = strings.Replace(bad, "router_settings:", "  - model_name: extra\n    litellm_params: {model: openai/gpt-4.1-nano}\nrouter_settings:", 1)
		l, err := gateway.ParseModelList(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		for _, dry := range []bool{true, false} {
			_, err = w.svc.ImportModelList(context.Background(), w.admin, l, gateway.ImportOptions{DryRun: dry, Prune: true})
			if nodus.ErrorCode(err) != nodus.EINVALID || !strings.Contains(nodus.ErrorMessage(err), "model_list[0] (gpt-4o)") ||
				!strings.Contains(nodus.ErrorMessage(err), "key handle") {
				t.Fatalf("dry run %v: %v, want the URL change refused", dry, err)
			}
		}
		if w.state(t) != before || len(w.rec.actions()) != audited {
			t.Errorf("a refused import changed something:\n%s\n%s", before, w.state(t))
		}

		// Only an admin imports.
		user := w.admin
		user.Admin = false
		if _, err := w.svc.ImportModelList(context.Background(), user, l, gateway.ImportOptions{DryRun: true}); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("a user's import: %v", err)
		}
	})
}

// TestImportTenantsApart: the same file in two tenants makes two sets of
// deployments, and a model_info.id names a different deployment in each.
func TestImportTenantsApart(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		a := newImportWorld(t, db)
		b := &importWorld{svc: a.svc, rec: a.rec, tenant: nodus.NewID(), db: db}
		b.admin = gateway.Manager{TenantID: b.tenant, UserID: nodus.NewID(), Admin: true}
		b.tctx = nodus.WithTenant(context.Background(), b.tenant)
		ra := a.importFile(t, goodList, gateway.ImportOptions{})
		stateA := a.state(t)
		rb := b.importFile(t, goodList, gateway.ImportOptions{Prune: true})
		if rb.Created != ra.Created || rb.Deleted != 0 {
			t.Errorf("B's import %+v", rb)
		}
		if ra.Changes[0].ID == rb.Changes[0].ID {
			t.Errorf("model_info.id gave both tenants deployment %s", ra.Changes[0].ID)
		}
		if a.state(t) != stateA {
			t.Error("B's import changed A")
		}
		// A's deployment id written into B's file is not a way into A.
		stolen := strings.Replace(goodList, "id: primary", "id: "+ra.Changes[0].ID, 1)
		rb = b.importFile(t, stolen, gateway.ImportOptions{})
		if rb.Created != 1 || rb.Changes[0].ID == ra.Changes[0].ID {
			t.Errorf("B importing A's id: %+v", rb)
		}
		if a.state(t) != stateA {
			t.Error("B's import of A's id changed A")
		}
	})
}

func TestRouterSettings(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newImportWorld(t, db)
		ctx := context.Background()
		rs, err := w.svc.FindRouterSettings(ctx, w.admin)
		if err != nil || rs.Input().Strategy != gateway.StrategyWeighted || rs.Input().NumRetries != nil {
			t.Fatalf("defaults: %+v, %v", rs, err)
		}
		one, zero := 1, 0
		in := gateway.RouterSettingsInput{Strategy: "least-busy", NumRetries: &one, AllowedFails: 2, FailWindowSeconds: 30,
			CooldownSeconds: 90, Fallbacks: map[string][]string{"gpt-4o": {"claude"}}}
		if _, err := w.svc.UpdateRouterSettings(ctx, w.admin, in); err != nil {
			t.Fatal(err)
		}
		rs, err = w.svc.FindRouterSettings(ctx, w.admin)
		if err != nil {
			t.Fatal(err)
		}
		got := rs.Input()
		if got.Strategy != in.Strategy || got.NumRetries == nil || *got.NumRetries != 1 || got.AllowedFails != 2 ||
			got.FailWindowSeconds != 30 || got.CooldownSeconds != 90 || !slices.Equal(got.Fallbacks["gpt-4o"], []string{"claude"}) {
			t.Errorf("round trip: %+v", got)
		}
		if rs.UpdatedBy != w.admin.UserID || !slices.Contains(w.rec.actions(), "gateway.router_settings_update") {
			t.Errorf("not stamped or audited: %+v %v", rs, w.rec.actions())
		}
		many := map[string][]string{}
		for i := range 201 {
			many["m"+strings.Repeat("x", i)] = []string{"y"}
		}
		eleven := 11
		for name, bad := range map[string]gateway.RouterSettingsInput{
			"self loop":        {Fallbacks: map[string][]string{"a": {"b", "a"}}},
			"twice":            {Fallbacks: map[string][]string{"a": {"b", "b"}}},
			"empty target":     {Fallbacks: map[string][]string{"a": {""}}},
			"no targets":       {Fallbacks: map[string][]string{"a": {}}},
			"too many models":  {Fallbacks: many},
			"too many targets": {Fallbacks: map[string][]string{"a": {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}}},
			"strategy":         {Strategy: "usage-based-routing"},
			"retries":          {NumRetries: &eleven},
			"negative":         {AllowedFails: -1},
			"cooldown":         {CooldownSeconds: 86401},
			"window":           {FailWindowSeconds: 3601},
		} {
			if _, err := w.svc.UpdateRouterSettings(ctx, w.admin, bad); nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("%s: %v, want invalid", name, err)
			}
		}
		// 0 is no retries (LiteLLM's num_retries: 0), kept apart from
		// null, the default.
		if _, err := w.svc.UpdateRouterSettings(ctx, w.admin, gateway.RouterSettingsInput{NumRetries: &zero}); err != nil {
			t.Fatal(err)
		}
		if rs, err = w.svc.FindRouterSettings(ctx, w.admin); err != nil || rs.NumRetries >= 0 ||
			rs.Input().NumRetries == nil || *rs.Input().NumRetries != 0 {
			t.Errorf("no retries stored as %+v (%v)", rs, err)
		}
		user := w.admin
		user.Admin = false
		if _, err := w.svc.UpdateRouterSettings(ctx, user, in); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("a user: %v", err)
		}
	})
}

// TestPriceOverrides runs calls through the gateway: a tenant's price
// applies to the next call at once (the cached configuration is dropped)
// and its removal brings the catalogue's back.
func TestPriceOverrides(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		admin := gateway.Manager{TenantID: w.tenant, UserID: w.user, Admin: true}
		caller := gateway.Caller{TenantID: w.tenant, UserID: w.user}
		chat := func() *gateway.CallInfo {
			t.Helper()
			_, info, err := w.svc.Chat(ctx, caller, &gateway.ChatRequest{Model: "gpt-4o",
				Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent("Say hello")}}})
			if err != nil {
				t.Fatal(err)
			}
			return info
		}
		builtin := chat()
		if want := gateway.Cost(gateway.Catalogue()["gpt-4o"], builtin.Usage); builtin.CostMicros != want || want == 0 {
			t.Fatalf("catalogue cost %d, want %d", builtin.CostMicros, want)
		}
		own := gateway.Price{Input: 900_000_000, CachedInput: 900_000_000, Output: 700_000_000}
		if _, err := w.svc.PutPrice(ctx, admin, "gpt-4o", gateway.PriceInput{Input: own.Input, Output: own.Output}); err != nil {
			t.Fatal(err)
		}
		if got := chat(); got.CostMicros != gateway.Cost(own, got.Usage) {
			t.Errorf("after the override: cost %d, want %d (a stale cache?)", got.CostMicros, gateway.Cost(own, got.Usage))
		}
		prices, err := w.svc.ListPrices(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range prices {
			if p.Override {
				n++
				if p.Model != "gpt-4o" || p.Price != own || p.UpdatedBy != w.user {
					t.Errorf("override %+v", p)
				}
			}
		}
		if n != 1 || len(prices) != len(gateway.Catalogue()) {
			t.Errorf("%d overrides in %d prices", n, len(prices))
		}
		if err := w.svc.DeletePrice(ctx, admin, "gpt-4o"); err != nil {
			t.Fatal(err)
		}
		if got := chat(); got.CostMicros != builtin.CostMicros {
			t.Errorf("after the removal: cost %d, want the catalogue's %d", got.CostMicros, builtin.CostMicros)
		}
		if err := w.svc.DeletePrice(ctx, admin, "gpt-4o"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("deleting it again: %v", err)
		}
		for name, in := range map[string]gateway.PriceInput{"negative": {Input: -1}, "huge": {Output: 1_000_000_000_001}} {
			if _, err := w.svc.PutPrice(ctx, admin, "gpt-4o", in); nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("%s: %v", name, err)
			}
		}
		for _, model := range []string{"", " gpt-4o", "a\nb", strings.Repeat("m", 201)} {
			if _, err := w.svc.PutPrice(ctx, admin, model, gateway.PriceInput{}); nodus.ErrorCode(err) != nodus.EINVALID {
				t.Errorf("model %q: %v", model, err)
			}
		}
		user := admin
		user.Admin = false
		if _, err := w.svc.PutPrice(ctx, user, "gpt-4o", gateway.PriceInput{}); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("a user: %v", err)
		}
	})
}
