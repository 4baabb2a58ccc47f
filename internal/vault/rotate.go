package vault

import (
	"context"
	"fmt"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
)

// ReencryptStats reports a ReencryptTenant run.
type ReencryptStats struct {
	DataKeyVersion int `json:"data_key_version"` // the version values were moved to
	Reencrypted    int `json:"reencrypted"`      // versions moved in this run
	Batches        int `json:"batches"`
}

// MasterKeyStats reports a RotateMasterKey run.
type MasterKeyStats struct {
	MasterKeyID int  `json:"master_key_id"` // the key everything is now wrapped by
	Rewrapped   int  `json:"rewrapped"`     // data keys rewrapped in this run
	CheckValue  bool `json:"check_value"`   // whether the check value was resealed
}

// KeyStatus says which master keys the vault's data depends on: when no
// data key and not the check value needs a key any more, that key can be
// removed from the key file (after every other user of the key, such as
// sealed settings, is resealed too).
type KeyStatus struct {
	Sealed       bool   `json:"sealed"`
	SealedReason string `json:"sealed_reason,omitempty"`
	// LoadedKeyIDs are the master keys loaded; CurrentKeyID seals.
	LoadedKeyIDs []int `json:"loaded_key_ids"`
	CurrentKeyID int   `json:"current_key_id"`
	// CheckKeyID wrapped the check value (0: none yet).
	CheckKeyID int `json:"check_key_id"`
	// DataKeys counts data keys by the master key id that wraps them.
	DataKeys map[int]int `json:"data_keys"`
}

// RotateDataKey gives a tenant a new data key version, which seals every
// value written from now on (org_admin of the tenant, or the platform).
// Values under older versions still read; ReencryptTenant moves them.
// ctx's scope must cover tenantID. It returns the new version.
func (s *Service) RotateDataKey(ctx context.Context, p Principal, tenantID string) (int, error) {
	if err := s.ready(); err != nil {
		return 0, err
	}
	if err := requireAdmin(p); err != nil {
		return 0, err
	}
	ctx, err := inTenant(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	var dk DataKey
	for range 3 {
		cur, err := s.store.FindVaultDataKey(ctx, 0)
		next := 1
		if err == nil {
			next = cur.Version + 1
		} else if nodus.ErrorCode(err) != nodus.ENOTFOUND {
			return 0, err
		}
		if dk, err = s.newDataKey(ctx, tenantID, next); nodus.ErrorCode(err) != nodus.ECONFLICT {
			if err != nil {
				return 0, fmt.Errorf("vault: rotate data key: %w", err)
			}
			break
		}
	}
	s.resolved.forget(tenantID)
	if dk.Version == 0 {
		return 0, nodus.Errorf(nodus.ECONFLICT, "the tenant's data key is being rotated by someone else; retry")
	}
	e := p.entry(tenantID, "vault.rotate_data_key")
	e.TargetType, e.TargetID = "vault_data_key", tenantID
	e.Changes = map[string]audit.Change{"data_key_version": {Before: nilIfZero(dk.Version - 1), After: dk.Version},
		"master_key_id": {After: int(dk.MasterKeyID)}}
	if err := s.record(ctx, e); err != nil {
		return 0, err
	}
	return dk.Version, nil
}

// ReencryptTenant moves every kept version of the tenant's secrets to the
// newest data key, batch rows per transaction (0: DefaultReencryptRun),
// until none is left or ctx ends (org_admin, or a job as System). It is
// idempotent and resumable: a run that stops half-way leaves every value
// readable, and the next run carries on. A value written meanwhile under
// an older key (by a replica that had not seen the rotation) is picked up
// by the next run. ctx's scope must cover tenantID.
func (s *Service) ReencryptTenant(ctx context.Context, p Principal, tenantID string, batch int) (ReencryptStats, error) {
	var st ReencryptStats
	if err := s.ready(); err != nil {
		return st, err
	}
	if err := requireAdmin(p); err != nil {
		return st, err
	}
	ctx, err := inTenant(ctx, tenantID)
	if err != nil {
		return st, err
	}
	if batch <= 0 {
		batch = DefaultReencryptRun
	}
	cur, err := s.store.FindVaultDataKey(ctx, 0)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return st, nil // nothing was ever written
	}
	if err != nil {
		return st, err
	}
	aead, err := s.unwrap(cur)
	if err != nil {
		return st, err
	}
	st.DataKeyVersion = cur.Version
	runErr := func() error {
		for ctx.Err() == nil {
			stale, err := s.store.ListStaleSecretVersions(ctx, cur.Version, batch)
			if err != nil || len(stale) == 0 {
				return err
			}
			rs := make([]Reencrypted, 0, len(stale))
			for _, v := range stale {
				plain, err := s.decrypt(ctx, v)
				if err != nil {
					return err
				}
				rs = append(rs, Reencrypted{SecretID: v.SecretID, Version: v.Version, OldDataKeyVersion: v.DataKeyVersion,
					DataKeyVersion: cur.Version, Ciphertext: sealValue(aead, cur.Version, plain, tenantID, v.SecretID, v.Location, v.Version)})
				clear(plain)
			}
			n, err := s.store.UpdateSecretCiphertexts(ctx, rs)
			if err != nil {
				return err
			}
			st.Reencrypted += n
			st.Batches++
		}
		return ctx.Err()
	}()
	s.resolved.forget(tenantID)
	if st.Reencrypted > 0 || runErr == nil {
		e := p.entry(tenantID, "vault.reencrypt")
		e.TargetType, e.TargetID = "vault_data_key", tenantID
		e.Changes = map[string]audit.Change{"data_key_version": {After: cur.Version}, "reencrypted": {After: st.Reencrypted}}
		if err := s.record(context.WithoutCancel(ctx), e); err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr != nil {
		return st, fmt.Errorf("vault: re-encrypt after %d versions: %w", st.Reencrypted, runErr)
	}
	return st, nil
}

// RotateMasterKey rewraps every tenant's data keys, and reseals the check
// value, under the keyring's current master key (super_admin, or an
// operator command as System, with the all-tenants scope). The old key
// must still be loaded: it unwraps what it wrapped while the new one
// takes over, so the vault stays open throughout. Each data key is
// rewrapped on its own, only if no one changed it meanwhile, so the run
// is idempotent and resumable. Values are untouched: rotating the master
// key never re-encrypts a secret.
func (s *Service) RotateMasterKey(ctx context.Context, p Principal, batch int) (MasterKeyStats, error) {
	st := MasterKeyStats{}
	if err := s.ready(); err != nil {
		return st, err
	}
	if p.Role != RoleSuperAdmin && p.Role != RoleSystem {
		return st, nodus.Errorf(nodus.EFORBIDDEN, "only a super_admin may rotate the master key")
	}
	if _, all, ok := nodus.TenantScope(ctx); !ok || !all {
		return st, nodus.Errorf(nodus.EFORBIDDEN, "rotating the master key needs the platform scope")
	}
	if batch <= 0 {
		batch = DefaultReencryptRun
	}
	current := s.box.CurrentID()
	st.MasterKeyID = int(current)
	runErr := func() error {
		for ctx.Err() == nil {
			dks, err := s.store.ListVaultDataKeys(ctx, current, batch)
			if err != nil || len(dks) == 0 {
				return err
			}
			for _, dk := range dks {
				ad := dataKeyAD(dk.TenantID, dk.Version)
				raw, err := s.box.Open(dk.Wrapped, ad)
				if err != nil {
					return nodus.WrapError(err, nodus.EUNAVAILABLE, fmt.Sprintf(
						"data key version %d of tenant %s does not open (wrapped by master key id %d): load that key and retry", dk.Version, dk.TenantID, dk.MasterKeyID))
				}
				wrapped, err := s.box.Seal(raw, ad)
				clear(raw)
				if err != nil {
					return err
				}
				old := dk.MasterKeyID
				dk.Wrapped, dk.MasterKeyID, dk.UpdatedAt = wrapped, current, s.clock.Now()
				ok, err := s.store.UpdateVaultDataKeyWrap(ctx, dk, old)
				if err != nil {
					return err
				}
				if ok {
					st.Rewrapped++
				}
			}
		}
		return ctx.Err()
	}()
	if runErr == nil {
		runErr = s.resealCheck(ctx, &st)
	}
	s.resolved.forgetAll()
	if st.Rewrapped > 0 || st.CheckValue || runErr == nil {
		e := p.entry("", "vault.rotate_master_key")
		e.TargetType, e.TargetID = "vault_master_key", fmt.Sprint(current)
		e.Changes = map[string]audit.Change{"master_key_id": {After: int(current)}, "rewrapped": {After: st.Rewrapped}}
		if err := s.record(context.WithoutCancel(ctx), e); err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr != nil {
		return st, fmt.Errorf("vault: rotate master key after %d data keys: %w", st.Rewrapped, runErr)
	}
	return st, nil
}

// resealCheck seals the check value under the current master key.
func (s *Service) resealCheck(ctx context.Context, st *MasterKeyStats) error {
	check, err := s.store.FindVaultCheck(ctx)
	if err != nil {
		return err
	}
	if id, _ := keyring.KeyID(check); id == s.box.CurrentID() {
		return nil
	}
	if _, err := s.box.Open(check, []byte(checkAD)); err != nil {
		return nodus.WrapError(err, nodus.EUNAVAILABLE, "the check value does not open")
	}
	sealed, err := s.box.Seal([]byte(checkPlaintext), []byte(checkAD))
	if err != nil {
		return err
	}
	if err := s.store.UpdateVaultCheck(ctx, sealed, check, s.clock.Now()); err != nil {
		return err
	}
	st.CheckValue = true
	return nil
}

// KeyStatus reports the sealed state, the loaded master keys and which
// master keys wrap the vault's data keys and check value (super_admin or
// System, platform scope). It works while sealed, to help find out why.
func (s *Service) KeyStatus(ctx context.Context, p Principal) (KeyStatus, error) {
	st := KeyStatus{Sealed: s.Sealed()}
	if r := s.sealed.Load(); r != nil {
		st.SealedReason = *r
	}
	if p.Role != RoleSuperAdmin && p.Role != RoleSystem {
		return st, nodus.Errorf(nodus.EFORBIDDEN, "only a super_admin may see the vault's keys")
	}
	if _, all, ok := nodus.TenantScope(ctx); !ok || !all {
		return st, nodus.Errorf(nodus.EFORBIDDEN, "the vault's key status needs the platform scope")
	}
	if s.box != nil {
		st.CurrentKeyID = int(s.box.CurrentID())
		for id := 1; id <= 255; id++ {
			if s.box.Has(byte(id)) {
				st.LoadedKeyIDs = append(st.LoadedKeyIDs, id)
			}
		}
	}
	check, err := s.store.FindVaultCheck(ctx)
	if err != nil && nodus.ErrorCode(err) != nodus.ENOTFOUND {
		return st, err
	}
	if id, ok := keyring.KeyID(check); ok {
		st.CheckKeyID = int(id)
	}
	counts, err := s.store.CountVaultDataKeys(ctx)
	if err != nil {
		return st, err
	}
	st.DataKeys = map[int]int{}
	for id, n := range counts {
		st.DataKeys[int(id)] = n
	}
	return st, nil
}

// PurgeTenant removes everything the vault keeps for a tenant, for good:
// its handles (main database), then its secrets with every version, its
// data keys, environments, grants, machine identities and their tokens,
// and settings (vault database), and the
// tenant's keys in the cache. It is the vault's part of deleting a tenant
// (super_admin, or System) and is idempotent: a run that stops half-way is
// finished by the next. ctx's scope must cover tenantID.
func (s *Service) PurgeTenant(ctx context.Context, p Principal, tenantID string) error {
	if err := s.ready(); err != nil {
		return err
	}
	if p.Role != RoleSuperAdmin && p.Role != RoleSystem {
		return nodus.Errorf(nodus.EFORBIDDEN, "only a super_admin may purge a tenant's vault")
	}
	ctx, err := inTenant(ctx, tenantID)
	if err != nil {
		return err
	}
	defer s.resolved.forget(tenantID)
	handles, err := s.handles.DeleteSecretHandles(ctx)
	if err != nil {
		return fmt.Errorf("vault: purge handles: %w", err)
	}
	secrets, err := s.store.DeleteVaultTenant(ctx)
	if err != nil {
		return fmt.Errorf("vault: purge: %w", err)
	}
	s.keys.drop(tenantID)
	e := p.entry(tenantID, "vault.purge_tenant")
	e.TargetType, e.TargetID = "tenant", tenantID
	e.Changes = map[string]audit.Change{"secrets": {Before: secrets}, "handles": {Before: handles}}
	return s.record(ctx, e)
}
