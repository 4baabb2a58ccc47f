package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/agent"
	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/notebook"
	"github.com/nodus-os/nodus/internal/notify"
	"github.com/nodus-os/nodus/internal/recordings"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/tracing"
	"github.com/nodus-os/nodus/internal/usage"
	"github.com/nodus-os/nodus/internal/vault"
)

// Config holds the HTTP limits that apply to every route unless the route
// sets its own.
type Config struct {
	// MaxBodyBytes is the largest request body a route accepts by default.
	MaxBodyBytes int64
	// RequestTimeout bounds a request's handler, its body read and its
	// response write.
	RequestTimeout time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed; from anyone else the header is ignored (see clientAddress).
	TrustedProxies []netip.Prefix
}

// Readiness is the answer of /ready.
type Readiness struct {
	Ready  bool    `json:"ready"`
	Checks []Check `json:"checks"`
}

// Check is one readiness check: a database reached, a migration set current.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // "ok" or "failed"
	Detail string `json:"detail,omitempty"`
}

// Deps are what the API's handlers use.
type Deps struct {
	Logger  *slog.Logger
	Metrics *metrics.Registry
	// Ready reports whether every database is reachable and migrated.
	Ready   func(ctx context.Context) Readiness
	Version string
	// Identity signs callers in and resolves their sessions and tokens.
	Identity *identity.Service
	// Audit records permission denials and serves the audit log.
	Audit AuditLog
	// Menus serves each caller's navigation menu and its management.
	Menus *identity.MenuService
	// Settings serves platform and tenant settings.
	Settings *settings.Service
	// Vault holds secrets, grants and handles; it answers unavailable
	// while sealed.
	Vault *vault.Service
	// Egress serves the egress policies and the dry-run check.
	Egress *egress.Service
	// Gateway serves the OpenAI- and Anthropic-compatible model API,
	// authenticated by its own virtual keys; nil serves none.
	Gateway interface {
		Routes() map[string]http.Handler
	}
	// GatewayAdmin serves the gateway's management routes; nil answers
	// them 503.
	GatewayAdmin *gateway.Service
	// Knowledge serves the knowledge bases and their documents; nil
	// answers their routes 503.
	Knowledge *knowledge.Service
	// Agent serves the agent runtime's sessions; nil answers their
	// routes 503.
	Agent *agent.Service
	// Chat serves chatbots, conversations and the chat turn; nil answers
	// their routes 503.
	Chat *chat.Service
	// Memory serves the long-term memory; nil answers its routes 503.
	Memory *memory.Service
	// Tracing serves Langfuse's ingestion and the traces' query API; nil
	// answers their routes 503.
	Tracing *tracing.Service
	// Notify serves notifications and webhooks; nil answers their routes
	// 503.
	Notify *notify.Service
	// Usage serves the usage metrics; nil answers their route 503.
	Usage *usage.Service
	// Recordings serves audio recordings and their transcripts; nil
	// answers their routes 503.
	Recordings *recordings.Service
	// Notebooks serves notebooks, their sources, cards and chats; nil
	// answers their routes 503.
	Notebooks *notebook.Service
}

// AuditLog records security-relevant actions and lists them.
type AuditLog interface {
	Record(ctx context.Context, e audit.Entry) error
	List(ctx context.Context, f audit.Filter) ([]audit.Entry, string, error)
}

// Server is the API's http.Handler.
type Server struct {
	deps  Deps
	cfg   Config
	mux   *http.ServeMux
	perms identity.Permissions

	// limits holds each route's body limit, by pattern, for requests
	// rejected before they reach the route.
	limits map[string]int64

	requests *metrics.CounterVec
	duration *metrics.HistogramVec
	inFlight *metrics.Gauge

	// draining is closed by Drain: long-lived streams end themselves so
	// a graceful shutdown does not wait on them.
	draining  chan struct{}
	drainOnce sync.Once
}

// Drain asks every open event stream to end now (with event: end, reason
// "shutdown"), for a graceful shutdown: pass it to
// http.Server.RegisterOnShutdown. Ordinary requests are left to finish.
func (s *Server) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// NewServer returns the API with every route of routes.go registered.
func NewServer(deps Deps, cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	s := &Server{
		deps:     deps,
		cfg:      cfg,
		mux:      http.NewServeMux(),
		draining: make(chan struct{}),
		perms:    identity.NewPermissions(),
		limits:   map[string]int64{},
		requests: deps.Metrics.Counter("nodus_http_requests_total",
			"HTTP requests answered, by method, route pattern and status.", "method", "route", "status"),
		duration: deps.Metrics.Histogram("nodus_http_request_duration_seconds",
			"Time to answer HTTP requests, by method and route pattern.", metrics.DefBuckets, "method", "route"),
		inFlight: deps.Metrics.Gauge("nodus_http_requests_in_flight", "HTTP requests being answered.").With(),
	}
	for _, rt := range s.routes() {
		kinds := 0
		for _, b := range []bool{rt.public, rt.action != "", rt.keyed} {
			if b {
				kinds++
			}
		}
		if kinds != 1 {
			panic("httpapi: route " + rt.pattern + " must be exactly one of public, keyed, or name an action")
		}
		s.mux.Handle(rt.pattern, s.wrap(rt))
		s.limits[rt.pattern] = s.bodyLimit(rt)
	}
	return s
}

// ServeHTTP tags the request, logs and measures it, rejects bodies over the
// limit before anything reads them, and hands it to the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID(r)
	w.Header().Set("X-Request-Id", id)
	// Handlers that read the header (the gateway keeps it with a call's
	// spend log) see the id the caller is answered with, never a long or
	// odd one that requestID replaced.
	r.Header.Set("X-Request-Id", id)
	info := &requestInfo{id: id, route: "unmatched"}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
	rec := &recorder{ResponseWriter: w}

	s.inFlight.Inc()
	defer func() {
		s.inFlight.Dec()
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			s.deps.Logger.Error("panic", "request_id", id, "panic", p, "stack", stack())
			if !rec.wroteHeader {
				s.writeError(rec, r, errPanic)
				p = nil
			} else {
				// Half an answer is out: abort the connection so the client
				// sees a failure rather than a short body that looks whole.
				rec.status = http.StatusInternalServerError
				p = http.ErrAbortHandler
			}
		}
		s.finish(rec, r, info, start)
		if p != nil {
			panic(p)
		}
	}()

	h, pattern := s.mux.Handler(r)
	limit, ok := s.limits[pattern]
	if !ok {
		limit = s.cfg.MaxBodyBytes
	}
	if r.ContentLength > limit {
		// Answer before reading a byte, and close: what the client is still
		// sending is not worth reading.
		rec.Header().Set("Connection", "close")
		skipBody(rec, r)
		s.writeError(rec, r, errTooLarge(limit))
		return
	}
	if pattern == "" {
		skipBody(rec, r)
		s.unmatched(rec, r, h)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// finish writes the access log line and the request metrics.
func (s *Server) finish(rec *recorder, r *http.Request, info *requestInfo, start time.Time) {
	d := time.Since(start)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
		if r.Context().Err() != nil {
			status = 499 // the client went away before an answer
		}
	}
	method := methodLabel(r.Method)
	s.requests.With(method, info.route, statusText(status)).Inc()
	s.duration.With(method, info.route).Observe(d.Seconds())

	level := slog.LevelInfo
	if info.quiet && status < 400 {
		level = slog.LevelDebug
	}
	s.deps.Logger.LogAttrs(r.Context(), level, "request",
		slog.String("request_id", info.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.EscapedPath()),
		slog.String("route", info.route),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", d),
		slog.String("remote", r.RemoteAddr),
	)
}

// unmatched answers a request no route matched: 404, or 405 with Allow
// when the path exists for other methods, in the API's error envelope.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	// The mux's own handler knows which of the two it is; ask it, then
	// answer in JSON.
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		s.writeError(w, r, errMethod(r.Method))
		return
	}
	s.writeError(w, r, errRoute(r.URL.Path))
}

// wrap applies a route's limits: the handler's deadline, the body's size
// and the connection's read and write deadlines.
func (s *Server) wrap(rt route) http.Handler {
	timeout := rt.timeout
	if timeout == 0 {
		timeout = s.cfg.RequestTimeout
	}
	limit := s.bodyLimit(rt)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			info.route = rt.pattern
			info.quiet = rt.quiet
		}
		// Deadlines on the connection cut a client that sends its body or
		// reads the answer too slowly, without holding up anyone else. The
		// read deadline covers the body only: once it is read (or when there
		// is none) the server reads ahead in the background to notice a
		// client that hangs up, and a deadline there would cancel the
		// request's context.
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(timeout)
		if r.Body == nil || r.Body == http.NoBody {
			_ = rc.SetReadDeadline(time.Time{})
		} else {
			_ = rc.SetReadDeadline(deadline)
			r.Body = &deadlineBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit), rc: rc}
		}
		_ = rc.SetWriteDeadline(deadline.Add(time.Second))
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r = r.WithContext(context.WithValue(ctx, clientAddrKey{}, s.clientAddress(r)))
		if !rt.public && !rt.keyed {
			var ok bool
			if r, ok = s.authorize(w, r, rt.action); !ok {
				return
			}
		}
		rt.handler.ServeHTTP(w, r)
	})
}

func (s *Server) bodyLimit(rt route) int64 {
	if rt.maxBody > 0 {
		return rt.maxBody
	}
	return s.cfg.MaxBodyBytes
}

type requestInfoKey struct{}

// requestInfo carries what the outer middleware logs but only the matched
// route knows.
type requestInfo struct {
	id    string
	route string
	quiet bool
}

// RequestID returns the id of the request ctx belongs to.
func RequestID(ctx context.Context) string {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info.id
	}
	return ""
}

// deadlineBody lifts the connection's read deadline once the body has been
// read to its end, for the reason given in wrap.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// Only a complete body lifts it: after a timeout the passed deadline
	// must stay, so the server drops the connection instead of waiting on
	// the rest of the body.
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// skipBody bounds what the server reads of a body nobody wants: after the
// answer it discards up to 256 KiB of unread body to reuse the connection,
// and a client that declared a body and never sends it must not hold the
// connection for that.
func skipBody(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Second))
	}
}

// methodLabel keeps the method label of the metrics bounded: a method a
// client invents is counted as "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
