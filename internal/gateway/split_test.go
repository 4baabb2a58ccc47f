package gateway

import (
	"bytes"
	"encoding/json"
	"testing"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// TestSplitExtraAsMapDecode: splitExtra keeps what decoding the whole
// object into a map and dropping the known names kept (its former
// implementation): escaped names, repeated names (the last wins), nested
// values verbatim, null.
func TestSplitExtraAsMapDecode(t *testing.T) {
	known := []string{"model", "messages", "stream"}
	for _, body := range []string{
		`{"model":"m","messages":[]}`,
		`{"model":"m","presence_penalty":0.5,"logit_bias":{"1":-100},"stream":true}`,
		`{"mod\u0065l":"m","\u0061pi_base":"http://x","x\"y":[1,{"a":null}]}`,
		`{"extra":1,"extra":2,"model":"m","model":"n"}`,
		` { "spaced" : [ 1 , 2 ] , "model" : "m" } `,
		`{"Model":"m","STREAM":true}`,
		`{"tools":[{"type":"function"}],"reasoning_effort":"low","metadata":{"api_key":"k"}}`,
		`{}`,
		`null`,
	} {
		var typed, typedOld struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		got, err := splitExtra([]byte(body), &typed, known)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var all map[string]json.RawMessage
		if err := jsonv1.Unmarshal([]byte(body), &all); err != nil {
			t.Fatal(err)
		}
		if err := jsonv1.Unmarshal([]byte(body), &typedOld); err != nil {
			t.Fatal(err)
		}
		for _, k := range known {
			delete(all, k)
		}
		if len(all) == 0 {
			all = nil
		}
		if len(got) != len(all) || typed != typedOld {
			t.Fatalf("%s: extra %v typed %+v; want %v, %+v", body, got, typed, all, typedOld)
		}
		for k, v := range all {
			if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
				t.Errorf("%s: %q = %s, want %s", body, k, got[k], v)
			}
		}
	}
	for _, bad := range []string{`{"model":`, `{"a":1,}`, `[1]`, `"s"`, `{"model":1}`} {
		var typed struct {
			Model string `json:"model"`
		}
		if _, err := splitExtra([]byte(bad), &typed, known); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func BenchmarkDecodeChatRequest(b *testing.B) {
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},` +
		`{"role":"user","content":"Say hello"}],"max_tokens":50,"temperature":0.2,"presence_penalty":0.1}`)
	b.ReportAllocs()
	for b.Loop() {
		var r ChatRequest
		if err := jsonv1.Unmarshal(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}
