package web

import (
	"net/http"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds what the administration pages share: their routes, each
// with the API's action for the same change, the refusal of a role that
// lacks it, and the tenant a super_admin acts in.

// adminRoutes are the administration pages: tenants, users and roles,
// menus, settings, the audit log, the vault and egress. Each names the
// action its API route needs (httpapi/routes.go), so a role the API
// refuses is refused here too, before the handler runs.
func (s *Server) adminRoutes() []route {
	return []route{
		{pattern: "GET /admin", handler: s.handleAdminIndex(), action: identity.ActionReadUsers},

		{pattern: "GET /admin/tenants", handler: s.handleTenants(), action: identity.ActionManageTenants},
		{pattern: "POST /admin/tenants", handler: s.handleCreateTenant(), action: identity.ActionManageTenants},
		{pattern: "POST /admin/tenants/{id}/active", handler: s.handleSetTenantActive(), action: identity.ActionManageTenants},
		{pattern: "POST /admin/tenant", handler: s.handlePickTenant(), action: identity.ActionManageTenants},

		{pattern: "GET /admin/users", handler: s.handleUsers(), action: identity.ActionReadUsers},
		{pattern: "POST /admin/users", handler: s.handleCreateUser(), action: identity.ActionManageUsers},
		{pattern: "POST /admin/users/{id}/role", handler: s.handleSetUserRole(), action: identity.ActionManageUsers},
		{pattern: "POST /admin/users/{id}/active", handler: s.handleSetUserActive(), action: identity.ActionManageUsers},
		{pattern: "GET /admin/roles", handler: s.handleRoles(), action: identity.ActionReadUsers},

		{pattern: "GET /admin/menus", handler: s.handleMenus(), action: identity.ActionManageMenus},
		{pattern: "POST /admin/menus", handler: s.handleCreateMenuItem(), action: identity.ActionManageMenus},
		{pattern: "POST /admin/menus/{id}", handler: s.handleUpdateMenuItem(), action: identity.ActionManageMenus},
		{pattern: "POST /admin/menus/{id}/delete", handler: s.handleDeleteMenuItem(), action: identity.ActionManageMenus},

		{pattern: "GET /admin/settings", handler: s.handleSettings(), action: identity.ActionManageSetting},
		{pattern: "POST /admin/settings/branding", handler: s.handleSaveBranding(), action: identity.ActionManageSetting},
		{pattern: "POST /admin/settings/email", handler: s.handleSaveEmail(), action: identity.ActionManageSetting},
		{pattern: "POST /admin/settings/email/test", handler: s.handleTestEmail(), action: identity.ActionManageSetting},

		{pattern: "GET /admin/audit", handler: s.handleAudit(), action: identity.ActionReadAudit},

		{pattern: "GET /admin/webhooks", handler: s.handleWebhooks(), action: identity.ActionManageSetting},
		{pattern: "POST /admin/webhooks", handler: s.handleCreateWebhook(), action: identity.ActionManageSetting},
		{pattern: "GET /admin/webhooks/{id}", handler: s.handleWebhooks(), action: identity.ActionManageSetting},
		{pattern: "POST /admin/webhooks/{id}/delete", handler: s.handleDeleteWebhook(), action: identity.ActionManageSetting},

		{pattern: "GET /vault", handler: s.handleVault(), action: identity.ActionReadVault},
		{pattern: "POST /vault/environments", handler: s.handleCreateEnvironment(), action: identity.ActionManageVault},
		{pattern: "POST /vault/secrets", handler: s.handleWriteSecret(), action: identity.ActionWriteVault},
		{pattern: "GET /vault/secret", handler: s.handleSecret(), action: identity.ActionReadVault},
		{pattern: "POST /vault/secret/delete", handler: s.handleDeleteSecret(), action: identity.ActionWriteVault},
		{pattern: "POST /vault/reveal", handler: s.handleReveal(), action: identity.ActionRevealVault},

		{pattern: "GET /egress", handler: s.handleEgress(), action: identity.ActionReadEgress},
		{pattern: "POST /egress", handler: s.handleSaveEgress(), action: identity.ActionManageEgress},
	}
}

// deny answers a page the viewer's role may not open: audited as the API
// audits a refused route, and a 403 page that says why.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, v *viewer, action identity.Action) {
	if s.deps.Audit != nil {
		err := s.deps.Audit.Record(r.Context(), audit.Entry{Action: "authz.denied", ActorKind: audit.ActorUser, ActorID: v.user.ID,
			TenantID: v.user.TenantID, TargetType: "route", TargetID: string(action), Address: v.client.Address,
			UserAgent: v.client.UserAgent})
		if err != nil {
			s.deps.Logger.WarnContext(r.Context(), "web: audit a refusal", "err", err)
		}
	}
	s.renderError(w, r, v, http.StatusForbidden,
		"Your role ("+string(v.user.Role)+") may not open this page. Ask an administrator of your organisation if you need it.")
}

// actor is the viewer as the actor of a management action.
func (v *viewer) actor() identity.Actor {
	return identity.Actor{User: &v.user, Kind: audit.ActorUser, Client: v.client}
}

// tenantCookie holds the tenant a super_admin acts in. It is set only by
// a POST with the session's CSRF token (handlePickTenant), never by a
// link, so another site cannot choose it for them.
const tenantCookie = "nodus_tenant"

// actingTenant is the tenant a super_admin's cookie names, if it still
// exists: checked on every request, as the API checks ?tenant_id=, so a
// deleted tenant or a forged id falls back to no tenant.
func (s *Server) actingTenant(r *http.Request) *identity.Tenant {
	ck, err := r.Cookie(tenantCookie)
	if err != nil || !nodus.ValidID(ck.Value) {
		return nil
	}
	t, err := s.deps.Identity.Tenant(nodus.WithAllTenants(r.Context()), ck.Value)
	if err != nil {
		if nodus.ErrorCode(err) != nodus.ENOTFOUND {
			s.deps.Logger.WarnContext(r.Context(), "web: acting tenant", "err", err)
		}
		return nil
	}
	return t
}

// tenantPicker is what the layout shows a super_admin: the tenant they
// act in ("" for none) and where to change it.
type tenantPicker struct {
	ID, Name string
}

func pickerOf(v *viewer) *tenantPicker {
	if v.user.Role != identity.RoleSuperAdmin {
		return nil
	}
	if v.tenant == nil {
		return &tenantPicker{}
	}
	return &tenantPicker{ID: v.tenant.ID, Name: v.tenant.Name}
}

// errPickTenant is what a super_admin sees on a page about one tenant
// (its vault, its egress policy) before choosing one.
var errPickTenant = nodus.Errorf(nodus.EINVALID,
	"This page is about one tenant's data. Choose the tenant to act in on the Tenants page (Administration, Tenants)")

// adminSection is one entry of the administration index.
type adminSection struct {
	Path, Title, About string
}

type adminIndexPage struct {
	pageBase
	Sections []adminSection
}

// handleAdminIndex lists the administration pages the viewer's role may
// open: the menu's "Administration" item leads here.
func (s *Server) handleAdminIndex() http.Handler {
	all := []struct {
		adminSection
		action identity.Action
	}{
		{adminSection{"/admin/tenants", "Tenants", "Create and deactivate organisations; choose the one to act in."}, identity.ActionManageTenants},
		{adminSection{"/admin/users", "Users", "Who signs in, with which role; add, change and deactivate them."}, identity.ActionReadUsers},
		{adminSection{"/admin/roles", "Roles", "What each role may do."}, identity.ActionReadUsers},
		{adminSection{"/admin/menus", "Menus", "The navigation and which roles see each item."}, identity.ActionManageMenus},
		{adminSection{"/admin/settings", "Settings", "Branding and the outgoing mail server."}, identity.ActionManageSetting},
		{adminSection{"/admin/audit", "Audit log", "Who did what, and when."}, identity.ActionReadAudit},
		{adminSection{"/admin/webhooks", "Webhooks", "Signed posts of the organisation's events to your endpoints, with their delivery logs."}, identity.ActionManageSetting},
		{adminSection{"/vault", "Vault", "Environments, folders and secrets."}, identity.ActionReadVault},
		{adminSection{"/egress", "Egress", "Which outside hosts Nodus may call for the organisation."}, identity.ActionReadEgress},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		p := adminIndexPage{pageBase: s.base(r, v, "Administration")}
		for _, sec := range all {
			if s.perms.Allows(v.user.Role, sec.action) {
				p.Sections = append(p.Sections, sec.adminSection)
			}
		}
		s.render(w, r, http.StatusOK, "admin_index", &p)
	})
}
