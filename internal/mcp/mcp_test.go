package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nodus-os/nodus/internal/mcp"
	"github.com/nodus-os/nodus/internal/nodus"
)

// newServer serves two tools on loopback: echo (returns its text) and
// fail (returns the error its kind names), with bodies bounded to 4 KiB
// as the API's routes bound them.
func newServer(t *testing.T) (string, *[]error) {
	t.Helper()
	var mu sync.Mutex
	var failed []error
	srv := &mcp.Server{Name: "test", Title: "Test", Version: "1", Instructions: "use echo",
		Tools: []mcp.Tool{
			{Name: "echo", Title: "Echo", Description: "says it back", ReadOnly: true, Idempotent: true,
				InputSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`),
				Call: func(_ context.Context, raw json.RawMessage) (any, error) {
					var args struct {
						Text string `json:"text"`
					}
					if err := mcp.Arguments(raw, &args); err != nil {
						return nil, err
					}
					return map[string]string{"text": args.Text}, nil
				}},
			{Name: "fail", Description: "fails", Destructive: true,
				InputSchema: json.RawMessage(`{"type":"object"}`),
				Call: func(_ context.Context, raw json.RawMessage) (any, error) {
					var args struct {
						Kind string `json:"kind"`
					}
					if err := mcp.Arguments(raw, &args); err != nil {
						return nil, err
					}
					switch args.Kind {
					case "nodus":
						return nil, &nodus.Error{Code: nodus.EINVALID, Message: "bad input", Fields: map[string]string{"b": "too long", "a": "missing"}}
					case "down":
						return nil, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "the embedding model is down"}
					}
					return nil, errors.New("database password is hunter2")
				}},
		},
		Failed: func(_ context.Context, tool string, err error) {
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, err)
		}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, &failed
}

// post sends one body and returns the status, content type and the body.
func post(t *testing.T, url, body string, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

type rpcAnswer struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rpc sends one request and decodes its answer, which must come with want.
func rpc(t *testing.T, url string, want int, body string, header ...string) rpcAnswer {
	t.Helper()
	status, ctype, b := post(t, url, body, header...)
	if status != want || ctype != "application/json" {
		t.Fatalf("%s: %d %q %s, want %d application/json", body, status, ctype, b, want)
	}
	var a rpcAnswer
	if err := json.Unmarshal([]byte(b), &a); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if a.JSONRPC != "2.0" {
		t.Fatalf("%s: not JSON-RPC 2.0", b)
	}
	return a
}

func TestInitialize(t *testing.T) {
	url, _ := newServer(t)
	for requested, want := range map[string]string{"2025-06-18": "2025-06-18", "2025-03-26": "2025-03-26",
		"2024-11-05": "2024-11-05", "2099-01-01": mcp.Versions[0], "": mcp.Versions[0]} {
		a := rpc(t, url, 200, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+requested+
			`","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`)
		var res struct {
			ProtocolVersion string
			Capabilities    struct{ Tools *struct{ ListChanged bool } }
			ServerInfo      struct{ Name, Title, Version string }
			Instructions    string
		}
		if err := json.Unmarshal(a.Result, &res); err != nil || a.Error != nil {
			t.Fatalf("initialize %q: %s %v", requested, a.Result, a.Error)
		}
		if res.ProtocolVersion != want || res.Capabilities.Tools == nil || res.ServerInfo.Name != "test" ||
			res.Instructions != "use echo" || string(a.ID) != "1" {
			t.Errorf("initialize %q: %+v", requested, res)
		}
	}
	// The initialized notification, and any other, is accepted without
	// an answer.
	for _, n := range []string{`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`{"jsonrpc":"2.0","id":7,"result":{}}`} {
		if status, _, b := post(t, url, n); status != http.StatusAccepted || b != "" {
			t.Errorf("%s: %d %q, want 202 and no body", n, status, b)
		}
	}
	if a := rpc(t, url, 200, `{"jsonrpc":"2.0","id":"p","method":"ping"}`); string(a.Result) != "{}" || string(a.ID) != `"p"` {
		t.Errorf("ping: %+v", a)
	}
}

func TestTools(t *testing.T) {
	url, failed := newServer(t)
	a := rpc(t, url, 200, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, "Mcp-Protocol-Version", "2025-06-18")
	var list struct {
		Tools []struct {
			Name, Title, Description string
			InputSchema              map[string]any
			Annotations              struct{ ReadOnlyHint, DestructiveHint, IdempotentHint, OpenWorldHint bool }
		}
	}
	if err := json.Unmarshal(a.Result, &list); err != nil || len(list.Tools) != 2 {
		t.Fatalf("tools/list: %s %v", a.Result, err)
	}
	echo, fail := list.Tools[0], list.Tools[1]
	if echo.Name != "echo" || echo.InputSchema["type"] != "object" || !echo.Annotations.ReadOnlyHint ||
		echo.Annotations.DestructiveHint || fail.Name != "fail" || !fail.Annotations.DestructiveHint {
		t.Errorf("tools: %+v", list.Tools)
	}

	type result struct {
		Content []struct {
			Type, Text string
		}
		StructuredContent map[string]any
		IsError           bool
	}
	call := func(params string) result {
		t.Helper()
		a := rpc(t, url, 200, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":`+params+`}`)
		if a.Error != nil {
			t.Fatalf("%s: %+v", params, a.Error)
		}
		var r result
		if err := json.Unmarshal(a.Result, &r); err != nil || len(r.Content) != 1 || r.Content[0].Type != "text" {
			t.Fatalf("%s: %s %v", params, a.Result, err)
		}
		return r
	}
	if r := call(`{"name":"echo","arguments":{"text":"héllo"}}`); r.IsError || r.StructuredContent["text"] != "héllo" ||
		r.Content[0].Text != `{"text":"héllo"}` {
		t.Errorf("echo: %+v", r)
	}
	// Arguments the tool refuses are the model's to correct: a result
	// with isError, saying why.
	if r := call(`{"name":"echo","arguments":{"txt":"x"}}`); !r.IsError || !strings.Contains(r.Content[0].Text, `unknown field "txt"`) {
		t.Errorf("an unknown argument: %+v", r)
	}
	if r := call(`{"name":"fail","arguments":{"kind":"nodus"}}`); !r.IsError || r.Content[0].Text != "bad input; a: missing; b: too long" ||
		r.StructuredContent != nil {
		t.Errorf("a Nodus error: %+v", r)
	}
	// Anything else is an internal error: the model learns nothing of it,
	// the server's log does.
	if r := call(`{"name":"fail"}`); !r.IsError || r.Content[0].Text != "internal error" {
		t.Errorf("an internal error: %+v", r)
	}
	// A dependency down is the server's trouble too: the model reads why,
	// the log hears of it; the model's own mistakes above did not reach it.
	if r := call(`{"name":"fail","arguments":{"kind":"down"}}`); !r.IsError || r.Content[0].Text != "the embedding model is down" {
		t.Errorf("an unavailable dependency: %+v", r)
	}
	if len(*failed) != 2 || !strings.Contains((*failed)[0].Error(), "hunter2") || !strings.Contains((*failed)[1].Error(), "down") {
		t.Errorf("failures told: %v", *failed)
	}

	// Protocol errors are JSON-RPC errors.
	for body, code := range map[string]int{
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope"}}`:                        -32602,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":[1]}}`:        -32602,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":"echo"}`:                                 -32602,
		`{"jsonrpc":"2.0","id":4,"method":"resources/list"}`:                                             -32601,
		`{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"x"}}`:                          -32601,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":1}}}`: 0,
	} {
		a := rpc(t, url, 200, body)
		switch {
		case code == 0 && a.Error != nil:
			t.Errorf("%s: %+v, want a tool result", body, a.Error)
		case code != 0 && (a.Error == nil || a.Error.Code != code || string(a.ID) != "4"):
			t.Errorf("%s: %s %+v, want error %d", body, a.Result, a.Error, code)
		}
	}
}

func TestMalformed(t *testing.T) {
	url, _ := newServer(t)
	for body, code := range map[string]int{
		`{"jsonrpc":"2.0","id":1,"method":`: -32700,
		`not json`:                          -32700,
		``:                                  -32700,
		`[]`:                                -32600,
		`{"jsonrpc":"1.0","id":1,"method":"ping"}`:       -32600,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`: -32600,
		`{"jsonrpc":"2.0","id":1,"method":7}`:            -32600,
		`{"jsonrpc":"2.0","id":1}`:                       -32600,
		`"ping"`:                                         -32600,
	} {
		a := rpc(t, url, http.StatusBadRequest, body)
		if a.Error == nil || a.Error.Code != code {
			t.Errorf("%q: %+v, want error %d", body, a.Error, code)
		}
	}
	// A revision the server does not speak, named after initialization.
	if a := rpc(t, url, http.StatusBadRequest, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, "Mcp-Protocol-Version", "1999-01-01"); a.Error == nil ||
		!strings.Contains(a.Error.Message, "1999-01-01") {
		t.Errorf("an unknown revision: %+v", a)
	}
	// Past the route's body limit.
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 5000) + `"}}}`
	if a := rpc(t, url, http.StatusRequestEntityTooLarge, big); a.Error == nil {
		t.Errorf("a body over the limit: %+v", a)
	}
	// No stream and no session: GET and DELETE are refused.
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("%s: %d, Allow %q", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

func TestBatch(t *testing.T) {
	url, _ := newServer(t)
	status, _, b := post(t, url, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},`+
		`{"jsonrpc":"2.0","id":2,"method":"nope"},{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"b"}}}]`)
	var out []rpcAnswer
	if err := json.Unmarshal([]byte(b), &out); status != 200 || err != nil || len(out) != 3 {
		t.Fatalf("batch: %d %s %v", status, b, err)
	}
	if string(out[0].ID) != "1" || out[0].Error != nil || string(out[1].ID) != "2" || out[1].Error == nil ||
		out[1].Error.Code != -32601 || string(out[2].ID) != "3" || !strings.Contains(string(out[2].Result), `"b"`) {
		t.Errorf("batch answers: %s", b)
	}
	if status, _, b := post(t, url, `[{"jsonrpc":"2.0","method":"notifications/initialized"}]`); status != http.StatusAccepted || b != "" {
		t.Errorf("a batch of notifications: %d %q", status, b)
	}
	// Refused whole: too many, initialize inside, or under the revision
	// that has no batches.
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	for name, tc := range map[string]struct{ body, version string }{
		"17 messages":         {"[" + strings.TrimSuffix(strings.Repeat(ping+",", 17), ",") + "]", ""},
		"initialize inside":   {`[` + ping + `,{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}]`, ""},
		"revision 2025-06-18": {"[" + ping + "]", "2025-06-18"},
	} {
		var header []string
		if tc.version != "" {
			header = []string{"Mcp-Protocol-Version", tc.version}
		}
		if a := rpc(t, url, http.StatusBadRequest, tc.body, header...); a.Error == nil || a.Error.Code != -32600 {
			t.Errorf("%s: %+v", name, a)
		}
	}
	if status, _, _ := post(t, url, "["+strings.TrimSuffix(strings.Repeat(ping+",", 16), ",")+"]"); status != 200 {
		t.Errorf("a batch of 16: %d", status)
	}
}
