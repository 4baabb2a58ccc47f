package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// statusOf maps each error code to its HTTP status. It is the only place
// that does.
var statusOf = map[string]int{
	nodus.EINVALID:      http.StatusBadRequest,
	nodus.EUNAUTHORIZED: http.StatusUnauthorized,
	nodus.EFORBIDDEN:    http.StatusForbidden,
	nodus.ENOTFOUND:     http.StatusNotFound,
	nodus.EMETHOD:       http.StatusMethodNotAllowed,
	nodus.ECONFLICT:     http.StatusConflict,
	nodus.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	nodus.ERATELIMIT:    http.StatusTooManyRequests,
	nodus.EINTERNAL:     http.StatusInternalServerError,
	nodus.EUNAVAILABLE:  http.StatusServiceUnavailable,
	nodus.ETIMEOUT:      http.StatusGatewayTimeout,
}

// StatusOf returns the HTTP status for an error code.
func StatusOf(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

var errPanic = nodus.Errorf(nodus.EINTERNAL, "internal error")

func errTooLarge(limit int64) error {
	return nodus.Errorf(nodus.ETOOLARGE, "request body is larger than %d bytes", limit)
}

func errMethod(method string) error {
	return nodus.Errorf(nodus.EMETHOD, "method %s is not allowed here", method)
}

func errRoute(path string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "no route for %s", strconv.Quote(path))
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

// writeError answers with the error envelope. Internal errors are logged
// with the request id and answered with a generic message; their text
// never reaches the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := nodus.ErrorCode(err)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client left; there is nobody to answer.
		return
	}
	if code == nodus.EINTERNAL && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)) {
		// The handler's deadline, or the connection's while reading the body.
		code = nodus.ETIMEOUT
		err = nodus.WrapError(err, code, "the request took too long")
	}
	status := StatusOf(code)
	if d := nodus.ErrorRetryAfter(err); d > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
	if status >= 500 {
		s.deps.Logger.ErrorContext(r.Context(), "request failed", "request_id", RequestID(r.Context()), "code", code, "err", err)
	}
	s.writeJSON(w, r, status, errorBody{Error: errorDetail{
		Code:      code,
		Message:   nodus.ErrorMessage(err),
		Fields:    nodus.ErrorFields(err),
		RequestID: RequestID(r.Context()),
	}})
}

// writeJSON answers with v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.deps.Logger.ErrorContext(r.Context(), "encode response", "request_id", RequestID(r.Context()), "err", err)
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// decodeJSON reads one JSON object from the body into dst. Unknown fields,
// trailing data, a wrong content type and an oversized body are errors with
// the matching code.
func decodeJSON(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONType(ct) {
		return nodus.Errorf(nodus.EINVALID, "Content-Type must be application/json")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err)
		}
		return nodus.Errorf(nodus.EINVALID, "request body must hold a single JSON value")
	}
	return nil
}

func jsonError(err error) error {
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		return errTooLarge(maxErr.Limit)
	case errors.Is(err, io.EOF):
		return nodus.Errorf(nodus.EINVALID, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nodus.Errorf(nodus.EINVALID, "request body is truncated JSON")
	case errors.As(err, &syntaxErr):
		return nodus.Errorf(nodus.EINVALID, "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return &nodus.Error{Code: nodus.EINVALID, Message: fmt.Sprintf("field %s must be %s", typeErr.Field, typeErr.Type),
				Fields: map[string]string{typeErr.Field: "must be " + typeErr.Type.String()}}
		}
		return nodus.Errorf(nodus.EINVALID, "request body must be %s", typeErr.Type)
	}
	// encoding/json's unknown-field error has no type of its own; its text
	// is the only way to tell it, and it names the field, which is safe to
	// show.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return &nodus.Error{Code: nodus.EINVALID, Message: "unknown field " + strconv.Quote(name),
			Fields: map[string]string{name: "unknown field"}, Err: err}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nodus.WrapError(err, nodus.ETIMEOUT, "the request body did not arrive in time")
	}
	// Anything else failed while reading the body (a reset, a timeout); its
	// text carries addresses, so it is logged, not shown.
	return nodus.WrapError(err, nodus.EINVALID, "could not read the request body")
}

func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

func stack() string { return string(debug.Stack()) }

// answer is the shape of most handlers: fn does the work and returns the
// body to write with status (nothing for 204), or the error to write
// instead.
func (s *Server) answer(status int, fn func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		switch {
		case err != nil:
			s.writeError(w, r, err)
		case status == http.StatusNoContent:
			w.WriteHeader(status)
		default:
			s.writeJSON(w, r, status, v)
		}
	})
}
