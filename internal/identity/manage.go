package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the management of tenants and users: the rules of who
// may change whom, on top of the store's tenant scope. The store already
// hides every row outside the caller's scope (another tenant's ids answer
// ENOTFOUND); the rules here are about roles within what is visible.

// AdminStore is what tenant and user management needs from the database.
type AdminStore interface {
	CreateTenant(ctx context.Context, t *Tenant) error
	FindTenant(ctx context.Context, id string) (*Tenant, error)
	ListTenants(ctx context.Context, limit int, cursor string) ([]Tenant, string, error)
	UpdateTenant(ctx context.Context, id string, change func(*Tenant) error) (*Tenant, error)
	DeleteTenant(ctx context.Context, id string) error
	FindUser(ctx context.Context, id string) (*User, error)
	// FindUserByUsername finds a user in scope by username, letter case
	// aside; ENOTFOUND when there is none.
	FindUserByUsername(ctx context.Context, username string) (*User, error)
	ListUsers(ctx context.Context, limit int, cursor string) ([]User, string, error)
	UpdateUser(ctx context.Context, id string, change func(*User) error) (*User, error)
	DeleteUser(ctx context.Context, id string) error
}

// Actor is who performs a management action: the user, how they proved
// it (audit.ActorUser for a session, audit.ActorToken for an API token)
// and where from.
type Actor struct {
	User   *User
	Kind   string
	Client Client
}

// entry starts the audit entry of an action by a.
func (a Actor) entry(action, tenantID, targetType, targetID string, changes map[string]audit.Change) audit.Entry {
	kind := a.Kind
	if kind == "" {
		kind = audit.ActorUser
	}
	return audit.Entry{Action: action, ActorKind: kind, ActorID: a.User.ID, TenantID: tenantID,
		TargetType: targetType, TargetID: targetID, Address: a.Client.Address, UserAgent: a.Client.UserAgent,
		Changes: changes}
}

// diff returns the fields whose values differ between before and after;
// a field missing on one side (a creation, a deletion) differs.
func diff(before, after map[string]any) map[string]audit.Change {
	out := map[string]audit.Change{}
	for k, b := range before {
		if a, ok := after[k]; !ok || a != b {
			out[k] = audit.Change{Before: b, After: a}
		}
	}
	for k, a := range after {
		if _, ok := before[k]; !ok {
			out[k] = audit.Change{After: a}
		}
	}
	return out
}

func errForbidden(msg string) error { return nodus.Errorf(nodus.EFORBIDDEN, "%s", msg) }

// validOrNotFound turns an id that is not even shaped like one into the
// same ENOTFOUND a missing row gives, before any query.
func validOrNotFound(kind, id string) error {
	if !nodus.ValidID(id) {
		return nodus.Errorf(nodus.ENOTFOUND, "%s %s not found", kind, id)
	}
	return nil
}

// Tenants.

func tenantFields(t *Tenant) map[string]any {
	return map[string]any{"name": t.Name, "description": t.Description, "domain": t.Domain, "logo_url": t.LogoURL,
		"is_active": t.IsActive, "max_users": t.MaxUsers, "max_chatbots": t.MaxChatbots}
}

// CreateTenant creates a tenant. Only the platform scope may (the store
// refuses a tenant scope).
func (s *Service) CreateTenant(ctx context.Context, a Actor, t *Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	now := s.clock.Now()
	t.ID, t.CreatedAt, t.UpdatedAt = nodus.NewID(), now, now
	if err := s.admin.CreateTenant(ctx, t); err != nil {
		return err
	}
	return s.audit.Record(ctx, a.entry("tenant.create", t.ID, "tenant", t.ID, diff(map[string]any{}, tenantFields(t))))
}

// Tenant returns a tenant visible in the context's scope.
func (s *Service) Tenant(ctx context.Context, id string) (*Tenant, error) {
	if err := validOrNotFound("tenant", id); err != nil {
		return nil, err
	}
	return s.admin.FindTenant(ctx, id)
}

// ListTenants returns a page of the tenants visible in the context's
// scope: all of them for the platform, the caller's own otherwise.
func (s *Service) ListTenants(ctx context.Context, limit int, cursor string) ([]Tenant, string, error) {
	return s.admin.ListTenants(ctx, limit, cursor)
}

// TenantPatch holds the fields of a tenant to change; nil leaves one as
// it is.
type TenantPatch struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Domain      *string `json:"domain"`
	LogoURL     *string `json:"logo_url"`
	IsActive    *bool   `json:"is_active"`
	MaxUsers    *int    `json:"max_users"`
	MaxChatbots *int    `json:"max_chatbots"`
}

func (p TenantPatch) apply(t *Tenant) {
	set(&t.Name, p.Name)
	set(&t.Description, p.Description)
	set(&t.Domain, p.Domain)
	set(&t.LogoURL, p.LogoURL)
	set(&t.IsActive, p.IsActive)
	set(&t.MaxUsers, p.MaxUsers)
	set(&t.MaxChatbots, p.MaxChatbots)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// UpdateTenant changes a tenant's fields. Deactivating a tenant stops its
// users' sessions and tokens at once: every request checks the tenant.
func (s *Service) UpdateTenant(ctx context.Context, a Actor, id string, p TenantPatch) (*Tenant, error) {
	if err := validOrNotFound("tenant", id); err != nil {
		return nil, err
	}
	var before map[string]any
	t, err := s.admin.UpdateTenant(ctx, id, func(t *Tenant) error {
		before = tenantFields(t)
		p.apply(t)
		t.UpdatedAt = s.clock.Now()
		return t.Validate()
	})
	if err != nil {
		return nil, err
	}
	if changes := diff(before, tenantFields(t)); len(changes) > 0 {
		if err := s.audit.Record(ctx, a.entry("tenant.update", t.ID, "tenant", t.ID, changes)); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// TenantPurger removes what a deleted tenant owns outside the auth
// database (the vault, egress policies, …), where no foreign key reaches.
// It must be idempotent.
type TenantPurger func(ctx context.Context, tenantID string) error

// AddTenantPurger registers p to run when a tenant is deleted. Call it
// while wiring, before serving.
func (s *Service) AddTenantPurger(p TenantPurger) { s.purgers = append(s.purgers, p) }

// DeleteTenant deletes a tenant and everything it owns. It first
// deactivates the tenant, which stops its users and tokens at once, then
// runs the purgers (the other databases), then deletes the tenant row,
// which takes its users, sessions, tokens, menus and settings with it. A
// failure leaves the tenant in place, deactivated: deleting it again
// finishes the job.
func (s *Service) DeleteTenant(ctx context.Context, a Actor, id string) error {
	t, err := s.Tenant(ctx, id)
	if err != nil {
		return err
	}
	if t.IsActive {
		if _, err := s.UpdateTenant(ctx, a, id, TenantPatch{IsActive: new(false)}); err != nil {
			return err
		}
	}
	for _, purge := range s.purgers {
		if err := purge(nodus.WithTenant(ctx, id), id); err != nil {
			return fmt.Errorf("delete tenant %s: %w (it stays, deactivated; delete it again to finish)", id, err)
		}
	}
	if err := s.admin.DeleteTenant(ctx, id); err != nil {
		return err
	}
	return s.audit.Record(ctx, a.entry("tenant.delete", t.ID, "tenant", t.ID, diff(tenantFields(t), map[string]any{})))
}

// Users.

func userFields(u *User) map[string]any {
	return map[string]any{"email": u.Email, "username": u.Username, "full_name": u.FullName,
		"role": string(u.Role), "is_active": u.IsActive}
}

// AddUser creates a user on behalf of an administrator and returns the
// generated password when none was given (shown once). No one creates a
// user more powerful than themselves, and an org_admin's users join the
// org_admin's tenant (the store's scope refuses any other).
func (s *Service) AddUser(ctx context.Context, a Actor, u *User, password string) (generated string, err error) {
	if u.Role.Valid() && !a.User.Role.AtLeast(u.Role) {
		return "", errForbidden("you cannot create a user with more power than yours")
	}
	if a.User.Role != RoleSuperAdmin && u.TenantID == "" {
		u.TenantID = a.User.TenantID
	}
	if password == "" {
		password = NewPassword()
		generated = password
	}
	return generated, s.CreateUser(ctx, u, password, a.entry("", "", "", "", nil))
}

// User returns a user visible in the context's scope.
func (s *Service) User(ctx context.Context, id string) (*User, error) {
	if err := validOrNotFound("user", id); err != nil {
		return nil, err
	}
	return s.admin.FindUser(ctx, id)
}

// UserByUsername returns the user visible in the context's scope with
// that username (letter case and surrounding spaces aside), or ENOTFOUND.
func (s *Service) UserByUsername(ctx context.Context, username string) (*User, error) {
	username = strings.ToLower(strings.TrimSpace(username))
	if !validUsername(username) {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "no user %q", username)
	}
	return s.admin.FindUserByUsername(ctx, username)
}

// ListUsers returns a page of the users visible in the context's scope.
func (s *Service) ListUsers(ctx context.Context, limit int, cursor string) ([]User, string, error) {
	return s.admin.ListUsers(ctx, limit, cursor)
}

// UserPatch holds the fields of a user to change; nil leaves one as it
// is. TenantID is accepted only to refuse a move between tenants
// clearly; Password sets a new password and ends the user's sessions.
type UserPatch struct {
	Email    *string `json:"email"`
	Username *string `json:"username"`
	FullName *string `json:"full_name"`
	Role     *Role   `json:"role"`
	IsActive *bool   `json:"is_active"`
	TenantID *string `json:"tenant_id"`
	Password *string `json:"password"`
}

// UpdateUser changes a user on behalf of an administrator. The rules: no
// one changes their own role or deactivates themselves; no one grants a
// role above their own; users never move between tenants (for an
// org_admin, another tenant is not even visible: ENOTFOUND).
func (s *Service) UpdateUser(ctx context.Context, a Actor, id string, p UserPatch) (*User, error) {
	if err := validOrNotFound("user", id); err != nil {
		return nil, err
	}
	if p.Role != nil && p.Role.Valid() && !a.User.Role.AtLeast(*p.Role) {
		return nil, errForbidden("you cannot grant a role above your own")
	}
	hash := ""
	if p.Password != nil {
		if err := ValidatePassword(*p.Password); err != nil {
			return nil, err
		}
		var err error
		if hash, err = s.hasher.Hash(ctx, *p.Password); err != nil { // before the row lock: hashing is slow
			return nil, err
		}
	}
	var before map[string]any
	u, err := s.admin.UpdateUser(ctx, id, func(u *User) error {
		if p.TenantID != nil && *p.TenantID != u.TenantID {
			if a.User.Role != RoleSuperAdmin {
				return nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", *p.TenantID)
			}
			return &nodus.Error{Code: nodus.EINVALID, Message: "a user cannot move between tenants",
				Fields: map[string]string{"tenant_id": "cannot change"}}
		}
		if u.ID == a.User.ID && (p.Role != nil && *p.Role != u.Role || p.IsActive != nil && !*p.IsActive) {
			return errForbidden("you cannot change your own role or deactivate yourself")
		}
		before = userFields(u)
		set(&u.Email, p.Email)
		set(&u.Username, p.Username)
		set(&u.FullName, p.FullName)
		set(&u.Role, p.Role)
		set(&u.IsActive, p.IsActive)
		u.UpdatedAt = s.clock.Now()
		return u.Validate()
	})
	if err != nil {
		return nil, err
	}
	if hash != "" {
		if err := s.store.SetPasswordHash(ctx, u.ID, hash, u.UpdatedAt); err != nil {
			return nil, err
		}
	}
	if hash != "" || !u.IsActive {
		if _, err := s.store.DeleteUserSessions(ctx, u.ID, ""); err != nil {
			return nil, errors.Join(nodus.Errorf(nodus.EINTERNAL, "user changed but sessions not ended"), err)
		}
	}
	if changes := diff(before, userFields(u)); len(changes) > 0 {
		if err := s.audit.Record(ctx, a.entry("user.update", u.TenantID, "user", u.ID, changes)); err != nil {
			return nil, err
		}
	}
	if hash != "" {
		if err := s.audit.Record(ctx, a.entry("user.password_reset", u.TenantID, "user", u.ID, nil)); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// DeleteUser deletes a user, their sessions and tokens. No one deletes
// themselves (so the platform always keeps a super_admin).
func (s *Service) DeleteUser(ctx context.Context, a Actor, id string) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	if u.ID == a.User.ID {
		return errForbidden("you cannot delete yourself")
	}
	if !a.User.Role.AtLeast(u.Role) {
		return errForbidden("you cannot delete a user with more power than yours")
	}
	if err := s.admin.DeleteUser(ctx, id); err != nil {
		return err
	}
	return s.audit.Record(ctx, a.entry("user.delete", u.TenantID, "user", u.ID, diff(userFields(u), map[string]any{})))
}

// ProfilePatch holds what users may change about themselves. Role and
// TenantID are accepted only to refuse them clearly.
type ProfilePatch struct {
	FullName *string `json:"full_name"`
	Email    *string `json:"email"`
	Role     *Role   `json:"role"`
	TenantID *string `json:"tenant_id"`
}

// UpdateProfile changes the caller's own name or email. A user's role and
// tenant are set by administrators only.
func (s *Service) UpdateProfile(ctx context.Context, a Actor, p ProfilePatch) (*User, error) {
	if p.Role != nil && *p.Role != a.User.Role || p.TenantID != nil && *p.TenantID != a.User.TenantID {
		return nil, errForbidden("you cannot change your own role or tenant")
	}
	return s.UpdateUser(ctx, a, a.User.ID, UserPatch{FullName: p.FullName, Email: p.Email})
}
