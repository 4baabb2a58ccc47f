package vault_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

// testClock is a clock the test moves by hand.
type testClock struct{ now atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.now.Store(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC).UnixMicro())
	return c
}

func (c *testClock) Now() time.Time          { return time.UnixMicro(c.now.Load()).UTC() }
func (c *testClock) advance(d time.Duration) { c.now.Add(d.Microseconds()) }
func (e *env) withClock(t *testing.T, c *testClock) *vault.Service {
	t.Helper()
	return e.withConfig(t, vault.Config{Clock: c})
}

// withConfig returns another unsealed service over e's databases with c's
// clock and tenant hook.
func (e *env) withConfig(t *testing.T, c vault.Config) *vault.Service {
	t.Helper()
	c.Store, c.Handles, c.Keyring, c.Audit = e.db, e.db, e.ring, e.audit
	svc, err := vault.NewService(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Unseal(ctx); err != nil {
		t.Fatal(err)
	}
	return svc
}

func createMachine(t *testing.T, svc *vault.Service, in context.Context, input vault.MachineInput) (*vault.Machine, string) {
	t.Helper()
	m, secret, err := svc.CreateMachine(in, admin, input)
	if err != nil {
		t.Fatalf("create machine %q: %v", input.Name, err)
	}
	return m, secret.Reveal()
}

func login(t *testing.T, svc *vault.Service, m *vault.Machine, secret, address string) string {
	t.Helper()
	l, err := svc.Login(ctx, m.ClientID, secret, address)
	if err != nil {
		t.Fatalf("login as %s from %s: %v", m.Name, address, err)
	}
	return l.Token.Reveal()
}

// sameFailure asserts a login failed with the one answer every failure
// gets.
func sameFailure(t *testing.T, what string, err error) {
	t.Helper()
	code(t, what, err, nodus.EUNAUTHORIZED)
	if msg := nodus.ErrorMessage(err); msg != "invalid client id or client secret" {
		t.Errorf("%s: message %q differs from the one every failed login gets", what, msg)
	}
}

// TestMachineIdentities: an org_admin creates, lists, updates, rotates and
// deletes machine identities; the secret is shown once and stored only as
// its SHA-256; login gives a token that resolves to the identity and
// reads what its grants cover, nothing else; every login failure answers
// the same; deactivating, rotating and deleting revoke tokens.
func TestMachineIdentities(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		inA, tenantA := tenantCtx()
		inB, _ := tenantCtx()
		write(t, e.svc, inA, loc("prod", "/db", "PASSWORD"), canary)
		write(t, e.svc, inA, loc("prod", "/ops", "TOKEN"), "ops")

		m, secret := createMachine(t, e.svc, inA, vault.MachineInput{Name: " deployer "})
		if m.Name != "deployer" || m.TokenTTLSeconds != 3600 || m.TokenUseLimit != 0 || len(m.AllowedCIDRs) != 0 || !m.IsActive ||
			!strings.HasPrefix(m.ClientID, vault.ClientIDPrefix) || !strings.HasPrefix(secret, vault.ClientSecretPrefix) ||
			len(secret) != len(vault.ClientSecretPrefix)+43 {
			t.Fatalf("created: %+v (secret %d bytes)", m, len(secret))
		}
		// Only the SHA-256 of the secret is stored.
		var stored string
		if err := db.Read(allTenants, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT secret_hash || client_id || name || allowed_cidrs FROM vault_machines WHERE id = ?`, m.ID).Scan(&stored)
		}); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(secret))
		if !strings.HasPrefix(stored, hex.EncodeToString(sum[:])) || strings.Contains(stored, secret[len(vault.ClientSecretPrefix):]) {
			t.Fatalf("stored row %q is not the secret's SHA-256 alone", stored)
		}

		// Validation, uniqueness, and who may manage.
		for name, in := range map[string]vault.MachineInput{
			"no name":        {Name: " "},
			"long name":      {Name: strings.Repeat("x", 101)},
			"ttl above 24 h": {Name: "x", TokenTTLSeconds: 86401},
			"negative ttl":   {Name: "x", TokenTTLSeconds: -1},
			"negative uses":  {Name: "x", TokenUseLimit: -1},
			"bad range":      {Name: "x", AllowedCIDRs: []string{"10.0.0.0/33"}},
			"not a range":    {Name: "x", AllowedCIDRs: []string{"example.com"}},
			"too many":       {Name: "x", AllowedCIDRs: make([]string, vault.MaxMachineCIDRs+1)},
		} {
			_, _, err := e.svc.CreateMachine(inA, admin, in)
			code(t, name, err, nodus.EINVALID)
		}
		_, _, err := e.svc.CreateMachine(inA, admin, vault.MachineInput{Name: "deployer"})
		code(t, "duplicate name", err, nodus.ECONFLICT)
		user := vault.Principal{UserID: nodus.NewID(), Role: vault.RoleUser}
		for _, p := range []vault.Principal{user, viewer, m.Principal("127.0.0.1", "")} {
			_, _, err := e.svc.CreateMachine(inA, p, vault.MachineInput{Name: "mine"})
			code(t, p.Role+" creates a machine identity", err, nodus.EFORBIDDEN)
			_, _, err = e.svc.ListMachines(inA, p, "", 0)
			code(t, p.Role+" lists machine identities", err, nodus.EFORBIDDEN)
		}
		m2, _ := createMachine(t, e.svc, inA, vault.MachineInput{Name: "ranges", TokenTTLSeconds: 60, TokenUseLimit: 3,
			AllowedCIDRs: []string{"10.1.2.3/8", " 192.0.2.7", "::ffff:198.51.100.0/120", "2001:db8::1/32", "10.0.0.0/8"}})
		if got := strings.Join(m2.AllowedCIDRs, ","); got != "10.0.0.0/8,192.0.2.7/32,198.51.100.0/24,2001:db8::/32" {
			t.Errorf("ranges normalised to %s", got)
		}

		// Tenancy: B sees none of A's identities.
		list, _, err := e.svc.ListMachines(inB, admin, "", 0)
		if err != nil || len(list) != 0 {
			t.Fatalf("B lists %d identities, %v", len(list), err)
		}
		_, err = e.svc.FindMachine(inB, admin, m.ID)
		code(t, "B finds A's identity", err, nodus.ENOTFOUND)
		_, err = e.svc.UpdateMachine(inB, admin, m.ID, vault.MachineUpdate{IsActive: new(false)})
		code(t, "B updates A's identity", err, nodus.ENOTFOUND)
		_, _, err = e.svc.RotateMachineSecret(inB, admin, m.ID)
		code(t, "B rotates A's identity", err, nodus.ENOTFOUND)
		code(t, "B deletes A's identity", e.svc.DeleteMachine(inB, admin, m.ID), nodus.ENOTFOUND)
		_, err = e.svc.CreateGrant(inB, admin, vault.GrantInput{SubjectType: vault.SubjectMachine, Subject: m.ID,
			Environment: "prod", Permission: vault.PermRead})
		code(t, "B grants to A's identity", err, nodus.ENOTFOUND)
		list, _, err = e.svc.ListMachines(inA, admin, "", 1)
		if err != nil || len(list) != 1 || list[0].ID != m.ID {
			t.Fatalf("A's first page: %+v, %v", list, err)
		}

		// Login: a token, valid for the identity's TTL.
		l, err := e.svc.Login(ctx, m.ClientID, secret, "203.0.113.5")
		if err != nil || !strings.HasPrefix(l.Token.Reveal(), vault.MachineTokenPrefix) || l.ExpiresIn != time.Hour ||
			l.UsesLeft != nil || l.MachineID != m.ID || l.TenantID != tenantA {
			t.Fatalf("login: %+v, %v", l, err)
		}
		token := l.Token.Reveal()
		got, err := e.svc.ResolveMachineToken(ctx, token, "203.0.113.5")
		if err != nil || got.ID != m.ID || got.TenantID != tenantA {
			t.Fatalf("resolve: %+v, %v", got, err)
		}
		if found, _ := e.svc.FindMachine(inA, admin, m.ID); found.LastUsedAt == nil {
			t.Error("last_used_at not set by the login")
		}
		for name, bad := range map[string]string{
			"junk": "ndm_junk", "the hash": vault.HashCredential(token), "a truncated token": token[:len(token)-1],
			"a user's token shape": "nds_" + token[4:], "an unknown token": vault.MachineTokenPrefix + strings.Repeat("A", 43),
		} {
			_, err := e.svc.ResolveMachineToken(ctx, bad, "203.0.113.5")
			code(t, "resolve "+name, err, nodus.EUNAUTHORIZED)
		}

		// Every failure answers the same.
		_, err = e.svc.Login(ctx, m.ClientID, secret+"x", "203.0.113.5")
		sameFailure(t, "wrong secret", err)
		_, err = e.svc.Login(ctx, "ndc_0123456789abcdef0123456789abcdef", secret, "203.0.113.5")
		sameFailure(t, "unknown client id", err)
		_, err = e.svc.Login(ctx, "not a client id", secret, "203.0.113.5")
		sameFailure(t, "malformed client id", err)
		_, err = e.svc.Login(ctx, m.ClientID, "", "203.0.113.5")
		sameFailure(t, "no secret", err)
		_, err = e.svc.Login(ctx, m2.ClientID, secret, "10.9.9.9")
		sameFailure(t, "another identity's secret", err)

		// Grants: none yet, so no value, no name; then read on prod:/db.
		mp := m.Principal("203.0.113.5", "agent")
		_, err = e.svc.ReadSecret(inA, mp, loc("prod", "/db", "PASSWORD"), vault.ReadOptions{})
		code(t, "read without a grant", err, nodus.EFORBIDDEN)
		// A grant to the role "user" does not reach machines.
		if _, err := e.svc.CreateGrant(inA, admin, vault.GrantInput{SubjectType: vault.SubjectRole, Subject: vault.RoleUser,
			Environment: "*", Permission: vault.PermRead}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.ReadSecret(inA, mp, loc("prod", "/db", "PASSWORD"), vault.ReadOptions{})
		code(t, "read with a role grant only", err, nodus.EFORBIDDEN)
		_, err = e.svc.CreateGrant(inA, admin, vault.GrantInput{SubjectType: vault.SubjectMachine, Subject: nodus.NewID(),
			Environment: "prod", Permission: vault.PermRead})
		code(t, "grant to no identity", err, nodus.ENOTFOUND)
		_, err = e.svc.CreateGrant(inA, admin, vault.GrantInput{SubjectType: vault.SubjectMachine, Subject: "x",
			Environment: "prod", Permission: vault.PermRead})
		code(t, "grant to a malformed id", err, nodus.EINVALID)
		g, err := e.svc.CreateGrant(inA, admin, vault.GrantInput{SubjectType: vault.SubjectMachine, Subject: m.ID,
			Environment: "prod", PathPrefix: "/db", Permission: vault.PermRead})
		if err != nil {
			t.Fatal(err)
		}
		if v := read(t, e.svc, inA, mp, loc("prod", "/db", "PASSWORD"), vault.ReadOptions{}); v != canary {
			t.Fatalf("machine read %q", v)
		}
		if !e.svc.Can(inA, vault.RoleMachine, m.ID, "prod", "/db", vault.PermRead) || e.svc.Can(inA, vault.RoleMachine, m.ID, "prod", "/ops", vault.PermRead) {
			t.Error("Can disagrees with the machine's grant")
		}
		_, err = e.svc.ReadSecret(inA, mp, loc("prod", "/ops", "TOKEN"), vault.ReadOptions{})
		code(t, "read outside the grant", err, nodus.EFORBIDDEN)
		_, err = e.svc.WriteSecret(inA, mp, vault.WriteInput{Location: loc("prod", "/db", "PASSWORD"), Value: vault.NewValue("x")})
		code(t, "write with a read grant", err, nodus.EFORBIDDEN)
		// Names: only where a grant reaches; environments and settings hold
		// no secret name.
		if _, err := e.svc.FindSecret(inA, mp, loc("prod", "/db", "PASSWORD")); err != nil {
			t.Errorf("find inside the grant: %v", err)
		}
		if _, err := e.svc.ListVersions(inA, mp, loc("prod", "/db", "PASSWORD")); err != nil {
			t.Errorf("versions inside the grant: %v", err)
		}
		if secrets, _, err := e.svc.ListSecrets(inA, mp, vault.SecretFilter{Environment: "prod", Path: "/db", Recursive: true}); err != nil || len(secrets) != 1 {
			t.Errorf("list inside the grant: %d, %v", len(secrets), err)
		}
		_, err = e.svc.FindSecret(inA, mp, loc("prod", "/ops", "TOKEN"))
		code(t, "find outside the grant", err, nodus.EFORBIDDEN)
		_, _, err = e.svc.ListSecrets(inA, mp, vault.SecretFilter{Environment: "prod", Recursive: true})
		code(t, "list above the grant", err, nodus.EFORBIDDEN)
		_, _, err = e.svc.ListSecrets(inA, mp, vault.SecretFilter{Environment: "prod", Path: "/db", IncludeDeleted: true})
		code(t, "list deleted secrets", err, nodus.EFORBIDDEN)
		if _, err := e.svc.ListEnvironments(inA, mp); err != nil {
			t.Errorf("environments: %v", err)
		}
		if _, err := e.svc.FindTenantConfig(inA, mp); err != nil {
			t.Errorf("settings: %v", err)
		}
		// A machine manages nothing.
		for name, call := range map[string]func() error{
			"create environment": func() error { _, err := e.svc.CreateEnvironment(inA, mp, "qa", ""); return err },
			"list grants":        func() error { _, err := e.svc.ListGrants(inA, mp); return err },
			"grant itself write": func() error {
				_, err := e.svc.CreateGrant(inA, mp, vault.GrantInput{SubjectType: vault.SubjectMachine, Subject: m.ID,
					Environment: "*", Permission: vault.PermWrite})
				return err
			},
			"list handles": func() error { _, _, err := e.svc.ListHandles(inA, mp, "", 0); return err },
			"create handle": func() error {
				_, err := e.svc.CreateHandle(inA, mp, vault.HandleInput{Location: loc("prod", "/db", "PASSWORD")})
				return err
			},
			"destroy":         func() error { return e.svc.DestroySecret(inA, mp, loc("prod", "/db", "PASSWORD")) },
			"rotate data key": func() error { _, err := e.svc.RotateDataKey(inA, mp, tenantA); return err },
			"settings":        func() error { _, err := e.svc.UpdateTenantConfig(inA, mp, 3); return err },
			"rotate secret":   func() error { _, _, err := e.svc.RotateMachineSecret(inA, mp, m.ID); return err },
		} {
			code(t, "machine: "+name, call(), nodus.EFORBIDDEN)
		}
		// With a write grant it writes (write does not imply read).
		if _, err := e.svc.CreateGrant(inA, admin, vault.GrantInput{SubjectType: vault.SubjectMachine, Subject: m.ID,
			Environment: "prod", PathPrefix: "/ops", Permission: vault.PermWrite}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.WriteSecret(inA, mp, vault.WriteInput{Location: loc("prod", "/ops", "TOKEN"), Value: vault.NewValue("rotated")}); err != nil {
			t.Fatalf("write with a write grant: %v", err)
		}
		_, err = e.svc.ReadSecret(inA, mp, loc("prod", "/ops", "TOKEN"), vault.ReadOptions{})
		code(t, "read with a write grant", err, nodus.EFORBIDDEN)

		// The audit log names the machine as the actor of its reads and
		// writes, and the logins; never a secret or a token.
		seen := map[string]bool{}
		reasons := map[string]bool{}
		for _, en := range entries(t, db) {
			if en.ActorKind == audit.ActorMachine && en.ActorID == m.ID && en.TenantID == tenantA {
				seen[en.Action] = true
			}
			if en.Action == "machine.login_failed" {
				reasons[en.Changes["reason"].After.(string)] = true
			}
			if s := strings.Join(append(actions([]audit.Entry{en}), en.TargetID, en.ActorID), " "); strings.Contains(s, secret) || strings.Contains(s, token) {
				t.Fatalf("an audit entry holds a credential: %+v", en)
			}
			for _, c := range en.Changes {
				for _, v := range []any{c.Before, c.After} {
					if s, _ := v.(string); s != "" && (strings.Contains(s, secret[5:]) || strings.Contains(s, token[4:])) {
						t.Fatalf("an audit entry holds a credential: %+v", en)
					}
				}
			}
		}
		for _, action := range []string{"machine.login", "secret.read", "secret.write"} {
			if !seen[action] {
				t.Errorf("no %s entry by the machine", action)
			}
		}
		for _, r := range []string{"wrong_secret", "unknown_client"} {
			if !reasons[r] {
				t.Errorf("no machine.login_failed entry with reason %s", r)
			}
		}

		// Ranges: login and token use from outside them are refused.
		l2 := login(t, e.svc, m2, mustRotate(t, e.svc, inA, m2.ID), "10.200.0.1")
		_, err = e.svc.Login(ctx, m2.ClientID, "whatever", "127.0.0.1")
		sameFailure(t, "outside the ranges", err)
		if _, err := e.svc.ResolveMachineToken(ctx, l2, "10.200.0.1"); err != nil {
			t.Fatalf("inside the ranges: %v", err)
		}
		_, err = e.svc.ResolveMachineToken(ctx, l2, "127.0.0.1")
		code(t, "token from outside the ranges", err, nodus.EUNAUTHORIZED)
		_, err = e.svc.ResolveMachineToken(ctx, l2, "not an address")
		code(t, "token from no address", err, nodus.EUNAUTHORIZED)
		// A use limit of 3: one went above, two are left.
		for i := range 3 {
			_, err := e.svc.ResolveMachineToken(ctx, l2, "::ffff:10.200.0.1")
			if i < 2 && err != nil {
				t.Fatalf("use %d of 3: %v", i+2, err)
			}
			if i == 2 {
				code(t, "a fourth use of 3", err, nodus.EUNAUTHORIZED)
			}
		}

		// Deactivation revokes tokens; reactivation does not bring them back.
		upd, err := e.svc.UpdateMachine(inA, admin, m.ID, vault.MachineUpdate{IsActive: new(false)})
		if err != nil || upd.IsActive {
			t.Fatalf("deactivate: %+v, %v", upd, err)
		}
		_, err = e.svc.ResolveMachineToken(ctx, token, "203.0.113.5")
		code(t, "token of an inactive identity", err, nodus.EUNAUTHORIZED)
		_, err = e.svc.Login(ctx, m.ClientID, secret, "203.0.113.5")
		sameFailure(t, "inactive identity", err)
		if _, err := e.svc.UpdateMachine(inA, admin, m.ID, vault.MachineUpdate{IsActive: new(true), Name: new("deployer-2"),
			TokenTTLSeconds: new(120), AllowedCIDRs: &[]string{}}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.ResolveMachineToken(ctx, token, "203.0.113.5")
		code(t, "a revoked token after reactivation", err, nodus.EUNAUTHORIZED)
		_, err = e.svc.UpdateMachine(inA, admin, m.ID, vault.MachineUpdate{Name: new("ranges")})
		code(t, "rename onto another identity's name", err, nodus.ECONFLICT)
		_, err = e.svc.UpdateMachine(inA, admin, m.ID, vault.MachineUpdate{TokenTTLSeconds: new(0)})
		code(t, "a TTL of 0 on update", err, nodus.EINVALID)
		if got, _ := e.svc.FindMachine(inA, admin, m.ID); got.Name != "deployer-2" || got.TokenTTLSeconds != 120 || !got.IsActive {
			t.Errorf("after updates: %+v", got)
		}

		// Rotation: the old secret and its tokens stop; the new one works.
		token = login(t, e.svc, m, secret, "203.0.113.5")
		newSecret := mustRotate(t, e.svc, inA, m.ID)
		if newSecret == secret {
			t.Fatal("rotation kept the secret")
		}
		_, err = e.svc.Login(ctx, m.ClientID, secret, "203.0.113.5")
		sameFailure(t, "the old secret", err)
		_, err = e.svc.ResolveMachineToken(ctx, token, "203.0.113.5")
		code(t, "a token of the old secret", err, nodus.EUNAUTHORIZED)
		token = login(t, e.svc, m, newSecret, "203.0.113.5")

		// Deletion: tokens, grants and login go with the identity.
		code(t, "delete", e.svc.DeleteMachine(inA, admin, m.ID), "")
		_, err = e.svc.ResolveMachineToken(ctx, token, "203.0.113.5")
		code(t, "a token of a deleted identity", err, nodus.EUNAUTHORIZED)
		_, err = e.svc.Login(ctx, m.ClientID, newSecret, "203.0.113.5")
		sameFailure(t, "a deleted identity", err)
		grants, _ := e.svc.ListGrants(inA, admin)
		for _, gr := range grants {
			if gr.SubjectType == vault.SubjectMachine && gr.Subject == m.ID || gr.ID == g.ID {
				t.Errorf("grant %+v outlived its identity", gr)
			}
		}
		code(t, "delete twice", e.svc.DeleteMachine(inA, admin, m.ID), nodus.ENOTFOUND)

		seen = map[string]bool{}
		for _, en := range entries(t, db) {
			if en.TargetType == "vault_machine" && en.ActorKind == audit.ActorUser {
				seen[en.Action] = true
			}
		}
		for _, action := range []string{"machine.create", "machine.update", "machine.rotate_secret", "machine.delete"} {
			if !seen[action] {
				t.Errorf("no %s entry", action)
			}
		}
	})
}

func mustRotate(t *testing.T, svc *vault.Service, in context.Context, id string) string {
	t.Helper()
	_, secret, err := svc.RotateMachineSecret(in, admin, id)
	if err != nil {
		t.Fatal(err)
	}
	return secret.Reveal()
}

// TestMachineTokenExpiry: a token works until its TTL ends, then never
// again, and the cleanup deletes it.
func TestMachineTokenExpiry(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		clock := newTestClock()
		svc := e.withClock(t, clock)
		in, _ := tenantCtx()
		m, secret := createMachine(t, svc, in, vault.MachineInput{Name: "short", TokenTTLSeconds: 60})
		token := login(t, svc, m, secret, "192.0.2.1")
		clock.advance(59 * time.Second)
		if _, err := svc.ResolveMachineToken(ctx, token, "192.0.2.1"); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		live := login(t, svc, m, secret, "192.0.2.1")
		clock.advance(time.Second)
		_, err := svc.ResolveMachineToken(ctx, token, "192.0.2.1")
		code(t, "at expiry", err, nodus.EUNAUTHORIZED)
		n, err := svc.DeleteExpiredMachineTokens(ctx)
		if err != nil || n != 1 {
			t.Fatalf("cleanup deleted %d, %v; want 1", n, err)
		}
		if _, err := svc.ResolveMachineToken(ctx, live, "192.0.2.1"); err != nil {
			t.Fatalf("the live token after cleanup: %v", err)
		}
		clock.advance(time.Hour)
		if n, err := svc.DeleteExpiredMachineTokens(ctx); err != nil || n != 1 {
			t.Fatalf("second cleanup deleted %d, %v; want 1", n, err)
		}
	})
}

// TestMachineLoginThrottle is SECURITY.md check 7 for machines: twenty
// failures from one address for one client id, then the twenty-first
// attempt is ERATELIMIT with RetryAfter even with the right secret; another
// address is not affected; the window ends.
func TestMachineLoginThrottle(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		clock := newTestClock()
		svc := e.withClock(t, clock)
		in, _ := tenantCtx()
		m, secret := createMachine(t, svc, in, vault.MachineInput{Name: "ci"})
		for i := range vault.MachineLoginFailures {
			_, err := svc.Login(ctx, m.ClientID, "wrong", "198.51.100.7")
			sameFailure(t, "failure "+string(rune('a'+i)), err)
		}
		_, err := svc.Login(ctx, m.ClientID, secret, "198.51.100.7")
		code(t, "21st attempt", err, nodus.ERATELIMIT)
		if d := nodus.ErrorRetryAfter(err); d <= 0 || d > vault.MachineLoginWindow {
			t.Errorf("RetryAfter %v", d)
		}
		login(t, svc, m, secret, "198.51.100.8")
		// Junk client ids share one count per address.
		for range vault.MachineLoginFailures {
			_, _ = svc.Login(ctx, "junk", "x", "198.51.100.9")
		}
		_, err = svc.Login(ctx, "other junk", "x", "198.51.100.9")
		code(t, "junk after twenty", err, nodus.ERATELIMIT)
		clock.advance(vault.MachineLoginWindow)
		login(t, svc, m, secret, "198.51.100.7")
	})
}

// TestMachineTenantInactive: a tenant the hook says is inactive (or gone)
// cannot log its machines in, and their tokens stop.
func TestMachineTenantInactive(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, tenant := tenantCtx()
		var inactive atomic.Bool
		svc := e.withConfig(t, vault.Config{TenantActive: func(c context.Context, id string) (bool, error) {
			if got, _ := nodus.RequireTenant(c); got != id || id != tenant {
				t.Errorf("hook asked about %q in scope %q", id, got)
			}
			return !inactive.Load(), nil
		}})
		m, secret := createMachine(t, svc, in, vault.MachineInput{Name: "ci"})
		token := login(t, svc, m, secret, "192.0.2.1")
		inactive.Store(true)
		_, err := svc.ResolveMachineToken(ctx, token, "192.0.2.1")
		code(t, "token of an inactive tenant", err, nodus.EUNAUTHORIZED)
		_, err = svc.Login(ctx, m.ClientID, secret, "192.0.2.1")
		sameFailure(t, "login to an inactive tenant", err)
		inactive.Store(false)
		if _, err := svc.ResolveMachineToken(ctx, token, "192.0.2.1"); err != nil {
			t.Fatalf("reactivated: %v", err)
		}
		// Purging the tenant removes its identities and tokens.
		if err := svc.PurgeTenant(nodus.WithAllTenants(ctx), vault.System(), tenant); err != nil {
			t.Fatal(err)
		}
		_, err = svc.ResolveMachineToken(ctx, token, "192.0.2.1")
		code(t, "token of a purged tenant", err, nodus.EUNAUTHORIZED)
		_, err = svc.FindMachine(in, admin, m.ID)
		code(t, "identity of a purged tenant", err, nodus.ENOTFOUND)
	})
}

// TestMachineTokenUseLimitConcurrent: 40 requests at once on a token
// with 5 uses: exactly 5 pass, on both engines.
func TestMachineTokenUseLimitConcurrent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, _ := tenantCtx()
		const uses, callers = 5, 40
		m, secret := createMachine(t, e.svc, in, vault.MachineInput{Name: "limited", TokenUseLimit: uses})
		l, err := e.svc.Login(ctx, m.ClientID, secret, "192.0.2.1")
		if err != nil || l.UsesLeft == nil || *l.UsesLeft != uses {
			t.Fatalf("login: %+v, %v", l, err)
		}
		token := l.Token.Reveal()
		var wg sync.WaitGroup
		var passed, refused atomic.Int64
		start := make(chan struct{})
		for range callers {
			wg.Go(func() {
				<-start
				_, err := e.svc.ResolveMachineToken(ctx, token, "192.0.2.1")
				switch nodus.ErrorCode(err) {
				case "":
					passed.Add(1)
				case nodus.EUNAUTHORIZED:
					refused.Add(1)
				default:
					t.Errorf("resolve failed with %v, want success or unauthorized", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if passed.Load() != uses || refused.Load() != callers-uses {
			t.Fatalf("%d passed and %d were refused; want %d and %d", passed.Load(), refused.Load(), uses, callers-uses)
		}
		if n, err := e.svc.DeleteExpiredMachineTokens(ctx); err != nil || n != 1 {
			t.Errorf("cleanup of a used-up token: %d, %v", n, err)
		}
	})
}
