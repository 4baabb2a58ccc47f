package httpapi

import (
	"net/http"

	"github.com/nodus-os/nodus/internal/identity"
)

type menuItemResponse struct {
	Item *identity.MenuItem `json:"item"`
}

// handleMenu returns the caller's menu: the active items their role sees,
// nested. A super_admin sees the platform's items, plus one tenant's with
// ?tenant_id=.
func (s *Server) handleMenu() http.Handler {
	type response struct {
		Menu []identity.MenuNode `json:"menu"`
	}
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		menu, err := s.deps.Menus.FindMenu(r.Context(), actorOf(r), r.URL.Query().Get("tenant_id"))
		if menu == nil {
			menu = []identity.MenuNode{}
		}
		return response{Menu: menu}, err
	})
}

// handleListMenuItems lists the items the caller manages, oldest first,
// with limit and cursor; a super_admin may filter on tenant_id.
func (s *Server) handleListMenuItems() http.Handler {
	type response struct {
		Items      []identity.MenuItem `json:"items"`
		NextCursor string              `json:"next_cursor,omitempty"`
	}
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		f := identity.MenuFilter{TenantID: r.URL.Query().Get("tenant_id"), Limit: limit, Cursor: cursor}
		items, next, err := s.deps.Menus.ListMenuItems(r.Context(), actorOf(r), f)
		if items == nil {
			items = []identity.MenuItem{}
		}
		return response{Items: items, NextCursor: next}, err
	})
}

// handleCreateMenuItem adds a menu item: to the caller's tenant for an
// org_admin; to the platform, or to the tenant named by tenant_id, for a
// super_admin. is_active defaults to true.
func (s *Server) handleCreateMenuItem() http.Handler {
	type request struct {
		TenantID string          `json:"tenant_id"`
		Key      string          `json:"key"`
		Label    string          `json:"label"`
		Path     string          `json:"path"`
		Icon     string          `json:"icon"`
		ParentID string          `json:"parent_id"`
		Position int             `json:"position"`
		IsActive *bool           `json:"is_active"`
		Roles    []identity.Role `json:"roles"`
	}
	return s.answer(http.StatusCreated, func(r *http.Request) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		m := &identity.MenuItem{TenantID: req.TenantID, Key: req.Key, Label: req.Label, Path: req.Path, Icon: req.Icon,
			ParentID: req.ParentID, Position: req.Position, IsActive: req.IsActive == nil || *req.IsActive, Roles: req.Roles}
		return menuItemResponse{Item: m}, s.deps.Menus.CreateMenuItem(r.Context(), actorOf(r), m)
	})
}

// handleFindMenuItem returns one menu item the caller may manage or build
// on (an org_admin also reads the platform's items).
func (s *Server) handleFindMenuItem() http.Handler {
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		m, err := s.deps.Menus.FindMenuItem(r.Context(), actorOf(r), r.PathValue("id"))
		return menuItemResponse{Item: m}, err
	})
}

// handleUpdateMenuItem changes the fields the body holds.
func (s *Server) handleUpdateMenuItem() http.Handler {
	return s.answer(http.StatusOK, func(r *http.Request) (any, error) {
		var patch identity.MenuItemPatch
		if err := decodeJSON(r, &patch); err != nil {
			return nil, err
		}
		m, err := s.deps.Menus.UpdateMenuItem(r.Context(), actorOf(r), r.PathValue("id"), patch)
		return menuItemResponse{Item: m}, err
	})
}

// handleDeleteMenuItem deletes a menu item without children.
func (s *Server) handleDeleteMenuItem() http.Handler {
	return s.answer(http.StatusNoContent, func(r *http.Request) (any, error) {
		return nil, s.deps.Menus.DeleteMenuItem(r.Context(), actorOf(r), r.PathValue("id"))
	})
}
