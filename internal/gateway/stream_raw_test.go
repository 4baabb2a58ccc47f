package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStreamChunksPassAsTheyCame: a chunk that decoded and sits on one
// line of valid UTF-8 goes to the client byte for byte, fields the gateway
// does not model included; one split over several data lines, or with
// invalid UTF-8, is encoded again, so the client's stream stays well framed.
func TestStreamChunksPassAsTheyCame(t *testing.T) {
	oneLine := `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","service_tier":"default","choices":[{"index":0,"delta":{"content":"hi"},"logprobs":{"content":[]},"finish_reason":null}]}`
	split := "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\ndata: \"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":null}]}"
	badUTF8 := "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xff\"},\"finish_reason\":\"stop\"}]}"
	body := "data: " + oneLine + "\n\n" + "data: " + split + "\n\n" + "data: " + badUTF8 + "\n\ndata: [DONE]\n\n"
	up := rawStreamServer(t, body)
	rec := httptest.NewRecorder()
	sse := NewSSEWriter(rec, 0)
	var raws []string
	err := (&OpenAIProvider{}).ChatStream(withStreamBatch(context.Background(), sse), up,
		compatChatRequest(t, `{"model":"m","stream":true,"messages":[]}`), func(ch *ChatChunk) error {
			raws = append(raws, string(ch.raw))
			if ch.raw != nil {
				return sse.WriteData(ch.raw)
			}
			return sse.WriteJSON(ch)
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := sse.Done(); err != nil {
		t.Fatal(err)
	}
	if len(raws) != 3 || raws[0] != oneLine || raws[1] != "" || raws[2] != "" {
		t.Fatalf("raw chunks %q", raws)
	}
	events := strings.Split(strings.TrimSuffix(rec.Body.String(), "\n\n"), "\n\n")
	if len(events) != 4 || events[0] != "data: "+oneLine || events[3] != "data: [DONE]" {
		t.Fatalf("client stream:\n%s", rec.Body.String())
	}
	for _, ev := range events[1:3] {
		if strings.Count(ev, "\n") != 0 || !strings.HasPrefix(ev, "data: {") || strings.Contains(ev, "\xff") {
			t.Errorf("re-encoded event %q", ev)
		}
	}
	if !strings.Contains(events[1], `"content":" there"`) || !strings.Contains(events[2], "\"content\":\"\uFFFD\"") {
		t.Errorf("re-encoded events lost their content:\n%s\n%s", events[1], events[2])
	}
}

// TestAnswersPassAsTheyCame: a non-streaming answer that decoded and is
// valid UTF-8 goes to the client byte for byte, fields the gateway does
// not model included; one with invalid UTF-8 is encoded again.
func TestAnswersPassAsTheyCame(t *testing.T) {
	answer := `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"logprobs":{"content":[]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"prompt_filter_results":[]}`
	for _, tc := range []struct {
		name, body string
		raw        bool
	}{
		{"valid", answer, true},
		{"invalid UTF-8", strings.Replace(answer, `"hi"`, "\"h\xffi\"", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			up := &Upstream{Deployment: &Deployment{Provider: ProviderOpenAI, BaseURL: srv.URL, UpstreamModel: "m"}, Client: srv.Client()}
			resp, err := (&OpenAIProvider{}).Chat(context.Background(), up, compatChatRequest(t, `{"model":"m","messages":[]}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(resp.raw); tc.raw && got != tc.body || !tc.raw && resp.raw != nil {
				t.Errorf("raw %q", got)
			}
			if resp.Usage == nil || resp.Usage.TotalTokens != 4 {
				t.Errorf("usage %+v", resp.Usage)
			}
		})
	}
}
