package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Caller is who a call is for. External calls carry the virtual key they
// authenticated with; in-process calls (the chat module) carry none, and
// the tenant's and user's budgets apply to them as to any key's calls.
type Caller struct {
	TenantID  string
	UserID    string
	Key       *Key
	RequestID string // "" to have one made
	// ClientRequestID is the HTTP request's X-Request-Id, kept with the
	// spend log as the caller's label. It is not the spend log's key: a
	// client can send the same one twice.
	ClientRequestID string
	TraceID         string // the W3C trace the call belongs to; "" for a trace of its own
	// ParentSpanID is the caller's span (a traceparent's parent id, a
	// chat turn's observation) the call's generation nests under.
	ParentSpanID string

	received time.Time // when an HTTP request reached the gateway; zero in process
}

// CallInfo describes a finished call, for the caller's own records (the
// chat module stores it with the message).
type CallInfo struct {
	RequestID      string
	Model          string
	DeploymentID   string
	Provider       string
	UpstreamModel  string
	Usage          Usage
	UsageEstimated bool
	CostMicros     int64
	TTFT           time.Duration
	Duration       time.Duration
	// UpstreamTime is the time spent routing to and waiting on providers:
	// the calls, their retries and backoff. Duration less this is the
	// gateway's own part.
	UpstreamTime time.Duration
	Status       string
}

// admission is what a call holds between admit and finish: its limits and
// budget reservation, released exactly once.
type admission struct {
	caller   Caller
	cfg      *tenantConfig
	model    string
	callType string
	start    time.Time
	release  func(actualTokens int64)
	hold     *Hold
	log      SpendLog
	upstream time.Duration // in the router and the providers
	// What tracing records of a chat call: its request and its answer.
	chat     *ChatRequest
	response *ChatResponse
	streamed []byte
}

// promptSize is a call's prompt tokens as admission sees them: an upper
// bound that is cheap to compute and, when exact is set, the exact count,
// computed only if the bound alone would be refused. Tokenizing is the
// dearest step of admitting a chat request and is rarely needed: a call
// far from its limits is admitted on the bound, and the real usage settles
// the reservation when it ends.
type promptSize struct {
	bound int64
	exact func() int64
}

// admit checks a call against the key's model list, rate limits and every
// applicable budget, reserving the worst-case cost. The caller must call
// finish exactly once when admit succeeds.
func (s *Service) admit(ctx context.Context, c Caller, model, callType string, prompt promptSize, maxOutput int64) (*admission, error) {
	if model == "" {
		return nil, &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: "model", Message: "model is required"}
	}
	if c.Key != nil && len(c.Key.Models) > 0 && !slices.Contains(c.Key.Models, model) {
		return nil, &Error{Status: http.StatusForbidden, Type: ErrorTypePermission, Code: "model_not_allowed",
			Message: fmt.Sprintf("this key may not call model %q", model)}
	}
	cfg, err := s.config(ctx, c.TenantID)
	if err != nil {
		return nil, err
	}
	if !anyActive(cfg.group(model)) {
		return nil, &Error{Status: http.StatusNotFound, Type: ErrorTypeNotFound, Param: "model", Code: "model_not_found",
			Message: fmt.Sprintf("the model %q does not exist or you do not have access to it", model)}
	}
	now := s.now()
	a := &admission{caller: c, cfg: cfg, model: model, callType: callType, start: now, release: noRelease}
	if a.caller.RequestID == "" {
		a.caller.RequestID = "req_" + nodus.NewID()
	}
	if c.Key != nil && c.Key.TPM > 0 && prompt.exact != nil {
		// A tokens-per-minute window holds each call's estimate until it
		// ends: counted from the bound, calls in flight would crowd it.
		prompt = promptSize{bound: prompt.exact()}
	}
	err = s.reserve(ctx, a, now, prompt.bound, maxOutput)
	if err != nil && prompt.exact != nil && refusedBySize(err) {
		if exact := prompt.exact(); exact < prompt.bound {
			err = s.reserve(ctx, a, now, exact, maxOutput)
		}
	}
	if err != nil {
		return nil, err
	}
	keyID := ""
	if c.Key != nil {
		keyID = c.Key.ID
	}
	a.log = SpendLog{RequestID: a.caller.RequestID, ClientRequestID: c.ClientRequestID, TenantID: c.TenantID, KeyID: keyID,
		UserID: c.UserID, CallType: callType, Model: model, StartedAt: now, TraceID: c.TraceID}
	if c.Key != nil {
		a.log.Metadata = c.Key.Metadata
	}
	return a, nil
}

// reserve takes the key's rate-limit slots and the budgets' worst-case
// cost for a call of promptTokens and maxOutput, all or nothing.
func (s *Service) reserve(ctx context.Context, a *admission, now time.Time, promptTokens, maxOutput int64) error {
	c := a.caller
	release := noRelease
	if c.Key != nil {
		lim := Limits{RPM: c.Key.RPM, TPM: c.Key.TPM, MaxParallel: c.Key.MaxParallel}
		est := min(promptTokens+maxOutput, max(lim.TPM, 1))
		if lim.TPM == 0 {
			est = promptTokens + maxOutput
		}
		r, _, err := s.limiter.Acquire(c.Key.ID, lim, now, est)
		if err != nil {
			return err
		}
		release = r
	}
	worst := Cost(s.worstPrice(a.cfg, a.model), Usage{PromptTokens: promptTokens, CompletionTokens: maxOutput})
	hold, err := s.ledger.Reserve(ctx, s.budgetsOf(c), worst)
	if err != nil {
		release(0)
		return err
	}
	a.release, a.hold = release, hold
	return nil
}

// refusedBySize tells whether a smaller prompt might have been admitted:
// a budget too low for the reservation.
func refusedBySize(err error) bool {
	var be *BudgetError
	return errors.As(err, &be)
}

// budgetsOf lists the budgets that apply to a caller: the key's, the
// user's and the tenant's, those that exist.
func (s *Service) budgetsOf(c Caller) []string {
	ids := make([]string, 0, 3)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Key != nil {
		if id, ok := s.budgetID[budgetRef{c.TenantID, BudgetKey, c.Key.ID}]; ok {
			ids = append(ids, id)
		}
	}
	if c.UserID != "" {
		if id, ok := s.budgetID[budgetRef{c.TenantID, BudgetUser, c.UserID}]; ok {
			ids = append(ids, id)
		}
	}
	if id, ok := s.budgetID[budgetRef{c.TenantID, BudgetTenant, ""}]; ok {
		ids = append(ids, id)
	}
	return ids
}

// finish settles a call: the real cost on the budgets, the real tokens on
// the rate limits and the deployment's tpm, and one spend-log row.
func (s *Service) finish(ctx context.Context, a *admission, d *Deployment, usage *Usage, estimated bool, ttft time.Duration, callErr error) *CallInfo {
	now := s.now()
	l := &a.log
	l.EndedAt, l.TTFT = now, ttft
	if d != nil {
		l.DeploymentID, l.Provider, l.UpstreamModel = d.ID, d.Provider, d.UpstreamModel
	}
	if usage != nil {
		l.PromptTokens, l.CompletionTokens, l.CachedTokens = usage.PromptTokens, usage.CompletionTokens, usage.CachedTokens()
		l.UsageEstimated = estimated
		if d != nil {
			p, _ := s.price(a.cfg, d)
			l.CostMicros = Cost(p, *usage)
		}
	}
	l.Status, l.StatusCode = StatusSuccess, http.StatusOK
	if callErr != nil {
		l.Status, l.ErrorClass, l.StatusCode = StatusError, errorClass(callErr), errorStatus(callErr)
		if l.ErrorClass == ErrClassCancelled {
			l.Status = StatusCancelled
		}
	}
	tokens := l.PromptTokens + l.CompletionTokens
	a.hold.Settle(l.CostMicros)
	if s.alerts != nil {
		// Bounded, and past the client's cancellation: the crossing
		// happened whether or not the client stayed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		for _, alert := range a.hold.Alerts() {
			s.alerts(actx, alert)
		}
		cancel()
	}
	a.release(tokens)
	if d != nil && tokens > 0 {
		s.router.AddTokens(d.ID, tokens)
	}
	// The spend row is written even when the client has gone: it is
	// billing, and a cancelled request is billed for what it used.
	if err := s.spend.Add(context.WithoutCancel(ctx), *l, a.hold.BudgetIDs()); err != nil {
		s.log.Error("gateway: spend log dropped", "request_id", l.RequestID, "err", err)
		// Never to be stored: shared budgets must not wait for it.
		s.ledger.dropUnwritten(a.hold.BudgetIDs(), l.CostMicros)
	}
	s.m.observe(l, now.Sub(a.start))
	if s.calls != nil {
		s.calls.ObserveCall(CallRecord{Log: *l, ParentSpanID: a.caller.ParentSpanID, Chat: a.chat,
			Response: a.response, Streamed: string(a.streamed)})
	}
	info := &CallInfo{RequestID: l.RequestID, Model: l.Model, DeploymentID: l.DeploymentID, Provider: l.Provider,
		UpstreamModel: l.UpstreamModel, UsageEstimated: estimated, CostMicros: l.CostMicros, TTFT: ttft,
		Duration: now.Sub(a.start), UpstreamTime: a.upstream, Status: l.Status}
	if usage != nil {
		info.Usage = *usage
	}
	return info
}

// errorClass names a failure for the spend log.
func errorClass(err error) string {
	if ue, ok := AsUpstreamError(err); ok {
		return ue.Class
	}
	if errors.Is(err, context.Canceled) {
		return ErrClassCancelled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrClassTimeout
	}
	var nd *NoDeploymentError
	if errors.As(err, &nd) {
		return "no_deployment"
	}
	return "internal"
}

// upstream assembles what a provider needs to call d for a tenant.
func (s *Service) upstream(ctx context.Context, cfg *tenantConfig, tenantID string, d *Deployment) (*Upstream, error) {
	up := &Upstream{Deployment: d}
	if d.Provider == ProviderExtractive {
		return up, nil
	}
	up.Client = cfg.client
	if d.APIKeyHandle != "" {
		if s.secrets == nil {
			return nil, &Error{Status: http.StatusServiceUnavailable, Type: ErrorTypeServer, Message: "the vault is not available"}
		}
		key, hosts, err := s.secrets.ResolveKey(ctx, tenantID, d.APIKeyHandle)
		if err != nil {
			s.log.Warn("gateway: deployment key unavailable", "deployment", d.ID, "err", err)
			return nil, &Error{Status: http.StatusServiceUnavailable, Type: ErrorTypeServer, Code: "credential_unavailable",
				Message: "the deployment's API key cannot be read from the vault"}
		}
		up.APIKey, up.AllowedHosts = key, hosts
	}
	return up, nil
}

// Chat makes a non-streaming chat completion for c.
func (s *Service) Chat(ctx context.Context, c Caller, req *ChatRequest) (*ChatResponse, *CallInfo, error) {
	if err := validateChat(req); err != nil {
		return nil, nil, err
	}
	a, err := s.admit(ctx, c, req.Model, "chat", chatPromptSize(req), s.outputCap(req))
	if err != nil {
		return nil, nil, err
	}
	a.chat = req
	var resp *ChatResponse
	routed := time.Now()
	d, err := s.router.Route(ctx, a.cfg.settings, req.Model, a.cfg.group, func(ctx context.Context, d *Deployment) (bool, error) {
		up, err := s.upstream(ctx, a.cfg, c.TenantID, d)
		if err != nil {
			return false, err
		}
		r, err := s.providers[d.Provider].Chat(ctx, up, req)
		if err != nil {
			return false, err
		}
		resp = r
		return false, nil
	})
	a.upstream = time.Since(routed)
	if err != nil {
		info := s.finish(ctx, a, d, nil, false, 0, err)
		return nil, info, err
	}
	usage, estimated := resp.Usage, false
	if usage == nil {
		usage, estimated = estimateUsage(req, responseText(resp)), true
	}
	a.response = resp
	info := s.finish(ctx, a, d, usage, estimated, 0, nil)
	return resp, info, nil
}

// Text is the content of the answer's first choice; "" when it has none.
// In-process callers (chat, notebooks, memory, recordings) want only it.
func (r *ChatResponse) Text() string {
	if r == nil || len(r.Choices) == 0 || r.Choices[0].Message.Content == nil {
		return ""
	}
	return *r.Choices[0].Message.Content
}

// ChatStreamText streams a chat completion for c and hands delta the first
// choice's content as it arrives, with the usage asked for so the call is
// billed exactly.
func (s *Service) ChatStreamText(ctx context.Context, c Caller, req *ChatRequest, delta func(string) error) (*CallInfo, error) {
	req.Stream = true
	req.StreamOptions = &StreamOptions{IncludeUsage: true}
	return s.ChatStream(ctx, c, req, func(ch *ChatChunk) error {
		for _, choice := range ch.Choices {
			if choice.Index == 0 && choice.Delta.Content != nil {
				if err := delta(*choice.Delta.Content); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ChatStream makes a streaming chat completion for c, passing each chunk
// to emit. The usage chunk reaches emit only if the request asked for it
// (stream_options.include_usage); the gateway always asks upstream, to
// bill. If the client goes away mid-stream (ctx cancelled, or emit fails),
// the tokens streamed so far are billed once.
func (s *Service) ChatStream(ctx context.Context, c Caller, req *ChatRequest, emit func(*ChatChunk) error) (*CallInfo, error) {
	if err := validateChat(req); err != nil {
		return nil, err
	}
	a, err := s.admit(ctx, c, req.Model, "chat", chatPromptSize(req), s.outputCap(req))
	if err != nil {
		return nil, err
	}
	a.chat = req
	wantUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	var (
		usage     *Usage
		text      []byte
		ttft      time.Duration
		committed bool
	)
	routed := time.Now()
	d, err := s.router.Route(ctx, a.cfg.settings, req.Model, a.cfg.group, func(ctx context.Context, d *Deployment) (bool, error) {
		up, err := s.upstream(ctx, a.cfg, c.TenantID, d)
		if err != nil {
			return false, err
		}
		err = s.providers[d.Provider].ChatStream(ctx, up, req, func(ch *ChatChunk) error {
			if ch.Usage != nil {
				usage = ch.Usage
				if !wantUsage {
					return nil
				}
			}
			for _, choice := range ch.Choices {
				if choice.Delta.Content != nil {
					if ttft == 0 && *choice.Delta.Content != "" {
						ttft = s.now().Sub(a.start)
					}
					text = append(text, *choice.Delta.Content...)
				}
				for _, tc := range choice.Delta.ToolCalls {
					if tc.Function != nil {
						text = append(text, tc.Function.Arguments...)
					}
				}
			}
			committed = true
			return emit(ch)
		})
		return committed, err
	})
	a.upstream = time.Since(routed)
	estimated := false
	if usage == nil && (committed || err == nil) {
		usage, estimated = estimateUsage(req, string(text)), true
	}
	a.streamed = text
	info := s.finish(ctx, a, d, usage, estimated, ttft, err)
	return info, err
}

// chatPromptSize is a chat request's prompt for admission.
func chatPromptSize(req *ChatRequest) promptSize {
	return promptSize{bound: ChatTokensBound(req), exact: func() int64 { return CountChatTokens(req.Model, req) }}
}

// outputCap is the completion size to reserve for.
func (s *Service) outputCap(req *ChatRequest) int64 {
	n := int64(1)
	if req.N != nil && *req.N > 1 {
		n = int64(*req.N)
	}
	switch {
	case req.MaxCompletionTokens != nil && *req.MaxCompletionTokens > 0:
		return *req.MaxCompletionTokens * n
	case req.MaxTokens != nil && *req.MaxTokens > 0:
		return *req.MaxTokens * n
	}
	return s.maxOutput * n
}

// estimateUsage counts a call's tokens locally when the provider sent no
// usage (an interrupted stream, a server that never reports it).
func estimateUsage(req *ChatRequest, completion string) *Usage {
	p := CountChatTokens(req.Model, req)
	c := CountCompletionTokens(req.Model, completion)
	return &Usage{PromptTokens: p, CompletionTokens: c, TotalTokens: p + c}
}

func responseText(r *ChatResponse) string {
	var b []byte
	for _, ch := range r.Choices {
		if ch.Message.Content != nil {
			b = append(b, *ch.Message.Content...)
		}
		for _, tc := range ch.Message.ToolCalls {
			b = append(b, tc.Function.Arguments...)
		}
	}
	return string(b)
}

// validateChat refuses what no upstream should see.
func validateChat(req *ChatRequest) error {
	if fields := req.UpstreamOverrides(); len(fields) > 0 {
		return upstreamOverrideError(fields[0])
	}
	if req.Model == "" {
		return &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: "model", Message: "model is required"}
	}
	if len(req.Messages) == 0 {
		return &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: "messages", Message: "messages must not be empty"}
	}
	if req.StreamOptions != nil && !req.Stream {
		return &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: "stream_options",
			Message: "stream_options is only allowed when stream is true"}
	}
	return nil
}

// upstreamOverrideError refuses a request field that tries to choose the
// upstream (SECURITY.md check 22).
func upstreamOverrideError(field string) error {
	return &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: field, Code: "upstream_override_refused",
		Message: fmt.Sprintf("%s cannot be set by a request: the upstream and its credentials come only from the gateway's configuration", field)}
}

// Embed makes an embeddings call for c.
func (s *Service) Embed(ctx context.Context, c Caller, req *EmbeddingRequest) (*EmbeddingResponse, *CallInfo, error) {
	if fields := req.UpstreamOverrides(); len(fields) > 0 {
		return nil, nil, upstreamOverrideError(fields[0])
	}
	if len(req.Input) == 0 || string(req.Input) == "null" {
		return nil, nil, &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Param: "input", Message: "input is required"}
	}
	est := CountTokens(req.Model, string(req.Input))
	a, err := s.admit(ctx, c, req.Model, "embedding", promptSize{bound: est}, 0)
	if err != nil {
		return nil, nil, err
	}
	var resp *EmbeddingResponse
	routed := time.Now()
	d, err := s.router.Route(ctx, a.cfg.settings, req.Model, a.cfg.group, func(ctx context.Context, d *Deployment) (bool, error) {
		up, err := s.upstream(ctx, a.cfg, c.TenantID, d)
		if err != nil {
			return false, err
		}
		r, err := s.providers[d.Provider].Embed(ctx, up, req)
		resp = r
		return false, err
	})
	a.upstream = time.Since(routed)
	if err != nil {
		return nil, s.finish(ctx, a, d, nil, false, 0, err), err
	}
	usage, estimated := &Usage{PromptTokens: est, TotalTokens: est}, true
	if resp.Usage != nil {
		usage, estimated = &Usage{PromptTokens: resp.Usage.PromptTokens, TotalTokens: resp.Usage.TotalTokens}, false
	}
	return resp, s.finish(ctx, a, d, usage, estimated, 0, nil), nil
}

// Transcribe makes a transcription call for c.
func (s *Service) Transcribe(ctx context.Context, c Caller, req *TranscriptionRequest) (*TranscriptionResponse, *CallInfo, error) {
	a, err := s.admit(ctx, c, req.Model, "transcription", promptSize{}, 0)
	if err != nil {
		return nil, nil, err
	}
	var resp *TranscriptionResponse
	tried := false
	routed := time.Now()
	d, err := s.router.Route(ctx, a.cfg.settings, req.Model, a.cfg.group, func(ctx context.Context, d *Deployment) (bool, error) {
		if tried {
			// The upload is a stream read once: it cannot be sent twice.
			return true, &UpstreamError{Class: ErrClassBadRequest, Cause: errors.New("transcription not retried")}
		}
		tried = true
		up, err := s.upstream(ctx, a.cfg, c.TenantID, d)
		if err != nil {
			return false, err
		}
		r, err := s.providers[d.Provider].Transcribe(ctx, up, req)
		resp = r
		return true, err
	})
	a.upstream = time.Since(routed)
	if err != nil {
		return nil, s.finish(ctx, a, d, nil, false, 0, err), err
	}
	return resp, s.finish(ctx, a, d, resp.Usage, false, 0, nil), nil
}

// Models lists the public model names a caller may use.
func (s *Service) Models(ctx context.Context, c Caller) ([]string, error) {
	cfg, err := s.config(ctx, c.TenantID)
	if err != nil {
		return nil, err
	}
	names := cfg.models()
	if c.Key != nil && len(c.Key.Models) > 0 {
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(c.Key.Models, n) })
	}
	slices.Sort(names)
	return names, nil
}
