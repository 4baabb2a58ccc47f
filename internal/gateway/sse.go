package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// This file holds the server-sent events plumbing: SSEReader reads an
// upstream's stream, SSEWriter writes the gateway's own to a client. Both
// sit on the streaming hot path, so they reuse their buffers.

// ErrSSETooLarge is returned by SSEReader when a line or an event's data
// is longer than its limit: an upstream cannot make the gateway buffer
// without end.
var ErrSSETooLarge = errors.New("sse: event larger than the limit")

// sseReadSize is the first size of a reader's buffer; it grows, up to the
// event limit, only for longer lines.
const sseReadSize = 4 << 10

// SSEEvent is one dispatched server-sent event. Data is valid until the
// next call to Next.
type SSEEvent struct {
	Name string // the event: field, "" when the event had none (OpenAI never names its events)
	Data []byte // the data: lines joined by "\n"
	Done bool   // Data is OpenAI's end-of-stream marker [DONE]
}

// SSEReader reads server-sent events as the WHATWG specification frames
// them: lines end in CRLF, LF or CR; a blank line dispatches the event;
// lines starting with ':' are comments (keep-alives); "data" lines are
// joined by "\n"; "id" and "retry" are read and ignored. An event cut off
// by the end of the stream is discarded, as the specification says.
type SSEReader struct {
	r      io.Reader
	max    int
	buf    []byte // buf[start:end] is read but not yet consumed
	start  int
	end    int
	skipLF bool // the last line ended in CR: an LF right after it belongs to it
	err    error

	data    []byte // the event being read
	nameBuf []byte // its event: field
	name    string // the last dispatched name, converted once

	// BeforeWait, when set, is called before each read of the underlying
	// reader: the moment every event read so far has been handed on and
	// the reader may block. A stream batch flushes its client there.
	BeforeWait func()
}

// NewSSEReader returns a reader of r's events. maxEvent bounds a line and
// an event's data, in bytes.
func NewSSEReader(r io.Reader, maxEvent int) *SSEReader {
	size := min(sseReadSize, maxEvent+2)
	return &SSEReader{r: r, max: maxEvent, buf: make([]byte, size)}
}

// Next returns the next event. At the end of the stream it returns io.EOF;
// a line or event over the limit is ErrSSETooLarge; other errors are the
// underlying reader's.
func (s *SSEReader) Next() (SSEEvent, error) {
	s.data, s.nameBuf = s.data[:0], s.nameBuf[:0]
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			return SSEEvent{}, err
		}
		if len(line) == 0 {
			if !hasData {
				s.nameBuf = s.nameBuf[:0] // an event without data is not dispatched
				continue
			}
			return s.event(), nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if hasData {
				s.data = append(s.data, '\n')
			}
			if len(s.data)+len(value) > s.max {
				return SSEEvent{}, fmt.Errorf("%w (%d bytes)", ErrSSETooLarge, s.max)
			}
			s.data = append(s.data, value...)
			hasData = true
		case "event":
			// value points into the line buffer, which the next read may
			// overwrite: keep a copy.
			s.nameBuf = append(s.nameBuf[:0], value...)
		}
	}
}

// event builds the dispatched event. The name is kept as a string so a
// stream of events of one name (Anthropic's content_block_delta) converts
// it once.
func (s *SSEReader) event() SSEEvent {
	if string(s.nameBuf) != s.name {
		s.name = string(s.nameBuf)
	}
	return SSEEvent{Name: s.name, Data: s.data, Done: string(s.data) == "[DONE]"}
}

// readLine returns the next line without its ending; the slice is valid
// until the next call. A last line without an ending is discarded with
// the event it belongs to.
func (s *SSEReader) readLine() ([]byte, error) {
	scanned := 0
	for {
		if s.skipLF && s.start < s.end {
			if s.buf[s.start] == '\n' {
				s.start++
			}
			s.skipLF = false
		}
		rest := s.buf[s.start+scanned : s.end]
		if i := sseLineEnd(rest); i >= 0 {
			line := s.buf[s.start : s.start+scanned+i]
			s.skipLF = rest[i] == '\r'
			s.start += scanned + i + 1
			return line, nil
		}
		scanned = s.end - s.start
		if scanned > s.max {
			return nil, fmt.Errorf("%w (%d bytes)", ErrSSETooLarge, s.max)
		}
		if s.err != nil {
			return nil, s.err
		}
		if s.BeforeWait != nil {
			s.BeforeWait()
		}
		s.fill()
	}
}

// sseLineEnd is the index of the first CR or LF in b, or -1.
func sseLineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	search := b
	if i >= 0 {
		search = b[:i]
	}
	if j := bytes.IndexByte(search, '\r'); j >= 0 {
		return j
	}
	return i
}

// fill reads more of the stream, first making room by moving the unread
// bytes to the front or growing the buffer (never past the limit and a
// line ending).
func (s *SSEReader) fill() {
	if s.start > 0 {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	if s.end == len(s.buf) {
		// readLine has checked that the unread bytes are within the limit,
		// so the buffer is below max+2 here and this grows it.
		grown := make([]byte, min(2*len(s.buf), s.max+2))
		copy(grown, s.buf[:s.end])
		s.buf = grown
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if err != nil {
		s.err = err
	}
}

// SSEWriter writes a server-sent event stream to a client. It writes
// nothing, headers included, until the first event, so a handler whose
// upstream fails before its first chunk can still answer with a JSON
// error and a proper status. Each event is flushed at once, unless a hold
// (SetHold) says that more events are ready to follow: then it is flushed
// with them, by FlushPending. It is not safe for concurrent use: one
// stream has one writer.
type SSEWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	started bool
	buf     bytes.Buffer
	enc     *jsonv1.Encoder

	hold    func() bool
	pending bool  // written, not flushed
	err     error // a failed flush of pending events, returned by the next write
}

// NewSSEWriter returns a writer of w's stream. writeTimeout, when not 0,
// bounds the writing and flushing of each event: a client that stops
// reading is cut off rather than holding the upstream stream open
// (SECURITY.md check 27).
func NewSSEWriter(w http.ResponseWriter, writeTimeout time.Duration) *SSEWriter {
	s := &SSEWriter{w: w, rc: http.NewResponseController(w), timeout: writeTimeout}
	s.enc = jsonv1.NewEncoder(&s.buf)
	s.enc.SetEscapeHTML(false)
	return s
}

// Started reports whether the status and headers have been sent.
func (s *SSEWriter) Started() bool { return s.started }

// WriteJSON writes v as one unnamed event: "data: <json>\n\n".
func (s *SSEWriter) WriteJSON(v any) error {
	s.buf.Reset()
	s.buf.WriteString("data: ")
	if err := s.enc.Encode(v); err != nil { // Encode ends the JSON with "\n"
		return fmt.Errorf("sse: encode event: %w", err)
	}
	s.buf.WriteByte('\n')
	return s.flush()
}

// WriteData writes data, one line of JSON, as one unnamed event.
func (s *SSEWriter) WriteData(data []byte) error {
	if bytes.IndexByte(data, '\n') >= 0 || bytes.IndexByte(data, '\r') >= 0 {
		return errors.New("sse: event data holds a line break")
	}
	s.buf.Reset()
	s.buf.WriteString("data: ")
	s.buf.Write(data)
	s.buf.WriteString("\n\n")
	return s.flush()
}

// Event writes v as one named event, as Anthropic frames its stream:
// "event: <name>\ndata: <json>\n\n". name must not hold a line break.
func (s *SSEWriter) Event(name string, v any) error {
	if sseHasLineBreak(name) {
		return fmt.Errorf("sse: event name %q holds a line break", name)
	}
	s.buf.Reset()
	s.buf.WriteString("event: ")
	s.buf.WriteString(name)
	s.buf.WriteString("\ndata: ")
	if err := s.enc.Encode(v); err != nil {
		return fmt.Errorf("sse: encode %s event: %w", name, err)
	}
	s.buf.WriteByte('\n')
	return s.flush()
}

// Done writes OpenAI's end-of-stream marker, "data: [DONE]\n\n".
func (s *SSEWriter) Done() error {
	s.buf.Reset()
	s.buf.WriteString("data: [DONE]\n\n")
	return s.flush()
}

// Comment writes a comment line, which clients ignore: a keep-alive
// through proxies that close idle connections. text must not hold a line
// break.
func (s *SSEWriter) Comment(text string) error {
	if sseHasLineBreak(text) {
		return errors.New("sse: a comment must be one line")
	}
	s.buf.Reset()
	s.buf.WriteString(": ")
	s.buf.WriteString(text)
	s.buf.WriteString("\n\n")
	return s.flush()
}

func sseHasLineBreak(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			return true
		}
	}
	return false
}

// flush sends the buffered event (after the headers, the first time) and
// flushes it to the client within the write timeout. The deadline is
// cleared afterwards: net/http keeps a connection's deadline for the next
// request on it.
// SetHold makes the writer leave an event unflushed while hold reports
// true; FlushPending must then be called before the stream waits for more.
func (s *SSEWriter) SetHold(hold func() bool) { s.hold = hold }

// FlushPending flushes events written under a hold. A failure is kept and
// returned by the next write, which ends the stream.
func (s *SSEWriter) FlushPending() {
	if !s.pending || s.err != nil {
		return
	}
	s.pending = false
	deadline := s.timeout > 0 && s.setWriteDeadline(time.Now().Add(s.timeout))
	if err := s.rc.Flush(); err != nil {
		s.err = fmt.Errorf("sse: flush event: %w", err)
	}
	if deadline {
		s.setWriteDeadline(time.Time{})
	}
}

func (s *SSEWriter) flush() error {
	if s.err != nil {
		return s.err
	}
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the stream
		h.Del("Content-Length")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	deadline := s.timeout > 0 && s.setWriteDeadline(time.Now().Add(s.timeout))
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("sse: write event: %w", err)
	}
	if s.hold != nil && s.hold() {
		s.pending = true
		if deadline {
			s.setWriteDeadline(time.Time{})
		}
		return nil
	}
	s.pending = false
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("sse: flush event: %w", err)
	}
	if deadline {
		s.setWriteDeadline(time.Time{})
	}
	return nil
}

// setWriteDeadline reports whether the deadline could be set; a
// ResponseWriter without deadlines (a test recorder) streams without one.
func (s *SSEWriter) setWriteDeadline(t time.Time) bool {
	return s.rc.SetWriteDeadline(t) == nil
}

// streamBatch lets a provider batch the events it hands on: while held,
// the client's writer leaves events unflushed, and the provider calls
// flush before it waits on its upstream. Events that arrived together
// leave together, in one write, and none waits on the upstream unsent. A
// provider that does not take part leaves held false, and every event is
// flushed as it is written.
type streamBatch struct {
	held  bool
	flush func()
}

func (b *streamBatch) holding() bool { return b.held }

type streamBatchKey struct{}

// withStreamBatch returns a context carrying a batch for the writer w.
func withStreamBatch(ctx context.Context, w *SSEWriter) context.Context {
	b := &streamBatch{flush: w.FlushPending}
	w.SetHold(b.holding)
	return context.WithValue(ctx, streamBatchKey{}, b)
}

func streamBatchFrom(ctx context.Context) *streamBatch {
	b, _ := ctx.Value(streamBatchKey{}).(*streamBatch)
	return b
}
