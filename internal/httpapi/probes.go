package httpapi

import "net/http"

// handleHealth answers while the process can serve HTTP at all; it checks
// nothing else, so an orchestrator restarts only a process that is stuck.
func (s *Server) handleHealth() http.Handler {
	type response struct {
		Status  string `json:"status"`
		Version string `json:"version"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, r, http.StatusOK, response{Status: "ok", Version: s.deps.Version})
	})
}

// handleReady answers 200 when every database is reachable and migrated,
// and 503 with the failed checks otherwise, so a load balancer sends no
// traffic to a replica that cannot serve it.
func (s *Server) handleReady() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd := s.deps.Ready(r.Context())
		status := http.StatusOK
		if !rd.Ready {
			status = http.StatusServiceUnavailable
		}
		s.writeJSON(w, r, status, rd)
	})
}

// handleMetrics serves the Prometheus exposition.
func (s *Server) handleMetrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.deps.Metrics.Handler().ServeHTTP(w, r) })
}
