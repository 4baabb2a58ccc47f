package identity

import (
	"cmp"
	"context"
	"errors"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the navigation menu (the seed's menus and menu_roles).
// Platform items have no tenant and are managed by super_admins; a
// tenant's items are managed by its org_admins, and by super_admins naming
// the tenant. Each item lists the roles that see it. A menu is navigation,
// not permission: hiding an item does not protect its route, which checks
// its own action.

// MaxMenuDepth is how deep menu items nest: top-level items, their
// children and their grandchildren.
const MaxMenuDepth = 3

// MenuItem is one entry of the navigation menu.
type MenuItem struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id,omitempty"` // "" for platform items
	Key       string    `json:"key"`                 // unique per owner
	Label     string    `json:"label"`
	Path      string    `json:"path"` // a path on this server or an https:// URL
	Icon      string    `json:"icon"`
	ParentID  string    `json:"parent_id,omitempty"` // "" at the top level
	Position  int       `json:"position"`            // order among siblings
	IsActive  bool      `json:"is_active"`
	Roles     []Role    `json:"roles"` // who sees it; at least one
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MenuNode is an item of a caller's menu with the children the caller sees.
type MenuNode struct {
	MenuItem
	Children []MenuNode `json:"children,omitempty"`
}

// MenuFilter selects the items ListMenuItems returns. TenantID, when set,
// keeps one tenant's items.
type MenuFilter struct {
	TenantID string
	Limit    int
	Cursor   string
}

// Menu field limits.
const (
	maxMenuKey      = 64
	maxMenuLabel    = 100
	maxMenuPath     = 500
	maxMenuIcon     = 64
	maxMenuPosition = 1_000_000
)

var (
	menuKeyPattern  = regexp.MustCompile(`^[a-z0-9._-]+$`)
	menuIconPattern = regexp.MustCompile(`^[a-z0-9-]+$`)
)

// Validate checks an item's fields, all at once, and puts its roles in
// canonical order (most powerful first, no repeats). Where the item may
// go in the tree (parent, depth, cycles) is checked by the store, in the
// transaction that writes it.
func (m *MenuItem) Validate() error {
	f := map[string]string{}
	if len(m.Key) > maxMenuKey || !menuKeyPattern.MatchString(m.Key) {
		f["key"] = "1 to 64 characters: a-z, 0-9, '.', '_' or '-'"
	}
	m.Label = strings.TrimSpace(m.Label)
	if m.Label == "" || utf8.RuneCountInString(m.Label) > maxMenuLabel || strings.ContainsFunc(m.Label, isControl) {
		f["label"] = "required, at most 100 characters"
	}
	if !validMenuPath(m.Path) {
		f["path"] = "a path starting with / or an https:// URL, at most 500 characters, without spaces"
	}
	if m.Icon != "" && (len(m.Icon) > maxMenuIcon || !menuIconPattern.MatchString(m.Icon)) {
		f["icon"] = "at most 64 characters: a-z, 0-9 or '-'"
	}
	if m.TenantID != "" && !nodus.ValidID(m.TenantID) {
		f["tenant_id"] = "must be a tenant id"
	}
	switch {
	case m.ParentID != "" && !nodus.ValidID(m.ParentID):
		f["parent_id"] = "must be a menu item id"
	case m.ParentID != "" && m.ParentID == m.ID:
		f["parent_id"] = "cannot be the item itself"
	}
	if m.Position < -maxMenuPosition || m.Position > maxMenuPosition {
		f["position"] = "from -1000000 to 1000000"
	}
	switch {
	case len(m.Roles) == 0:
		f["roles"] = "at least one role"
	case slices.ContainsFunc(m.Roles, func(r Role) bool { return !r.Valid() }):
		f["roles"] = "each must be super_admin, org_admin, user or viewer"
	default:
		var roles []Role
		for _, r := range Roles() {
			if slices.Contains(m.Roles, r) {
				roles = append(roles, r)
			}
		}
		m.Roles = roles
	}
	return fieldErrors(f)
}

// validMenuPath accepts a path on this server ("/chat") or an https://
// URL with a host. "//host" and backslashes are refused: browsers follow
// them to other sites.
func validMenuPath(p string) bool {
	if p == "" || len(p) > maxMenuPath || strings.ContainsRune(p, '\\') ||
		strings.ContainsFunc(p, func(r rune) bool { return r == ' ' || isControl(r) }) {
		return false
	}
	if strings.HasPrefix(p, "/") {
		return !strings.HasPrefix(p, "//")
	}
	if !strings.HasPrefix(p, "https://") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// MenuItemPatch holds the fields of a menu item to change; nil leaves one
// as it is. ParentID "" moves the item to the top level. An item never
// changes owner, so there is no TenantID.
type MenuItemPatch struct {
	Key      *string `json:"key"`
	Label    *string `json:"label"`
	Path     *string `json:"path"`
	Icon     *string `json:"icon"`
	ParentID *string `json:"parent_id"`
	Position *int    `json:"position"`
	IsActive *bool   `json:"is_active"`
	Roles    *[]Role `json:"roles"`
}

func (p MenuItemPatch) apply(m *MenuItem) {
	set(&m.Key, p.Key)
	set(&m.Label, p.Label)
	set(&m.Path, p.Path)
	set(&m.Icon, p.Icon)
	set(&m.ParentID, p.ParentID)
	set(&m.Position, p.Position)
	set(&m.IsActive, p.IsActive)
	if p.Roles != nil {
		m.Roles = slices.Clone(*p.Roles)
	}
}

// MenuStore is what the menu service needs from the database. Reads see
// the platform's items and those of the context's tenant (every item on
// the all-tenants scope); writes touch only the context's tenant (any
// item on the all-tenants scope).
type MenuStore interface {
	// FindMenu returns every item of the platform and, when tenantID is not
	// empty, of that tenant (ENOTFOUND when there is no such tenant in
	// scope).
	FindMenu(ctx context.Context, tenantID string) ([]MenuItem, error)
	// CreateMenuItem inserts m after checking its tenant and its place in
	// the tree.
	CreateMenuItem(ctx context.Context, m *MenuItem) error
	FindMenuItem(ctx context.Context, id string) (*MenuItem, error)
	ListMenuItems(ctx context.Context, f MenuFilter) ([]MenuItem, string, error)
	// UpdateMenuItem reads item id, lets change edit it (an error from
	// change aborts) and writes it back with its tree checks, in one
	// transaction. It returns the item as written.
	UpdateMenuItem(ctx context.Context, id string, change func(*MenuItem) error) (*MenuItem, error)
	// DeleteMenuItem deletes an item without children (ECONFLICT when it
	// has some).
	DeleteMenuItem(ctx context.Context, id string) error
}

// MenuService serves each caller's menu and lets administrators change it.
type MenuService struct {
	store MenuStore
	audit Auditor
	clock nodus.Clock
}

// NewMenuService returns the menu service.
func NewMenuService(store MenuStore, auditor Auditor, clock nodus.Clock) *MenuService {
	return &MenuService{store: store, audit: auditor, clock: clock}
}

func errMenuItemNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "menu item %s not found", id)
}

var errPlatformMenu = nodus.Errorf(nodus.EFORBIDDEN,
	"platform menu items are managed by super_admins; add items to your tenant's menu instead")

// FindMenu returns the menu a sees: the active items of the platform and
// of a's tenant that a's role may see, nested, each level ordered by
// position then key. An item under a hidden parent is hidden too. A
// super_admin sees the platform's items, plus tenantID's when set; for
// everyone else tenantID is their own tenant or empty.
func (s *MenuService) FindMenu(ctx context.Context, a Actor, tenantID string) ([]MenuNode, error) {
	u := a.User
	switch {
	case u.Role != RoleSuperAdmin && tenantID != "" && tenantID != u.TenantID,
		tenantID != "" && !nodus.ValidID(tenantID):
		return nil, nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", tenantID)
	case u.Role != RoleSuperAdmin:
		tenantID = u.TenantID
	}
	items, err := s.store.FindMenu(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return menuTree(items, u.Role), nil
}

// menuTree nests the active items role sees. Items whose parent is not
// among them are left out, and so is everything below them.
func menuTree(items []MenuItem, role Role) []MenuNode {
	children := map[string][]MenuItem{}
	for _, m := range items {
		if m.IsActive && slices.Contains(m.Roles, role) {
			children[m.ParentID] = append(children[m.ParentID], m)
		}
	}
	var nest func(parentID string, depth int) []MenuNode
	nest = func(parentID string, depth int) []MenuNode {
		level := children[parentID]
		if len(level) == 0 || depth > MaxMenuDepth {
			return nil
		}
		slices.SortFunc(level, func(a, b MenuItem) int {
			return cmp.Or(cmp.Compare(a.Position, b.Position), strings.Compare(a.Key, b.Key), strings.Compare(a.ID, b.ID))
		})
		out := make([]MenuNode, len(level))
		for i, m := range level {
			out[i] = MenuNode{MenuItem: m, Children: nest(m.ID, depth+1)}
		}
		return out
	}
	return nest("", 1)
}

// mayManageMenus refuses roles that do not manage menus; the route already
// does, so this guards other callers of the service.
func mayManageMenus(a Actor) error {
	if a.User.Role != RoleSuperAdmin && a.User.Role != RoleOrgAdmin {
		return nodus.Errorf(nodus.EFORBIDDEN, "your role may not manage menus")
	}
	return nil
}

// mayChangeMenuItem applies the ownership rules to an existing item:
// super_admins change any; an org_admin changes their tenant's items, gets
// EFORBIDDEN for platform items and ENOTFOUND for another tenant's.
func mayChangeMenuItem(a Actor, m *MenuItem) error {
	switch {
	case a.User.Role == RoleSuperAdmin:
		return nil
	case m.TenantID == "":
		return errPlatformMenu
	case m.TenantID != a.User.TenantID:
		return errMenuItemNotFound(m.ID)
	}
	return nil
}

// ListMenuItems returns a page of the items p manages, oldest first: every
// item for a super_admin (one tenant's with f.TenantID), their tenant's
// for an org_admin, for whom naming another tenant is ENOTFOUND.
func (s *MenuService) ListMenuItems(ctx context.Context, a Actor, f MenuFilter) ([]MenuItem, string, error) {
	if err := mayManageMenus(a); err != nil {
		return nil, "", err
	}
	if f.TenantID != "" && (!nodus.ValidID(f.TenantID) || a.User.Role != RoleSuperAdmin && f.TenantID != a.User.TenantID) {
		return nil, "", nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", f.TenantID)
	}
	if a.User.Role != RoleSuperAdmin {
		f.TenantID = a.User.TenantID
	}
	return s.store.ListMenuItems(ctx, f)
}

// FindMenuItem returns one item p may see as an administrator: any item
// for a super_admin; the platform's and their tenant's for an org_admin.
func (s *MenuService) FindMenuItem(ctx context.Context, a Actor, id string) (*MenuItem, error) {
	if err := mayManageMenus(a); err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, errMenuItemNotFound(id)
	}
	m, err := s.store.FindMenuItem(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.User.Role != RoleSuperAdmin && m.TenantID != "" && m.TenantID != a.User.TenantID {
		return nil, errMenuItemNotFound(id)
	}
	return m, nil
}

// CreateMenuItem adds an item. An org_admin's item belongs to their tenant
// (naming another tenant is ENOTFOUND); a super_admin's is a platform item
// unless m.TenantID names a tenant.
func (s *MenuService) CreateMenuItem(ctx context.Context, a Actor, m *MenuItem) error {
	if err := mayManageMenus(a); err != nil {
		return err
	}
	if a.User.Role != RoleSuperAdmin {
		if m.TenantID != "" && m.TenantID != a.User.TenantID {
			return nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", m.TenantID)
		}
		m.TenantID = a.User.TenantID
	}
	m.ID = ""
	if err := m.Validate(); err != nil {
		return err
	}
	now := s.clock.Now()
	m.ID, m.CreatedAt, m.UpdatedAt = nodus.NewID(), now, now
	if err := s.store.CreateMenuItem(ctx, m); err != nil {
		return err
	}
	return s.record(ctx, a, "menu.create", m, menuChanges(nil, m))
}

// errMenuUnchanged aborts an update that would change nothing.
var errMenuUnchanged = errors.New("menu item unchanged")

// UpdateMenuItem changes the fields patch sets. A patch that changes
// nothing writes nothing and is not audited.
func (s *MenuService) UpdateMenuItem(ctx context.Context, a Actor, id string, patch MenuItemPatch) (*MenuItem, error) {
	if err := mayManageMenus(a); err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, errMenuItemNotFound(id)
	}
	var before MenuItem
	m, err := s.store.UpdateMenuItem(ctx, id, func(m *MenuItem) error {
		if err := mayChangeMenuItem(a, m); err != nil {
			return err
		}
		before = *m
		before.Roles = slices.Clone(m.Roles)
		patch.apply(m)
		if err := m.Validate(); err != nil {
			return err
		}
		if len(menuChanges(&before, m)) == 0 {
			return errMenuUnchanged
		}
		m.UpdatedAt = s.clock.Now()
		return nil
	})
	if errors.Is(err, errMenuUnchanged) {
		return &before, nil
	}
	if err != nil {
		return nil, err
	}
	return m, s.record(ctx, a, "menu.update", m, menuChanges(&before, m))
}

// DeleteMenuItem deletes an item. One with children is refused
// (ECONFLICT): delete or move them first.
func (s *MenuService) DeleteMenuItem(ctx context.Context, a Actor, id string) error {
	m, err := s.FindMenuItem(ctx, a, id)
	if err != nil {
		return err
	}
	if err := mayChangeMenuItem(a, m); err != nil {
		return err
	}
	if err := s.store.DeleteMenuItem(ctx, id); err != nil {
		return err
	}
	return s.record(ctx, a, "menu.delete", m, menuChanges(m, nil))
}

func (s *MenuService) record(ctx context.Context, a Actor, action string, m *MenuItem, changes map[string]audit.Change) error {
	return s.audit.Record(ctx, a.entry(action, m.TenantID, "menu_item", m.ID, changes))
}

// menuChanges returns the fields that differ between before and after; a
// nil side is a creation or a deletion.
func menuChanges(before, after *MenuItem) map[string]audit.Change {
	fields := func(m *MenuItem) map[string]any {
		if m == nil {
			return map[string]any{}
		}
		roles := make([]string, len(m.Roles))
		for i, r := range m.Roles {
			roles[i] = string(r)
		}
		return map[string]any{"key": m.Key, "label": m.Label, "path": m.Path, "icon": m.Icon,
			"parent_id": m.ParentID, "position": m.Position, "is_active": m.IsActive, "roles": roles}
	}
	b, a := fields(before), fields(after)
	out := map[string]audit.Change{}
	for _, k := range []string{"key", "label", "path", "icon", "parent_id", "position", "is_active", "roles"} {
		if !reflect.DeepEqual(b[k], a[k]) {
			out[k] = audit.Change{Before: b[k], After: a[k]}
		}
	}
	return out
}
