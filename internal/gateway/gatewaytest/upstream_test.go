package gatewaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

// These tests check the fake's own shapes lightly; the gateway's provider
// tests are what exercise it.

func post(t *testing.T, url string, header map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestChatAnswersValidJSONWithUsage(t *testing.T) {
	u := NewUpstream(Script{APIKey: "k", Text: "a \"quoted\" é answer"})
	defer u.Close()
	resp, b := post(t, u.URL+"/v1/chat/completions", map[string]string{"Authorization": "Bearer k"},
		`{"model":"m1","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var got struct {
		Model   string
		Choices []struct{ Message struct{ Content string } }
		Usage   struct{ PromptTokens, CompletionTokens int64 } `json:"usage"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	if got.Model != "m1" || got.Choices[0].Message.Content != "a \"quoted\" é answer" {
		t.Errorf("answer %s", b)
	}
	if r, _ := u.LastRequest(); r.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer k" {
		t.Errorf("recorded %+v", r)
	}
}

func TestStreamEndsWithUsageAndDone(t *testing.T) {
	u := NewUpstream(Script{Text: "abcdef", Chunks: 3})
	defer u.Close()
	_, b := post(t, u.URL+"/v1/chat/completions", nil,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`)
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	// role, three pieces, finish, usage, [DONE]
	if len(events) != 7 || events[6] != "data: [DONE]" || !strings.Contains(events[5], `"choices":[],"usage":{"prompt_tokens"`) {
		t.Fatalf("stream:\n%s", b)
	}
	for _, e := range events[:6] {
		if !json.Valid([]byte(strings.TrimPrefix(e, "data: "))) {
			t.Errorf("invalid chunk %s", e)
		}
	}
}

func TestFailuresComeInOrderThenSuccess(t *testing.T) {
	u := NewUpstream(Script{Failures: []Failure{{Status: 429, RetryAfter: "1"}, {Status: 500}}})
	defer u.Close()
	var statuses []int
	for range 3 {
		resp, _ := post(t, u.URL+"/v1/chat/completions", nil, `{"model":"m","messages":[]}`)
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("429 without its Retry-After")
		}
	}
	if statuses[0] != 429 || statuses[1] != 500 || statuses[2] != 200 {
		t.Errorf("statuses %v, want 429, 500, 200", statuses)
	}
}

func TestWrongKeyIs401InEachShape(t *testing.T) {
	u := NewUpstream(Script{APIKey: "right"})
	defer u.Close()
	resp, b := post(t, u.URL+"/v1/chat/completions", map[string]string{"Authorization": "Bearer wrong"}, `{}`)
	if resp.StatusCode != 401 || !strings.Contains(string(b), `"code":"invalid_api_key"`) {
		t.Errorf("OpenAI: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, u.URL+"/v1/messages", map[string]string{"x-api-key": "wrong", "anthropic-version": "2023-06-01"}, `{}`)
	if resp.StatusCode != 401 || !strings.Contains(string(b), `"authentication_error"`) {
		t.Errorf("Anthropic: %d %s", resp.StatusCode, b)
	}
	resp, _ = post(t, u.URL+"/v1/messages", map[string]string{"x-api-key": "right"}, `{}`)
	if resp.StatusCode != 400 {
		t.Errorf("Anthropic without a version: %d, want 400", resp.StatusCode)
	}
}

func TestAnthropicStreamEvents(t *testing.T) {
	u := NewUpstream(Script{ToolCall: &ToolCall{Arguments: `{"city":"Paris"}`}})
	defer u.Close()
	_, b := post(t, u.URL+"/v1/messages", map[string]string{"anthropic-version": "2023-06-01"},
		`{"model":"claude","stream":true,"tools":[{"name":"weather"}],"messages":[]}`)
	var names []string
	var args strings.Builder
	for _, e := range strings.Split(strings.TrimSpace(string(b)), "\n\n") {
		name, data, _ := strings.Cut(e, "\ndata: ")
		names = append(names, strings.TrimPrefix(name, "event: "))
		var ev struct {
			Delta struct {
				PartialJSON string `json:"partial_json"`
			}
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("invalid event %q: %v", e, err)
		}
		args.WriteString(ev.Delta.PartialJSON)
	}
	want := "message_start content_block_start ping content_block_delta content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if strings.Join(names, " ") != want {
		t.Errorf("events %v", names)
	}
	if args.String() != `{"city":"Paris"}` {
		t.Errorf("tool input %q", args.String())
	}
}

func TestEmbeddingFormats(t *testing.T) {
	u := NewUpstream(Script{EmbeddingDims: 4})
	defer u.Close()
	_, b := post(t, u.URL+"/v1/embeddings", nil, `{"model":"e","input":["a","b"]}`)
	var got struct {
		Data []struct{ Embedding []float32 }
	}
	if err := json.Unmarshal(b, &got); err != nil || len(got.Data) != 2 {
		t.Fatalf("answer %s: %v", b, err)
	}
	want := EmbeddingVector("b", 4)
	for i, f := range got.Data[1].Embedding {
		if f != want[i] {
			t.Errorf("vector %v, want %v", got.Data[1].Embedding, want)
		}
	}
	_, b = post(t, u.URL+"/v1/embeddings", nil, `{"model":"e","input":"a","encoding_format":"base64"}`)
	if !bytes.Contains(b, []byte(`"embedding":"`)) {
		t.Errorf("base64 answer %s", b)
	}
}

func TestTranscriptionFormats(t *testing.T) {
	u := NewUpstream(Script{Transcript: "hello there", AudioSeconds: 2})
	defer u.Close()
	for format, want := range map[string]string{
		"json": `{"text":"hello there"`, "text": "hello there\n", "srt": "00:00:02,000\nhello there",
		"vtt": "WEBVTT", "verbose_json": `"duration":2,"text":"hello there"`,
	} {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("model", "whisper-1")
		mw.WriteField("response_format", format)
		fw, _ := mw.CreateFormFile("file", "a.wav")
		fw.Write([]byte("RIFF...."))
		mw.Close()
		resp, err := http.Post(u.URL+"/v1/audio/transcriptions", mw.FormDataContentType(), &body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: %s, want it to hold %q", format, b, want)
		}
	}
	r, _ := u.LastRequest()
	if r.File == nil || r.File.Name != "a.wav" || r.File.Size != 8 || r.Form["model"][0] != "whisper-1" {
		t.Errorf("recorded form %v, file %+v", r.Form, r.File)
	}
}

// A client that gives up on a hanging request is counted, and Close ends
// the hanging handlers.
func TestHangCountsTheCancellation(t *testing.T) {
	u := NewUpstream(Script{Hang: HangBeforeHeaders})
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("a hanging upstream answered")
	}
	if !u.WaitCancelled(1, 2*time.Second) {
		t.Errorf("cancelled %d, want 1", u.Cancelled())
	}
	for deadline := time.Now().Add(2 * time.Second); u.InFlight() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("in flight %d after the cancellation", u.InFlight())
		}
	}
}

// The fake's own cost per request, client and loopback included: what the
// bench's direct-to-upstream baseline is made of.
func BenchmarkUpstream(b *testing.B) {
	u := NewUpstream(Script{DisableRecording: true, Chunks: 10})
	defer u.Close()
	client := &http.Client{}
	for _, tt := range []struct{ name, body string }{
		{"chat", `{"model":"m","messages":[{"role":"user","content":"Capital of France?"}]}`},
		{"stream", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Capital of France?"}]}`},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Post(u.URL+"/v1/chat/completions", "application/json", strings.NewReader(tt.body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
