package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/mail"
	"github.com/nodus-os/nodus/internal/nodus"
)

// settingsTarget returns whose settings a request means: ?tenant_id=ID
// when given, else the caller's tenant, or the platform ("") for a
// super_admin. Another tenant's id is left to the store's scope, which
// answers not_found, as it does for a malformed id.
func settingsTarget(r *http.Request) (string, error) {
	if r.URL.Query().Has("tenant_id") {
		id := r.URL.Query().Get("tenant_id")
		if !nodus.ValidID(id) {
			return "", nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", id)
		}
		return id, nil
	}
	return callerFrom(r.Context()).principal.User.TenantID, nil
}

// handleGetSettings returns the effective settings of the caller's tenant
// (a super_admin: the platform's, or a tenant's with ?tenant_id=), each
// field with its source. The email group is only for roles that may
// manage settings; the SMTP password is never in it.
func (s *Server) handleGetSettings() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target, err := settingsTarget(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		full := s.perms.Allows(callerFrom(r.Context()).principal.User.Role, identity.ActionManageSetting)
		eff, err := s.deps.Settings.Effective(r.Context(), target, full)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, eff)
	})
}

// handlePatchSettings changes some fields of the same settings GET reads:
// {"branding": {…}, "email": {…}}, where a field's null removes the
// override. It answers with the new effective settings.
func (s *Server) handlePatchSettings() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target, err := settingsTarget(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// A map keeps a field's null apart from its absence; the settings
		// service rejects unknown groups and fields by name.
		var body map[string]json.RawMessage
		if err := decodeJSON(r, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
		c := callerFrom(r.Context())
		client := clientOf(r)
		actor := audit.Entry{ActorKind: actorKind(c), ActorID: c.principal.User.ID, Address: client.Address, UserAgent: client.UserAgent}
		eff, err := s.deps.Settings.Update(r.Context(), target, body, actor)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, eff)
	})
}

// handleTestEmail sends a test email with the same settings GET reads:
// {"to": "someone@example.com"} answers {"sent": true}. A mail server
// that fails (unreachable, TLS, authentication, recipient refused) is a
// 502 whose message says which; egress's refusal is a 403, a bad address
// or missing settings a 400, and more than a few a minute a 429.
func (s *Server) handleTestEmail() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target, err := settingsTarget(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var body struct {
			To string `json:"to"`
		}
		if err := decodeJSON(r, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
		c := callerFrom(r.Context())
		client := clientOf(r)
		actor := audit.Entry{ActorKind: actorKind(c), ActorID: c.principal.User.ID, Address: client.Address, UserAgent: client.UserAgent}
		if err := s.deps.Settings.SendTestEmail(r.Context(), actor, target, body.To); err != nil {
			var me *mail.Error
			if errors.As(err, &me) && me.Upstream() {
				// Not Nodus's failure but the mail server's: a bad
				// gateway, which the code table (for Nodus's own
				// unavailability) would call a 503.
				s.deps.Logger.WarnContext(r.Context(), "test email failed", "request_id", RequestID(r.Context()), "kind", string(me.Kind))
				s.writeJSON(w, r, http.StatusBadGateway, errorBody{Error: errorDetail{Code: "upstream_error",
					Message: nodus.ErrorMessage(err), RequestID: RequestID(r.Context())}})
				return
			}
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, map[string]bool{"sent": true})
	})
}
