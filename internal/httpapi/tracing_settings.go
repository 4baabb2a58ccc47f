package httpapi

import (
	"net/http"

	"github.com/nodus-os/nodus/internal/nodus"
)

// handleGetTracingSettings answers the tenant's tracing settings: its
// retention in days (0 keeps traces).
func (s *Server) handleGetTracingSettings() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		days, err := s.deps.Tracing.Retention(r.Context(), tenantID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"retention_days": days}, nil
	})
}

// handleSetTracingSettings sets the tenant's retention; the hourly job
// deletes older traces.
func (s *Server) handleSetTracingSettings() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		var in struct {
			RetentionDays *int `json:"retention_days"`
		}
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		if in.RetentionDays == nil {
			return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid retention_days",
				Fields: map[string]string{"retention_days": "is required"}}
		}
		if err := s.deps.Tracing.SetRetention(r.Context(), tenantID, *in.RetentionDays); err != nil {
			return nil, err
		}
		return map[string]any{"retention_days": *in.RetentionDays}, nil
	})
}
