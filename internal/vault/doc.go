// Package vault owns each tenant's secrets (environment → folder path →
// key, with comment, tags and metadata), their versions and encrypted
// values, the tenant's data keys, the grants that say who may read or
// write values, and secret handles: opaque ids that other modules store
// instead of a value (provider API keys, SMTP passwords, webhook keys).
// Secrets live in the vault database; handles live in the main database
// beside the rows that use them.
//
// Invariants:
//
//   - Tenancy: every call works in the single tenant of its context's
//     scope (nodus.WithTenant), and the store filters every query by it,
//     so another tenant's secret, handle or grant is not found. References
//     inside values resolve in the reader's tenant only. The platform
//     calls (RotateMasterKey, KeyStatus) need the all-tenants scope.
//   - Encryption: a value is AES-256-GCM under its tenant's data key (32
//     random bytes), with a random 96-bit nonce, so the same plaintext
//     never encrypts the same way twice. The additional data binds the
//     ciphertext to its tenant, secret id, environment, path, key and
//     version and to the data key version in its header: bytes copied to
//     another secret, version or tenant, or altered in any way, fail to
//     decrypt with an error, never plaintext and never an empty value.
//   - Data keys are versioned and stored wrapped (internal/keyring,
//     purpose "vault") by a master key, bound to their tenant and version.
//     The newest version seals new values; every version keeps opening
//     what it sealed. RotateDataKey adds a version; ReencryptTenant moves
//     values to the newest one in batches, idempotently; RotateMasterKey
//     rewraps data keys under the current master key while the old key
//     still unwraps, so neither rotation stops the vault. Unwrapped data
//     keys are cached in memory (LRU, bounded); no key is ever logged.
//   - Sealed state: the vault database holds a check value sealed with the
//     master key. Until Unseal opens it with a loaded key, and whenever no
//     master key is loaded or the loaded ones are not the vault's, every
//     call fails with EUNAVAILABLE ("vault is sealed: …") and nothing is
//     decrypted; the rest of Nodus keeps working.
//   - Versions: every write makes a new version, numbered from 1 and never
//     reused. Check-and-set (WriteInput.CAS) writes only if the secret is
//     at the expected version (0: does not exist yet), else ECONFLICT and
//     nothing is written, whatever the number of concurrent writers. A
//     tenant keeps at most MaxVersions versions per secret (default 10);
//     older ones are deleted, ciphertext and all, by the write that passes
//     the limit. A soft delete hides the secret (not found) and keeps its
//     versions for UndeleteSecret; a destroy wipes ciphertext for good.
//   - Audit: every value that leaves the vault (ReadSecret, each secret a
//     reference expansion reaches, ResolveHandle) is recorded in the audit
//     log first (actor, secret id, environment, path, key, version, never
//     the value), and the read fails when the record cannot be written.
//     For ResolveHandle the audited event is the value leaving the vault
//     into this process for one user, not each use of it there: see the
//     handle cache below. Writes, deletes, undeletes, destroys, grants,
//     handles, settings and rotations are recorded too (secret.read,
//     secret.write, secret.delete, secret.undelete, secret.destroy,
//     secret.handle_use, vault.rotate_data_key, vault.reencrypt,
//     vault.rotate_master_key, machine.create, machine.login,
//     machine.login_failed, …).
//   - Access: the caller passes a Principal (user id and role). org_admins
//     (and super_admins) manage everything; users and machine identities
//     read or write the values their grants cover, per environment and
//     path prefix; every role sees names and metadata (a machine only
//     where its grants reach); viewers never see a value. See grant.go.
//   - Machine identities (machine.go): a client id and a client secret
//     (only its SHA-256 is stored) buy a short-lived access token (only
//     its SHA-256 is stored) with a TTL, a use limit and allowed address
//     ranges. Every login failure answers the same and is throttled per
//     (client id, address); a token's uses are taken atomically, so N
//     concurrent requests never pass a limit of N. A machine principal
//     (RoleMachine) reads and writes what its own grants cover and
//     manages nothing. Rotating the secret, deactivating or deleting the
//     identity revokes its tokens.
//   - Handle cache (handlecache.go): ResolveHandle keeps each answer in
//     memory for Config.HandleCacheTTL (30 s; negative: off), keyed by
//     tenant, handle and user, at most 4,096 entries and 16 MiB of
//     plaintext, zeroed when dropped. Its fill is the audited read; a hit
//     reads no database and writes no entry, but still needs the vault
//     open and the tenant active. Every change this Service makes that
//     could alter an answer (writes, deletes, undeletes, destroys, handle
//     updates and deletes, key rotations, re-encryption, settings, purge,
//     Unseal) drops the tenant's answers (all, for the master key and
//     Unseal) and any fill in flight at once; another replica's changes
//     show within the TTL. Concurrent misses for one key share one fill.
//   - Tenant deletion: nothing cascades from the auth database, so
//     PurgeTenant removes all of a tenant's vault rows (machine identities
//     and tokens included), handles and cached keys; it is the vault's
//     step of deleting a tenant.
//   - Plaintext stays in process memory: Value prints, logs and encodes as
//     [redacted]; errors name secrets by location and never quote a value
//     or a reference's surrounding text; ResolveHandle is for in-process
//     callers only.
package vault
