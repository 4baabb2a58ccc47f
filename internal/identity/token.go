package identity

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// TokenStore is what personal API tokens need from the database.
type TokenStore interface {
	CreateToken(ctx context.Context, k *Token) error
	ListTokens(ctx context.Context, userID string) ([]Token, error)
	RevokeToken(ctx context.Context, userID, tokenID string, at time.Time) error
}

// MaxTokenLifetime bounds a token's expiry.
const MaxTokenLifetime = 366 * 24 * time.Hour

// CreateToken mints a personal API token for the caller and returns its
// secret, which is shown this once. A token acts with its owner's role, or
// with the lesser role it is given ("" for the owner's), so it can never
// hold more power than the user who made it: asking for more is
// EFORBIDDEN. A super_admin's tokens act on the platform, so they carry
// the super_admin role or none.
func (s *Service) CreateToken(ctx context.Context, owner *User, name string, role Role, expiresIn time.Duration, c Client) (*Token, string, error) {
	name = strings.TrimSpace(name)
	f := map[string]string{}
	switch {
	case role == "":
	case !role.Valid():
		f["role"] = "must be super_admin, org_admin, user or viewer"
	case !owner.Role.AtLeast(role):
		return nil, "", nodus.Errorf(nodus.EFORBIDDEN, "a token cannot have more power than its owner (%s)", owner.Role)
	case (owner.Role == RoleSuperAdmin) != (role == RoleSuperAdmin):
		f["role"] = "a super_admin's token acts on the platform: super_admin or none"
	}
	if name == "" || utf8.RuneCountInString(name) > 100 {
		f["name"] = "required, at most 100 characters"
	}
	if expiresIn < 0 || expiresIn > MaxTokenLifetime {
		f["expires_in_days"] = "from 0 (never) to 366"
	}
	if err := fieldErrors(f); err != nil {
		return nil, "", err
	}
	now := s.clock.Now()
	secret, hash := NewSecret(TokenPrefix)
	k := &Token{ID: nodus.NewID(), UserID: owner.ID, TenantID: owner.TenantID, Name: name,
		Prefix: secret[:len(TokenPrefix)+6], Hash: hash, Role: role, CreatedAt: now}
	if expiresIn > 0 {
		at := now.Add(expiresIn)
		k.ExpiresAt = &at
	}
	if err := s.tokens.CreateToken(ctx, k); err != nil {
		return nil, "", err
	}
	err := s.record(ctx, audit.Entry{Action: "token.create", ActorID: owner.ID, TenantID: owner.TenantID,
		TargetType: "token", TargetID: k.ID, Changes: map[string]audit.Change{"name": {After: name}, "role": {After: string(role)}}}, c)
	if err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// ListTokens returns the caller's tokens, newest first (never their
// secrets).
func (s *Service) ListTokens(ctx context.Context, owner *User) ([]Token, error) {
	return s.tokens.ListTokens(ctx, owner.ID)
}

// RevokeToken revokes one of the caller's tokens at once.
func (s *Service) RevokeToken(ctx context.Context, owner *User, tokenID string, c Client) error {
	if !nodus.ValidID(tokenID) {
		return nodus.Errorf(nodus.ENOTFOUND, "token %s not found", tokenID)
	}
	if err := s.tokens.RevokeToken(ctx, owner.ID, tokenID, s.clock.Now()); err != nil {
		return err
	}
	return s.record(ctx, audit.Entry{Action: "token.revoke", ActorID: owner.ID, TenantID: owner.TenantID,
		TargetType: "token", TargetID: tokenID}, c)
}
