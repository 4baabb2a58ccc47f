package web

import (
	"net/http"
	"strings"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// The tenants pages are the super_admin's (the routes need
// tenants.manage). They always work on every tenant, whichever one the
// super_admin acts in.

type tenantsPage struct {
	pageBase
	Tenants []identity.Tenant
	Next    string
	Acting  string // the id of the tenant acted in
	Form    tenantForm
	Error   *formError
}

type tenantForm struct{ Name, Description, Domain string }

func (s *Server) handleTenants() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.tenantsPage(w, r, http.StatusOK, tenantForm{}, nil)
	})
}

func (s *Server) tenantsPage(w http.ResponseWriter, r *http.Request, status int, form tenantForm, ferr *formError) {
	v := viewerFrom(r.Context())
	tenants, next, err := s.deps.Identity.ListTenants(nodus.WithAllTenants(r.Context()), listPage, r.URL.Query().Get("cursor"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := tenantsPage{pageBase: s.base(r, v, "Tenants"), Tenants: tenants, Next: next, Acting: v.tenantID(), Form: form, Error: ferr}
	s.render(w, r, status, "admin_tenants", &p)
}

func (s *Server) handleCreateTenant() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		form := tenantForm{Name: strings.TrimSpace(r.PostFormValue("name")), Description: strings.TrimSpace(r.PostFormValue("description")),
			Domain: strings.TrimSpace(r.PostFormValue("domain"))}
		t := &identity.Tenant{Name: form.Name, Description: form.Description, Domain: form.Domain, IsActive: true}
		if err := s.deps.Identity.CreateTenant(nodus.WithAllTenants(r.Context()), v.actor(), t); err != nil {
			s.tenantsPage(w, r, statusOf(nodus.ErrorCode(err)), form, toFormError(err))
			return
		}
		http.Redirect(w, r, "/admin/tenants", http.StatusSeeOther)
	})
}

// handleSetTenantActive deactivates a tenant (its users' sessions and
// tokens stop at once) or activates it again.
func (s *Server) handleSetTenantActive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		active := r.PostFormValue("active") == "true"
		_, err := s.deps.Identity.UpdateTenant(nodus.WithAllTenants(r.Context()), v.actor(), r.PathValue("id"),
			identity.TenantPatch{IsActive: &active})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/admin/tenants", http.StatusSeeOther)
	})
}

// handlePickTenant sets the tenant a super_admin acts in ("" for none):
// the tenant pages, users, menus, settings, vault, egress and audit log
// then show and change that tenant's, as the API does with ?tenant_id=.
func (s *Server) handlePickTenant() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PostFormValue("tenant")
		ck := &http.Cookie{Name: tenantCookie, Path: "/", HttpOnly: true, Secure: secureCookies, SameSite: http.SameSiteLaxMode}
		if id == "" {
			ck.MaxAge = -1
		} else {
			t, err := s.deps.Identity.Tenant(nodus.WithAllTenants(r.Context()), id)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			ck.Value = t.ID
		}
		http.SetCookie(w, ck)
		http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
	})
}
