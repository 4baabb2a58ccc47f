package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestEmbeddingExtraFields: an embeddings parameter the gateway does not
// model (a vLLM or Cohere-style input_type, truncate) reaches the upstream
// as sent, while one that tries to choose the upstream is refused before
// any call (SECURITY.md check 22).
func TestEmbeddingExtraFields(t *testing.T) {
	w := newWorld(t, storetest.OpenSQLite(t))
	post := func(body string) (int, string) { return w.post(t, "/v1/embeddings", body) }
	status, body := post(`{"model":"embed","input":"hello","input_type":"query","truncate":{"side":"end"}}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	last, ok := w.fake.LastRequest()
	if !ok {
		t.Fatal("the upstream was not called")
	}
	var sent map[string]json.RawMessage
	if err := json.Unmarshal(last.Body, &sent); err != nil {
		t.Fatal(err)
	}
	if string(sent["input_type"]) != `"query"` || string(sent["truncate"]) != `{"side":"end"}` ||
		string(sent["model"]) != `"text-embedding-3-small"` {
		t.Errorf("upstream body %s", last.Body)
	}
	served := w.fake.Served()
	for _, field := range []string{`"api_base":"http://evil.test"`, `"extra":{"Base_URL":"http://evil.test"}`, `"x":[{"api_key":"k"}]`} {
		status, body := post(`{"model":"embed","input":"hello",` + field + `}`)
		if status != http.StatusBadRequest || !strings.Contains(body, "upstream_override_refused") {
			t.Errorf("%s: status %d %s, want 400 upstream_override_refused", field, status, body)
		}
	}
	if w.fake.Served() != served {
		t.Error("a refused request reached the upstream")
	}
}

// post sends body to the gateway with the world's key.
func (w *world) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", w.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRequestsCannotChooseTheUpstream is SECURITY.md check 22 through the
// HTTP API: a body naming an upstream, a key or extra headers, at the top
// or nested, on every endpoint, is refused before any upstream call; and
// headers a client adds never reach the upstream or change where the call
// goes.
func TestRequestsCannotChooseTheUpstream(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newWorld(t, db)
		overrides := []string{`"api_base":"http://169.254.169.254/"`, `"base_url":"http://evil.test/v1"`, `"api_key":"sk-attacker"`,
			`"extra_headers":{"Authorization":"Bearer sk-attacker"}`, `"custom_llm_provider":"openai"`,
			`"metadata":{"API_BASE":"http://evil.test"}`, `"litellm_params":{"nested":[{"api_base":"http://evil.test"}]}`}
		bodies := map[string]func(field string) string{
			"/v1/chat/completions": func(f string) string {
				return `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],` + f + `}`
			},
			"/v1/messages": func(f string) string {
				return `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}],` + f + `}`
			},
			"/v1/embeddings": func(f string) string { return `{"model":"embed","input":"hi",` + f + `}` },
		}
		served := w.fake.Served()
		for path, body := range bodies {
			for _, f := range overrides {
				if path != "/v1/chat/completions" && strings.HasPrefix(f, `"metadata"`) {
					// Embeddings have no metadata, and Anthropic's holds only
					// user_id: other keys are dropped on decoding and never
					// leave the gateway. The nested case covers extra fields.
					continue
				}
				status, answer := w.post(t, path, body(f))
				named := strings.ToLower(answer)
				if status != http.StatusBadRequest || !strings.Contains(named, "api_base") && !strings.Contains(named, "base_url") &&
					!strings.Contains(named, "api_key") && !strings.Contains(named, "extra_headers") && !strings.Contains(named, "custom_llm_provider") {
					t.Errorf("%s with %s: %d %s, want 400 naming the field", path, f, status, answer)
				}
			}
		}
		if w.fake.Served() != served {
			t.Fatalf("%d refused requests reached the upstream", w.fake.Served()-served)
		}
		// Headers of the client's own are not forwarded: the upstream sees
		// the deployment's key and nothing the client chose.
		req, _ := http.NewRequest("POST", w.srv.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+w.key)
		req.Header.Set("X-Api-Base", "http://evil.test")
		req.Header.Set("Api-Key", "sk-attacker")
		req.Header.Set("OpenAI-Organization", "org-attacker")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		last, _ := w.fake.LastRequest()
		if got := last.Header.Get("Authorization"); got != "Bearer "+upstreamKey {
			t.Errorf("upstream Authorization %q", got)
		}
		for _, h := range []string{"X-Api-Base", "Api-Key", "OpenAI-Organization"} {
			if v := last.Header.Get(h); v != "" {
				t.Errorf("the client's %s reached the upstream: %q", h, v)
			}
		}
	})
}
