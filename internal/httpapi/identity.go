package httpapi

import (
	"net/http"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
)

type meResponse struct {
	User      identity.User `json:"user"`
	CSRFToken string        `json:"csrf_token,omitempty"`
}

// handleLogin signs in with a login name (email or username) and password
// and sets the session cookie. Its answer carries the CSRF token the
// browser sends back on state changes.
func (s *Server) handleLogin() http.Handler {
	type request struct {
		Login    string `json:"login"`
		Password string `json:"password"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		c := clientOf(r)
		p, err := s.deps.Identity.Authenticate(r.Context(), req.Login, req.Password, c)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		secret, sess, err := s.deps.Identity.StartSession(r.Context(), p, c)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", HttpOnly: true, Secure: true,
			SameSite: http.SameSiteLaxMode, Expires: sess.ExpiresAt})
		s.writeJSON(w, r, http.StatusOK, meResponse{User: p.User, CSRFToken: sess.CSRFToken})
	})
}

// handleLogout ends the caller's session and clears the cookie.
func (s *Server) handleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		if c.session != nil {
			if err := s.deps.Identity.EndSession(r.Context(), c.session, c.principal, clientOf(r)); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true,
			SameSite: http.SameSiteLaxMode, MaxAge: -1, Expires: time.Unix(0, 0)})
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleMe returns the caller.
func (s *Server) handleMe() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		resp := meResponse{User: c.principal.User}
		if c.session != nil {
			resp.CSRFToken = c.session.CSRFToken
		}
		s.writeJSON(w, r, http.StatusOK, resp)
	})
}
