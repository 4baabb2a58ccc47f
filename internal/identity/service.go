package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Store is what the identity service needs from the database.
type Store interface {
	CreateUser(ctx context.Context, u *User) error
	CountUsers(ctx context.Context) (int, error)
	FindAccountByLogin(ctx context.Context, login string) (*Principal, error)
	SetPasswordHash(ctx context.Context, userID, hash string, at time.Time) error
	DeleteUserSessions(ctx context.Context, userID, keep string) (int64, error)
}

// Auditor records security-relevant actions.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Service manages users and credentials.
type Service struct {
	store  Store
	hasher *Hasher
	audit  Auditor
	clock  nodus.Clock
}

// NewService returns the identity service.
func NewService(store Store, hasher *Hasher, auditor Auditor, clock nodus.Clock) *Service {
	return &Service{store: store, hasher: hasher, audit: auditor, clock: clock}
}

// NewPassword returns a generated password: 26 base32 characters, 130
// random bits.
func NewPassword() string { return rand.Text() }

// CreateUser validates u, hashes password and stores the user, then audits
// it as done by actor. The caller's context scope decides which tenants u
// may join (see store.CreateUser).
func (s *Service) CreateUser(ctx context.Context, u *User, password string, actor audit.Entry) error {
	if err := u.Validate(); err != nil {
		return err
	}
	if err := ValidatePassword(password); err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	u.ID, u.PasswordHash, u.CreatedAt, u.UpdatedAt = nodus.NewID(), hash, now, now
	if err := s.store.CreateUser(ctx, u); err != nil {
		return err
	}
	actor.Action, actor.TenantID, actor.TargetType, actor.TargetID = "user.create", u.TenantID, "user", u.ID
	actor.Changes = map[string]audit.Change{
		"email": {After: u.Email}, "username": {After: u.Username}, "role": {After: string(u.Role)},
		"is_active": {After: u.IsActive},
	}
	return s.audit.Record(ctx, actor)
}

// Bootstrap creates the first super_admin when there are no users at all.
// Without a password it generates one and returns it, to be shown once.
// It returns a nil user when users already exist, including when another
// replica bootstrapped at the same moment.
func (s *Service) Bootstrap(ctx context.Context, email, password string) (*User, string, error) {
	ctx = nodus.WithAllTenants(ctx)
	n, err := s.store.CountUsers(ctx)
	if err != nil || n > 0 {
		return nil, "", err
	}
	generated := ""
	if password == "" {
		password = NewPassword()
		generated = password
	}
	if email == "" {
		email = "admin@localhost"
	}
	u := &User{Email: email, Username: "admin", FullName: "Administrator", Role: RoleSuperAdmin, IsActive: true}
	err = s.CreateUser(ctx, u, password, audit.Entry{ActorKind: "system"})
	if nodus.ErrorCode(err) == nodus.ECONFLICT {
		return nil, "", nil // another replica won
	}
	if err != nil {
		return nil, "", err
	}
	return u, generated, nil
}

// ResetPassword sets a new password for the user with this login name and
// ends all their sessions. It is the operator's path (`nodus admin
// reset-password`), so it runs on the platform scope.
func (s *Service) ResetPassword(ctx context.Context, login, password string) (*User, error) {
	if err := ValidatePassword(password); err != nil {
		return nil, err
	}
	ctx = nodus.WithAllTenants(ctx)
	p, err := s.store.FindAccountByLogin(ctx, login)
	if err != nil {
		return nil, err
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	if err := s.store.SetPasswordHash(ctx, p.User.ID, hash, now); err != nil {
		return nil, err
	}
	if _, err := s.store.DeleteUserSessions(ctx, p.User.ID, ""); err != nil {
		return nil, errors.Join(nodus.Errorf(nodus.EINTERNAL, "password changed but sessions not ended"), err)
	}
	err = s.audit.Record(ctx, audit.Entry{ActorKind: "system", Action: "user.password_reset",
		TenantID: p.User.TenantID, TargetType: "user", TargetID: p.User.ID})
	return &p.User, err
}
