package gateway

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// sseEvents reads every event of r, as "name|data" strings, and the error
// that ended the stream.
func sseEvents(r io.Reader, max int) ([]string, error) {
	sr := NewSSEReader(r, max)
	var out []string
	for {
		ev, err := sr.Next()
		if err != nil {
			return out, err
		}
		s := ev.Name + "|" + string(ev.Data)
		if ev.Done {
			s += "|done"
		}
		out = append(out, s)
	}
}

func TestSSEReaderFraming(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []string
	}{
		{"OpenAI stream", "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n",
			[]string{`|{"a":1}`, `|{"a":2}`, "|[DONE]|done"}},
		{"CRLF endings", "data: x\r\n\r\ndata: y\r\n\r\n", []string{"|x", "|y"}},
		{"CR endings", "data: x\r\rdata: y\r\r", []string{"|x", "|y"}},
		{"mixed endings", "data: x\r\n\ndata: y\r\r\n", []string{"|x", "|y"}},
		{"data lines joined", "data: one\ndata: two\ndata:\n\n", []string{"|one\ntwo\n"}},
		{"named events", "event: message_start\ndata: {}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n",
			[]string{"message_start|{}", `ping|{"type":"ping"}`}},
		{"name does not leak to the next event", "event: a\ndata: 1\n\ndata: 2\n\n", []string{"a|1", "|2"}},
		{"comments and other fields ignored", ": keep-alive\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n", []string{"|x"}},
		{"one space removed, no more", "data:x\n\ndata:  y\n\n", []string{"|x", "| y"}},
		{"field without a colon", "data\n\n", []string{"|"}},
		{"event without data not dispatched", "event: lonely\n\ndata: x\n\n", []string{"|x"}},
		{"[DONE] only when exact", "data: [DONE] \n\n", []string{"|[DONE] "}},
		{"unfinished event discarded", "data: x\n\ndata: cut", []string{"|x"}},
	}
	for _, tt := range tests {
		for _, reader := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{{"whole", func(r io.Reader) io.Reader { return r }}, {"byte by byte", iotest.OneByteReader}} {
			t.Run(tt.name+"/"+reader.name, func(t *testing.T) {
				got, err := sseEvents(reader.wrap(strings.NewReader(tt.stream)), 1<<10)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("error %v, want io.EOF", err)
				}
				if strings.Join(got, "\n---\n") != strings.Join(tt.want, "\n---\n") {
					t.Errorf("events %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// A line or an event over the limit is an error, and the reader never
// buffers much more than the limit, however long the line.
func TestSSEReaderBoundsLinesAndEvents(t *testing.T) {
	tests := []struct {
		name   string
		stream io.Reader
	}{
		{"10 MB line", io.MultiReader(strings.NewReader("data: "), strings.NewReader(strings.Repeat("x", 10<<20)))},
		{"10 MB line without a data field", strings.NewReader(strings.Repeat(":", 10<<20))},
		{"many data lines", strings.NewReader(strings.Repeat("data: 0123456789\n", 1000))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := NewSSEReader(tt.stream, 4<<10)
			_, err := sr.Next()
			if !errors.Is(err, ErrSSETooLarge) {
				t.Fatalf("error %v, want ErrSSETooLarge", err)
			}
			if cap(sr.buf) > 4<<10+2 || cap(sr.data) > 8<<10 {
				t.Errorf("buffers grew to %d and %d bytes for a 4 KiB limit", cap(sr.buf), cap(sr.data))
			}
		})
	}
}

func TestSSEReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: x\n\ndata: y"), iotest.ErrReader(boom))
	got, err := sseEvents(r, 1<<10)
	if !errors.Is(err, boom) || len(got) != 1 {
		t.Errorf("events %q, error %v; want one event, then %v", got, err, boom)
	}
}

// The writer sends nothing until the first event, then the stream's
// headers and each event framed and flushed.
func TestSSEWriter(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewSSEWriter(rec, time.Second)
	if w.Started() || rec.Flushed {
		t.Fatal("the writer sent something before the first event")
	}
	steps := []func() error{
		func() error { return w.Comment("keep-alive") },
		func() error { return w.WriteJSON(map[string]any{"a": "<b>"}) },
		func() error { return w.Event("message_stop", struct{ Type string }{"message_stop"}) },
		w.Done,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := ": keep-alive\n\n" +
		"data: {\"a\":\"<b>\"}\n\n" +
		"event: message_stop\ndata: {\"Type\":\"message_stop\"}\n\n" +
		"data: [DONE]\n\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("stream %q, want %q", got, want)
	}
	h := rec.Result().Header
	if h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" || h.Get("X-Accel-Buffering") != "no" {
		t.Errorf("headers %v", h)
	}
	if !w.Started() || !rec.Flushed {
		t.Error("the stream was not flushed")
	}
	if w.Event("a\nb", 1) == nil || w.Comment("x\ry") == nil {
		t.Error("a line break in an event name or a comment was accepted")
	}
}

// A client that stops reading is cut off by the write timeout instead of
// holding the handler (SECURITY.md check 27).
func TestSSEWriterCutsAClientThatStopsReading(t *testing.T) {
	result := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := NewSSEWriter(rw, 100*time.Millisecond)
		big := strings.Repeat("x", 64<<10)
		for {
			if err := w.WriteJSON(big); err != nil {
				result <- err
				return
			}
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil { // the stream started
		t.Fatal(err)
	}
	select {
	case err := <-result:
		var ne interface{ Timeout() bool }
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("error %v, want a write timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer was still blocked on a client that stopped reading")
	}
}

// sseDiscardWriter is a ResponseWriter that drops what it is sent, for the
// writer's benchmark.
type sseDiscardWriter struct{ h http.Header }

func (d *sseDiscardWriter) Header() http.Header         { return d.h }
func (d *sseDiscardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *sseDiscardWriter) WriteHeader(int)             {}
func (d *sseDiscardWriter) Flush()                      {}

func BenchmarkSSEWriterChunk(b *testing.B) {
	content := "Hello"
	chunk := &ChatChunk{ID: "chatcmpl-1", Object: "chat.completion.chunk", Created: 1700000000, Model: "gpt-4o",
		Choices: []ChunkChoice{{Index: 0, Delta: Delta{Content: &content}}}}
	w := NewSSEWriter(&sseDiscardWriter{h: http.Header{}}, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WriteJSON(chunk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSSEReaderChunk(b *testing.B) {
	event := "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n"
	stream := strings.Repeat(event, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(event)))
	r := strings.NewReader(stream)
	sr := NewSSEReader(r, 1<<20)
	for b.Loop() {
		if _, err := sr.Next(); err != nil {
			r.Reset(stream)
			sr = NewSSEReader(r, 1<<20)
		}
	}
}
