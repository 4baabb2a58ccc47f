package web

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// The menus page shows the items an administrator manages (their
// tenant's; a super_admin's: the platform's, or the tenant's they act in)
// as a tree, each with the roles that see it, and edits them through the
// menu service, which applies the ownership rules.

// menuPages bounds how many pages of items the page reads: menus are
// small, and the store caps a page.
const menuPages = 10

type menusPage struct {
	pageBase
	Owner   string // whose items: "the platform" or the tenant's name
	Items   []menuRow
	Roles   []identity.Role
	Form    menuForm
	Error   *formError
	ErrorOn string // the id of the item whose form failed, "" for the new item's
}

// menuRow is an item in tree order, with its depth for indentation.
type menuRow struct {
	identity.MenuItem
	Depth int
	Form  menuForm
}

// menuForm is an item's editable fields as a form holds them.
type menuForm struct {
	Key, Label, Path, Icon, ParentID, Position string
	Active                                     bool
	Roles                                      []identity.Role
}

func (f menuForm) Has(r identity.Role) bool { return slices.Contains(f.Roles, r) }

func formOfItem(m identity.MenuItem) menuForm {
	return menuForm{Key: m.Key, Label: m.Label, Path: m.Path, Icon: m.Icon, ParentID: m.ParentID,
		Position: strconv.Itoa(m.Position), Active: m.IsActive, Roles: m.Roles}
}

func (s *Server) handleMenus() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.menusPage(w, r, http.StatusOK, func(*menusPage) {})
	})
}

func (s *Server) menusPage(w http.ResponseWriter, r *http.Request, status int, change func(*menusPage)) {
	v := viewerFrom(r.Context())
	var items []identity.MenuItem
	f := identity.MenuFilter{TenantID: v.tenantID(), Limit: 500}
	for range menuPages {
		page, next, err := s.deps.Menus.ListMenuItems(r.Context(), v.actor(), f)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		items = append(items, page...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	owner := "the platform"
	if v.tenantID() == "" {
		// A super_admin acting in no tenant manages the platform's items;
		// the tenants' own are theirs to see once acting in one.
		items = slices.DeleteFunc(items, func(m identity.MenuItem) bool { return m.TenantID != "" })
	} else if v.tenant != nil {
		owner = v.tenant.Name
	} else {
		owner = "your organisation"
	}
	p := menusPage{pageBase: s.base(r, v, "Menus"), Owner: owner, Items: menuRows(items), Roles: identity.Roles(),
		Form: menuForm{Active: true, Position: "100", Roles: []identity.Role{identity.RoleOrgAdmin, identity.RoleUser, identity.RoleViewer}}}
	change(&p)
	s.render(w, r, status, "admin_menus", &p)
}

// menuRows orders items as the menu shows them: each parent followed by
// its children, by position then key. An item whose parent is not listed
// (a tenant's item under a platform one) starts a tree of its own.
func menuRows(items []identity.MenuItem) []menuRow {
	ids := map[string]bool{}
	children := map[string][]identity.MenuItem{}
	for _, m := range items {
		ids[m.ID] = true
	}
	for _, m := range items {
		parent := m.ParentID
		if !ids[parent] {
			parent = ""
		}
		children[parent] = append(children[parent], m)
	}
	var out []menuRow
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		level := children[parent]
		slices.SortFunc(level, func(a, b identity.MenuItem) int {
			return cmp.Or(cmp.Compare(a.Position, b.Position), strings.Compare(a.Key, b.Key))
		})
		for _, m := range level {
			out = append(out, menuRow{MenuItem: m, Depth: min(depth, identity.MaxMenuDepth-1), Form: formOfItem(m)})
			if depth < identity.MaxMenuDepth+1 { // the store keeps the tree acyclic; this bounds a broken one
				walk(m.ID, depth+1)
			}
		}
	}
	walk("", 0)
	return out
}

// menuFormOf reads an item's form.
func menuFormOf(r *http.Request) menuForm {
	_ = r.ParseForm() // checkForm parsed it already; errors were answered there
	f := menuForm{Key: strings.TrimSpace(r.PostFormValue("key")), Label: strings.TrimSpace(r.PostFormValue("label")),
		Path: strings.TrimSpace(r.PostFormValue("path")), Icon: strings.TrimSpace(r.PostFormValue("icon")),
		ParentID: r.PostFormValue("parent_id"), Position: strings.TrimSpace(r.PostFormValue("position")),
		Active: r.PostFormValue("active") == "true"}
	for _, role := range r.PostForm["roles"] {
		f.Roles = append(f.Roles, identity.Role(role))
	}
	return f
}

// position parses a form's position; an empty one is 0.
func (f menuForm) position() (int, error) {
	if f.Position == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(f.Position)
	if err != nil {
		return 0, &nodus.Error{Code: nodus.EINVALID, Message: "Check the highlighted fields",
			Fields: map[string]string{"position": "must be a whole number, such as 10"}}
	}
	return n, nil
}

func (s *Server) handleCreateMenuItem() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		form := menuFormOf(r)
		pos, err := form.position()
		if err == nil {
			m := &identity.MenuItem{TenantID: v.tenantID(), Key: form.Key, Label: form.Label, Path: form.Path, Icon: form.Icon,
				ParentID: form.ParentID, Position: pos, IsActive: form.Active, Roles: form.Roles}
			err = s.deps.Menus.CreateMenuItem(r.Context(), v.actor(), m)
		}
		if err != nil {
			s.menusPage(w, r, statusOf(nodus.ErrorCode(err)), func(p *menusPage) { p.Form, p.Error = form, toFormError(err) })
			return
		}
		http.Redirect(w, r, "/admin/menus", http.StatusSeeOther)
	})
}

func (s *Server) handleUpdateMenuItem() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		id := r.PathValue("id")
		form := menuFormOf(r)
		pos, err := form.position()
		if err == nil {
			roles := form.Roles
			_, err = s.deps.Menus.UpdateMenuItem(r.Context(), v.actor(), id, identity.MenuItemPatch{Label: &form.Label,
				Path: &form.Path, Position: &pos, IsActive: &form.Active, Roles: &roles})
		}
		if err != nil {
			if nodus.ErrorCode(err) == nodus.ENOTFOUND {
				s.fail(w, r, err)
				return
			}
			s.menusPage(w, r, statusOf(nodus.ErrorCode(err)), func(p *menusPage) {
				p.Error, p.ErrorOn = toFormError(err), id
				for i := range p.Items {
					if p.Items[i].ID == id {
						p.Items[i].Form = form
					}
				}
			})
			return
		}
		http.Redirect(w, r, "/admin/menus", http.StatusSeeOther)
	})
}

func (s *Server) handleDeleteMenuItem() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		id := r.PathValue("id")
		if err := s.deps.Menus.DeleteMenuItem(r.Context(), v.actor(), id); err != nil {
			if nodus.ErrorCode(err) == nodus.ENOTFOUND {
				s.fail(w, r, err)
				return
			}
			s.menusPage(w, r, statusOf(nodus.ErrorCode(err)), func(p *menusPage) { p.Error, p.ErrorOn = toFormError(err), id })
			return
		}
		http.Redirect(w, r, "/admin/menus", http.StatusSeeOther)
	})
}
