package vault

import (
	"context"
	"fmt"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Who may do what with values, decided by Can:
//
//   - org_admin and super_admin (and Nodus itself, RoleSystem) may read
//     and write every value of their tenant, and alone manage the vault:
//     environments, grants, handles, destroying versions, settings, keys.
//   - a user may read, or write, the values of an environment (or of all,
//     "*") below a path prefix when a grant gives that permission to the
//     user's id, or to the role "user". Write does not imply read: a CI
//     job may push secrets it cannot reveal.
//   - a machine identity (RoleMachine, machine.go) may read, or write, the
//     values its own grants cover, and see the names of the secrets in
//     those folders only; role grants never apply to it, and it manages
//     nothing.
//   - a viewer, like every role, sees names, comments, tags, metadata and
//     versions, and never values, whatever a grant says.
//
// A grant's path prefix covers the folder itself and every folder below
// it, on folder boundaries: /db covers /db and /db/replica, not /dbx.

// GrantInput is a grant to create.
type GrantInput struct {
	SubjectType string `json:"subject_type"` // SubjectUser, SubjectRole or SubjectMachine
	Subject     string `json:"subject"`      // a user id, the role "user" or a machine identity id
	Environment string `json:"environment"`  // a slug, or "*" for all
	PathPrefix  string `json:"path_prefix"`  // "/" for the whole environment
	Permission  string `json:"permission"`   // PermRead or PermWrite
}

// Can reports whether a principal with role and userID may use perm
// (PermRead or PermWrite) on the values of env at path, in the tenant of
// ctx. It fails closed: a store error is false.
func (s *Service) Can(ctx context.Context, role, userID, env, path, perm string) bool {
	if s.ready() != nil {
		return false
	}
	ok, err := s.can(ctx, role, userID, env, path, perm)
	return err == nil && ok
}

func (s *Service) can(ctx context.Context, role, userID, env, path, perm string) (bool, error) {
	if perm != PermRead && perm != PermWrite {
		return false, nil
	}
	switch role {
	case RoleOrgAdmin, RoleSuperAdmin, RoleSystem:
		return true, nil
	case RoleUser, RoleMachine:
	default: // viewers and unknown roles never touch values
		return false, nil
	}
	grants, err := s.grantsOf(ctx, role, userID)
	if err != nil {
		return false, err
	}
	return covers(grants, env, path, perm), nil
}

// grantsOf returns the grants that apply to a user (its own and its
// role's) or to a machine identity (its own only).
func (s *Service) grantsOf(ctx context.Context, role, id string) ([]Grant, error) {
	f := GrantFilter{Role: role, UserID: id}
	if role == RoleMachine {
		if id == "" {
			return nil, nil
		}
		f = GrantFilter{MachineID: id}
	}
	grants, err := s.store.ListVaultGrants(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("vault: read grants: %w", err)
	}
	return grants, nil
}

// covers reports whether one of grants gives perm on the values of env
// at path.
func covers(grants []Grant, env, path, perm string) bool {
	for _, g := range grants {
		if g.Permission == perm && (g.Environment == AllEnvironments || g.Environment == env) && underPrefix(path, g.PathPrefix) {
			return true
		}
	}
	return false
}

// authorize fails with EFORBIDDEN unless p may use perm on loc's values.
func (s *Service) authorize(ctx context.Context, p Principal, loc Location, perm string) error {
	ok, err := s.can(ctx, p.Role, p.UserID, loc.Environment, loc.Path, perm)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if p.Role == RoleViewer {
		return nodus.Errorf(nodus.EFORBIDDEN, "viewers see secret names, never values")
	}
	return nodus.Errorf(nodus.EFORBIDDEN, "no %s access to %s", perm, loc)
}

// ListGrants returns every grant of the tenant (org_admin).
func (s *Service) ListGrants(ctx context.Context, p Principal) ([]Grant, error) {
	if _, err := s.begin(ctx); err != nil {
		return nil, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	return s.store.ListVaultGrants(ctx, GrantFilter{})
}

// CreateGrant adds a grant (org_admin). The subject is a user id, the
// role "user" (admins need no grant, viewers are never given values) or
// one of the tenant's machine identities; the environment need not exist
// yet.
func (s *Service) CreateGrant(ctx context.Context, p Principal, in GrantInput) (*Grant, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	f := fieldErrors{}
	switch in.SubjectType {
	case SubjectUser:
		if !nodus.ValidID(in.Subject) {
			f.add("subject", "a user id")
		}
	case SubjectRole:
		if in.Subject != RoleUser {
			f.add("subject", `only the role "user" takes grants: admins may do everything already, viewers never see values`)
		}
	case SubjectMachine:
		if !nodus.ValidID(in.Subject) {
			f.add("subject", "a machine identity id")
		}
	default:
		f.add("subject_type", "user, role or machine")
	}
	if in.Environment != AllEnvironments && !ValidEnvironment(in.Environment) {
		f.add("environment", `an environment slug, or "*" for all`)
	}
	if in.PathPrefix == "" {
		in.PathPrefix = "/"
	}
	if !ValidPath(in.PathPrefix) {
		f.add("path_prefix", `"/" or "/a/b"`)
	}
	if in.Permission != PermRead && in.Permission != PermWrite {
		f.add("permission", "read or write")
	}
	if err := f.err("grant"); err != nil {
		return nil, err
	}
	if in.SubjectType == SubjectMachine {
		// The vault owns machine identities, so a grant names one of this
		// tenant's or none.
		if _, err := s.store.FindVaultMachine(ctx, in.Subject); err != nil {
			return nil, err
		}
	}
	g := Grant{ID: nodus.NewID(), TenantID: tenantID, SubjectType: in.SubjectType, Subject: in.Subject,
		Environment: in.Environment, PathPrefix: in.PathPrefix, Permission: in.Permission,
		CreatedAt: s.clock.Now(), CreatedBy: p.UserID}
	if err := s.store.CreateVaultGrant(ctx, g); err != nil {
		if nodus.ErrorCode(err) == nodus.ECONFLICT {
			return nil, nodus.WrapError(err, nodus.ECONFLICT, "this grant exists already")
		}
		return nil, fmt.Errorf("vault: create grant: %w", err)
	}
	if err := s.record(ctx, grantEntry(p, tenantID, "vault.grant_create", g)); err != nil {
		return nil, err
	}
	return &g, nil
}

// DeleteGrant removes a grant (org_admin).
func (s *Service) DeleteGrant(ctx context.Context, p Principal, id string) error {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return err
	}
	if err := requireAdmin(p); err != nil {
		return err
	}
	if !nodus.ValidID(id) {
		return nodus.Errorf(nodus.ENOTFOUND, "grant %s not found", id)
	}
	g, err := s.store.DeleteVaultGrant(ctx, id)
	if err != nil {
		return err
	}
	return s.record(ctx, grantEntry(p, tenantID, "vault.grant_delete", g))
}

func grantEntry(p Principal, tenantID, action string, g Grant) audit.Entry {
	e := p.entry(tenantID, action)
	e.TargetType, e.TargetID = "vault_grant", g.ID
	e.Changes = map[string]audit.Change{
		"subject":     {After: g.SubjectType + ":" + g.Subject},
		"environment": {After: g.Environment},
		"path_prefix": {After: g.PathPrefix},
		"permission":  {After: g.Permission},
	}
	return e
}
