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

type tokenResponse struct {
	Token  identity.Token `json:"token"`
	Secret string         `json:"secret,omitempty"`
}

// handleCreateToken mints a personal API token; the secret is in this
// answer only.
func (s *Server) handleCreateToken() http.Handler {
	type request struct {
		Name          string        `json:"name"`
		ExpiresInDays int           `json:"expires_in_days"`
		Role          identity.Role `json:"role"` // "" acts with the owner's role
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.ExpiresInDays < 0 || req.ExpiresInDays > 366 {
			req.ExpiresInDays = -1 // refused below, without overflowing the duration
		}
		c := callerFrom(r.Context())
		k, secret, err := s.deps.Identity.CreateToken(r.Context(), &c.principal.User, req.Name, req.Role,
			time.Duration(req.ExpiresInDays)*24*time.Hour, clientOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusCreated, tokenResponse{Token: *k, Secret: secret})
	})
}

// handleListTokens lists the caller's tokens.
func (s *Server) handleListTokens() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		tokens, err := s.deps.Identity.ListTokens(r.Context(), &c.principal.User)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if tokens == nil {
			tokens = []identity.Token{}
		}
		s.writeJSON(w, r, http.StatusOK, map[string]any{"tokens": tokens})
	})
}

// handleRevokeToken revokes one of the caller's tokens.
func (s *Server) handleRevokeToken() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		if err := s.deps.Identity.RevokeToken(r.Context(), &c.principal.User, r.PathValue("id"), clientOf(r)); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleChangePassword changes the caller's password and ends their other
// sessions.
func (s *Server) handleChangePassword() http.Handler {
	type request struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		c := callerFrom(r.Context())
		keep := ""
		if c.session != nil {
			keep = c.session.IDHash
		}
		err := s.deps.Identity.ChangePassword(r.Context(), &c.principal.User, req.CurrentPassword, req.NewPassword, keep, clientOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
