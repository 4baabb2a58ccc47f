package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// ReadOptions choose what ReadSecret returns.
type ReadOptions struct {
	// Version is the version to read; 0 is the newest.
	Version int
	// Expand replaces the references in the value by the values they
	// name (see reference.go), each permission-checked and audited.
	Expand bool
}

// WriteInput is one write of a secret: a new version of its value, and
// its comment, tags and metadata as they are from now on.
type WriteInput struct {
	Location
	Value    Value
	Comment  string
	Tags     []string
	Metadata json.RawMessage // a JSON object; empty is {}
	// CAS, when set, is the version the secret must be at for the write to
	// happen: 0 means it must not exist yet. A mismatch is ECONFLICT.
	CAS *int
}

// ListEnvironments returns the tenant's environments: dev, staging and
// prod, then the custom ones by slug. Any role, and any machine identity,
// may list them.
func (s *Service) ListEnvironments(ctx context.Context, p Principal) ([]Environment, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireCaller(p); err != nil {
		return nil, err
	}
	custom, err := s.store.ListSecretEnvironments(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault: list environments: %w", err)
	}
	out := DefaultEnvironments()
	for i := range out {
		out[i].TenantID = tenantID
	}
	slices.SortFunc(custom, func(a, b Environment) int { return strings.Compare(a.Slug, b.Slug) })
	return append(out, custom...), nil
}

// CreateEnvironment adds a custom environment (org_admin). slug is
// [a-z0-9-]{1,32}; name is free text, the slug when empty.
func (s *Service) CreateEnvironment(ctx context.Context, p Principal, slug, name string) (*Environment, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	f := fieldErrors{}
	if !ValidEnvironment(slug) {
		f.add("slug", "required: 1 to 32 of a-z, 0-9 and -")
	}
	if name == "" {
		name = slug
	}
	if !validText(name, 64) {
		f.add("name", "at most 64 bytes of text")
	}
	if err := f.err("environment"); err != nil {
		return nil, err
	}
	if isDefaultEnvironment(slug) {
		return nil, nodus.Errorf(nodus.ECONFLICT, "environment %s already exists", slug)
	}
	e := Environment{TenantID: tenantID, Slug: slug, Name: name, CreatedAt: s.clock.Now(), CreatedBy: p.UserID}
	if err := s.store.CreateSecretEnvironment(ctx, e); err != nil {
		if nodus.ErrorCode(err) == nodus.ECONFLICT {
			return nil, nodus.WrapError(err, nodus.ECONFLICT, fmt.Sprintf("environment %s already exists", slug))
		}
		return nil, fmt.Errorf("vault: create environment: %w", err)
	}
	a := p.entry(tenantID, "vault.environment_create")
	a.TargetType, a.TargetID = "vault_environment", slug
	a.Changes = map[string]audit.Change{"name": {After: name}}
	if err := s.record(ctx, a); err != nil {
		return nil, err
	}
	return &e, nil
}

// DeleteEnvironment removes an empty custom environment (org_admin).
// The default ones stay; one that still holds secrets, deleted ones
// included, is ECONFLICT.
func (s *Service) DeleteEnvironment(ctx context.Context, p Principal, slug string) error {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return err
	}
	if err := requireAdmin(p); err != nil {
		return err
	}
	if isDefaultEnvironment(slug) {
		return nodus.Errorf(nodus.EINVALID, "dev, staging and prod always exist and cannot be deleted")
	}
	if err := s.store.DeleteSecretEnvironment(ctx, slug); err != nil {
		return fmt.Errorf("vault: delete environment: %w", err)
	}
	a := p.entry(tenantID, "vault.environment_delete")
	a.TargetType, a.TargetID = "vault_environment", slug
	return s.record(ctx, a)
}

func isDefaultEnvironment(slug string) bool {
	for _, e := range DefaultEnvironments() {
		if e.Slug == slug {
			return true
		}
	}
	return false
}

// checkEnvironment fails with ENOTFOUND unless the tenant has slug.
func (s *Service) checkEnvironment(ctx context.Context, slug string) error {
	if isDefaultEnvironment(slug) {
		return nil
	}
	custom, err := s.store.ListSecretEnvironments(ctx)
	if err != nil {
		return fmt.Errorf("vault: list environments: %w", err)
	}
	for _, e := range custom {
		if e.Slug == slug {
			return nil
		}
	}
	return nodus.Errorf(nodus.ENOTFOUND, "environment %s not found", slug)
}

// FindTenantConfig returns the tenant's vault settings, defaults filled in.
func (s *Service) FindTenantConfig(ctx context.Context, p Principal) (TenantConfig, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return TenantConfig{}, err
	}
	if err := requireCaller(p); err != nil {
		return TenantConfig{}, err
	}
	return s.tenantConfig(ctx, tenantID)
}

func (s *Service) tenantConfig(ctx context.Context, tenantID string) (TenantConfig, error) {
	c, err := s.store.FindVaultConfig(ctx)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return TenantConfig{TenantID: tenantID, MaxVersions: DefaultMaxVersions}, nil
	}
	if err != nil {
		return TenantConfig{}, fmt.Errorf("vault: read settings: %w", err)
	}
	return c, nil
}

// UpdateTenantConfig sets how many versions each secret keeps, 1 to
// MaxMaxVersions (org_admin). Older versions go at each secret's next
// write.
func (s *Service) UpdateTenantConfig(ctx context.Context, p Principal, maxVersions int) (TenantConfig, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return TenantConfig{}, err
	}
	if err := requireAdmin(p); err != nil {
		return TenantConfig{}, err
	}
	if maxVersions < 1 || maxVersions > MaxMaxVersions {
		return TenantConfig{}, &nodus.Error{Code: nodus.EINVALID, Message: "invalid vault settings",
			Fields: map[string]string{"max_versions": fmt.Sprintf("from 1 to %d", MaxMaxVersions)}}
	}
	before, err := s.tenantConfig(ctx, tenantID)
	if err != nil {
		return TenantConfig{}, err
	}
	c := TenantConfig{TenantID: tenantID, MaxVersions: maxVersions, UpdatedAt: s.clock.Now(), UpdatedBy: p.UserID}
	err = s.store.UpdateVaultConfig(ctx, c)
	s.resolved.forget(tenantID)
	if err != nil {
		return TenantConfig{}, fmt.Errorf("vault: update settings: %w", err)
	}
	a := p.entry(tenantID, "vault.config_update")
	a.TargetType, a.TargetID = "vault_config", tenantID
	a.Changes = map[string]audit.Change{"max_versions": {Before: before.MaxVersions, After: maxVersions}}
	if err := s.record(ctx, a); err != nil {
		return TenantConfig{}, err
	}
	return c, nil
}

// ListSecrets returns a page of the secrets of one environment and folder
// (and the folders below it with Recursive), names and metadata only, and
// the cursor of the next page. Any role may list, and a machine identity
// a folder its grants cover; IncludeDeleted is for org_admins.
func (s *Service) ListSecrets(ctx context.Context, p Principal, f SecretFilter) ([]Secret, string, error) {
	if _, err := s.begin(ctx); err != nil {
		return nil, "", err
	}
	if err := requireCaller(p); err != nil {
		return nil, "", err
	}
	if f.Path == "" {
		f.Path = "/"
	}
	fe := fieldErrors{}
	if !ValidEnvironment(f.Environment) {
		fe.add("environment", "required: 1 to 32 of a-z, 0-9 and -")
	}
	if !ValidPath(f.Path) {
		fe.add("path", `"/" or "/a/b"`)
	}
	if f.Tag != "" && !validTag(f.Tag) {
		fe.add("tag", "not a valid tag")
	}
	if err := fe.err("secret filter"); err != nil {
		return nil, "", err
	}
	// A grant covering f.Path covers every folder below it, so a
	// recursive list stays within it.
	if err := s.requireNames(ctx, p, f.Environment, f.Path); err != nil {
		return nil, "", err
	}
	if f.IncludeDeleted {
		if err := requireAdmin(p); err != nil {
			return nil, "", err
		}
	}
	if f.Limit <= 0 {
		f.Limit = DefaultListLimit
	}
	f.Limit = min(f.Limit, MaxListLimit)
	out, next, err := s.store.ListSecrets(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("vault: list secrets: %w", err)
	}
	return out, next, nil
}

// FindSecret returns a live secret's name, description and newest version
// number, without its value. Any role may, and a machine identity whose
// grants cover its folder.
func (s *Service) FindSecret(ctx context.Context, p Principal, loc Location) (*Secret, error) {
	if _, err := s.begin(ctx); err != nil {
		return nil, err
	}
	if err := requireCaller(p); err != nil {
		return nil, err
	}
	if err := checkLocation(loc); err != nil {
		return nil, err
	}
	if err := s.requireNames(ctx, p, loc.Environment, loc.Path); err != nil {
		return nil, err
	}
	sec, err := s.store.FindSecret(ctx, loc, false)
	if err != nil {
		return nil, err
	}
	return &sec, nil
}

// ListVersions returns the kept versions of a live secret, newest first,
// without values. Whoever may FindSecret may.
func (s *Service) ListVersions(ctx context.Context, p Principal, loc Location) ([]VersionInfo, error) {
	sec, err := s.FindSecret(ctx, p, loc)
	if err != nil {
		return nil, err
	}
	return s.store.ListSecretVersions(ctx, sec.ID)
}

// ReadSecret returns a secret's value: the newest version or
// opts.Version, with its references expanded when opts.Expand. It needs
// read permission on the secret (and on every secret a reference
// reaches). Every value read is audited as secret.read before it is
// returned, and the read fails when the audit log cannot be written.
func (s *Service) ReadSecret(ctx context.Context, p Principal, loc Location, opts ReadOptions) (*Revealed, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkLocation(loc); err != nil {
		return nil, err
	}
	if opts.Version < 0 {
		return nil, nodus.Errorf(nodus.EINVALID, "version must be 0 (the newest) or more")
	}
	if err := s.authorize(ctx, p, loc, PermRead); err != nil {
		return nil, err
	}
	sec, version, plain, err := s.readValue(ctx, p, tenantID, loc, opts.Version, nil)
	if err != nil {
		return nil, err
	}
	value := string(plain)
	if opts.Expand {
		value, err = expandReferences(loc, value, func(target Location) (string, error) {
			if err := s.authorize(ctx, p, target, PermRead); err != nil {
				return "", referenceError(target, err)
			}
			_, _, raw, err := s.readValue(ctx, p, tenantID, target, 0, &loc)
			if err != nil {
				return "", referenceError(target, err)
			}
			return string(raw), nil
		})
		if err != nil {
			return nil, err
		}
	}
	return &Revealed{Secret: sec, Version: version, Value: NewValue(value)}, nil
}

// readValue reads, decrypts and audits one version of a secret. via is
// the secret whose reference led here, if any.
func (s *Service) readValue(ctx context.Context, p Principal, tenantID string, loc Location, version int, via *Location) (Secret, int, []byte, error) {
	sec, v, err := s.store.FindSecretVersion(ctx, loc, version)
	if err != nil {
		return Secret{}, 0, nil, err
	}
	if err := versionReadable(loc, sec.Version, v, version); err != nil {
		return Secret{}, 0, nil, err
	}
	plain, err := s.decrypt(ctx, v)
	if err != nil {
		return Secret{}, 0, nil, err
	}
	e := secretEntry(p, tenantID, "secret.read", sec, v.Version)
	if via != nil {
		e.Changes["referenced_by"] = audit.Change{After: via.String()}
	}
	if err := s.record(ctx, e); err != nil {
		clear(plain)
		return Secret{}, 0, nil, err
	}
	return sec, v.Version, plain, nil
}

// versionReadable says why the version asked for (0: the newest) of the
// secret at loc, whose newest version is latest, has no value.
func versionReadable(loc Location, latest int, v StoredVersion, asked int) error {
	switch {
	case v.Version == 0 && asked <= latest:
		if asked == 0 {
			asked = latest
		}
		return nodus.Errorf(nodus.ENOTFOUND, "version %d of %s is no longer kept", asked, loc)
	case v.Version == 0:
		return nodus.Errorf(nodus.ENOTFOUND, "%s has no version %d", loc, asked)
	case v.DestroyedAt != nil:
		return nodus.Errorf(nodus.ENOTFOUND, "version %d of %s was destroyed", v.Version, loc)
	}
	return nil
}

// WriteSecret writes a new version of a secret, creating it on its first
// write, with check-and-set when in.CAS is set. It needs write permission.
// The value is sealed under the tenant's newest data key, bound to the
// tenant, secret, location and version; versions beyond the tenant's
// MaxVersions are deleted. Writing to a soft-deleted secret is ECONFLICT:
// undelete or destroy it first.
func (s *Service) WriteSecret(ctx context.Context, p Principal, in WriteInput) (*Secret, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	f := fieldErrors{}
	validateLocation(in.Location, f)
	if in.Value.Len() > MaxValueBytes {
		f.add("value", fmt.Sprintf("at most %d bytes", MaxValueBytes))
	}
	if !validText(in.Comment, MaxCommentBytes) {
		f.add("comment", fmt.Sprintf("at most %d bytes of text", MaxCommentBytes))
	}
	tags := normalizeTags(in.Tags, f)
	meta := normalizeMetadata(in.Metadata, f)
	if in.CAS != nil && *in.CAS < 0 {
		f.add("cas", "0 (create only) or the version the secret is at")
	}
	if err := f.err("secret"); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, p, in.Location, PermWrite); err != nil {
		return nil, err
	}
	if err := s.checkEnvironment(ctx, in.Environment); err != nil {
		return nil, err
	}
	cfg, err := s.tenantConfig(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	dkVersion, aead, err := s.currentDataKey(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	plain := []byte(in.Value.Reveal())
	defer clear(plain)
	w := SecretWrite{ID: nodus.NewID(), TenantID: tenantID, Location: in.Location, Comment: in.Comment, Tags: tags,
		Metadata: meta, CAS: in.CAS, MaxVersions: cfg.MaxVersions, DataKeyVersion: dkVersion, At: s.clock.Now(), By: p.UserID}
	seal := func(secretID string, version int) ([]byte, error) {
		return sealValue(aead, dkVersion, plain, tenantID, secretID, in.Location, version), nil
	}
	var sec Secret
	for attempt := 0; ; attempt++ {
		sec, err = s.store.WriteSecret(ctx, w, seal)
		// Without CAS the caller wants its write in whatever order: a
		// concurrent first write of the same secret is retried as an
		// update.
		if err == nil || in.CAS != nil || nodus.ErrorCode(err) != nodus.ECONFLICT || attempt == 2 {
			break
		}
	}
	s.resolved.forget(tenantID)
	if err != nil {
		return nil, err
	}
	e := secretEntry(p, tenantID, "secret.write", sec, 0)
	e.Changes["version"] = audit.Change{Before: nilIfZero(sec.Version - 1), After: sec.Version}
	if cfg.MaxVersions > 0 && sec.Version > cfg.MaxVersions {
		// The write deleted the versions past the tenant's limit, with
		// their ciphertext, which a writer without read access may do:
		// the entry says how far back nothing is kept.
		e.Changes["versions_deleted_through"] = audit.Change{After: sec.Version - cfg.MaxVersions}
	}
	if err := s.record(ctx, e); err != nil {
		return nil, err
	}
	if s.rotated != nil && sec.Version > 1 {
		s.rotated(ctx, tenantID, in.Location, sec.Version, p.UserID)
	}
	return &sec, nil
}

func nilIfZero(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

// DeleteSecret soft-deletes a secret: it reads as not found and stays out
// of lists, and its versions are kept until UndeleteSecret or a destroy.
// It needs write permission.
func (s *Service) DeleteSecret(ctx context.Context, p Principal, loc Location) error {
	return s.changeDeleted(ctx, p, loc, "secret.delete", s.store.DeleteSecret)
}

// UndeleteSecret restores a soft-deleted secret with all its kept
// versions. It needs write permission.
func (s *Service) UndeleteSecret(ctx context.Context, p Principal, loc Location) error {
	return s.changeDeleted(ctx, p, loc, "secret.undelete", s.store.UndeleteSecret)
}

func (s *Service) changeDeleted(ctx context.Context, p Principal, loc Location, action string,
	change func(context.Context, Location, time.Time, string) (Secret, error)) error {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return err
	}
	if err := checkLocation(loc); err != nil {
		return err
	}
	if err := s.authorize(ctx, p, loc, PermWrite); err != nil {
		return err
	}
	sec, err := change(ctx, loc, s.clock.Now(), p.UserID)
	s.resolved.forget(tenantID)
	if err != nil {
		return err
	}
	return s.record(ctx, secretEntry(p, tenantID, action, sec, 0))
}

// DestroyVersions wipes the ciphertext of the listed versions for good,
// keeping their numbers and dates (org_admin). It works on soft-deleted
// secrets too and returns the versions it destroyed.
func (s *Service) DestroyVersions(ctx context.Context, p Principal, loc Location, versions []int) ([]int, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkLocation(loc); err != nil {
		return nil, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	if len(versions) == 0 || len(versions) > 1000 || slices.ContainsFunc(versions, func(v int) bool { return v < 1 }) {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid destroy",
			Fields: map[string]string{"versions": "1 to 1000 version numbers, each 1 or more"}}
	}
	sec, destroyed, err := s.store.DestroySecretVersions(ctx, loc, versions, s.clock.Now())
	s.resolved.forget(tenantID)
	if err != nil {
		return nil, err
	}
	e := secretEntry(p, tenantID, "secret.destroy", sec, 0)
	e.Changes["versions"] = audit.Change{After: destroyed}
	if err := s.record(ctx, e); err != nil {
		return nil, err
	}
	return destroyed, nil
}

// DestroySecret removes a secret, live or soft-deleted, with every
// version, for good (org_admin). Its key is free for a new secret.
func (s *Service) DestroySecret(ctx context.Context, p Principal, loc Location) error {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return err
	}
	if err := checkLocation(loc); err != nil {
		return err
	}
	if err := requireAdmin(p); err != nil {
		return err
	}
	sec, err := s.store.DestroySecret(ctx, loc)
	s.resolved.forget(tenantID)
	if err != nil {
		return err
	}
	e := secretEntry(p, tenantID, "secret.destroy", sec, 0)
	e.Changes["versions"] = audit.Change{After: "all"}
	return s.record(ctx, e)
}
