package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of the navigation menu, in the auth database:
// menu_items and the roles that see each (menu_roles). Platform items
// (tenant_id NULL) are read by every scope and written only on the
// all-tenants scope; a tenant's items are read and written only in that
// tenant's scope or the all-tenants one. Writes check an item's place in
// the tree (parent owner, cycles, depth) in the transaction that moves it.

const menuColumns = `m.id, m.tenant_id, m.parent_id, m.key, m.label, m.path, m.icon, m.position, m.is_active,
	m.created_at, m.updated_at`

// menuSelect reads menuColumns and the item's roles, comma-separated;
// scanMenuItem puts them in order, since the engines aggregate in no
// particular one.
func menuSelect(d Dialect) string {
	agg := "group_concat(r.role, ',')"
	if d == Postgres {
		agg = "string_agg(r.role, ',')"
	}
	return `SELECT ` + menuColumns + `, (SELECT ` + agg + ` FROM menu_roles r WHERE r.menu_id = m.id) FROM menu_items m`
}

func scanMenuItem(row interface{ Scan(...any) error }, m *identity.MenuItem) error {
	var tenant, parent, roles sql.NullString
	if err := row.Scan(&m.ID, &tenant, &parent, &m.Key, &m.Label, &m.Path, &m.Icon, &m.Position, &m.IsActive,
		&m.CreatedAt, &m.UpdatedAt, &roles); err != nil {
		return err
	}
	m.TenantID, m.ParentID, m.Roles = tenant.String, parent.String, nil
	for _, r := range identity.Roles() {
		if slices.Contains(strings.Split(roles.String, ","), string(r)) {
			m.Roles = append(m.Roles, r)
		}
	}
	return nil
}

func errMenuItemNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "menu item %s not found", id)
}

var errPlatformMenuScope = nodus.Errorf(nodus.EFORBIDDEN, "platform menu items need the platform scope")

// menuReadScope returns the condition limiting menu_items m to what the
// context's scope reads: the platform's items and its tenant's, or every
// item on the all-tenants scope.
func menuReadScope(ctx context.Context) (string, []any, error) {
	id, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return "", nil, nodus.ErrNoScope
	case all:
		return "1 = 1", nil, nil
	}
	return "(m.tenant_id IS NULL OR m.tenant_id = ?)", []any{id}, nil
}

// mayWriteMenuItem checks that the context's scope may write an item owned
// by tenantID ("" for the platform).
func mayWriteMenuItem(ctx context.Context, tenantID string) error {
	scoped, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return nodus.ErrNoScope
	case all:
		return nil
	case tenantID == "":
		return errPlatformMenuScope
	case tenantID != scoped:
		return errTenantNotFound(tenantID)
	}
	return nil
}

// lockMenus serialises writes to the menu on PostgreSQL, so two moves
// cannot each pass the cycle check and together make a cycle; reads go on.
// SQLite's single writer already serialises them. Menus change rarely.
func lockMenus(ctx context.Context, tx *Tx) error {
	if tx.Dialect() != Postgres {
		return nil
	}
	_, err := tx.Exec(ctx, `LOCK TABLE menu_items IN SHARE ROW EXCLUSIVE MODE`)
	return err
}

// FindMenu returns every item of the platform and, when tenantID is not
// empty, of that tenant, ordered by position and key. A tenant scope may
// name only its own tenant.
func (db *DB) FindMenu(ctx context.Context, tenantID string) ([]identity.MenuItem, error) {
	scoped, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return nil, nodus.ErrNoScope
	case !all && tenantID != "" && tenantID != scoped:
		return nil, errTenantNotFound(tenantID)
	}
	var out []identity.MenuItem
	err := db.Read(ctx, func(tx *Tx) error {
		cond, args := "m.tenant_id IS NULL", []any(nil)
		if tenantID != "" {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM tenants WHERE id = ?`, tenantID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return errTenantNotFound(tenantID)
			}
			cond, args = "(m.tenant_id IS NULL OR m.tenant_id = ?)", []any{tenantID}
		}
		rows, err := tx.Query(ctx, menuSelect(tx.Dialect())+` WHERE `+cond+` ORDER BY m.position, m.key, m.id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m identity.MenuItem
			if err := scanMenuItem(rows, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// FindMenuItem returns an item readable in the context's scope.
func (db *DB) FindMenuItem(ctx context.Context, id string) (*identity.MenuItem, error) {
	cond, args, err := menuReadScope(ctx)
	if err != nil {
		return nil, err
	}
	var m identity.MenuItem
	err = db.Read(ctx, func(tx *Tx) error {
		return scanMenuItem(tx.QueryRow(ctx, menuSelect(tx.Dialect())+` WHERE m.id = ? AND `+cond,
			append([]any{id}, args...)...), &m)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errMenuItemNotFound(id)
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// ListMenuItems returns a page of the items the context's scope writes
// (its tenant's, or every item on the all-tenants scope), oldest first,
// and the cursor of the next page ("" at the end).
func (db *DB) ListMenuItems(ctx context.Context, f identity.MenuFilter) ([]identity.MenuItem, string, error) {
	cond, args, err := scopeCond(ctx, "m.tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	if f.TenantID != "" {
		cond, args = cond+" AND m.tenant_id = ?", append(args, f.TenantID)
	}
	return listPage(ctx, db, menuSelect(db.dialect)+` WHERE m.id > ? AND `+cond+` ORDER BY m.id LIMIT ?`,
		append([]any{after}, args...), pageSize(f.Limit), scanMenuItem, func(m identity.MenuItem) string { return m.ID })
}

// CreateMenuItem inserts an item and its roles. The tenant must exist and
// be in scope; a platform item needs the all-tenants scope.
func (db *DB) CreateMenuItem(ctx context.Context, m *identity.MenuItem) error {
	if err := mayWriteMenuItem(ctx, m.TenantID); err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		if m.TenantID != "" {
			// Locked before the menu, in the order a tenant's deletion
			// takes them, so the two cannot deadlock.
			var id string
			err := tx.QueryRow(ctx, `SELECT id FROM tenants WHERE id = ?`+tx.Dialect().ForUpdate(), m.TenantID).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				return errTenantNotFound(m.TenantID)
			}
			if err != nil {
				return err
			}
		}
		if err := lockMenus(ctx, tx); err != nil {
			return err
		}
		if err := checkMenuKey(ctx, tx, m); err != nil {
			return err
		}
		if err := checkMenuPlace(ctx, tx, m, 1); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO menu_items (id, tenant_id, parent_id, key, label, path, icon, position, is_active,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, nullable(m.TenantID), nullable(m.ParentID), m.Key, m.Label, m.Path, m.Icon, m.Position, m.IsActive,
			m.CreatedAt, m.UpdatedAt)
		if err != nil {
			return err
		}
		return insertMenuRoles(ctx, tx, m)
	})
}

// UpdateMenuItem reads the item id readable in the context's scope, lets
// change edit it (an error from change aborts, returned as is) and writes
// it back, in one transaction. The owner never changes, and the context's
// scope must be allowed to write the item (platform items need the
// all-tenants scope). It returns the item as written.
func (db *DB) UpdateMenuItem(ctx context.Context, id string, change func(*identity.MenuItem) error) (*identity.MenuItem, error) {
	cond, args, err := menuReadScope(ctx)
	if err != nil {
		return nil, err
	}
	var m identity.MenuItem
	err = db.Write(ctx, func(tx *Tx) error {
		if err := lockMenus(ctx, tx); err != nil {
			return err
		}
		err := scanMenuItem(tx.QueryRow(ctx, menuSelect(tx.Dialect())+` WHERE m.id = ? AND `+cond,
			append([]any{id}, args...)...), &m)
		if errors.Is(err, sql.ErrNoRows) {
			return errMenuItemNotFound(id)
		}
		if err != nil {
			return err
		}
		before := m
		before.Roles = slices.Clone(m.Roles)
		if err := change(&m); err != nil {
			return err
		}
		if err := mayWriteMenuItem(ctx, before.TenantID); err != nil {
			return err
		}
		if m.ID != before.ID || m.TenantID != before.TenantID {
			return nodus.Errorf(nodus.EINVALID, "a menu item cannot change its id or owner")
		}
		if m.Key != before.Key {
			if err := checkMenuKey(ctx, tx, &m); err != nil {
				return err
			}
		}
		if m.ParentID != before.ParentID {
			height, err := menuHeight(ctx, tx, id)
			if err != nil {
				return err
			}
			if err := checkMenuPlace(ctx, tx, &m, height); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE menu_items SET parent_id = ?, key = ?, label = ?, path = ?, icon = ?, position = ?,
			is_active = ?, updated_at = ? WHERE id = ?`,
			nullable(m.ParentID), m.Key, m.Label, m.Path, m.Icon, m.Position, m.IsActive, m.UpdatedAt, id); err != nil {
			return err
		}
		if slices.Equal(m.Roles, before.Roles) {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM menu_roles WHERE menu_id = ?`, id); err != nil {
			return err
		}
		return insertMenuRoles(ctx, tx, &m)
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// DeleteMenuItem deletes an item readable in the context's scope, with its
// roles. Platform items need the all-tenants scope; an item with children
// (of any owner) is refused with ECONFLICT.
func (db *DB) DeleteMenuItem(ctx context.Context, id string) error {
	cond, args, err := menuReadScope(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		if err := lockMenus(ctx, tx); err != nil {
			return err
		}
		var tenant sql.NullString
		err := tx.QueryRow(ctx, `SELECT m.tenant_id FROM menu_items m WHERE m.id = ? AND `+cond,
			append([]any{id}, args...)...).Scan(&tenant)
		if errors.Is(err, sql.ErrNoRows) {
			return errMenuItemNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := mayWriteMenuItem(ctx, tenant.String); err != nil {
			return err
		}
		var children int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM menu_items WHERE parent_id = ?`, id).Scan(&children); err != nil {
			return err
		}
		if children > 0 {
			return nodus.Errorf(nodus.ECONFLICT, "menu item %s has %d child items; delete or move them first", id, children)
		}
		_, err = tx.Exec(ctx, `DELETE FROM menu_items WHERE id = ?`, id)
		return err
	})
}

func insertMenuRoles(ctx context.Context, tx *Tx, m *identity.MenuItem) error {
	for _, r := range m.Roles {
		if _, err := tx.Exec(ctx, `INSERT INTO menu_roles (menu_id, role) VALUES (?, ?)`, m.ID, string(r)); err != nil {
			return err
		}
	}
	return nil
}

// checkMenuKey refuses a key its owner already uses. The unique index is
// the backstop; this check names the field.
func checkMenuKey(ctx context.Context, tx *Tx, m *identity.MenuItem) error {
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM menu_items WHERE COALESCE(tenant_id, '') = ? AND key = ? AND id <> ?`,
		m.TenantID, m.Key, m.ID).Scan(&n)
	if err != nil {
		return err
	}
	if n > 0 {
		return &nodus.Error{Code: nodus.ECONFLICT, Message: "a menu item with this key exists",
			Fields: map[string]string{"key": "already taken"}}
	}
	return nil
}

// checkMenuPlace checks where m goes: its parent exists and belongs to m's
// owner or the platform (another tenant's parent is ENOTFOUND, as if it did
// not exist), is neither m nor below it, and the tree stays within
// identity.MaxMenuDepth levels; height is how many levels m's own subtree
// spans (1 for a leaf). It reads across owners: descendants of a platform
// item may belong to any tenant.
func checkMenuPlace(ctx context.Context, tx *Tx, m *identity.MenuItem, height int) error {
	tooDeep := &nodus.Error{Code: nodus.EINVALID, Message: "menus nest at most 3 levels deep",
		Fields: map[string]string{"parent_id": "too deep: menus nest at most 3 levels"}}
	if m.ParentID == "" {
		if height > identity.MaxMenuDepth {
			return tooDeep
		}
		return nil
	}
	// Walk up from the parent. The stored tree is at most MaxMenuDepth
	// deep and acyclic, so the walk ends; the bound is a second guard.
	var ancestors []string
	for id := m.ParentID; id != "" && len(ancestors) <= 2*identity.MaxMenuDepth; {
		var tenant, parent sql.NullString
		err := tx.QueryRow(ctx, `SELECT tenant_id, parent_id FROM menu_items WHERE id = ?`, id).Scan(&tenant, &parent)
		if len(ancestors) == 0 {
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return errMenuItemNotFound(id)
			case err != nil:
				return err
			case tenant.Valid && tenant.String != m.TenantID && m.TenantID == "":
				return &nodus.Error{Code: nodus.EINVALID, Message: "a platform item's parent must be a platform item",
					Fields: map[string]string{"parent_id": "must be a platform item"}}
			case tenant.Valid && tenant.String != m.TenantID:
				return errMenuItemNotFound(id)
			}
		} else if err != nil {
			return err
		}
		ancestors = append(ancestors, id)
		id = parent.String
	}
	if slices.Contains(ancestors, m.ID) {
		return &nodus.Error{Code: nodus.EINVALID, Message: "a menu item cannot be placed under itself",
			Fields: map[string]string{"parent_id": "cannot be the item itself or one of its descendants"}}
	}
	if len(ancestors)+height > identity.MaxMenuDepth {
		return tooDeep
	}
	return nil
}

// menuHeight returns how many levels the subtree under id spans, counting
// id itself, across owners, stopping once it exceeds MaxMenuDepth.
func menuHeight(ctx context.Context, tx *Tx, id string) (int, error) {
	height, level := 1, []string{id}
	for height <= identity.MaxMenuDepth {
		marks := placeholders(len(level))
		args := make([]any, len(level))
		for i, v := range level {
			args[i] = v
		}
		rows, err := tx.Query(ctx, `SELECT id FROM menu_items WHERE parent_id IN (`+marks+`)`, args...)
		if err != nil {
			return 0, err
		}
		next, err := scanMenuIDs(rows)
		if err != nil {
			return 0, err
		}
		if len(next) == 0 {
			break
		}
		height, level = height+1, next
	}
	return height, nil
}

// scanMenuIDs reads a column of ids and closes rows.
func scanMenuIDs(rows *Rows) ([]string, error) {
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
