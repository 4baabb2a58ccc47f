package vault

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Purpose is the keyring purpose the vault's master-key sealer uses.
const Purpose = "vault"

// Config holds the service's dependencies.
type Config struct {
	// Store is the vault database; Handles the main database.
	Store   Store
	Handles HandleStore
	// Keyring holds the master keys. nil means none could be loaded: the
	// service stays sealed.
	Keyring *keyring.Keyring
	Audit   Auditor
	// Clock defaults to the system clock.
	Clock nodus.Clock
	// CacheSize is how many unwrapped data keys (tenant and version) stay
	// in memory; 0 means 4096.
	CacheSize int
	// TouchInterval is how stale a handle's last_used_at may get before a
	// resolve that reads the databases records it again; 0 means one
	// minute. Such a read is audited regardless (see ResolveHandle).
	TouchInterval time.Duration
	// TenantActive reports whether a tenant may still use the vault
	// through machine identities and handles (tenants live in the auth
	// database, which the vault cannot read); a deactivated or deleted
	// tenant's machines cannot log in, their tokens stop, and its handles
	// no longer resolve. nil means every tenant may.
	TenantActive func(ctx context.Context, tenantID string) (bool, error)
	// HandleCacheTTL is how long a resolved handle is kept in memory and
	// served again without an audit entry (see ResolveHandle); 0 means
	// DefaultHandleCacheTTL, a negative value keeps nothing, so every
	// resolve is an audited read.
	HandleCacheTTL time.Duration
	// SecretRotated, when set, is told of each new version of an existing
	// secret (not the first write) with its location, new version and
	// writer (notifications). Never the value.
	SecretRotated func(ctx context.Context, tenantID string, at Location, version int, by string)
}

// Service is the vault: secrets, their versions and values, environments,
// grants, handles and keys. See the package documentation.
type Service struct {
	store      Store
	handles    HandleStore
	box        *keyring.Sealer // nil without a keyring
	audit      Auditor
	clock      nodus.Clock
	keys       *keyCache
	resolved   *handleCache
	touchEvery time.Duration
	// throttle counts failed machine logins; tenantIsActive is
	// Config.TenantActive.
	throttle       *loginThrottle
	tenantIsActive func(ctx context.Context, tenantID string) (bool, error)
	// activeUntil keeps positive tenant-active answers for handles
	// (handleTenantActive).
	activeMu    sync.Mutex
	activeUntil map[string]time.Time

	// rotated is Config.SecretRotated.
	rotated func(ctx context.Context, tenantID string, at Location, version int, by string)

	// sealed is nil once Unseal succeeded, else why the vault is sealed.
	sealed atomic.Pointer[string]
}

// NewService returns the vault, sealed until Unseal succeeds.
func NewService(c Config) (*Service, error) {
	if c.Store == nil || c.Handles == nil || c.Audit == nil {
		return nil, errors.New("vault: a store, a handle store and an auditor are required")
	}
	if c.Clock == nil {
		c.Clock = nodus.SystemClock{}
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 4096
	}
	if c.TouchInterval <= 0 {
		c.TouchInterval = time.Minute
	}
	if c.HandleCacheTTL == 0 {
		c.HandleCacheTTL = DefaultHandleCacheTTL
	}
	s := &Service{store: c.Store, handles: c.Handles, audit: c.Audit, clock: c.Clock,
		keys: newKeyCache(c.CacheSize), resolved: newHandleCache(c.HandleCacheTTL, handleCacheSize, handleCacheBytes), touchEvery: c.TouchInterval,
		throttle: newLoginThrottle(MachineLoginFailures, MachineLoginWindow), tenantIsActive: c.TenantActive, rotated: c.SecretRotated}
	reason := "it has not been opened yet"
	if c.Keyring == nil {
		reason = "no master key is loaded"
	} else {
		box, err := c.Keyring.Sealer(Purpose)
		if err != nil {
			return nil, err
		}
		s.box = box
	}
	s.sealed.Store(&reason)
	return s, nil
}

// Sealed reports whether the vault refuses every call, because no master
// key is loaded, the loaded keys are not the vault's, or its database
// could not be read at Unseal.
func (s *Service) Sealed() bool { return s.sealed.Load() != nil }

// Unseal checks the master key against the vault's check value and opens
// the vault when it matches. On the first start (no check value and no
// data key) it stores a new check value sealed with the current master
// key. It returns nil once the vault is open, and otherwise the
// EUNAVAILABLE error every call will return; calling it again retries
// (after migrations ran, say). A missing or wrong key never opens it.
func (s *Service) Unseal(ctx context.Context) error {
	// Whatever the outcome, nothing resolved before stays: a failed
	// Unseal seals the vault, and a new key may open it.
	defer s.resolved.forgetAll()
	if err := s.unseal(ctx); err != nil {
		reason := "the vault database cannot be read (are its migrations applied?)"
		var se *sealError
		if errors.As(err, &se) {
			reason = se.reason
		}
		s.sealed.Store(&reason)
		return &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "vault is sealed: " + reason, Err: err}
	}
	s.sealed.Store(nil)
	return nil
}

// RetryUnseal calls Unseal every interval while the vault is sealed
// because its database could not be read (down at start, or not migrated
// yet), until it opens, ctx ends, or the reason turns out to be the master
// key, which no retry can change. It calls opened once the vault opens.
// serve runs it in the background after a failed Unseal.
func (s *Service) RetryUnseal(ctx context.Context, every time.Duration, opened func()) {
	for s.Sealed() && s.box != nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		err := s.Unseal(ctx)
		if err == nil {
			if opened != nil {
				opened()
			}
			return
		}
		if se := (*sealError)(nil); errors.As(err, &se) {
			return
		}
	}
}

// sealError is an Unseal failure that says why the vault stays sealed.
type sealError struct{ reason string }

func (e *sealError) Error() string { return e.reason }

func sealedBecause(format string, args ...any) error {
	return &sealError{reason: fmt.Sprintf(format, args...)}
}

func (s *Service) unseal(ctx context.Context) error {
	if s.box == nil {
		return sealedBecause("no master key is loaded")
	}
	ctx = nodus.WithAllTenants(ctx)
	check, err := s.store.FindVaultCheck(ctx)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		// First start, unless data keys exist: then the check value was
		// removed, and one of them must open before a new one is made.
		dks, err := s.store.ListVaultDataKeys(ctx, 0, 1)
		if err != nil {
			return err
		}
		if len(dks) == 1 {
			if _, err := s.box.Open(dks[0].Wrapped, dataKeyAD(dks[0].TenantID, dks[0].Version)); err != nil {
				return sealedBecause("the vault has no check value and the loaded master keys do not open its data keys")
			}
		}
		value, _ := s.box.Seal([]byte(checkPlaintext), []byte(checkAD))
		err = s.store.CreateVaultCheck(ctx, value, s.clock.Now())
		if nodus.ErrorCode(err) != nodus.ECONFLICT {
			return err
		}
		// Another replica created it first: check theirs.
		if check, err = s.store.FindVaultCheck(ctx); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	id, _ := keyring.KeyID(check)
	if !s.box.Has(id) {
		return sealedBecause("the vault's check value was sealed with master key id %d, which is not loaded (loaded: the current key is id %d)", id, s.box.CurrentID())
	}
	plain, err := s.box.Open(check, []byte(checkAD))
	if err != nil || !bytes.Equal(plain, []byte(checkPlaintext)) {
		return sealedBecause("the master key with id %d is not the one this vault was sealed with (wrong key, or the key file was replaced)", id)
	}
	return nil
}

// ready fails with EUNAVAILABLE while the vault is sealed.
func (s *Service) ready() error {
	if r := s.sealed.Load(); r != nil {
		return nodus.Errorf(nodus.EUNAVAILABLE, "vault is sealed: %s", *r)
	}
	return nil
}

// begin is how tenant-owned calls start: the vault is open and ctx names
// one tenant, which it returns.
func (s *Service) begin(ctx context.Context) (string, error) {
	if err := s.ready(); err != nil {
		return "", err
	}
	return nodus.RequireTenant(ctx)
}

// dataKey returns a version of the tenant's data key, from the cache or
// unwrapped from the store.
func (s *Service) dataKey(ctx context.Context, tenantID string, version int) (cipher.AEAD, error) {
	if aead := s.keys.get(tenantID, version); aead != nil {
		return aead, nil
	}
	dk, err := s.store.FindVaultDataKey(ctx, version)
	if err != nil {
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			return nil, nodus.WrapError(err, nodus.EINTERNAL, fmt.Sprintf("data key version %d of this tenant is missing", version))
		}
		return nil, err
	}
	return s.unwrap(dk)
}

// unwrap opens a data key and caches it.
func (s *Service) unwrap(dk DataKey) (cipher.AEAD, error) {
	if aead := s.keys.get(dk.TenantID, dk.Version); aead != nil {
		return aead, nil
	}
	raw, err := s.box.Open(dk.Wrapped, dataKeyAD(dk.TenantID, dk.Version))
	if err != nil {
		return nil, nodus.WrapError(err, nodus.EUNAVAILABLE, fmt.Sprintf(
			"data key version %d of this tenant does not open: master key id %d is not loaded, or the key was altered", dk.Version, dk.MasterKeyID))
	}
	aead, err := newDataKeyAEAD(raw)
	clear(raw)
	if err != nil {
		return nil, err
	}
	s.keys.put(dk.TenantID, dk.Version, aead)
	return aead, nil
}

// currentDataKey returns the tenant's newest data key, creating version 1
// on the tenant's first write.
func (s *Service) currentDataKey(ctx context.Context, tenantID string) (int, cipher.AEAD, error) {
	for range 3 {
		dk, err := s.store.FindVaultDataKey(ctx, 0)
		if err == nil {
			aead, err := s.unwrap(dk)
			return dk.Version, aead, err
		}
		if nodus.ErrorCode(err) != nodus.ENOTFOUND {
			return 0, nil, err
		}
		_, err = s.newDataKey(ctx, tenantID, 1)
		if err != nil && nodus.ErrorCode(err) != nodus.ECONFLICT {
			return 0, nil, err
		}
		// Created, or another writer created it first: read it back.
	}
	return 0, nil, nodus.Errorf(nodus.ECONFLICT, "the tenant's data key is changing; retry")
}

// newDataKey makes, wraps and stores data key version of the tenant.
func (s *Service) newDataKey(ctx context.Context, tenantID string, version int) (DataKey, error) {
	raw := make([]byte, dataKeyBytes)
	_, _ = rand.Read(raw)
	defer clear(raw)
	wrapped, err := s.box.Seal(raw, dataKeyAD(tenantID, version))
	if err != nil {
		return DataKey{}, err
	}
	now := s.clock.Now()
	dk := DataKey{TenantID: tenantID, Version: version, Wrapped: wrapped, MasterKeyID: s.box.CurrentID(), CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateVaultDataKey(ctx, dk); err != nil {
		return DataKey{}, err
	}
	return dk, nil
}

// decrypt opens one stored version.
func (s *Service) decrypt(ctx context.Context, v StoredVersion) ([]byte, error) {
	dkVersion, ok := valueDataKeyVersion(v.Ciphertext)
	if !ok || dkVersion != v.DataKeyVersion {
		return nil, s.corrupt(v)
	}
	aead, err := s.dataKey(ctx, v.TenantID, dkVersion)
	if err != nil {
		return nil, err
	}
	plain, err := openValue(aead, v.Ciphertext, v.TenantID, v.SecretID, v.Location, v.Version)
	if err != nil {
		return nil, s.corrupt(v)
	}
	return plain, nil
}

func (s *Service) corrupt(v StoredVersion) error {
	return nodus.WrapError(errCiphertext, nodus.EINTERNAL,
		fmt.Sprintf("version %d of %s does not decrypt: its stored ciphertext was altered or belongs elsewhere", v.Version, v.Location))
}

// Principal is who calls: the API builds it from the signed-in user (or
// token), jobs and operator commands use System. Role decides what the
// caller may do (see Can); the rest goes into the audit log.
type Principal struct {
	UserID string
	// Role is RoleSuperAdmin, RoleOrgAdmin, RoleUser, RoleViewer,
	// RoleSystem, or RoleMachine for a machine identity (whose id is then
	// UserID).
	Role string
	// ActorKind is audit.ActorUser, audit.ActorToken or
	// audit.ActorMachine (or ActorSystem); "" means user when UserID is
	// set.
	ActorKind string
	Address   string
	UserAgent string
}

// System is the principal of Nodus itself.
func System() Principal { return Principal{Role: RoleSystem, ActorKind: audit.ActorSystem} }

func (p Principal) admin() bool {
	return p.Role == RoleOrgAdmin || p.Role == RoleSuperAdmin || p.Role == RoleSystem
}

func (p Principal) member() bool { return p.admin() || p.Role == RoleUser || p.Role == RoleViewer }

// requireMember lets any role of the tenant see names and metadata.
func requireMember(p Principal) error {
	if !p.member() {
		return nodus.Errorf(nodus.EFORBIDDEN, "no access to the vault")
	}
	return nil
}

// requireCaller lets any role of the tenant, and its machine identities,
// see what holds no secret name: environments and settings.
func requireCaller(p Principal) error {
	if p.Role == RoleMachine && p.UserID != "" {
		return nil
	}
	return requireMember(p)
}

// requireNames lets p see the names and metadata of the secrets at env
// and path: any role of the tenant, and a machine identity whose read or
// write grant covers that folder. A machine sees no more of the vault
// than its grants.
func (s *Service) requireNames(ctx context.Context, p Principal, env, path string) error {
	if p.Role != RoleMachine {
		return requireMember(p)
	}
	grants, err := s.grantsOf(ctx, p.Role, p.UserID)
	if err != nil {
		return err
	}
	if covers(grants, env, path, PermRead) || covers(grants, env, path, PermWrite) {
		return nil
	}
	return nodus.Errorf(nodus.EFORBIDDEN, "no access to %s:%s", env, path)
}

// requireAdmin is for managing the vault: environments, grants, handles,
// destroying versions, settings and keys.
func requireAdmin(p Principal) error {
	if !p.admin() {
		return nodus.Errorf(nodus.EFORBIDDEN, "only an org_admin may do this")
	}
	return nil
}

// entry starts an audit entry for p in tenantID.
func (p Principal) entry(tenantID, action string) audit.Entry {
	kind := p.ActorKind
	switch {
	case kind != "":
	case p.Role == RoleMachine:
		kind = audit.ActorMachine
	case p.UserID == "":
		kind = audit.ActorSystem
	default:
		kind = audit.ActorUser
	}
	return audit.Entry{TenantID: tenantID, ActorID: p.UserID, ActorKind: kind, Action: action,
		Address: p.Address, UserAgent: p.UserAgent}
}

// record writes an audit entry. For reads of a value it is the gate: an
// entry that cannot be written fails the read.
func (s *Service) record(ctx context.Context, e audit.Entry) error {
	if err := s.audit.Record(ctx, e); err != nil {
		return nodus.WrapError(err, nodus.EUNAVAILABLE, "the audit log cannot be written, so the vault refuses the call")
	}
	return nil
}

// locationChanges describes a secret in an audit entry: where it is and
// which version, never its value.
func locationChanges(loc Location, version int) map[string]audit.Change {
	c := map[string]audit.Change{
		"environment": {After: loc.Environment},
		"path":        {After: loc.Path},
		"key":         {After: loc.Key},
	}
	if version > 0 {
		c["version"] = audit.Change{After: version}
	}
	return c
}

// secretEntry is an audit entry about one secret.
func secretEntry(p Principal, tenantID, action string, sec Secret, version int) audit.Entry {
	e := p.entry(tenantID, action)
	e.TargetType, e.TargetID, e.Changes = "secret", sec.ID, locationChanges(sec.Location, version)
	return e
}

// inTenant returns ctx scoped to tenantID, if ctx's own scope covers it
// (that tenant, or all tenants); any other tenant is not found.
func inTenant(ctx context.Context, tenantID string) (context.Context, error) {
	scoped, all, ok := nodus.TenantScope(ctx)
	if !ok {
		return nil, nodus.ErrNoScope
	}
	if tenantID == "" || (!all && scoped != tenantID) {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", tenantID)
	}
	return nodus.WithTenant(ctx, tenantID), nil
}
