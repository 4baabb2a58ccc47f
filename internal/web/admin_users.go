package web

import (
	"net/http"
	"strings"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// The users pages list the users the viewer's scope shows (an org_admin's
// tenant; the tenant a super_admin acts in, or everyone), and change them
// through identity's rules: no one grants a role above their own, changes
// their own role or deactivates themselves.

type usersPage struct {
	pageBase
	Users     []identity.User
	Next      string
	CanEdit   bool
	Roles     []identity.Role // the roles the viewer may grant
	Self      string          // the viewer's id: their own row has no controls
	Tenant    string          // the tenant's name, "" when listing every tenant's
	Form      userForm
	FormError *formError // the new user form's
	Error     *formError // a change to a listed user's
	// Created is a new user whose password was generated: shown once.
	Created  *identity.User
	Password string
}

type userForm struct {
	Email, Username, FullName string
	Role                      identity.Role
}

func (s *Server) handleUsers() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.usersPage(w, r, http.StatusOK, func(p *usersPage) {})
	})
}

// usersPage renders the list, with change applied to the page (a form's
// error, a created user).
func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, status int, change func(*usersPage)) {
	v := viewerFrom(r.Context())
	users, next, err := s.deps.Identity.ListUsers(r.Context(), listPage, r.URL.Query().Get("cursor"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := usersPage{pageBase: s.base(r, v, "Users"), Users: users, Next: next, Self: v.user.ID,
		CanEdit: s.perms.Allows(v.user.Role, identity.ActionManageUsers), Form: userForm{Role: identity.RoleUser}}
	for _, role := range identity.Roles() {
		if v.user.Role.AtLeast(role) {
			p.Roles = append(p.Roles, role)
		}
	}
	if v.tenant != nil {
		p.Tenant = v.tenant.Name
	}
	change(&p)
	s.render(w, r, status, "admin_users", &p)
}

func (s *Server) handleCreateUser() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		form := userForm{Email: strings.TrimSpace(r.PostFormValue("email")), Username: strings.TrimSpace(r.PostFormValue("username")),
			FullName: strings.TrimSpace(r.PostFormValue("full_name")), Role: identity.Role(r.PostFormValue("role"))}
		u := &identity.User{Email: form.Email, Username: form.Username, FullName: form.FullName, Role: form.Role, IsActive: true}
		// A super_admin's new member joins the tenant they act in; a new
		// super_admin belongs to none.
		if v.user.Role == identity.RoleSuperAdmin && form.Role != identity.RoleSuperAdmin {
			u.TenantID = v.tenantID()
		}
		generated, err := s.deps.Identity.AddUser(r.Context(), v.actor(), u, r.PostFormValue("password"))
		if err != nil {
			ferr := toFormError(err)
			if ferr.Fields["tenant_id"] != "" && u.TenantID == "" {
				ferr.Message = "Choose the tenant the user joins first (Administration, Tenants), or make them a super_admin"
			}
			s.usersPage(w, r, statusOf(nodus.ErrorCode(err)), func(p *usersPage) { p.Form, p.FormError = form, ferr })
			return
		}
		if generated == "" {
			http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
			return
		}
		// The generated password is on this answer only (no-store), never
		// in a URL a redirect would put in the history.
		s.usersPage(w, r, http.StatusCreated, func(p *usersPage) { p.Created, p.Password = u, generated })
	})
}

func (s *Server) handleSetUserRole() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := identity.Role(r.PostFormValue("role"))
		s.updateUser(w, r, identity.UserPatch{Role: &role})
	})
}

func (s *Server) handleSetUserActive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		active := r.PostFormValue("active") == "true"
		s.updateUser(w, r, identity.UserPatch{IsActive: &active})
	})
}

// updateUser applies p to the user of the path; a refusal is shown above
// the list, which is where the form was.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, p identity.UserPatch) {
	v := viewerFrom(r.Context())
	if _, err := s.deps.Identity.UpdateUser(r.Context(), v.actor(), r.PathValue("id"), p); err != nil {
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			s.fail(w, r, err)
			return
		}
		s.usersPage(w, r, statusOf(nodus.ErrorCode(err)), func(p *usersPage) { p.Error = toFormError(err) })
		return
	}
	http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
}

// rolesPage is the permission table as a matrix: one row per action, one
// column per role.
type rolesPage struct {
	pageBase
	Roles []identity.Role
	Rows  []roleRow
}

type roleRow struct {
	Action identity.Action
	Allows []bool // in the order of Roles
}

func (s *Server) handleRoles() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		p := rolesPage{pageBase: s.base(r, v, "Roles"), Roles: identity.Roles()}
		for _, a := range s.perms.Actions() {
			row := roleRow{Action: a}
			for _, role := range p.Roles {
				row.Allows = append(row.Allows, s.perms.Allows(role, a))
			}
			p.Rows = append(p.Rows, row)
		}
		s.render(w, r, http.StatusOK, "admin_roles", &p)
	})
}
