package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// plainClients serves a gateway that calls no upstream.
type plainClients struct{}

func (plainClients) Client(string) *http.Client { return http.DefaultClient }

// gatewayFixture is the API over a real store with the gateway mounted:
// tenants A and B, A's org_admin and a plain user of A, and the
// super_admin, each with an API token.
type gatewayFixture struct {
	ts                *httptest.Server
	a, b              string // tenant ids
	admin, user, root string // tokens: A's org_admin, A's user, the super_admin
	audit             *audit.Service
}

func newGatewayFixture(t *testing.T, db *store.DB) *gatewayFixture {
	t.Helper()
	ctx := context.Background()
	for _, set := range []string{store.SetAuth, store.SetMain, store.SetGateway} {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock := nodus.SystemClock{}
	aud := audit.NewService(db, clock)
	ids := identity.NewService(db, identity.NewHasher(identity.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0),
		identity.NewThrottle(20, 100, 15*time.Minute), aud, clock)
	root, _, err := ids.Bootstrap(ctx, "root@example.test", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	all := nodus.WithAllTenants(ctx)
	f := &gatewayFixture{audit: aud}
	for name, dst := range map[string]*string{"Tenant A": &f.a, "Tenant B": &f.b} {
		tn := &identity.Tenant{Name: name, IsActive: true}
		if err := ids.CreateTenant(all, identity.Actor{User: root}, tn); err != nil {
			t.Fatal(err)
		}
		*dst = tn.ID
	}
	token := func(u *identity.User) string {
		_, secret, err := ids.CreateToken(all, u, "test", "", 0, identity.Client{})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	f.root = token(root)
	for _, m := range []struct {
		role identity.Role
		dst  *string
	}{{identity.RoleOrgAdmin, &f.admin}, {identity.RoleUser, &f.user}} {
		u := &identity.User{Email: string(m.role) + "@example.test", Username: string(m.role), Role: m.role, TenantID: f.a, IsActive: true}
		if err := ids.CreateUser(all, u, "a long enough password", audit.Entry{ActorKind: "system"}); err != nil {
			t.Fatal(err)
		}
		*m.dst = token(u)
	}
	gw, err := gateway.NewService(gateway.Config{Store: db, Egress: plainClients{}, Audit: aud})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Deps{
		Logger:       slog.New(slog.DiscardHandler),
		Metrics:      metrics.NewRegistry(),
		Ready:        func(context.Context) Readiness { return Readiness{Ready: true} },
		Identity:     ids,
		Audit:        aud,
		GatewayAdmin: gw,
	}, Config{})
	f.ts = serve(t, s)
	return f
}

// call sends body (a string as it is, anything else as JSON) with a token
// and returns the status and the body.
func (f *gatewayFixture) call(t *testing.T, token, method, path, contentType string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
		contentType = "application/json"
	}
	req, err := http.NewRequest(method, f.ts.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, out
}

// must is call that has to answer want; it decodes the answer into into.
func (f *gatewayFixture) must(t *testing.T, token, method, path, contentType string, body any, want int, into any) {
	t.Helper()
	status, out := f.call(t, token, method, path, contentType, body)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, out, want)
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, out, err)
		}
	}
}

type routerSettingsAnswer struct {
	RouterSettings struct {
		Strategy        string              `json:"strategy"`
		NumRetries      *int                `json:"num_retries"`
		AllowedFails    int                 `json:"allowed_fails"`
		FailWindow      int                 `json:"fail_window_seconds"`
		CooldownSeconds int                 `json:"cooldown_seconds"`
		Fallbacks       map[string][]string `json:"fallbacks"`
		UpdatedAt       *time.Time          `json:"updated_at"`
	} `json:"router_settings"`
}

func TestGatewayRouterSettingsRoutes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newGatewayFixture(t, db)
		const path = "/api/v1/gateway/router-settings"
		var got routerSettingsAnswer
		f.must(t, f.admin, "GET", path, "", nil, 200, &got)
		if rs := got.RouterSettings; rs.Strategy != "weighted" || rs.NumRetries != nil || rs.UpdatedAt != nil || rs.Fallbacks == nil {
			t.Errorf("defaults: %+v", rs)
		}
		put := map[string]any{"strategy": "least-busy", "num_retries": 3, "allowed_fails": 4, "fail_window_seconds": 120,
			"cooldown_seconds": 45, "fallbacks": map[string][]string{"gpt-4o": {"claude", "local"}}}
		f.must(t, f.admin, "PUT", path, "", put, 200, nil)
		f.must(t, f.admin, "GET", path, "", nil, 200, &got)
		if rs := got.RouterSettings; rs.Strategy != "least-busy" || rs.NumRetries == nil || *rs.NumRetries != 3 || rs.AllowedFails != 4 ||
			rs.FailWindow != 120 || rs.CooldownSeconds != 45 || strings.Join(rs.Fallbacks["gpt-4o"], ",") != "claude,local" || rs.UpdatedAt == nil {
			t.Errorf("after PUT: %+v", rs)
		}
		// The answer of a GET can be PUT back as it is.
		raw, _ := json.Marshal(got.RouterSettings)
		var back map[string]any
		_ = json.Unmarshal(raw, &back)
		delete(back, "updated_at")
		f.must(t, f.admin, "PUT", path, "", back, 200, nil)

		for name, bad := range map[string]map[string]any{
			"self loop":     {"fallbacks": map[string][]string{"gpt-4o": {"gpt-4o"}}},
			"strategy":      {"strategy": "cost-based-routing"},
			"unknown field": {"redis_host": "r"},
			"retries":       {"num_retries": 99},
		} {
			status, body := f.call(t, f.admin, "PUT", path, "", bad)
			if status != 400 {
				t.Errorf("%s: %d %s, want 400", name, status, body)
			}
		}
		// Admins only; another tenant's is not found.
		for _, m := range []string{"GET", "PUT"} {
			if status, body := f.call(t, f.user, m, path, "", put); status != 403 {
				t.Errorf("%s as a user: %d %s", m, status, body)
			}
			if status, body := f.call(t, f.admin, m, path+"?tenant_id="+f.b, "", put); status != 404 {
				t.Errorf("%s on B as A's admin: %d %s", m, status, body)
			}
		}
		// The super_admin names the tenant.
		f.must(t, f.root, "GET", path+"?tenant_id="+f.b, "", nil, 200, &got)
		if got.RouterSettings.Strategy != "weighted" || got.RouterSettings.UpdatedAt != nil {
			t.Errorf("B's settings: %+v", got.RouterSettings)
		}
	})
}

type priceAnswer struct {
	Model       string `json:"model"`
	Input       int64  `json:"input"`
	CachedInput int64  `json:"cached_input"`
	Output      int64  `json:"output"`
	Source      string `json:"source"`
	Builtin     *struct {
		Input int64 `json:"input"`
	} `json:"builtin"`
}

func TestGatewayPriceRoutes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newGatewayFixture(t, db)
		prices := func(token, query string) map[string]priceAnswer {
			t.Helper()
			var got struct {
				Prices        []priceAnswer `json:"prices"`
				CatalogueDate string        `json:"catalogue_date"`
			}
			f.must(t, token, "GET", "/api/v1/gateway/prices"+query, "", nil, 200, &got)
			if got.CatalogueDate != gateway.CatalogueDate {
				t.Errorf("catalogue_date %q", got.CatalogueDate)
			}
			out := map[string]priceAnswer{}
			for _, p := range got.Prices {
				out[p.Model] = p
			}
			return out
		}
		before := prices(f.admin, "")
		if p := before["gpt-4o"]; p.Source != "builtin" || p.Input != 2_500_000 || p.Builtin != nil || len(before) != len(gateway.Catalogue()) {
			t.Fatalf("catalogue: %+v of %d", p, len(before))
		}
		// A model name with a slash is one path value.
		var put struct{ Price priceAnswer }
		f.must(t, f.admin, "PUT", "/api/v1/gateway/prices/hosted_vllm/llama-70b", "", map[string]any{"input": 100, "output": 200}, 200, &put)
		if put.Price.Model != "hosted_vllm/llama-70b" || put.Price.CachedInput != 100 || put.Price.Source != "override" {
			t.Errorf("PUT answer %+v", put.Price)
		}
		f.must(t, f.admin, "PUT", "/api/v1/gateway/prices/gpt-4o", "", map[string]any{"input": 1, "output": 2, "cached_input": 0}, 200, nil)
		after := prices(f.admin, "")
		if p := after["gpt-4o"]; p.Source != "override" || p.Input != 1 || p.CachedInput != 0 || p.Output != 2 || p.Builtin == nil || p.Builtin.Input != 2_500_000 {
			t.Errorf("gpt-4o overridden: %+v", p)
		}
		if p := after["hosted_vllm/llama-70b"]; p.Source != "override" || p.Builtin != nil || len(after) != len(before)+1 {
			t.Errorf("new model: %+v", p)
		}
		// B still pays the catalogue's prices.
		if p := prices(f.root, "?tenant_id="+f.b)["gpt-4o"]; p.Source != "builtin" {
			t.Errorf("B's gpt-4o: %+v", p)
		}
		for name, bad := range map[string]map[string]any{"negative": {"input": -1}, "unknown": {"inputs": 1}} {
			if status, body := f.call(t, f.admin, "PUT", "/api/v1/gateway/prices/gpt-4o", "", bad); status != 400 {
				t.Errorf("%s: %d %s", name, status, body)
			}
		}
		f.must(t, f.admin, "DELETE", "/api/v1/gateway/prices/hosted_vllm/llama-70b", "", nil, 204, nil)
		f.must(t, f.admin, "DELETE", "/api/v1/gateway/prices/hosted_vllm/llama-70b", "", nil, 404, nil)
		if _, ok := prices(f.admin, "")["hosted_vllm/llama-70b"]; ok {
			t.Error("deleted override still listed")
		}
		// Admins only, and only their own tenant.
		if status, _ := f.call(t, f.user, "PUT", "/api/v1/gateway/prices/gpt-4o", "", map[string]any{"input": 1}); status != 403 {
			t.Errorf("a user's PUT: %d", status)
		}
		if status, _ := f.call(t, f.admin, "DELETE", "/api/v1/gateway/prices/gpt-4o?tenant_id="+f.b, "", nil); status != 404 {
			t.Errorf("A's admin deleting in B: %d", status)
		}
	})
}

const importYAML = `model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: vault:0190a1b2-0000-7000-8000-00000000000a
      rpm: 100
    model_info: {id: main, input_cost_per_token: 3e-06, output_cost_per_token: 1.2e-05}
  - model_name: local
    litellm_params: {model: ollama/llama3.1, api_base: "http://127.0.0.1:11434"}
router_settings:
  routing_strategy: simple-shuffle
  fallbacks: [{gpt-4o: [local]}]
`

func TestGatewayImportRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newGatewayFixture(t, db)
		const path = "/api/v1/gateway/import"
		deployments := func() int {
			var got struct{ Deployments []json.RawMessage }
			f.must(t, f.admin, "GET", "/api/v1/gateway/deployments", "", nil, 200, &got)
			return len(got.Deployments)
		}
		var res gateway.ImportResult
		f.must(t, f.admin, "POST", path+"?dry_run=true", "application/yaml", importYAML, 200, &res)
		if !res.DryRun || res.Created != 3 || res.Updated != 1 || deployments() != 0 {
			t.Fatalf("dry run: %+v, %d deployments", res, deployments())
		}
		f.must(t, f.admin, "POST", path, "text/yaml; charset=utf-8", importYAML, 200, &res)
		if res.DryRun || res.Created != 3 || res.Updated != 1 || deployments() != 2 {
			t.Fatalf("import: %+v, %d deployments", res, deployments())
		}
		f.must(t, f.admin, "POST", path, "application/yaml", importYAML, 200, &res)
		if res.Created+res.Updated+res.Deleted != 0 || res.Unchanged != 4 {
			t.Errorf("again: %+v", res)
		}
		var rs routerSettingsAnswer
		f.must(t, f.admin, "GET", "/api/v1/gateway/router-settings", "", nil, 200, &rs)
		if strings.Join(rs.RouterSettings.Fallbacks["gpt-4o"], ",") != "local" {
			t.Errorf("router settings after the import: %+v", rs.RouterSettings)
		}
		// A prune with a smaller file.
		small := strings.Split(importYAML, "  - model_name: local")[0]
		f.must(t, f.admin, "POST", path+"?prune=true", "application/yaml", small, 200, &res)
		if res.Deleted != 1 || deployments() != 1 {
			t.Errorf("prune: %+v, %d deployments", res, deployments())
		}
		// Each change is in the audit log of A.
		entries, _, err := f.audit.List(nodus.WithTenant(context.Background(), f.a), audit.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range entries {
			seen[e.Action]++
		}
		if seen["gateway.deployment_create"] != 2 || seen["gateway.deployment_delete"] != 1 || seen["gateway.price_put"] != 1 ||
			seen["gateway.router_settings_update"] != 1 {
			t.Errorf("audit: %v", seen)
		}

		literal := strings.Replace(importYAML, "vault:0190a1b2-0000-7000-8000-00000000000a", "sk-proj-canary-0123456789", 1)
		for _, tt := range []struct {
			name, query, contentType, body string
			status                         int
			want                           string
		}{
			{"literal key", "", "application/yaml", literal, 400, "model_list[0] (gpt-4o)"},
			{"unknown field", "", "application/yaml", strings.Replace(importYAML, "rpm:", "rpn:", 1), 400, `unknown field \"rpn\"`},
			{"json", "", "application/json", `{"model_list": []}`, 400, "application/yaml"},
			{"no content type", "", "", importYAML, 400, "application/yaml"},
			{"bad flag", "?prune=maybe", "application/yaml", importYAML, 400, "prune"},
			{"too large", "", "application/yaml", "model_list: []\n#" + strings.Repeat("x", 1<<20), 413, "too_large"},
		} {
			status, body := f.call(t, f.admin, "POST", path+tt.query, tt.contentType, tt.body)
			if status != tt.status || !strings.Contains(string(body), tt.want) {
				t.Errorf("%s: %d %s, want %d with %q", tt.name, status, body, tt.status, tt.want)
			}
			if strings.Contains(string(body), "canary") {
				t.Errorf("%s: the answer echoes the key: %s", tt.name, body)
			}
		}
		if status, _ := f.call(t, f.user, "POST", path, "application/yaml", importYAML); status != 403 {
			t.Errorf("a user's import: %d", status)
		}
		if status, _ := f.call(t, f.admin, "POST", path+"?tenant_id="+f.b, "application/yaml", importYAML); status != 404 {
			t.Errorf("A's admin importing into B: %d", status)
		}
		f.must(t, f.root, "POST", path+"?dry_run=true&tenant_id="+f.b, "application/yaml", importYAML, 200, &res)
		if res.Created != 3 {
			t.Errorf("the super_admin's dry run on B: %+v", res)
		}
	})
}
