package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Upstream is everything a provider needs for one call to one deployment.
// The gateway builds it from server-side configuration only: the
// deployment, the tenant's egress client, and the deployment's key handle
// resolved through the vault.
type Upstream struct {
	Deployment *Deployment
	// Client is the tenant's egress-checked client. Providers must use it
	// and no other.
	Client *http.Client
	// APIKey is the resolved credential, "" for a keyless server. Providers
	// send it only with ctx wrapped by egress.WithCredentialHosts(ctx,
	// AllowedHosts...) so the egress client refuses it for any other host.
	APIKey       string
	AllowedHosts []string
}

// Provider speaks one upstream API. Implementations hold no per-call state
// and are safe for concurrent use.
type Provider interface {
	// Chat makes a non-streaming call.
	Chat(ctx context.Context, up *Upstream, req *ChatRequest) (*ChatResponse, error)
	// ChatStream makes a streaming call and passes each chunk, translated to
	// OpenAI's chunk shape, to emit in order. It always asks the upstream
	// for usage (stream_options.include_usage) and passes the usage chunk
	// on; the caller decides whether its client sees it. An error from emit
	// stops the stream and is returned as is.
	ChatStream(ctx context.Context, up *Upstream, req *ChatRequest, emit func(*ChatChunk) error) error
	Embed(ctx context.Context, up *Upstream, req *EmbeddingRequest) (*EmbeddingResponse, error)
	Transcribe(ctx context.Context, up *Upstream, req *TranscriptionRequest) (*TranscriptionResponse, error)
}

// UpstreamError is a failed upstream call, classified so the router knows
// whether to retry, fall back or give up.
type UpstreamError struct {
	Status     int           // the upstream's HTTP status; 0 when no response came
	RetryAfter time.Duration // from Retry-After (seconds or HTTP date) or retry-after-ms; 0 if absent
	Class      string        // one of the ErrClass constants
	Err        *Error        // the upstream's error body, when it sent one in a known shape
	Cause      error         // the transport error, when there was no response
}

// Error classes, recorded in the spend log's error_class.
const (
	ErrClassRateLimit   = "rate_limit"   // 429: retry after a wait
	ErrClassServer      = "upstream_5xx" // 5xx: fall back to another deployment
	ErrClassTimeout     = "timeout"      // no answer, or a stall, within the deployment's timeout
	ErrClassConnection  = "connection"   // refused, reset, DNS, TLS, egress denial
	ErrClassBadRequest  = "bad_request"  // 4xx other than 401/403/404/408/429: never retried
	ErrClassAuth        = "upstream_auth"
	ErrClassNotFound    = "upstream_not_found"
	ErrClassBadResponse = "bad_response" // the upstream answered something we cannot read
	ErrClassCancelled   = "cancelled"    // our caller went away
)

func (e *UpstreamError) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("upstream %d (%s): %s", e.Status, e.Class, e.Err.Message)
	case e.Cause != nil:
		return fmt.Sprintf("upstream (%s): %v", e.Class, e.Cause)
	default:
		return fmt.Sprintf("upstream %d (%s)", e.Status, e.Class)
	}
}

func (e *UpstreamError) Unwrap() error { return e.Cause }

// Retryable reports whether the same call may be tried again, on this
// deployment or another: rate limits, server errors, timeouts and
// connection failures. A bad request, an auth failure or a cancellation
// is tried once.
func (e *UpstreamError) Retryable() bool {
	switch e.Class {
	case ErrClassRateLimit, ErrClassServer, ErrClassTimeout, ErrClassConnection:
		return true
	}
	return false
}

// ClassifyStatus maps an upstream HTTP status to an error class.
func ClassifyStatus(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return ErrClassRateLimit
	case status == http.StatusRequestTimeout:
		return ErrClassTimeout
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrClassAuth
	case status == http.StatusNotFound:
		return ErrClassNotFound
	case status >= 500:
		return ErrClassServer
	default:
		return ErrClassBadRequest
	}
}

// AsUpstreamError returns err's *UpstreamError, if it has one.
func AsUpstreamError(err error) (*UpstreamError, bool) {
	var ue *UpstreamError
	ok := errors.As(err, &ue)
	return ue, ok
}
