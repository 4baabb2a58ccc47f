package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the management of tenants (super_admin) and users
// (org_admin within their tenant, super_admin anywhere). The caller's
// scope, set by authorize, hides every other tenant's rows; the identity
// service applies the role rules.

// actorOf is the caller as the actor of a management action.
func actorOf(r *http.Request) identity.Actor {
	c := callerFrom(r.Context())
	return identity.Actor{User: &c.principal.User, Kind: actorKind(c), Client: clientOf(r)}
}

// pageQuery reads the limit and cursor of a list request.
func pageQuery(r *http.Request) (limit int, cursor string, err error) {
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, "", &nodus.Error{Code: nodus.EINVALID, Message: "invalid query",
				Fields: map[string]string{"limit": "must be a positive number"}}
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}

// narrowScope applies a tenant_id query parameter: a super_admin narrows
// the all-tenants scope to that tenant; anyone else may only name their
// own, and another tenant is, for them, not found.
func narrowScope(r *http.Request) (context.Context, error) {
	ctx := r.Context()
	id := r.URL.Query().Get("tenant_id")
	if id == "" {
		return ctx, nil
	}
	scoped, all, _ := nodus.TenantScope(ctx)
	switch {
	case all && nodus.ValidID(id):
		return nodus.WithTenant(ctx, id), nil
	case !all && id == scoped:
		return ctx, nil
	}
	return nil, nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", id)
}

// Tenants.

func (s *Server) handleListTenants() http.Handler {
	type response struct {
		Tenants    []identity.Tenant `json:"tenants"`
		NextCursor string            `json:"next_cursor,omitempty"`
	}
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		tenants, next, err := s.deps.Identity.ListTenants(r.Context(), limit, cursor)
		if tenants == nil {
			tenants = []identity.Tenant{}
		}
		return response{Tenants: tenants, NextCursor: next}, err
	})
}

type tenantResponse struct {
	Tenant *identity.Tenant `json:"tenant"`
}

func (s *Server) handleCreateTenant() http.Handler {
	type request struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Domain      string `json:"domain"`
		LogoURL     string `json:"logo_url"`
		IsActive    *bool  `json:"is_active"` // default true
		MaxUsers    int    `json:"max_users"`
		MaxChatbots int    `json:"max_chatbots"`
	}
	return s.answer(http.StatusCreated, func(r *http.Request) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		t := &identity.Tenant{Name: req.Name, Description: req.Description, Domain: req.Domain, LogoURL: req.LogoURL,
			IsActive: req.IsActive == nil || *req.IsActive, MaxUsers: req.MaxUsers, MaxChatbots: req.MaxChatbots}
		return tenantResponse{Tenant: t}, s.deps.Identity.CreateTenant(r.Context(), actorOf(r), t)
	})
}

func (s *Server) handleGetTenant() http.Handler {
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		t, err := s.deps.Identity.Tenant(r.Context(), r.PathValue("id"))
		return tenantResponse{Tenant: t}, err
	})
}

func (s *Server) handleUpdateTenant() http.Handler {
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		var p identity.TenantPatch
		if err := decodeJSON(r, &p); err != nil {
			return nil, err
		}
		t, err := s.deps.Identity.UpdateTenant(r.Context(), actorOf(r), r.PathValue("id"), p)
		return tenantResponse{Tenant: t}, err
	})
}

func (s *Server) handleDeleteTenant() http.Handler {
	return s.answer(http.StatusNoContent, func(r *http.Request) (any, error) {
		return nil, s.deps.Identity.DeleteTenant(r.Context(), actorOf(r), r.PathValue("id"))
	})
}

// Users.

func (s *Server) handleListUsers() http.Handler {
	type response struct {
		Users      []identity.User `json:"users"`
		NextCursor string          `json:"next_cursor,omitempty"`
	}
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		ctx, err := narrowScope(r)
		if err != nil {
			return nil, err
		}
		users, next, err := s.deps.Identity.ListUsers(ctx, limit, cursor)
		if users == nil {
			users = []identity.User{}
		}
		return response{Users: users, NextCursor: next}, err
	})
}

type userResponse struct {
	User *identity.User `json:"user"`
	// Password is the generated password of a new user, shown once.
	Password string `json:"password,omitempty"`
}

func (s *Server) handleCreateUser() http.Handler {
	type request struct {
		Email    string        `json:"email"`
		Username string        `json:"username"`
		FullName string        `json:"full_name"`
		Role     identity.Role `json:"role"`
		TenantID string        `json:"tenant_id"` // an org_admin's own tenant when empty
		Password string        `json:"password"`  // generated and returned once when empty
		IsActive *bool         `json:"is_active"` // default true
	}
	return s.answer(http.StatusCreated, func(r *http.Request) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		u := &identity.User{Email: req.Email, Username: req.Username, FullName: req.FullName, Role: req.Role,
			TenantID: req.TenantID, IsActive: req.IsActive == nil || *req.IsActive}
		generated, err := s.deps.Identity.AddUser(r.Context(), actorOf(r), u, req.Password)
		return userResponse{User: u, Password: generated}, err
	})
}

func (s *Server) handleGetUser() http.Handler {
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		u, err := s.deps.Identity.User(r.Context(), r.PathValue("id"))
		return userResponse{User: u}, err
	})
}

func (s *Server) handleUpdateUser() http.Handler {
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		var p identity.UserPatch
		if err := decodeJSON(r, &p); err != nil {
			return nil, err
		}
		u, err := s.deps.Identity.UpdateUser(r.Context(), actorOf(r), r.PathValue("id"), p)
		return userResponse{User: u}, err
	})
}

func (s *Server) handleDeleteUser() http.Handler {
	return s.answer(http.StatusNoContent, func(r *http.Request) (any, error) {
		return nil, s.deps.Identity.DeleteUser(r.Context(), actorOf(r), r.PathValue("id"))
	})
}

// handleUpdateMe changes the caller's own name or email.
func (s *Server) handleUpdateMe() http.Handler {
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		var p identity.ProfilePatch
		if err := decodeJSON(r, &p); err != nil {
			return nil, err
		}
		u, err := s.deps.Identity.UpdateProfile(r.Context(), actorOf(r), p)
		if err != nil {
			return nil, err
		}
		return meResponse{User: *u}, nil
	})
}
