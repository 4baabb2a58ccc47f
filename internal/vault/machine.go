package vault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Machine identities let services read secrets without a user's login,
// as Infisical's Universal Auth does. An org_admin creates one in a tenant
// and gives it grants (SubjectMachine) like a user's; the service logs in
// with the identity's client id and client secret and receives a
// short-lived access token, which it sends as a bearer token to the
// vault's read, reveal and write routes. A machine never manages
// anything: no environments, handles, grants, settings or keys.
//
// Only SHA-256 hashes of the client secret and of access tokens are
// stored; each carries 256 random bits, so a fast hash is enough. The
// secret is shown once, at creation or rotation; a token once, at login.
// Every failure to log in answers the same (unknown client id, wrong
// secret, inactive identity or tenant, address outside the identity's
// ranges), and failures are throttled per (client id, address).

// Credential prefixes, so secret scanners can find leaked ones and a
// machine token is never mistaken for a user's API token.
const (
	ClientIDPrefix     = "ndc_"  // public: names the identity at login
	ClientSecretPrefix = "ndcs_" // the identity's secret
	MachineTokenPrefix = "ndm_"  // a short-lived access token
)

// Machine identity limits.
const (
	DefaultMachineTokenTTL = time.Hour
	MaxMachineTokenTTL     = 24 * time.Hour
	MaxMachineTokenUses    = 1_000_000
	MaxMachineNameBytes    = 100
	MaxMachineCIDRs        = 50
	// MachineLoginFailures failed logins per (client id, address) are
	// allowed in each MachineLoginWindow; further attempts answer
	// ERATELIMIT until the window ends.
	MachineLoginFailures = 20
	MachineLoginWindow   = 15 * time.Minute
)

// Machine is a machine identity of a tenant.
type Machine struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	Name     string `json:"name"`
	// ClientID names the identity at login; it is not a secret.
	ClientID string `json:"client_id"`
	// SecretHash is the SHA-256 (hex) of the client secret.
	SecretHash string `json:"-"`
	// TokenTTLSeconds is how long a token lives (1 s to 24 h).
	TokenTTLSeconds int `json:"token_ttl_seconds"`
	// TokenUseLimit is how many requests one token may make; 0 is no
	// limit.
	TokenUseLimit int `json:"token_use_limit"`
	// AllowedCIDRs are the address ranges the identity may log in from
	// and use its tokens from; empty is any address.
	AllowedCIDRs []string   `json:"allowed_cidrs"`
	IsActive     bool       `json:"is_active"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    string     `json:"created_by,omitempty"`
	UpdatedAt    time.Time  `json:"updated_at"`
	UpdatedBy    string     `json:"updated_by,omitempty"`
	LastUsedAt   *time.Time `json:"last_used_at,omitempty"` // the last login
}

// Principal is the identity as the vault's caller: its id stands where a
// user's would, in grants and in the audit log.
func (m *Machine) Principal(address, userAgent string) Principal {
	return Principal{UserID: m.ID, Role: RoleMachine, ActorKind: audit.ActorMachine, Address: address, UserAgent: userAgent}
}

// MachineToken is an access token as the store keeps it.
type MachineToken struct {
	Hash      string // SHA-256 (hex) of the token
	MachineID string
	TenantID  string
	ExpiresAt time.Time
	UsesLeft  *int // nil: no limit
	CreatedAt time.Time
	Address   string // where the login came from
}

// MachineInput describes a machine identity to create.
type MachineInput struct {
	Name            string   `json:"name"`
	TokenTTLSeconds int      `json:"token_ttl_seconds"` // 0: DefaultMachineTokenTTL
	TokenUseLimit   int      `json:"token_use_limit"`   // 0: no limit
	AllowedCIDRs    []string `json:"allowed_cidrs"`     // empty: any address
	IsActive        *bool    `json:"is_active"`         // nil: active
}

// MachineUpdate changes the fields it sets; nil leaves a field as it is.
type MachineUpdate struct {
	Name            *string   `json:"name"`
	TokenTTLSeconds *int      `json:"token_ttl_seconds"`
	TokenUseLimit   *int      `json:"token_use_limit"`
	AllowedCIDRs    *[]string `json:"allowed_cidrs"`
	IsActive        *bool     `json:"is_active"`
}

// MachineLogin is what a login returns: the access token, shown this
// once, and how long and how often it may be used.
type MachineLogin struct {
	Token     Value
	MachineID string
	TenantID  string
	ExpiresAt time.Time
	ExpiresIn time.Duration
	UsesLeft  *int // nil: no limit
}

var (
	errMachineLogin = nodus.Errorf(nodus.EUNAUTHORIZED, "invalid client id or client secret")
	errMachineToken = nodus.Errorf(nodus.EUNAUTHORIZED, "invalid machine token")
)

// CreateMachine makes a machine identity (org_admin) and returns it with
// its client secret, which is shown this once.
func (s *Service) CreateMachine(ctx context.Context, p Principal, in MachineInput) (*Machine, Value, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, Value{}, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, Value{}, err
	}
	active := true
	if in.IsActive != nil {
		active = *in.IsActive
	}
	if in.TokenTTLSeconds == 0 {
		in.TokenTTLSeconds = int(DefaultMachineTokenTTL / time.Second)
	}
	m := Machine{Name: strings.TrimSpace(in.Name), TokenTTLSeconds: in.TokenTTLSeconds, TokenUseLimit: in.TokenUseLimit, IsActive: active}
	f := fieldErrors{}
	m.AllowedCIDRs = validateMachine(&m, in.AllowedCIDRs, f)
	if err := f.err("machine identity"); err != nil {
		return nil, Value{}, err
	}
	secret, hash := newCredential(ClientSecretPrefix)
	now := s.clock.Now()
	m.ID, m.TenantID, m.ClientID, m.SecretHash = nodus.NewID(), tenantID, newClientID(), hash
	m.CreatedAt, m.CreatedBy, m.UpdatedAt, m.UpdatedBy = now, p.UserID, now, p.UserID
	if err := s.store.CreateVaultMachine(ctx, m); err != nil {
		if nodus.ErrorCode(err) == nodus.ECONFLICT {
			return nil, Value{}, &nodus.Error{Code: nodus.ECONFLICT, Message: fmt.Sprintf("a machine identity named %q exists already", m.Name),
				Fields: map[string]string{"name": "must be unique in the tenant"}, Err: err}
		}
		return nil, Value{}, fmt.Errorf("vault: create machine identity: %w", err)
	}
	if err := s.record(ctx, machineEntry(p, tenantID, "machine.create", m, nil)); err != nil {
		return nil, Value{}, err
	}
	return &m, NewValue(secret), nil
}

// validateMachine checks m's name and token settings and returns cidrs
// normalised.
func validateMachine(m *Machine, cidrs []string, f fieldErrors) []string {
	if m.Name == "" || !validText(m.Name, MaxMachineNameBytes) {
		f.add("name", fmt.Sprintf("required: at most %d bytes of text", MaxMachineNameBytes))
	}
	if m.TokenTTLSeconds < 1 || m.TokenTTLSeconds > int(MaxMachineTokenTTL/time.Second) {
		f.add("token_ttl_seconds", fmt.Sprintf("from 1 to %d (24 hours); 0 or none at creation for %d",
			int(MaxMachineTokenTTL/time.Second), int(DefaultMachineTokenTTL/time.Second)))
	}
	if m.TokenUseLimit < 0 || m.TokenUseLimit > MaxMachineTokenUses {
		f.add("token_use_limit", fmt.Sprintf("0 (no limit) to %d requests per token", MaxMachineTokenUses))
	}
	return normalizeCIDRs(cidrs, f)
}

// normalizeCIDRs parses address ranges and returns them in canonical form
// (masked, IPv4 unmapped), without duplicates. A bare address is a range
// of one.
func normalizeCIDRs(cidrs []string, f fieldErrors) []string {
	out := make([]string, 0, len(cidrs))
	if len(cidrs) > MaxMachineCIDRs {
		f.add("allowed_cidrs", fmt.Sprintf("at most %d ranges", MaxMachineCIDRs))
		return out
	}
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		var pfx netip.Prefix
		var err error
		if strings.Contains(c, "/") {
			pfx, err = netip.ParsePrefix(c)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(c); err == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || pfx.Addr().Zone() != "" {
			f.add("allowed_cidrs", `each: an address range such as "10.0.0.0/8" or "2001:db8::/32", or one address`)
			continue
		}
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		if s := pfx.Masked().String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// addressAllowed reports whether address is in one of cidrs (any address
// when cidrs is empty). An address that does not parse is in none.
func addressAllowed(cidrs []string, address string) bool {
	if len(cidrs) == 0 {
		return true
	}
	a, err := netip.ParseAddr(address)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, c := range cidrs {
		if pfx, err := netip.ParsePrefix(c); err == nil && pfx.Contains(a) {
			return true
		}
	}
	return false
}

// FindMachine returns a machine identity of the tenant (org_admin).
func (s *Service) FindMachine(ctx context.Context, p Principal, id string) (*Machine, error) {
	if _, err := s.begin(ctx); err != nil {
		return nil, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, errMachineNotFound(id)
	}
	m, err := s.store.FindVaultMachine(ctx, id)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func errMachineNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "machine identity %s not found", id)
}

// ListMachines returns a page of the tenant's machine identities, oldest
// first, and the cursor of the next page (org_admin).
func (s *Service) ListMachines(ctx context.Context, p Principal, cursor string, limit int) ([]Machine, string, error) {
	if _, err := s.begin(ctx); err != nil {
		return nil, "", err
	}
	if err := requireAdmin(p); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	return s.store.ListVaultMachines(ctx, cursor, min(limit, MaxListLimit))
}

// UpdateMachine changes a machine identity's name, token settings,
// address ranges or state (org_admin). Deactivating it revokes its tokens
// at once; new ranges apply to the tokens it holds from their next use.
func (s *Service) UpdateMachine(ctx context.Context, p Principal, id string, in MachineUpdate) (*Machine, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, errMachineNotFound(id)
	}
	now := s.clock.Now()
	before, after, err := s.store.UpdateVaultMachine(ctx, id, func(m *Machine) (bool, error) {
		wasActive := m.IsActive
		cidrs := m.AllowedCIDRs
		if in.Name != nil {
			m.Name = strings.TrimSpace(*in.Name)
		}
		if in.TokenTTLSeconds != nil {
			m.TokenTTLSeconds = *in.TokenTTLSeconds
		}
		if in.TokenUseLimit != nil {
			m.TokenUseLimit = *in.TokenUseLimit
		}
		if in.AllowedCIDRs != nil {
			cidrs = *in.AllowedCIDRs
		}
		if in.IsActive != nil {
			m.IsActive = *in.IsActive
		}
		f := fieldErrors{}
		m.AllowedCIDRs = validateMachine(m, cidrs, f)
		if err := f.err("machine identity"); err != nil {
			return false, err
		}
		m.UpdatedAt, m.UpdatedBy = now, p.UserID
		return wasActive && !m.IsActive, nil
	})
	if nodus.ErrorCode(err) == nodus.ECONFLICT && in.Name != nil {
		return nil, &nodus.Error{Code: nodus.ECONFLICT, Message: fmt.Sprintf("a machine identity named %q exists already", strings.TrimSpace(*in.Name)),
			Fields: map[string]string{"name": "must be unique in the tenant"}, Err: err}
	}
	if err != nil {
		return nil, err
	}
	if e := machineEntry(p, tenantID, "machine.update", after, &before); len(e.Changes) > 0 {
		if err := s.record(ctx, e); err != nil {
			return nil, err
		}
	}
	return &after, nil
}

// RotateMachineSecret gives a machine identity a new client secret,
// returned this once, and revokes every token it holds (org_admin): the
// old secret, and whatever was obtained with it, stop working at once.
func (s *Service) RotateMachineSecret(ctx context.Context, p Principal, id string) (*Machine, Value, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, Value{}, err
	}
	if err := requireAdmin(p); err != nil {
		return nil, Value{}, err
	}
	if !nodus.ValidID(id) {
		return nil, Value{}, errMachineNotFound(id)
	}
	secret, hash := newCredential(ClientSecretPrefix)
	now := s.clock.Now()
	_, m, err := s.store.UpdateVaultMachine(ctx, id, func(m *Machine) (bool, error) {
		m.SecretHash, m.UpdatedAt, m.UpdatedBy = hash, now, p.UserID
		return true, nil
	})
	if err != nil {
		return nil, Value{}, err
	}
	e := p.entry(tenantID, "machine.rotate_secret")
	e.TargetType, e.TargetID = "vault_machine", m.ID
	e.Changes = map[string]audit.Change{"client_secret": {After: "[rotated]"}, "tokens": {After: "revoked"}}
	if err := s.record(ctx, e); err != nil {
		return nil, Value{}, err
	}
	return &m, NewValue(secret), nil
}

// DeleteMachine removes a machine identity with its grants and tokens
// (org_admin): its tokens stop working at once.
func (s *Service) DeleteMachine(ctx context.Context, p Principal, id string) error {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return err
	}
	if err := requireAdmin(p); err != nil {
		return err
	}
	if !nodus.ValidID(id) {
		return errMachineNotFound(id)
	}
	m, err := s.store.DeleteVaultMachine(ctx, id)
	if err != nil {
		return err
	}
	e := p.entry(tenantID, "machine.delete")
	e.TargetType, e.TargetID = "vault_machine", m.ID
	e.Changes = map[string]audit.Change{"name": {Before: m.Name}, "client_id": {Before: m.ClientID}}
	return s.record(ctx, e)
}

// Login exchanges a client id and client secret for an access token,
// from address. Every failure (unknown client id, wrong secret, inactive
// identity or tenant, address outside the identity's ranges) is the same
// EUNAUTHORIZED, audited as machine.login_failed with its reason; after
// MachineLoginFailures failures from one address for one client id within
// MachineLoginWindow, attempts answer ERATELIMIT with RetryAfter until the
// window ends, right secret or not. A success is audited as machine.login
// before the token is stored, so no token exists without its entry. It
// needs no scope: the client id names the tenant.
func (s *Service) Login(ctx context.Context, clientID, clientSecret, address string) (*MachineLogin, error) {
	// Anyone may call Login: a sealed vault says so, not why (master key
	// ids), which KeyStatus tells operators.
	if s.Sealed() {
		return nil, nodus.Errorf(nodus.EUNAVAILABLE, "vault is sealed: ask the operator to unseal it")
	}
	now := s.clock.Now()
	// Malformed client ids from one address share a count, which also
	// bounds the memory one key takes.
	key := "?\x00" + address
	if looksLikeClientID(clientID) {
		key = clientID + "\x00" + address
	}
	if wait := s.throttle.check(key, now); wait > 0 {
		e := audit.Entry{Action: "machine.login_failed", ActorKind: audit.ActorAnonymous, Address: address,
			Changes: map[string]audit.Change{"reason": {After: "throttled"}}}
		if looksLikeClientID(clientID) {
			e.TargetType, e.TargetID = "vault_machine_client", clientID
		}
		_ = s.audit.Record(ctx, e) // the refusal stands whether or not it is recorded
		return nil, &nodus.Error{Code: nodus.ERATELIMIT, Message: "too many failed logins; try again later", RetryAfter: wait}
	}
	var m Machine
	found := false
	if looksLikeClientID(clientID) {
		var err error
		m, err = s.store.FindVaultMachineByClientID(ctx, clientID)
		switch {
		case err == nil:
			found = true
		case nodus.ErrorCode(err) != nodus.ENOTFOUND:
			return nil, fmt.Errorf("vault: machine login: %w", err)
		}
	}
	// The secret is hashed and compared whether or not the client id was
	// found, so both failures cost the same.
	got := []byte(HashCredential(clientSecret))
	secretOK := subtle.ConstantTimeCompare(got, []byte(m.SecretHash)) == 1 && found
	reason := ""
	switch {
	case !found:
		reason = "unknown_client"
	case !secretOK:
		reason = "wrong_secret"
	case !m.IsActive:
		reason = "inactive"
	case !addressAllowed(m.AllowedCIDRs, address):
		reason = "address"
	}
	var tctx context.Context
	if reason == "" {
		tctx = nodus.WithTenant(ctx, m.TenantID)
		active, err := s.tenantActive(tctx, m.TenantID)
		if err != nil {
			return nil, err
		}
		if !active {
			reason = "inactive_tenant"
		}
	}
	if reason != "" {
		s.throttle.fail(key, now)
		e := audit.Entry{Action: "machine.login_failed", ActorKind: audit.ActorAnonymous, Address: address,
			Changes: map[string]audit.Change{"reason": {After: reason}}}
		switch {
		case found:
			e.TenantID, e.TargetType, e.TargetID = m.TenantID, "vault_machine", m.ID
		case looksLikeClientID(clientID):
			// Only a well-formed client id is recorded: whatever else was
			// typed there might be a secret.
			e.TargetType, e.TargetID = "vault_machine_client", clientID
		}
		if err := s.record(ctx, e); err != nil {
			return nil, err
		}
		return nil, errMachineLogin
	}
	s.throttle.succeed(key)

	token, hash := newCredential(MachineTokenPrefix)
	ttl := time.Duration(m.TokenTTLSeconds) * time.Second
	t := MachineToken{Hash: hash, MachineID: m.ID, TenantID: m.TenantID, ExpiresAt: now.Add(ttl), CreatedAt: now, Address: address}
	if m.TokenUseLimit > 0 {
		uses := m.TokenUseLimit
		t.UsesLeft = &uses
	}
	e := m.Principal(address, "").entry(m.TenantID, "machine.login")
	e.TargetType, e.TargetID = "vault_machine", m.ID
	e.Changes = map[string]audit.Change{"token_expires_at": {After: t.ExpiresAt.Format(time.RFC3339)}}
	if t.UsesLeft != nil {
		e.Changes["token_uses"] = audit.Change{After: *t.UsesLeft}
	}
	if err := s.record(tctx, e); err != nil {
		return nil, err
	}
	if err := s.store.CreateVaultMachineToken(tctx, t); err != nil {
		if nodus.ErrorCode(err) == nodus.ENOTFOUND { // deleted meanwhile
			return nil, errMachineLogin
		}
		return nil, fmt.Errorf("vault: machine login: %w", err)
	}
	return &MachineLogin{Token: NewValue(token), MachineID: m.ID, TenantID: m.TenantID, ExpiresAt: t.ExpiresAt,
		ExpiresIn: ttl, UsesLeft: t.UsesLeft}, nil
}

// ResolveMachineToken returns the machine identity an access token stands
// for, used from address, or EUNAUTHORIZED when the token is not one, has
// expired or has no use left, or its identity or tenant is inactive, or
// address is outside the identity's ranges. A token with a use limit
// loses one use per call, atomically: N concurrent calls on a token with
// N uses left all pass, and the next fails. It needs no scope (the token
// names the tenant) and is how the API signs a machine in.
func (s *Service) ResolveMachineToken(ctx context.Context, token, address string) (*Machine, error) {
	if !LooksLikeMachineToken(token) {
		return nil, errMachineToken
	}
	if err := s.ready(); err != nil {
		return nil, err
	}
	hash := HashCredential(token)
	t, m, err := s.store.FindVaultMachineToken(ctx, hash)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return nil, errMachineToken
	}
	if err != nil {
		return nil, fmt.Errorf("vault: machine token: %w", err)
	}
	now := s.clock.Now()
	if !now.Before(t.ExpiresAt) || (t.UsesLeft != nil && *t.UsesLeft <= 0) || t.TenantID != m.TenantID ||
		!m.IsActive || !addressAllowed(m.AllowedCIDRs, address) {
		return nil, errMachineToken
	}
	tctx := nodus.WithTenant(ctx, m.TenantID)
	active, err := s.tenantActive(tctx, m.TenantID)
	if err != nil {
		return nil, err
	}
	if !active {
		return nil, errMachineToken
	}
	if t.UsesLeft != nil {
		if _, err := s.store.SpendVaultMachineToken(tctx, hash, now); err != nil {
			if nodus.ErrorCode(err) == nodus.ENOTFOUND {
				return nil, errMachineToken
			}
			return nil, fmt.Errorf("vault: machine token: %w", err)
		}
	}
	return &m, nil
}

// DeleteExpiredMachineTokens removes the access tokens of every tenant
// that have expired or have no use left, and returns how many. Expired
// tokens are refused anyway; this keeps the table small. serve calls it
// periodically; it works while the vault is sealed.
func (s *Service) DeleteExpiredMachineTokens(ctx context.Context) (int, error) {
	n, err := s.store.DeleteExpiredVaultMachineTokens(nodus.WithAllTenants(ctx), s.clock.Now())
	if err != nil {
		return 0, fmt.Errorf("vault: delete expired machine tokens: %w", err)
	}
	return n, nil
}

// tenantActive asks Config.TenantActive whether tenantID may still use
// the vault; without the hook every tenant may.
func (s *Service) tenantActive(ctx context.Context, tenantID string) (bool, error) {
	if s.tenantIsActive == nil {
		return true, nil
	}
	ok, err := s.tenantIsActive(ctx, tenantID)
	if err != nil {
		return false, fmt.Errorf("vault: is tenant %s active: %w", tenantID, err)
	}
	return ok, nil
}

func machineEntry(p Principal, tenantID, action string, m Machine, before *Machine) audit.Entry {
	e := p.entry(tenantID, action)
	e.TargetType, e.TargetID = "vault_machine", m.ID
	e.Changes = map[string]audit.Change{}
	add := func(name string, b, a any, same bool) {
		if before == nil {
			e.Changes[name] = audit.Change{After: a}
		} else if !same {
			e.Changes[name] = audit.Change{Before: b, After: a}
		}
	}
	var b Machine
	if before != nil {
		b = *before
	} else {
		e.Changes["client_id"] = audit.Change{After: m.ClientID}
	}
	add("name", b.Name, m.Name, b.Name == m.Name)
	add("token_ttl_seconds", b.TokenTTLSeconds, m.TokenTTLSeconds, b.TokenTTLSeconds == m.TokenTTLSeconds)
	add("token_use_limit", b.TokenUseLimit, m.TokenUseLimit, b.TokenUseLimit == m.TokenUseLimit)
	add("allowed_cidrs", b.AllowedCIDRs, m.AllowedCIDRs, slices.Equal(b.AllowedCIDRs, m.AllowedCIDRs))
	add("is_active", b.IsActive, m.IsActive, b.IsActive == m.IsActive)
	return e
}

// newCredential returns prefix and 256 random bits in URL-safe base64,
// and the SHA-256 the store keeps in its place.
func newCredential(prefix string) (secret, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashCredential(secret)
}

// HashCredential is the stored form of a client secret or access token:
// its SHA-256 in hex.
func HashCredential(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// newClientID returns ClientIDPrefix and 128 random bits in hex.
func newClientID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return ClientIDPrefix + hex.EncodeToString(b)
}

func looksLikeClientID(s string) bool {
	rest, ok := strings.CutPrefix(s, ClientIDPrefix)
	if !ok || len(rest) != 32 {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// LooksLikeMachineToken reports whether s has the shape of an access
// token, so junk is refused before any lookup.
func LooksLikeMachineToken(s string) bool {
	rest, ok := strings.CutPrefix(s, MachineTokenPrefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

// loginThrottle counts failed machine logins per key (client id and
// address) in fixed windows. There is no permanent lockout, and the
// count lives in this process: with several replicas the effective limit
// is multiplied by their number. Client secrets carry 256 random bits, so
// the throttle bounds noise rather than guards a guessable secret.
type loginThrottle struct {
	mu      sync.Mutex
	windows map[string]*loginWindow
	limit   int
	period  time.Duration
	maxKeys int
}

type loginWindow struct {
	start    time.Time
	failures int
}

func newLoginThrottle(limit int, period time.Duration) *loginThrottle {
	return &loginThrottle{windows: map[string]*loginWindow{}, limit: limit, period: period, maxKeys: 100_000}
}

// check returns how long key must wait before trying again; 0 means go
// ahead.
func (t *loginThrottle) check(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.windows[key]
	if w == nil || now.Sub(w.start) >= t.period || w.failures < t.limit {
		return 0
	}
	return w.start.Add(t.period).Sub(now)
}

func (t *loginThrottle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.windows[key]
	if w == nil || now.Sub(w.start) >= t.period {
		if w == nil && len(t.windows) >= t.maxKeys {
			t.prune(now)
		}
		w = &loginWindow{start: now}
		t.windows[key] = w
	}
	w.failures++
}

// prune drops ended windows, then arbitrary ones if that is not enough:
// memory stays bounded whatever an attacker sends.
func (t *loginThrottle) prune(now time.Time) {
	for k, w := range t.windows {
		if now.Sub(w.start) >= t.period {
			delete(t.windows, k)
		}
	}
	for k := range t.windows {
		if len(t.windows) < t.maxKeys {
			break
		}
		delete(t.windows, k)
	}
}

func (t *loginThrottle) succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.windows, key)
}
