package httpapi

import (
	"context"
	"net/http"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the egress routes: a tenant's policy (its org_admins,
// or a super_admin naming the tenant with ?tenant_id=), the platform's
// rules and address exceptions (the egress service lets only a
// super_admin through), and the dry-run check.

// egressTenant returns whose policy a request means and the context
// scoped to it: ?tenant_id= (another tenant than an org_admin's own, or
// one that does not exist, is not found), else the caller's tenant. A
// super_admin belongs to no tenant and must name one.
func (s *Server) egressTenant(r *http.Request) (context.Context, string, error) {
	ctx, err := narrowScope(r)
	if err != nil {
		return nil, "", err
	}
	id := r.URL.Query().Get("tenant_id")
	if id == "" {
		id = callerFrom(ctx).principal.User.TenantID
		if id == "" {
			return nil, "", &nodus.Error{Code: nodus.EINVALID, Message: "name the tenant with ?tenant_id=",
				Fields: map[string]string{"tenant_id": "required for a super_admin"}}
		}
		return ctx, id, nil
	}
	if _, err := s.deps.Identity.Tenant(ctx, id); err != nil {
		return nil, "", err
	}
	return ctx, id, nil
}

// egressActor starts the audit entry of a change by the caller.
func egressActor(r *http.Request) audit.Entry {
	c := callerFrom(r.Context())
	client := clientOf(r)
	return audit.Entry{ActorKind: actorKind(c), ActorID: c.principal.User.ID, Address: client.Address, UserAgent: client.UserAgent}
}

type egressPolicyResponse struct {
	Policy *egress.View `json:"policy"`
}

// handleGetEgressPolicy returns a tenant's mode and rules, with the
// platform's rules that also apply to it.
func (s *Server) handleGetEgressPolicy() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, tenantID, err := s.egressTenant(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		v, err := s.deps.Egress.Policy(ctx, tenantID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, egressPolicyResponse{Policy: v})
	})
}

// handlePutEgressPolicy replaces a tenant's mode and rules at once.
func (s *Server) handlePutEgressPolicy() http.Handler {
	type request struct {
		Mode  egress.Mode         `json:"mode"`
		Rules *[]egress.RuleInput `json:"rules"` // required: [] for none
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, tenantID, err := s.egressTenant(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req request
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.Rules == nil {
			s.writeError(w, r, &nodus.Error{Code: nodus.EINVALID, Message: "invalid egress policy",
				Fields: map[string]string{"rules": "required: the whole list, [] for none"}})
			return
		}
		v, err := s.deps.Egress.UpdatePolicy(ctx, tenantID, req.Mode, *req.Rules, egressActor(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, egressPolicyResponse{Policy: v})
	})
}

type egressPlatformResponse struct {
	Platform *egress.Platform `json:"platform"`
}

// handleGetEgressPlatform returns the platform's rules and address
// exceptions (super_admin).
func (s *Server) handleGetEgressPlatform() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.deps.Egress.Platform(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, egressPlatformResponse{Platform: p})
	})
}

// handlePutEgressPlatform replaces the platform's rules and address
// exceptions at once (super_admin).
func (s *Server) handlePutEgressPlatform() http.Handler {
	type request struct {
		Rules      *[]egress.RuleInput      `json:"rules"`
		Exceptions *[]egress.ExceptionInput `json:"address_exceptions"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		fields := map[string]string{}
		if req.Rules == nil {
			fields["rules"] = "required: the whole list, [] for none"
		}
		if req.Exceptions == nil {
			fields["address_exceptions"] = "required: the whole list, [] for none"
		}
		if len(fields) > 0 {
			s.writeError(w, r, &nodus.Error{Code: nodus.EINVALID, Message: "invalid platform egress rules", Fields: fields})
			return
		}
		p, err := s.deps.Egress.UpdatePlatform(r.Context(), *req.Rules, *req.Exceptions, egressActor(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, egressPlatformResponse{Platform: p})
	})
}

// handleCheckEgress answers whether the tenant's clients would send a
// request to a URL, and why not, without sending it.
func (s *Server) handleCheckEgress() http.Handler {
	type request struct {
		URL string `json:"url"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, tenantID, err := s.egressTenant(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req request
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		d, err := s.deps.Egress.Check(ctx, tenantID, req.URL)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, d)
	})
}
