package httpapi

import (
	"compress/gzip"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file holds Langfuse's OpenTelemetry endpoint, OTLP/HTTP
// (POST /api/public/otel/v1/traces): the same key pairs as the batch API,
// a protobuf or OTLP JSON export, optionally gzip-compressed, answered in
// OTLP's shapes.

// gRPC status codes of the google.rpc.Status OTLP/HTTP answers errors
// with.
const (
	rpcInvalidArgument   = 3
	rpcResourceExhausted = 8
	rpcInternal          = 13
	rpcUnavailable       = 14
	rpcUnauthenticated   = 16
)

// handleOTLPTraces is OTLP/HTTP's trace export: the tenant is the key
// pair's, whatever the spans say. Refused spans are counted in the
// answer's partial_success; the export itself is 200.
func (s *Server) handleOTLPTraces() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		isJSON := mediaType == "application/json"
		fail := func(status int, code int32, msg string) {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="langfuse"`)
			}
			s.writeOTLP(w, status, isJSON, tracing.EncodeOTLPStatus(code, msg, isJSON))
		}
		if s.deps.Tracing == nil {
			fail(http.StatusServiceUnavailable, rpcUnavailable, "tracing is not available")
			return
		}
		pk, sk, ok := r.BasicAuth()
		if !ok {
			fail(http.StatusUnauthorized, rpcUnauthenticated, "authenticate with HTTP Basic: public key and secret key")
			return
		}
		key, err := s.deps.Tracing.Authenticate(r.Context(), pk, sk)
		if err != nil {
			if nodus.ErrorCode(err) == nodus.EUNAUTHORIZED {
				fail(http.StatusUnauthorized, rpcUnauthenticated, nodus.ErrorMessage(err))
				return
			}
			s.deps.Logger.ErrorContext(r.Context(), "tracing: authenticate", "request_id", RequestID(r.Context()), "err", err)
			fail(http.StatusInternalServerError, rpcInternal, "internal error")
			return
		}
		if !isJSON && mediaType != "application/x-protobuf" {
			fail(http.StatusUnsupportedMediaType, rpcInvalidArgument, "Content-Type must be application/x-protobuf or application/json")
			return
		}
		body, err := readOTLPBody(r)
		if err != nil {
			var maxErr *http.MaxBytesError
			switch {
			case errors.As(err, &maxErr), errors.Is(err, errOTLPTooLarge):
				fail(http.StatusRequestEntityTooLarge, rpcResourceExhausted, "an export may be at most 3.5 MB compressed and 16 MB uncompressed; send smaller exports")
			case errors.Is(err, errOTLPEncoding):
				fail(http.StatusUnsupportedMediaType, rpcInvalidArgument, err.Error())
			default:
				fail(http.StatusBadRequest, rpcInvalidArgument, "invalid request body: cannot read it")
			}
			return
		}
		td, err := tracing.DecodeOTLP(body, isJSON)
		if err != nil {
			fail(http.StatusBadRequest, rpcInvalidArgument, nodus.ErrorMessage(err))
			return
		}
		res, err := s.deps.Tracing.IngestOTLP(r.Context(), key.TenantID, td)
		switch {
		case nodus.ErrorCode(err) == nodus.EINVALID:
			fail(http.StatusBadRequest, rpcInvalidArgument, nodus.ErrorMessage(err))
			return
		case err != nil:
			s.deps.Logger.ErrorContext(r.Context(), "tracing: ingest OTLP", "request_id", RequestID(r.Context()),
				"tenant", key.TenantID, "err", err)
			fail(http.StatusInternalServerError, rpcInternal, "internal error")
			return
		}
		s.writeOTLP(w, http.StatusOK, isJSON, tracing.EncodeOTLPResponse(res, isJSON))
	})
}

func (s *Server) writeOTLP(w http.ResponseWriter, status int, isJSON bool, body []byte) {
	ct := "application/x-protobuf"
	if isJSON {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var (
	errOTLPTooLarge = errors.New("body too large")
	errOTLPEncoding = errors.New("the body must be gzip-compressed or not compressed")
)

// readOTLPBody reads an export, decompressing gzip. The route's limit
// bounds the compressed bytes; a LimitReader bounds what gzip may expand
// them to, so a gzip bomb stops at MaxOTLPBytes.
func readOTLPBody(r *http.Request) ([]byte, error) {
	var src io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		src = gz
	default:
		return nil, errOTLPEncoding
	}
	body, err := io.ReadAll(io.LimitReader(src, tracing.MaxOTLPBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > tracing.MaxOTLPBytes {
		return nil, errOTLPTooLarge
	}
	return body, nil
}
