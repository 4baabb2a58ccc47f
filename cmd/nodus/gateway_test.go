package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

const cliModelList = `model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: vault:0190a1b2-0000-7000-8000-00000000000a
    model_info: {id: main, input_cost_per_token: 2.5e-06, output_cost_per_token: 1e-05}
  - model_name: local
    litellm_params: {model: ollama/llama3.1, api_base: "http://127.0.0.1:11434"}
router_settings:
  routing_strategy: least-busy
  fallbacks: [{gpt-4o: [local]}]
`

// TestGatewayImportCommand runs `nodus gateway import` beside a running
// server and checks its work through the API.
func TestGatewayImportCommand(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		var created struct{ Tenant struct{ ID string } }
		admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Acme Corp", "domain": "acme.example.test"}, 201, &created)
		tenant := created.Tenant.ID

		dir := t.TempDir()
		file := func(name, content string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		full := file("full.yaml", cliModelList)
		gw := func(args ...string) (string, error) {
			var out bytes.Buffer
			err := run(context.Background(), append([]string{"nodus", "gateway"}, args...), env(vars), nil, &out, io.Discard)
			return out.String(), err
		}
		deployments := func() []string {
			var got struct {
				Deployments []struct {
					ModelName string `json:"model_name"`
					BaseURL   string `json:"base_url"`
				}
			}
			admin.must("GET", "/api/v1/gateway/deployments?tenant_id="+tenant, nil, 200, &got)
			var out []string
			for _, d := range got.Deployments {
				out = append(out, d.ModelName+" "+d.BaseURL)
			}
			return out
		}

		out, err := gw("import", "--tenant", "acme corp", "--dry-run", full)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"would create deployment gpt-4o (", "would create deployment local\n", "would create price gpt-4o",
			"would update router settings: fallbacks, strategy", "tenant Acme Corp (" + tenant + "): 3 created, 1 updated, 0 deleted, 0 unchanged (dry run"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry run: %q not in\n%s", want, out)
			}
		}
		if d := deployments(); len(d) != 0 {
			t.Fatalf("a dry run made deployments: %v", d)
		}

		out, err = gw("import", "--tenant", tenant, full)
		if err != nil || !strings.Contains(out, "created deployment local (") || !strings.Contains(out, ": 3 created, 1 updated") {
			t.Fatalf("import: %v\n%s", err, out)
		}
		if d := deployments(); strings.Join(d, "|") != "gpt-4o https://api.openai.com/v1|local http://127.0.0.1:11434/v1" {
			t.Errorf("deployments %v", d)
		}
		var rs struct {
			RouterSettings struct{ Strategy string } `json:"router_settings"`
		}
		admin.must("GET", "/api/v1/gateway/router-settings?tenant_id="+tenant, nil, 200, &rs)
		if rs.RouterSettings.Strategy != "least-busy" {
			t.Errorf("router settings %+v", rs)
		}

		// Again, by the tenant's domain: nothing to do.
		out, err = gw("import", "--tenant", "ACME.example.test", full)
		if err != nil || !strings.HasSuffix(out, ": 0 created, 0 updated, 0 deleted, 4 unchanged\n") {
			t.Errorf("second import: %v\n%s", err, out)
		}

		small := file("small.yaml", strings.Split(cliModelList, "  - model_name: local")[0])
		out, err = gw("import", "--prune", "--tenant", tenant, small)
		if err != nil || !strings.Contains(out, "deleted deployment local (") || len(deployments()) != 1 {
			t.Errorf("prune: %v\n%s", err, out)
		}

		// Every import is in the audit log, as the system's.
		var audit struct {
			Entries []struct {
				Action    string
				ActorKind string `json:"actor_kind"`
			}
		}
		admin.must("GET", "/api/v1/audit?limit=100&tenant_id="+tenant, nil, 200, &audit)
		kinds := map[string]string{}
		for _, e := range audit.Entries {
			kinds[e.Action] = e.ActorKind
		}
		if kinds["gateway.deployment_create"] != "system" || kinds["gateway.deployment_delete"] != "system" {
			b, _ := json.Marshal(audit)
			t.Errorf("audit entries: %s", b)
		}

		literal := file("literal.yaml", strings.Replace(cliModelList, "vault:0190a1b2-0000-7000-8000-00000000000a", "sk-proj-canary-0123", 1))
		for _, tt := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"import", "--tenant", tenant, literal}, 1, "model_list[0] (gpt-4o): litellm_params.api_key: a literal key is not accepted"},
			{[]string{"import", "--tenant", "nobody", full}, 1, `no tenant with the id, name or domain "nobody"`},
			{[]string{"import", "--tenant", tenant, filepath.Join(dir, "missing.yaml")}, 1, "missing.yaml"},
			{[]string{"import", full}, 2, "needs --tenant"},
			{[]string{"import", "--tenant", tenant}, 2, "exactly one file"},
			{[]string{"export", "--tenant", tenant, full}, 2, "unknown gateway subcommand"},
			{nil, 2, "needs a subcommand"},
		} {
			_, err := gw(tt.args...)
			if err == nil || exitCode(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v: %v (exit %d), want exit %d with %q", tt.args, err, exitCode(err), tt.code, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "canary") {
				t.Errorf("%v: the error echoes the key: %v", tt.args, err)
			}
		}
		if d := deployments(); len(d) != 1 {
			t.Errorf("a refused import changed the deployments: %v", d)
		}
	})
}
