package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestEmbeddingExtraFields: an embeddings parameter the gateway does not
// model (a vLLM or Cohere-style input_type, truncate) reaches the upstream
// as sent, while one that tries to choose the upstream is refused before
// any call (SECURITY.md check 22).
func TestEmbeddingExtraFields(t *testing.T) {
	w := newWorld(t, storetest.OpenSQLite(t))
	post := func(body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", w.srv.URL+"/v1/embeddings", strings.NewReader(body))
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
