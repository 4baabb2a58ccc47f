package httpapi

import (
	"net/http"
	"time"
)

// route is one entry of the API: its pattern, its handler and the limits
// it needs beyond the defaults.
type route struct {
	pattern string
	handler http.Handler
	// public routes need no credentials. Every other route declares the
	// action it needs once identity exists.
	public bool
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
	}
}
