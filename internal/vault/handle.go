package vault

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// HandleInput is what a handle names and allows.
type HandleInput struct {
	Location
	Version      int      `json:"version"`       // 0 follows the newest version
	AllowedHosts []string `json:"allowed_hosts"` // exact hosts or "*.domain"; empty: none
	Purpose      string   `json:"purpose"`       // [a-z][a-z0-9_.-]{0,63}, e.g. gateway.provider_key
	Label        string   `json:"label"`         // free text for people
	// ConfirmValue is the value the handle will resolve to, entered again.
	// An update that lets the value go to a host it could not go to before
	// (a host added, or the handle pointed at another secret or version)
	// needs it: whoever changes where a credential is sent must know the
	// credential (SECURITY.md check 17). It is compared, never stored.
	ConfirmValue string `json:"confirm_value,omitempty"`
}

// validateHandle checks in and returns its hosts normalised.
func validateHandle(in HandleInput) ([]string, error) {
	f := fieldErrors{}
	validateLocation(in.Location, f)
	if in.Version < 0 {
		f.add("version", "0 (the newest) or a version number")
	}
	hosts := normalizeHosts(in.AllowedHosts, f)
	if in.Purpose != "" && !validPurpose(in.Purpose) {
		f.add("purpose", "lower-case letters, digits and _ . -, starting with a letter, at most 64")
	}
	if !validText(in.Label, MaxLabelBytes) {
		f.add("label", fmt.Sprintf("at most %d bytes of text", MaxLabelBytes))
	}
	return hosts, f.err("secret handle")
}

// checkTarget fails unless the handle's secret (and pinned version) exists
// and has a value, so a handle never starts out broken.
func (s *Service) checkTarget(ctx context.Context, in HandleInput) error {
	v, latest, err := s.store.FindSecretValue(ctx, in.Location, in.Version)
	if err != nil {
		return err
	}
	return versionReadable(in.Location, latest, v, in.Version)
}

// CreateHandle makes a handle for a secret (org_admin): an opaque id that
// other modules store instead of the value. The secret, and the pinned
// version if any, must exist.
func (s *Service) CreateHandle(ctx context.Context, p Principal, in HandleInput) (*Handle, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	hosts, err := validateHandle(in)
	if err != nil {
		return nil, err
	}
	if err := s.checkTarget(ctx, in); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	h := Handle{ID: nodus.NewID(), TenantID: tenantID, Location: in.Location, Version: in.Version, AllowedHosts: hosts,
		Purpose: in.Purpose, Label: in.Label, CreatedAt: now, CreatedBy: p.UserID, UpdatedAt: now, UpdatedBy: p.UserID}
	if err := s.handles.CreateSecretHandle(ctx, h); err != nil {
		return nil, fmt.Errorf("vault: create handle: %w", err)
	}
	if err := s.record(ctx, handleEntry(p, tenantID, "secret_handle.create", h, nil)); err != nil {
		return nil, err
	}
	return &h, nil
}

// FindHandle returns a handle of the tenant. Any role may see handles;
// they hold no value.
func (s *Service) FindHandle(ctx context.Context, p Principal, id string) (*Handle, error) {
	if _, err := s.begin(ctx); err != nil {
		return nil, err
	}
	if err := requireMember(p); err != nil {
		return nil, err
	}
	h, err := s.findHandle(ctx, id)
	if err != nil {
		return nil, err
	}
	return &h, nil
}

func (s *Service) findHandle(ctx context.Context, id string) (Handle, error) {
	if !nodus.ValidID(id) {
		return Handle{}, nodus.Errorf(nodus.ENOTFOUND, "secret handle %s not found", id)
	}
	return s.handles.FindSecretHandle(ctx, id)
}

// ListHandles returns a page of the tenant's handles, oldest first, and
// the cursor of the next page. Any role may.
func (s *Service) ListHandles(ctx context.Context, p Principal, cursor string, limit int) ([]Handle, string, error) {
	if _, err := s.begin(ctx); err != nil {
		return nil, "", err
	}
	if err := requireMember(p); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	return s.handles.ListSecretHandles(ctx, cursor, min(limit, MaxListLimit))
}

// UpdateHandle points a handle at another secret or version, or changes
// its hosts, purpose or label (org_admin). Its id, which other rows hold,
// stays.
func (s *Service) UpdateHandle(ctx context.Context, p Principal, id string, in HandleInput) (*Handle, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	hosts, err := validateHandle(in)
	if err != nil {
		return nil, err
	}
	before, err := s.findHandle(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.checkTarget(ctx, in); err != nil {
		return nil, err
	}
	if widens(before, in.Location, in.Version, hosts) {
		if err := s.confirmValue(ctx, in); err != nil {
			return nil, err
		}
	}
	h := before
	h.Location, h.Version, h.AllowedHosts, h.Purpose, h.Label = in.Location, in.Version, hosts, in.Purpose, in.Label
	h.UpdatedAt, h.UpdatedBy = s.clock.Now(), p.UserID
	err = s.handles.UpdateSecretHandle(ctx, h)
	s.resolved.forget(tenantID)
	if err != nil {
		return nil, fmt.Errorf("vault: update handle: %w", err)
	}
	if err := s.record(ctx, handleEntry(p, tenantID, "secret_handle.update", h, &before)); err != nil {
		return nil, err
	}
	return &h, nil
}

// widens reports whether pointing h at loc and version with hosts could
// send a value somewhere it could not go before: another secret or
// version, or a host pattern it did not have.
func widens(h Handle, loc Location, version int, hosts []string) bool {
	if h.Location != loc || h.Version != version {
		return true
	}
	for _, host := range hosts {
		if !slices.Contains(h.AllowedHosts, host) {
			return true
		}
	}
	return false
}

// errConfirm is the answer to a missing or wrong confirm_value; it says
// nothing about how the value differs.
var errConfirm = &nodus.Error{Code: nodus.EINVALID, Message: "this change lets the secret go to new places: enter its value again",
	Fields: map[string]string{"confirm_value": "required, and equal to the value the handle will send"}}

// confirmValue checks in.ConfirmValue against the value the handle will
// resolve to, in constant time.
func (s *Service) confirmValue(ctx context.Context, in HandleInput) error {
	if in.ConfirmValue == "" {
		return errConfirm
	}
	v, _, err := s.store.FindSecretValue(ctx, in.Location, in.Version)
	if err != nil {
		return err
	}
	plain, err := s.decrypt(ctx, v)
	if err != nil {
		return err
	}
	defer clear(plain)
	if subtle.ConstantTimeCompare(plain, []byte(in.ConfirmValue)) != 1 {
		return errConfirm
	}
	return nil
}

// DeleteHandle removes a handle (org_admin); whoever still holds its id
// can no longer resolve it. The secret stays.
func (s *Service) DeleteHandle(ctx context.Context, p Principal, id string) error {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return err
	}
	if err := requireAdmin(p); err != nil {
		return err
	}
	h, err := s.findHandle(ctx, id)
	if err != nil {
		return err
	}
	err = s.handles.DeleteSecretHandle(ctx, id)
	s.resolved.forget(tenantID)
	if err != nil {
		return err
	}
	e := p.entry(tenantID, "secret_handle.delete")
	e.TargetType, e.TargetID = "secret_handle", h.ID
	return s.record(ctx, e)
}

// ResolveHandle returns the value a handle stands for, with the hosts it
// may be sent to, for use inside this process only: it is never served
// over the API. user is who the use is for (a user id; "" for Nodus
// itself). The handle's own tenant scope applies: a handle of another
// tenant is not found, and a deactivated tenant's (Config.TenantActive)
// does not resolve.
//
// What is audited is the value leaving the vault into this process for
// this user, not each use of it there. The first call for a (tenant,
// handle, user) reads the handle and the version, decrypts, records the
// use in the handle's last_used_at (to the minute) and appends
// secret.handle_use; if that entry cannot be written the call fails and
// nothing is kept. The answer is then kept in memory for
// Config.HandleCacheTTL (30 s by default), and calls for the same tenant,
// handle and user within it get a copy without reading the vault or main
// database or writing an audit entry (so last_used_at trails by up to the
// TTL too); concurrent first calls share one audited read. Every call,
// kept answer or not, needs the vault open and an active tenant
// (Config.TenantActive, whose positive answer is kept for one second).
// Every change made through this Service that could alter the answer
// (a new version, a delete, undelete or destroy, the handle updated or
// deleted, a data or master key rotation, re-encryption, a settings
// change, a tenant purge, an Unseal) drops the kept answers at once;
// changes made by another replica show here after at most the TTL. A
// negative TTL keeps nothing: every call is the audited read.
//
// The Resolved is the caller's own: its value and hosts are copies, so
// dropping or clearing them touches neither the cache nor another caller.
func (s *Service) ResolveHandle(ctx context.Context, handleID, user string) (*Resolved, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	active, err := s.handleTenantActive(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if !active {
		s.resolved.forget(tenantID)
		return nil, nodus.Errorf(nodus.EFORBIDDEN, "tenant %s is inactive: its secret handles do not resolve", tenantID)
	}
	return s.resolved.resolve(ctx, handleKey{tenantID: tenantID, handleID: handleID, user: user}, s.clock.Now(),
		func() (*resolvedEntry, error) { return s.readHandle(ctx, tenantID, handleID, user) })
}

// activeFor is how long ResolveHandle trusts a tenant's "active" answer:
// a handle resolves on every model call, and asking the auth database
// each time cost more than the whole cached read. A tenant deactivated
// meanwhile stops resolving handles within this time; an "inactive"
// answer is never kept.
const activeFor = time.Second

// handleTenantActive is tenantActive with a positive answer kept for
// activeFor.
func (s *Service) handleTenantActive(ctx context.Context, tenantID string) (bool, error) {
	now := s.clock.Now()
	s.activeMu.Lock()
	until, ok := s.activeUntil[tenantID]
	s.activeMu.Unlock()
	if ok && now.Before(until) {
		return true, nil
	}
	active, err := s.tenantActive(ctx, tenantID)
	if err != nil || !active {
		return active, err
	}
	s.activeMu.Lock()
	if s.activeUntil == nil || len(s.activeUntil) > 10000 {
		s.activeUntil = map[string]time.Time{}
	}
	s.activeUntil[tenantID] = now.Add(activeFor)
	s.activeMu.Unlock()
	return true, nil
}

// readHandle is the audited read behind ResolveHandle: the handle, its
// version, the plaintext, last_used_at and the secret.handle_use entry,
// which must be written before the value is returned.
func (s *Service) readHandle(ctx context.Context, tenantID, handleID, user string) (*resolvedEntry, error) {
	h, err := s.findHandle(ctx, handleID)
	if err != nil {
		return nil, err
	}
	v, latest, err := s.store.FindSecretValue(ctx, h.Location, h.Version)
	if err != nil {
		return nil, fmt.Errorf("secret handle %s: %w", h.ID, err)
	}
	if err := versionReadable(h.Location, latest, v, h.Version); err != nil {
		return nil, err
	}
	plain, err := s.decrypt(ctx, v)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	if h.LastUsedAt == nil || now.Sub(*h.LastUsedAt) >= s.touchEvery {
		if err := s.handles.TouchSecretHandle(ctx, h.ID, now, user); err != nil {
			clear(plain)
			return nil, fmt.Errorf("vault: record the use of handle %s: %w", h.ID, err)
		}
	}
	p := Principal{UserID: user}
	e := secretEntry(p, tenantID, "secret.handle_use", Secret{ID: v.SecretID, Location: v.Location}, v.Version)
	e.Changes["handle_id"] = audit.Change{After: h.ID}
	if h.Purpose != "" {
		e.Changes["purpose"] = audit.Change{After: h.Purpose}
	}
	if err := s.record(ctx, e); err != nil {
		clear(plain)
		return nil, err
	}
	return &resolvedEntry{r: Resolved{HandleID: h.ID, SecretID: v.SecretID, Location: v.Location, Version: v.Version,
		AllowedHosts: slices.Clone(h.AllowedHosts), Purpose: h.Purpose}, plain: plain}, nil
}

func handleEntry(p Principal, tenantID, action string, h Handle, before *Handle) audit.Entry {
	e := p.entry(tenantID, action)
	e.TargetType, e.TargetID = "secret_handle", h.ID
	change := func(b, a any) audit.Change { return audit.Change{Before: b, After: a} }
	e.Changes = map[string]audit.Change{}
	add := func(name string, b, a any, same bool) {
		if before == nil {
			e.Changes[name] = audit.Change{After: a}
		} else if !same {
			e.Changes[name] = change(b, a)
		}
	}
	var b Handle
	if before != nil {
		b = *before
	}
	add("secret", b.Location.String(), h.Location.String(), b.Location == h.Location)
	add("version", b.Version, h.Version, b.Version == h.Version)
	add("allowed_hosts", b.AllowedHosts, h.AllowedHosts, slices.Equal(b.AllowedHosts, h.AllowedHosts))
	add("purpose", b.Purpose, h.Purpose, b.Purpose == h.Purpose)
	add("label", b.Label, h.Label, b.Label == h.Label)
	return e
}
