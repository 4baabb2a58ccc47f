package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// defaultProviders are the providers of every deployment kind.
func defaultProviders() map[string]Provider {
	oa := &OpenAIProvider{}
	return map[string]Provider{
		ProviderOpenAI:     oa,
		ProviderAzure:      oa,
		ProviderAnthropic:  &AnthropicProvider{},
		ProviderExtractive: extractiveProvider{},
	}
}

// extractiveProvider serves nodus/extractive in-process: no network.
type extractiveProvider struct{ model Extractive }

func (p extractiveProvider) Chat(_ context.Context, _ *Upstream, req *ChatRequest) (*ChatResponse, error) {
	resp := p.model.Complete(req, "chatcmpl-"+nodus.NewID(), time.Now().Unix())
	return &resp, nil
}

func (p extractiveProvider) ChatStream(ctx context.Context, _ *Upstream, req *ChatRequest, emit func(*ChatChunk) error) error {
	r := *req
	r.StreamOptions = &StreamOptions{IncludeUsage: true}
	for _, ch := range p.model.Stream(&r, "chatcmpl-"+nodus.NewID(), time.Now().Unix()) {
		if err := ctx.Err(); err != nil {
			return &UpstreamError{Class: ErrClassCancelled, Cause: err}
		}
		if err := emit(&ch); err != nil {
			return err
		}
	}
	return nil
}

func (extractiveProvider) Embed(context.Context, *Upstream, *EmbeddingRequest) (*EmbeddingResponse, error) {
	return nil, &UpstreamError{Status: http.StatusBadRequest, Class: ErrClassBadRequest,
		Err: &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Message: ExtractiveModel + " does not make embeddings"}}
}

func (extractiveProvider) Transcribe(context.Context, *Upstream, *TranscriptionRequest) (*TranscriptionResponse, error) {
	return nil, &UpstreamError{Status: http.StatusBadRequest, Class: ErrClassBadRequest,
		Err: &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Message: ExtractiveModel + " does not transcribe"}}
}

// APIError turns any error of a call into OpenAI's error shape, with the
// Retry-After to send (0 for none). Upstream details that could carry a
// provider's secrets are not passed through: only the upstream's message.
func APIError(err error) (*Error, time.Duration) {
	if e, ok := err.(*Error); ok {
		return e, 0
	}
	if ue, ok := AsUpstreamError(err); ok {
		return upstreamAPIError(ue), 0
	}
	var be *BudgetError
	if asErr(err, &be) {
		return &Error{Status: http.StatusTooManyRequests, Type: "insufficient_quota", Code: "budget_exceeded",
			Message: "the " + be.Scope + " budget is exhausted"}, be.RetryAfter
	}
	var le *LimitError
	if asErr(err, &le) {
		return &Error{Status: http.StatusTooManyRequests, Type: ErrorTypeRateLimit, Code: "rate_limit_exceeded",
			Message: "rate limit exceeded (" + le.Limit + "), retry after " + strconv.Itoa(int(le.RetryAfter.Seconds()+0.999)) + "s"}, le.RetryAfter
	}
	var nd *NoDeploymentError
	if asErr(err, &nd) {
		if nd.Unknown {
			return &Error{Status: http.StatusNotFound, Type: ErrorTypeNotFound, Code: "model_not_found", Param: "model",
				Message: "the model " + strconv.Quote(nd.Model) + " does not exist or you do not have access to it"}, 0
		}
		return &Error{Status: http.StatusServiceUnavailable, Type: ErrorTypeServer, Code: "no_deployment_available",
			Message: "no deployment of " + strconv.Quote(nd.Model) + " is available now"}, nd.RetryAfter
	}
	switch nodus.ErrorCode(err) {
	case nodus.ENOTFOUND:
		return &Error{Status: http.StatusNotFound, Type: ErrorTypeNotFound, Message: nodus.ErrorMessage(err)}, 0
	case nodus.EUNAVAILABLE:
		return &Error{Status: http.StatusServiceUnavailable, Type: ErrorTypeServer, Message: nodus.ErrorMessage(err)}, nodus.ErrorRetryAfter(err)
	}
	return &Error{Status: http.StatusInternalServerError, Type: ErrorTypeServer, Message: "internal error"}, 0
}

// upstreamAPIError maps an upstream failure to what the client sees: a
// client error is passed through with its status; everything else is a
// 502 (bad gateway) or 504 (timeout), since retries are already spent.
func upstreamAPIError(ue *UpstreamError) *Error {
	msg := "upstream error"
	if ue.Err != nil && ue.Err.Message != "" {
		msg = ue.Err.Message
	}
	switch ue.Class {
	case ErrClassBadRequest:
		st := ue.Status
		if st < 400 || st > 499 {
			st = http.StatusBadRequest
		}
		return &Error{Status: st, Type: ErrorTypeInvalidRequest, Message: msg}
	case ErrClassRateLimit:
		return &Error{Status: http.StatusTooManyRequests, Type: ErrorTypeRateLimit, Code: "upstream_rate_limited", Message: msg}
	case ErrClassTimeout:
		return &Error{Status: http.StatusGatewayTimeout, Type: ErrorTypeServer, Code: "upstream_timeout", Message: "the upstream did not answer in time"}
	case ErrClassCancelled:
		return &Error{Status: 499, Type: ErrorTypeServer, Code: "cancelled", Message: "the request was cancelled"}
	}
	return &Error{Status: http.StatusBadGateway, Type: ErrorTypeServer, Code: ue.Class, Message: msg}
}

// errorStatus is the status a failed call is answered with.
func errorStatus(err error) int {
	e, _ := APIError(err)
	return e.Status
}

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }
