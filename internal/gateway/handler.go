package gateway

import (
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Routes are the OpenAI- and Anthropic-compatible endpoints, by pattern.
// Each authenticates its own caller with a virtual key; the HTTP server
// mounts them with its body limits and timeouts.
func (s *Service) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST /v1/chat/completions":     s.keyed(s.handleChat),
		"POST /v1/embeddings":           s.keyed(s.handleEmbeddings),
		"GET /v1/models":                s.keyed(s.handleModels),
		"GET /v1/models/{model...}":     s.keyed(s.handleModel),
		"POST /v1/audio/transcriptions": s.keyed(s.handleTranscription),
		"POST /v1/messages":             s.keyedAnthropic(s.handleMessages),
	}
}

// StreamWriteTimeout bounds each streamed event's write: a client that
// stops reading is cut (SECURITY.md check 27).
const StreamWriteTimeout = 30 * time.Second

type keyedHandler func(w http.ResponseWriter, r *http.Request, c Caller)

// keyed authenticates the virtual key and answers errors in OpenAI's shape.
func (s *Service) keyed(h keyedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		k, err := s.Authenticate(r.Context(), bearer(r))
		if err != nil {
			writeError(w, err)
			return
		}
		h(w, r, Caller{TenantID: k.TenantID, UserID: k.UserID, Key: k, ClientRequestID: clientRequestID(r),
			TraceID: traceID(r), ParentSpanID: parentSpanID(r), received: received})
	})
}

// keyedAnthropic is keyed with errors in Anthropic's shape.
func (s *Service) keyedAnthropic(h keyedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		k, err := s.Authenticate(r.Context(), bearer(r))
		if err != nil {
			writeAnthropicError(w, err)
			return
		}
		h(w, r, Caller{TenantID: k.TenantID, UserID: k.UserID, Key: k, ClientRequestID: clientRequestID(r),
			TraceID: traceID(r), ParentSpanID: parentSpanID(r), received: received})
	})
}

// clientRequestID is the request's X-Request-Id (which the HTTP server
// has set to the id it answers with), bounded. It labels the call's spend
// log; the log's key is an id the gateway makes, since a client may send
// one id with many calls, and a repeat of a stored key is skipped as a
// retry of the same row.
func clientRequestID(r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if len(id) > maxClientRequestID {
		return ""
	}
	return id
}

// maxClientRequestID is the longest X-Request-Id kept, as the HTTP server
// echoes it.
const maxClientRequestID = 64

// traceID is the trace of a W3C traceparent header, if valid.
func traceID(r *http.Request) string {
	if parts, ok := traceparent(r); ok {
		return parts[1]
	}
	return ""
}

// parentSpanID is the caller's span of a W3C traceparent header, if valid:
// the call's generation nests under it, as OTLP spans sent with the same
// ids do.
func parentSpanID(r *http.Request) string {
	if parts, ok := traceparent(r); ok {
		return parts[2]
	}
	return ""
}

// traceparent splits a valid W3C traceparent header
// (version-traceid-parentid-flags, lowercase hex, ids not all zero).
func traceparent(r *http.Request) ([]string, bool) {
	h := r.Header.Get("Traceparent")
	if len(h) != 55 {
		return nil, false
	}
	parts := strings.Split(h, "-")
	if len(parts) != 4 || len(parts[0]) != 2 || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return nil, false
	}
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			if c := p[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return nil, false
			}
		}
	}
	if parts[1] == strings.Repeat("0", 32) || parts[2] == strings.Repeat("0", 16) {
		return nil, false
	}
	return parts, true
}

// writeError answers err in OpenAI's shape.
func writeError(w http.ResponseWriter, err error) {
	e, retry := APIError(err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	}
	b, _ := jsonv1.Marshal(e)
	w.Header().Set("Content-Type", "application/json")
	status := e.Status
	if status == 499 {
		status = http.StatusBadRequest // nobody is listening; a valid status all the same
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeAnthropicError(w http.ResponseWriter, err error) {
	e, retry := APIError(err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	}
	status, body := AnthropicError(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := jsonv1.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// bodyError is a failure to read a request body: 413 past the server's
// limit, 400 otherwise.
func bodyError(err error) *Error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Type: ErrorTypeInvalidRequest, Code: "request_too_large",
			Message: "the request body exceeds " + strconv.FormatInt(tooLarge.Limit, 10) + " bytes"}
	}
	return &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Message: "could not read the request body"}
}

// decodeBody reads a JSON body; a body over the server's limit is a 413.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	if err := jsonv1.Unmarshal(b, v); err != nil {
		return &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Message: "the request body is not valid JSON: " + err.Error()}
	}
	return nil
}

func (s *Service) handleChat(w http.ResponseWriter, r *http.Request, c Caller) {
	var req ChatRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if !req.Stream {
		resp, info, err := s.Chat(r.Context(), c, &req)
		switch {
		case err != nil:
			writeError(w, err)
		case resp.raw != nil:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(resp.raw)
		default:
			writeJSON(w, resp)
		}
		s.observeOverhead("chat", c, info)
		return
	}
	sse := NewSSEWriter(w, StreamWriteTimeout)
	info, err := s.ChatStream(withStreamBatch(r.Context(), sse), c, &req, func(ch *ChatChunk) error {
		if ch.raw != nil {
			return sse.WriteData(ch.raw)
		}
		return sse.WriteJSON(ch)
	})
	switch {
	case err == nil:
		_ = sse.Done()
	case !sse.Started():
		writeError(w, err)
	default:
		// Mid-stream: the common practice is an error event, then the end.
		e, _ := APIError(err)
		_ = sse.WriteJSON(e)
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "gateway: stream ended by an error", slog.String("model", req.Model),
			slog.String("class", errorClass(err)))
	}
	s.observeOverhead("chat_stream", c, info)
}

func (s *Service) handleEmbeddings(w http.ResponseWriter, r *http.Request, c Caller) {
	var req EmbeddingRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	resp, info, err := s.Embed(r.Context(), c, &req)
	if err != nil {
		writeError(w, err)
	} else {
		writeJSON(w, resp)
	}
	s.observeOverhead("embeddings", c, info)
}

// modelObject is one entry of GET /v1/models.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Service) handleModels(w http.ResponseWriter, r *http.Request, c Caller) {
	names, err := s.Models(r.Context(), c)
	if err != nil {
		writeError(w, err)
		return
	}
	data := make([]modelObject, len(names))
	for i, n := range names {
		data[i] = modelObject{ID: n, Object: "model", OwnedBy: "nodus"}
	}
	writeJSON(w, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", data})
}

func (s *Service) handleModel(w http.ResponseWriter, r *http.Request, c Caller) {
	names, err := s.Models(r.Context(), c)
	if err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("model")
	for _, n := range names {
		if n == id {
			writeJSON(w, modelObject{ID: n, Object: "model", OwnedBy: "nodus"})
			return
		}
	}
	writeError(w, &Error{Status: http.StatusNotFound, Type: ErrorTypeNotFound, Code: "model_not_found", Param: "model",
		Message: "the model " + strconv.Quote(id) + " does not exist or you do not have access to it"})
}

// maxTranscriptionFields bounds the non-file form fields read in memory.
const maxTranscriptionFields = 64 << 10

func (s *Service) handleTranscription(w http.ResponseWriter, r *http.Request, c Caller) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		writeError(w, &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Message: "the body must be multipart/form-data"})
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Message: "the body must be multipart/form-data"})
		return
	}
	req := TranscriptionRequest{}
	fields := 0
	// The file is spooled to a temporary file, not memory: SDKs send it
	// before or after the other fields, and the model must be known before
	// anything is sent upstream. The server's body limit bounds its size.
	var spool *os.File
	defer func() {
		if spool != nil {
			spool.Close()
			os.Remove(spool.Name())
		}
	}()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeError(w, bodyError(err))
			return
		}
		name := part.FormName()
		if name == "file" {
			if spool != nil {
				writeError(w, &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: "file", Message: "only one file may be sent"})
				return
			}
			if spool, err = os.CreateTemp("", "nodus-audio-*"); err != nil {
				writeError(w, err)
				return
			}
			if _, err := io.Copy(spool, part); err != nil {
				writeError(w, bodyError(err))
				return
			}
			if _, err := spool.Seek(0, io.SeekStart); err != nil {
				writeError(w, err)
				return
			}
			req.File, req.FileName, req.ContentType = spool, part.FileName(), part.Header.Get("Content-Type")
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, maxTranscriptionFields-int64(fields)+1))
		fields += len(v)
		if err != nil || fields > maxTranscriptionFields {
			writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Type: ErrorTypeInvalidRequest, Message: "form fields too large"})
			return
		}
		switch name {
		case "model":
			req.Model = string(v)
		case "language":
			req.Language = string(v)
		case "prompt":
			req.Prompt = string(v)
		case "response_format":
			req.ResponseFormat = string(v)
		case "temperature":
			req.Temperature = string(v)
		case "timestamp_granularities[]", "timestamp_granularities":
			req.TimestampGranularities = append(req.TimestampGranularities, string(v))
		}
	}
	if req.File == nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: "file", Message: "file is required"})
		return
	}
	resp, info, err := s.Transcribe(r.Context(), c, &req)
	defer s.observeOverhead("transcriptions", c, info)
	if err != nil {
		writeError(w, err)
		return
	}
	// The type follows the format asked for, not the upstream's header: an
	// upstream answering text/html would otherwise have the gateway serve
	// its page from Nodus's origin.
	ct := "application/json"
	if f := req.ResponseFormat; f == "text" || f == "srt" || f == "vtt" {
		ct = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(resp.Body)
}

func (s *Service) handleMessages(w http.ResponseWriter, r *http.Request, c Caller) {
	var in MessagesRequest
	if err := decodeBody(r, &in); err != nil {
		writeAnthropicError(w, err)
		return
	}
	req, err := MessagesToChat(&in)
	if err != nil {
		writeAnthropicError(w, err)
		return
	}
	if !req.Stream {
		resp, info, err := s.Chat(r.Context(), c, req)
		if err != nil {
			writeAnthropicError(w, err)
		} else {
			writeJSON(w, ChatToMessages(resp, in.Model))
		}
		s.observeOverhead("messages", c, info)
		return
	}
	sse := NewSSEWriter(w, StreamWriteTimeout)
	ms := NewMessagesStream(in.Model, func(event string, data any) error { return sse.Event(event, data) })
	info, err := s.ChatStream(withStreamBatch(r.Context(), sse), c, req, ms.Chunk)
	defer s.observeOverhead("messages_stream", c, info)
	if err != nil && !sse.Started() {
		writeAnthropicError(w, err)
		return
	}
	var usage *Usage
	if info != nil {
		usage = &info.Usage
	}
	var apiErr error
	if err != nil {
		e, _ := APIError(err)
		apiErr = e
	}
	_ = ms.Finish(usage, apiErr)
}
