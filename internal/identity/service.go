package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
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
	RecordLogin(ctx context.Context, userID string, at time.Time) error
	DeleteUserSessions(ctx context.Context, userID, keep string) (int64, error)
}

// Auditor records security-relevant actions.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Service manages users and credentials.
type Service struct {
	store    Store
	admin    AdminStore
	sessions SessionStore
	tokens   TokenStore
	hasher   *Hasher
	throttle *Throttle
	audit    Auditor
	clock    nodus.Clock
	purgers  []TenantPurger
}

// Stores are the identity service's databases: users and credentials
// both live in the auth database, so one value usually serves as both.
type Stores interface {
	Store
	AdminStore
	SessionStore
	TokenStore
}

// NewService returns the identity service.
func NewService(store Stores, hasher *Hasher, throttle *Throttle, auditor Auditor, clock nodus.Clock) *Service {
	return &Service{store: store, admin: store, sessions: store, tokens: store, hasher: hasher, throttle: throttle, audit: auditor, clock: clock}
}

// errBadLogin is the one answer to every failed sign-in: unknown login,
// wrong password, disabled user or tenant all look the same.
var errBadLogin = nodus.Errorf(nodus.EUNAUTHORIZED, "invalid login or password")

// Client describes where a request comes from, for throttling and audit.
type Client struct {
	Address   string
	UserAgent string
}

// Authenticate checks a login name and password. Failures are throttled
// per (login, address) and per login, answered identically whatever went
// wrong (an unknown login costs the same argon2id run as a wrong password),
// and audited; a success records last_login_at, upgrades an outdated hash
// and is audited.
func (s *Service) Authenticate(ctx context.Context, login, password string, c Client) (*Principal, error) {
	now := s.clock.Now()
	if wait := s.throttle.Check(login, c.Address, now); wait > 0 {
		s.record(ctx, audit.Entry{Action: "auth.login_throttled", ActorKind: "anonymous", TargetType: "login", TargetID: truncate(login, 200)}, c)
		return nil, &nodus.Error{Code: nodus.ERATELIMIT, Message: "too many failed sign-ins; try again later", RetryAfter: wait}
	}
	p, err := s.store.FindAccountByLogin(ctx, login)
	var ok bool
	switch {
	case nodus.ErrorCode(err) == nodus.ENOTFOUND:
		s.hasher.VerifyDummy(ctx, password)
	case err != nil:
		return nil, err
	default:
		if ok, err = s.hasher.Verify(ctx, p.User.PasswordHash, password); err != nil {
			return nil, err
		}
		ok = ok && p.User.IsActive && p.TenantActive
	}
	if !ok {
		s.throttle.Fail(login, c.Address, now)
		e := audit.Entry{Action: "auth.login_failed", ActorKind: "anonymous", TargetType: "login", TargetID: truncate(login, 200)}
		if p != nil {
			e.TenantID, e.TargetType, e.TargetID = p.User.TenantID, "user", p.User.ID
		}
		if err := s.record(ctx, e, c); err != nil {
			return nil, err
		}
		return nil, errBadLogin
	}

	s.throttle.Succeed(login, c.Address)
	if err := s.store.RecordLogin(ctx, p.User.ID, now); err != nil {
		return nil, err
	}
	if s.hasher.NeedsRehash(p.User.PasswordHash) {
		if hash, err := s.hasher.Hash(ctx, password); err == nil {
			uctx := nodus.WithAllTenants(ctx)
			if p.User.TenantID != "" {
				uctx = nodus.WithTenant(ctx, p.User.TenantID)
			}
			if err := s.store.SetPasswordHash(uctx, p.User.ID, hash, now); err == nil {
				p.User.PasswordHash = hash
			}
		}
	}
	p.User.LastLoginAt = &now
	err = s.record(ctx, audit.Entry{Action: "auth.login", ActorKind: "user", ActorID: p.User.ID, TenantID: p.User.TenantID,
		TargetType: "user", TargetID: p.User.ID}, c)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Service) record(ctx context.Context, e audit.Entry, c Client) error {
	e.Address, e.UserAgent = c.Address, c.UserAgent
	return s.audit.Record(ctx, e)
}

// truncate bounds what a client typed as a login before it is audited,
// keeping it valid UTF-8.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
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

// ChangePassword replaces the caller's password after checking the current
// one, and ends every other session of theirs (keepSession is the hash of
// the session making the change, "" for a token). A wrong current password
// counts as a failed sign-in for throttling.
func (s *Service) ChangePassword(ctx context.Context, u *User, current, next, keepSession string, c Client) error {
	now := s.clock.Now()
	if wait := s.throttle.Check(u.Username, c.Address, now); wait > 0 {
		return &nodus.Error{Code: nodus.ERATELIMIT, Message: "too many failed attempts; try again later", RetryAfter: wait}
	}
	p, err := s.store.FindAccountByLogin(ctx, u.Username)
	if err != nil {
		return err
	}
	ok, err := s.hasher.Verify(ctx, p.User.PasswordHash, current)
	if err != nil {
		return err
	}
	if !ok {
		s.throttle.Fail(u.Username, c.Address, now)
		return &nodus.Error{Code: nodus.EINVALID, Message: "current password is wrong",
			Fields: map[string]string{"current_password": "wrong"}}
	}
	if err := ValidatePassword(next); err != nil {
		var e *nodus.Error
		if errors.As(err, &e) && e.Fields != nil {
			e.Fields = map[string]string{"new_password": e.Fields["password"]}
		}
		return err
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	if err := s.store.SetPasswordHash(ctx, u.ID, hash, now); err != nil {
		return err
	}
	if _, err := s.store.DeleteUserSessions(ctx, u.ID, keepSession); err != nil {
		return err
	}
	return s.record(ctx, audit.Entry{Action: "user.password_change", ActorID: u.ID, TenantID: u.TenantID,
		TargetType: "user", TargetID: u.ID}, c)
}
