package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
)

// Limits.
const (
	MaxValueBytes       = 64 << 10 // a secret's value
	MaxPathDepth        = 10       // folders below "/"
	MaxSegmentBytes     = 64       // one folder name
	MaxTags             = 20
	MaxTagBytes         = 64
	MaxMetadataBytes    = 4 << 10 // metadata, as compact JSON
	MaxCommentBytes     = 1024
	MaxLabelBytes       = 200
	MaxAllowedHosts     = 50
	DefaultMaxVersions  = 10  // versions kept per secret unless a tenant says otherwise
	MaxMaxVersions      = 100 // the most a tenant may keep
	MaxReferenceDepth   = 5   // references expanded inside references
	MaxExpandedBytes    = 1 << 20
	DefaultListLimit    = 50
	MaxListLimit        = 500
	DefaultReencryptRun = 200 // versions re-encrypted per transaction
)

// Roles as identity names them; RoleSystem is Nodus itself (jobs,
// operator commands), which the API never hands out.
const (
	RoleSuperAdmin = "super_admin"
	RoleOrgAdmin   = "org_admin"
	RoleUser       = "user"
	RoleViewer     = "viewer"
	RoleSystem     = "system"
	// RoleMachine is a machine identity (machine.go): it reads and writes
	// the values its grants cover and manages nothing.
	RoleMachine = "machine"
)

// Permissions a grant gives on the values below a path.
const (
	PermRead  = "read"  // reveal values, expand references to them
	PermWrite = "write" // write new versions, delete and undelete
)

// Grant subject types.
const (
	SubjectUser    = "user"    // Subject is a user id
	SubjectRole    = "role"    // Subject is a role name (only "user" is honoured)
	SubjectMachine = "machine" // Subject is a machine identity id
)

// AllEnvironments in a grant covers every environment.
const AllEnvironments = "*"

// Location is where a secret lives in its tenant: an environment slug, a
// folder path ("/" or "/a/b") and a key.
type Location struct {
	Environment string `json:"environment"`
	Path        string `json:"path"`
	Key         string `json:"key"`
}

// String writes the location in the reference syntax: "prod:/db/PASSWORD".
func (l Location) String() string {
	if l.Path == "/" {
		return l.Environment + ":/" + l.Key
	}
	return l.Environment + ":" + l.Path + "/" + l.Key
}

// Environment is an environment of a tenant's vault. dev, staging and
// prod always exist (Default); others are created and deleted by admins.
type Environment struct {
	TenantID  string    `json:"-"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Default   bool      `json:"default"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// DefaultEnvironments are the environments every tenant has.
func DefaultEnvironments() []Environment {
	return []Environment{
		{Slug: "dev", Name: "Development", Default: true},
		{Slug: "staging", Name: "Staging", Default: true},
		{Slug: "prod", Name: "Production", Default: true},
	}
}

// Secret is a secret's name, description and version counter: everything
// but its value, which only ReadSecret and ResolveHandle return.
type Secret struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	Location
	Comment  string          `json:"comment"`
	Tags     []string        `json:"tags"`
	Metadata json.RawMessage `json:"metadata"`
	// Version is the newest version written; versions start at 1.
	Version   int        `json:"version"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	UpdatedBy string     `json:"updated_by,omitempty"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	DeletedBy string     `json:"deleted_by,omitempty"`
}

// VersionInfo describes one kept version, without its value.
type VersionInfo struct {
	Version     int        `json:"version"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by,omitempty"`
	Destroyed   bool       `json:"destroyed"`
	DestroyedAt *time.Time `json:"destroyed_at,omitempty"`
}

// StoredVersion is a version as the store keeps it, ciphertext included.
// It passes between the store and the service only.
type StoredVersion struct {
	SecretID string
	TenantID string
	Location
	Version        int
	DataKeyVersion int
	Ciphertext     []byte // nil once destroyed
	CreatedAt      time.Time
	CreatedBy      string
	DestroyedAt    *time.Time
}

// Value is a secret's plaintext, or a credential shown once (a machine
// identity's client secret or access token). It never prints: fmt, slog
// and JSON show [redacted]. Reveal returns the text, for the one caller
// that must send it (the API's explicit reveal or one-time answer, an
// outbound request's header).
type Value struct{ text string }

// NewValue wraps plaintext.
func NewValue(s string) Value { return Value{text: s} }

// Reveal returns the plaintext.
func (v Value) Reveal() string { return v.text }

// Len is the plaintext's length in bytes.
func (v Value) Len() int { return len(v.text) }

func (v Value) String() string               { return "[redacted]" }
func (v Value) GoString() string             { return "vault.Value{[redacted]}" }
func (v Value) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Format prints [redacted] for every verb, so %d or %x cannot show the
// bytes either.
func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// Revealed is a secret read with its value.
type Revealed struct {
	Secret  Secret `json:"secret"`
	Version int    `json:"version"` // the version read
	Value   Value  `json:"-"`
}

// TenantConfig is a tenant's vault settings.
type TenantConfig struct {
	TenantID    string    `json:"-"`
	MaxVersions int       `json:"max_versions"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
	UpdatedBy   string    `json:"updated_by,omitempty"`
}

// DataKey is one version of a tenant's data key, wrapped by a master key.
type DataKey struct {
	TenantID    string
	Version     int
	Wrapped     []byte
	MasterKeyID byte
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Grant lets a user, every user of a role, or a machine identity read or
// write the values of one environment (or all, "*") below a path prefix.
type Grant struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"-"`
	SubjectType string    `json:"subject_type"` // SubjectUser, SubjectRole or SubjectMachine
	Subject     string    `json:"subject"`      // user id, role name or machine identity id
	Environment string    `json:"environment"`  // slug or "*"
	PathPrefix  string    `json:"path_prefix"`  // "/" covers the environment
	Permission  string    `json:"permission"`   // PermRead or PermWrite
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// Handle stands for a secret's value in other modules' rows (provider API
// keys, SMTP passwords, webhook keys). It names a secret of its tenant,
// optionally one version, and the hosts the value may be sent to.
type Handle struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	Location
	// Version pins the handle to one version; 0 follows the newest.
	Version int `json:"version"`
	// AllowedHosts are the hosts the value may be sent to: exact names or
	// IP addresses, or "*.domain" for any name below domain. Empty means
	// none: the value is for use inside Nodus only (a signing key).
	AllowedHosts []string   `json:"allowed_hosts"`
	Purpose      string     `json:"purpose"` // e.g. gateway.provider_key
	Label        string     `json:"label"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    string     `json:"created_by,omitempty"`
	UpdatedAt    time.Time  `json:"updated_at"`
	UpdatedBy    string     `json:"updated_by,omitempty"`
	LastUsedAt   *time.Time `json:"last_used_at,omitempty"`
	LastUsedBy   string     `json:"last_used_by,omitempty"`
}

// Resolved is what a handle resolves to, for the module that holds it.
type Resolved struct {
	HandleID string
	SecretID string
	Location
	Version      int
	Value        Value
	AllowedHosts []string
	Purpose      string
}

// Allows reports whether the value may be sent to host (see HostAllowed).
func (r *Resolved) Allows(host string) bool { return HostAllowed(r.AllowedHosts, host) }

// SecretWrite is one write as the store applies it.
type SecretWrite struct {
	ID       string // the secret's id if the write creates it
	TenantID string
	Location
	Comment  string
	Tags     []string
	Metadata json.RawMessage
	// CAS, when not nil, is the version the secret must be at: 0 means
	// it must not exist. A mismatch is ECONFLICT and writes nothing.
	CAS *int
	// MaxVersions is how many versions to keep, this one included; older
	// ones are deleted with their ciphertext.
	MaxVersions    int
	DataKeyVersion int
	At             time.Time
	By             string
}

// SealFunc returns the ciphertext of the version being written, once the
// store knows the secret's id and the version number, both of which the
// ciphertext is bound to.
type SealFunc func(secretID string, version int) ([]byte, error)

// Reencrypted is a version's new ciphertext under a newer data key.
type Reencrypted struct {
	SecretID          string
	Version           int
	OldDataKeyVersion int
	DataKeyVersion    int
	Ciphertext        []byte
}

// SecretFilter selects secrets for ListSecrets.
type SecretFilter struct {
	Environment    string // required
	Path           string // "" is "/"
	Recursive      bool   // also the folders below Path
	Tag            string // only secrets with this tag
	IncludeDeleted bool   // soft-deleted secrets too (admins)
	Cursor         string
	Limit          int
}

// GrantFilter selects the grants that apply to a user (the user's own
// and those of its role) or to a machine identity (its own only). Empty
// fields select nothing.
type GrantFilter struct {
	UserID    string
	Role      string
	MachineID string
}

// Store is what the service needs from the vault database. Every method
// but the vault-wide ones (check value, master-key rewrapping, counts) is
// scoped by nodus.TenantScope(ctx) and fails closed without a scope; the
// tenant-owned writes need a single-tenant scope.
type Store interface {
	// FindVaultCheck returns the sealed check value; ENOTFOUND before the
	// first start.
	FindVaultCheck(ctx context.Context) ([]byte, error)
	// CreateVaultCheck stores the check value; ECONFLICT when one exists.
	CreateVaultCheck(ctx context.Context, sealed []byte, at time.Time) error
	// UpdateVaultCheck replaces the check value if it is still old;
	// ECONFLICT otherwise.
	UpdateVaultCheck(ctx context.Context, sealed, old []byte, at time.Time) error

	// FindVaultDataKey returns a version of the tenant's data key; 0 is
	// the newest. ENOTFOUND when there is none.
	FindVaultDataKey(ctx context.Context, version int) (DataKey, error)
	// CreateVaultDataKey stores a new version; ECONFLICT when it exists.
	CreateVaultDataKey(ctx context.Context, dk DataKey) error
	// ListVaultDataKeys returns up to limit data keys of the tenants in
	// scope whose master key id is not notUnder (0: any), by tenant and
	// version.
	ListVaultDataKeys(ctx context.Context, notUnder byte, limit int) ([]DataKey, error)
	// UpdateVaultDataKeyWrap stores dk's new wrapping if the row is still
	// wrapped by oldMasterKeyID; false when it changed meanwhile.
	UpdateVaultDataKeyWrap(ctx context.Context, dk DataKey, oldMasterKeyID byte) (bool, error)
	// CountVaultDataKeys counts the data keys in scope by master key id.
	CountVaultDataKeys(ctx context.Context) (map[byte]int, error)

	// FindVaultConfig returns the tenant's settings; ENOTFOUND when it
	// has none (the defaults apply).
	FindVaultConfig(ctx context.Context) (TenantConfig, error)
	// UpdateVaultConfig creates or replaces the tenant's settings.
	UpdateVaultConfig(ctx context.Context, c TenantConfig) error

	// ListSecretEnvironments returns the tenant's custom environments.
	ListSecretEnvironments(ctx context.Context) ([]Environment, error)
	// CreateSecretEnvironment adds one; ECONFLICT when the slug exists.
	CreateSecretEnvironment(ctx context.Context, e Environment) error
	// DeleteSecretEnvironment removes one; ENOTFOUND when missing,
	// ECONFLICT while it holds secrets (deleted ones included).
	DeleteSecretEnvironment(ctx context.Context, slug string) error

	// ListSecrets returns a page of secrets, oldest first, and the next
	// page's cursor ("" on the last).
	ListSecrets(ctx context.Context, f SecretFilter) ([]Secret, string, error)
	// FindSecret returns a secret; a soft-deleted one only withDeleted.
	FindSecret(ctx context.Context, loc Location, withDeleted bool) (Secret, error)
	// ListSecretVersions returns the kept versions of a secret, newest
	// first.
	ListSecretVersions(ctx context.Context, secretID string) ([]VersionInfo, error)
	// FindSecretVersion returns a live secret and one version (0: the
	// newest) in one read. A version that is not kept comes back with
	// Version 0.
	FindSecretVersion(ctx context.Context, loc Location, version int) (Secret, StoredVersion, error)
	// FindSecretValue is FindSecretVersion without the secret's
	// description: one version (0: the newest) with its ciphertext, and
	// the secret's newest version number. A version that is not kept comes
	// back with Version 0.
	FindSecretValue(ctx context.Context, loc Location, version int) (StoredVersion, int, error)
	// WriteSecret writes a new version (creating the secret when needed)
	// with the ciphertext seal returns, applies the check-and-set, and
	// deletes the versions beyond w.MaxVersions, in one transaction.
	// Writing to a soft-deleted secret is ECONFLICT.
	WriteSecret(ctx context.Context, w SecretWrite, seal SealFunc) (Secret, error)
	// DeleteSecret soft-deletes a live secret; UndeleteSecret restores a
	// deleted one. Both ENOTFOUND otherwise.
	DeleteSecret(ctx context.Context, loc Location, at time.Time, by string) (Secret, error)
	UndeleteSecret(ctx context.Context, loc Location, at time.Time, by string) (Secret, error)
	// DestroySecretVersions wipes the ciphertext of the listed versions
	// (deleted secrets included) and returns the versions it destroyed.
	DestroySecretVersions(ctx context.Context, loc Location, versions []int, at time.Time) (Secret, []int, error)
	// DestroySecret removes a secret and every version (deleted or not).
	DestroySecret(ctx context.Context, loc Location) (Secret, error)
	// ListStaleSecretVersions returns up to limit versions of the tenant
	// whose ciphertext is under a data key older than dataKeyVersion.
	ListStaleSecretVersions(ctx context.Context, dataKeyVersion, limit int) ([]StoredVersion, error)
	// UpdateSecretCiphertexts stores re-encrypted versions, each only if
	// it still has a ciphertext under its old data key, and returns how
	// many it stored.
	UpdateSecretCiphertexts(ctx context.Context, rs []Reencrypted) (int, error)

	// ListVaultGrants returns the tenant's grants (f empty) or those that
	// apply to f's user and role.
	ListVaultGrants(ctx context.Context, f GrantFilter) ([]Grant, error)
	// CreateVaultGrant stores a grant; ECONFLICT for a duplicate rule.
	CreateVaultGrant(ctx context.Context, g Grant) error
	// DeleteVaultGrant removes a grant and returns it; ENOTFOUND if none.
	DeleteVaultGrant(ctx context.Context, id string) (Grant, error)

	// CreateVaultMachine stores a machine identity of the tenant;
	// ECONFLICT when the tenant has one of that name (or the client id
	// exists).
	CreateVaultMachine(ctx context.Context, m Machine) error
	// FindVaultMachine returns a machine identity in scope; ENOTFOUND
	// otherwise.
	FindVaultMachine(ctx context.Context, id string) (Machine, error)
	// ListVaultMachines returns a page of the machine identities in scope,
	// oldest first, and the next page's cursor ("" on the last).
	ListVaultMachines(ctx context.Context, cursor string, limit int) ([]Machine, string, error)
	// UpdateVaultMachine reads and locks a machine identity of the tenant,
	// lets change edit it, and writes back its name, secret hash, token
	// settings, address ranges and state, in one transaction. When change
	// returns revoke, the identity's tokens are deleted in that
	// transaction too. It returns the identity before and after.
	UpdateVaultMachine(ctx context.Context, id string, change func(m *Machine) (revoke bool, err error)) (before, after Machine, err error)
	// DeleteVaultMachine removes a machine identity of the tenant with its
	// tokens and grants, and returns it; ENOTFOUND if none.
	DeleteVaultMachine(ctx context.Context, id string) (Machine, error)
	// FindVaultMachineByClientID is a sign-in lookup: it needs no scope
	// and returns the machine identity with that client id, of any tenant,
	// or ENOTFOUND.
	FindVaultMachineByClientID(ctx context.Context, clientID string) (Machine, error)
	// CreateVaultMachineToken stores an access token of the tenant's
	// identity and records the login in the identity's last_used_at, in
	// one transaction; ENOTFOUND when the identity is gone.
	CreateVaultMachineToken(ctx context.Context, t MachineToken) error
	// FindVaultMachineToken is a sign-in lookup: it needs no scope and
	// returns the token with that hash and its identity, or ENOTFOUND.
	// Expiry, uses and addresses are the caller's decision.
	FindVaultMachineToken(ctx context.Context, hash string) (MachineToken, Machine, error)
	// SpendVaultMachineToken takes one use of a token with a use limit,
	// atomically: it succeeds only while the token exists, expires after
	// now and has a use left, and returns the uses left after this one;
	// ENOTFOUND otherwise. Concurrent callers never take more uses than
	// the token had.
	SpendVaultMachineToken(ctx context.Context, hash string, now time.Time) (int, error)
	// DeleteExpiredVaultMachineTokens removes the tokens in scope that
	// expired by now or have no use left, and returns how many.
	DeleteExpiredVaultMachineTokens(ctx context.Context, now time.Time) (int, error)

	// DeleteVaultTenant removes all the tenant's vault rows and returns
	// how many secrets it removed.
	DeleteVaultTenant(ctx context.Context) (int, error)
}

// HandleStore is what the service needs from the main database, where
// handles live beside the rows that use them. Every method is scoped by
// nodus.TenantScope(ctx); writes need a single-tenant scope.
type HandleStore interface {
	CreateSecretHandle(ctx context.Context, h Handle) error
	// FindSecretHandle returns a handle; ENOTFOUND outside the scope.
	FindSecretHandle(ctx context.Context, id string) (Handle, error)
	// ListSecretHandles returns a page of handles, oldest first, and the
	// next page's cursor ("" on the last).
	ListSecretHandles(ctx context.Context, cursor string, limit int) ([]Handle, string, error)
	// UpdateSecretHandle replaces a handle's target, hosts, purpose and
	// label; ENOTFOUND if it is missing.
	UpdateSecretHandle(ctx context.Context, h Handle) error
	DeleteSecretHandle(ctx context.Context, id string) error
	// TouchSecretHandle records a use.
	TouchSecretHandle(ctx context.Context, id string, at time.Time, by string) error
	// DeleteSecretHandles removes all the tenant's handles.
	DeleteSecretHandles(ctx context.Context) (int, error)
}

// Auditor records security-relevant actions; *audit.Service is one.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}
