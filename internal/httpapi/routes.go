package httpapi

import (
	"net/http"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
)

// route is one entry of the API: its pattern, its handler and the limits
// it needs beyond the defaults.
type route struct {
	pattern string
	handler http.Handler
	// public routes need no credentials; every other route names the
	// action the caller's role must allow (NewServer refuses a route with
	// neither).
	public bool
	action identity.Action
	// timeout overrides Config.RequestTimeout; maxBody overrides
	// Config.MaxBodyBytes.
	timeout time.Duration
	maxBody int64
	// quiet routes (probes, scrapes) log successes at debug level.
	quiet bool
}

// routes lists every route the API serves.
func (s *Server) routes() []route {
	return []route{
		{pattern: "GET /health", handler: s.handleHealth(), public: true, quiet: true},
		{pattern: "GET /ready", handler: s.handleReady(), public: true, quiet: true, timeout: 10 * time.Second},
		{pattern: "GET /metrics", handler: s.handleMetrics(), public: true, quiet: true, timeout: 10 * time.Second},

		{pattern: "POST /api/v1/auth/login", handler: s.handleLogin(), public: true, maxBody: 8 << 10},
		{pattern: "POST /api/v1/auth/logout", handler: s.handleLogout(), action: identity.ActionReadSelf},
		{pattern: "GET /api/v1/me", handler: s.handleMe(), action: identity.ActionReadSelf},
		{pattern: "POST /api/v1/me/password", handler: s.handleChangePassword(), action: identity.ActionUpdateSelf, maxBody: 8 << 10},
		{pattern: "GET /api/v1/audit", handler: s.handleListAudit(), action: identity.ActionReadAudit},
		{pattern: "POST /api/v1/tokens", handler: s.handleCreateToken(), action: identity.ActionUpdateSelf},
		{pattern: "GET /api/v1/tokens", handler: s.handleListTokens(), action: identity.ActionReadSelf},
		{pattern: "DELETE /api/v1/tokens/{id}", handler: s.handleRevokeToken(), action: identity.ActionUpdateSelf},
	}
}
