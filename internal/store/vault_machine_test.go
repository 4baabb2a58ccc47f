package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

func newMachine(tenantID, name, clientID string) vault.Machine {
	now := nodus.SystemClock{}.Now()
	return vault.Machine{ID: nodus.NewID(), TenantID: tenantID, Name: name, ClientID: clientID, SecretHash: "hash-of-" + name,
		TokenTTLSeconds: 3600, AllowedCIDRs: []string{"10.0.0.0/8"}, IsActive: true, CreatedAt: now, CreatedBy: "u1",
		UpdatedAt: now, UpdatedBy: "u1"}
}

func machineToken(m vault.Machine, hash string, ttl time.Duration, uses *int) vault.MachineToken {
	now := nodus.SystemClock{}.Now()
	return vault.MachineToken{Hash: hash, MachineID: m.ID, TenantID: m.TenantID, ExpiresAt: now.Add(ttl), UsesLeft: uses,
		CreatedAt: now, Address: "192.0.2.1"}
}

// TestVaultStoreMachines: machine identities and their tokens round-trip,
// stay in their tenant, and go with their identity and tenant.
func TestVaultStoreMachines(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetVault)
		a, b := nodus.NewID(), nodus.NewID()
		inA, inB := nodus.WithTenant(ctx, a), nodus.WithTenant(ctx, b)
		m := newMachine(a, "ci", "ndc_a")
		if err := db.CreateVaultMachine(inA, m); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindVaultMachine(inA, m.ID)
		if err != nil || got.Name != "ci" || got.ClientID != "ndc_a" || got.SecretHash != "hash-of-ci" || got.TokenTTLSeconds != 3600 ||
			len(got.AllowedCIDRs) != 1 || got.AllowedCIDRs[0] != "10.0.0.0/8" || !got.IsActive || got.LastUsedAt != nil ||
			!got.CreatedAt.Equal(m.CreatedAt) || got.TenantID != a {
			t.Fatalf("round trip: %+v, %v", got, err)
		}
		// Names are unique per tenant, client ids everywhere.
		if err := db.CreateVaultMachine(inA, newMachine(a, "ci", "ndc_other")); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate name: %v", err)
		}
		if err := db.CreateVaultMachine(inB, newMachine(b, "ci", "ndc_a")); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate client id in another tenant: %v", err)
		}
		mb := newMachine(b, "ci", "ndc_b")
		mb.AllowedCIDRs = nil
		if err := db.CreateVaultMachine(inB, mb); err != nil {
			t.Fatalf("the same name in another tenant: %v", err)
		}
		if got, _ := db.FindVaultMachine(inB, mb.ID); got.AllowedCIDRs == nil || len(got.AllowedCIDRs) != 0 {
			t.Errorf("no ranges read back as %#v", got.AllowedCIDRs)
		}

		// B sees and changes nothing of A's; the sign-in lookup needs no scope.
		if _, err := db.FindVaultMachine(inB, m.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's machine: %v", err)
		}
		if l, _, err := db.ListVaultMachines(inB, "", 10); err != nil || len(l) != 1 || l[0].ID != mb.ID {
			t.Errorf("B lists %+v, %v", l, err)
		}
		if l, _, err := db.ListVaultMachines(allTenants, "", 10); err != nil || len(l) != 2 {
			t.Errorf("all tenants list %d, %v", len(l), err)
		}
		if _, _, err := db.UpdateVaultMachine(inB, m.ID, func(*vault.Machine) (bool, error) { return false, nil }); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B updates A's machine: %v", err)
		}
		if _, err := db.DeleteVaultMachine(inB, m.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B deletes A's machine: %v", err)
		}
		if got, err := db.FindVaultMachineByClientID(context.Background(), "ndc_a"); err != nil || got.ID != m.ID {
			t.Errorf("by client id: %+v, %v", got, err)
		}
		if _, err := db.FindVaultMachineByClientID(context.Background(), "ndc_none"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("unknown client id: %v", err)
		}
		for name, err := range map[string]error{
			"find":  second(db.FindVaultMachine(context.Background(), m.ID)),
			"list":  third(db.ListVaultMachines(context.Background(), "", 1)),
			"clean": second(db.DeleteExpiredVaultMachineTokens(context.Background(), time.Now())),
		} {
			if !errors.Is(err, nodus.ErrNoScope) {
				t.Errorf("%s without a scope: %v", name, err)
			}
		}

		// Tokens: stored in the identity's tenant, with the login recorded.
		five := 5
		if err := db.CreateVaultMachineToken(inB, machineToken(m, "t-wrong-tenant", time.Hour, nil)); err == nil {
			t.Error("a token of A's machine stored in B's scope")
		}
		tb := machineToken(m, "t-b", time.Hour, nil)
		tb.TenantID = b
		if err := db.CreateVaultMachineToken(inB, tb); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("a token for A's machine under B: %v", err)
		}
		if err := db.CreateVaultMachineToken(inA, machineToken(m, "t-unlimited", time.Hour, nil)); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateVaultMachineToken(inA, machineToken(m, "t-limited", time.Hour, &five)); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateVaultMachineToken(inA, machineToken(m, "t-expired", -time.Second, &five)); err != nil {
			t.Fatal(err)
		}
		tok, owner, err := db.FindVaultMachineToken(context.Background(), "t-unlimited")
		if err != nil || tok.UsesLeft != nil || tok.MachineID != m.ID || tok.TenantID != a || owner.ID != m.ID || tok.Address != "192.0.2.1" {
			t.Fatalf("unlimited token: %+v %+v, %v", tok, owner, err)
		}
		if tok, _, _ := db.FindVaultMachineToken(context.Background(), "t-limited"); tok.UsesLeft == nil || *tok.UsesLeft != 5 {
			t.Fatalf("limited token: %+v", tok)
		}
		if got, _ := db.FindVaultMachine(inA, m.ID); got.LastUsedAt == nil {
			t.Error("the login did not set last_used_at")
		}
		if _, _, err := db.FindVaultMachineToken(context.Background(), "t-none"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("unknown token: %v", err)
		}

		// Spending: B cannot, an expired token cannot, and 20 spenders at
		// once take exactly the 5 uses.
		now := nodus.SystemClock{}.Now()
		if _, err := db.SpendVaultMachineToken(inB, "t-limited", now); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B spends A's token: %v", err)
		}
		if _, err := db.SpendVaultMachineToken(inA, "t-expired", now); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("spend an expired token: %v", err)
		}
		var wg sync.WaitGroup
		var spent atomic.Int64
		lefts := make([]bool, five)
		var mu sync.Mutex
		for range 20 {
			wg.Go(func() {
				left, err := db.SpendVaultMachineToken(inA, "t-limited", now)
				switch nodus.ErrorCode(err) {
				case "":
					spent.Add(1)
					mu.Lock()
					lefts[left] = true
					mu.Unlock()
				case nodus.ENOTFOUND:
				default:
					t.Errorf("spend: %v", err)
				}
			})
		}
		wg.Wait()
		if spent.Load() != 5 {
			t.Fatalf("%d spends passed, want 5", spent.Load())
		}
		for left, seen := range lefts {
			if !seen {
				t.Errorf("no spend left %d uses: each use is counted once", left)
			}
		}

		// Cleanup: expired and used-up tokens of the scope only.
		if n, err := db.DeleteExpiredVaultMachineTokens(inB, now); err != nil || n != 0 {
			t.Errorf("B's cleanup deleted %d of A's, %v", n, err)
		}
		if n, err := db.DeleteExpiredVaultMachineTokens(inA, now); err != nil || n != 2 {
			t.Errorf("A's cleanup deleted %d, %v; want 2 (expired, used up)", n, err)
		}
		if _, _, err := db.FindVaultMachineToken(context.Background(), "t-unlimited"); err != nil {
			t.Errorf("cleanup took a live token: %v", err)
		}

		// Update: one transaction, revoking tokens on request; an error
		// from change writes nothing.
		before, after, err := db.UpdateVaultMachine(inA, m.ID, func(x *vault.Machine) (bool, error) {
			x.Name, x.AllowedCIDRs, x.IsActive = "ci-2", []string{}, false
			return false, nil
		})
		if err != nil || before.Name != "ci" || after.Name != "ci-2" || after.IsActive || len(before.AllowedCIDRs) != 1 {
			t.Fatalf("update: %+v → %+v, %v", before, after, err)
		}
		if _, _, err := db.UpdateVaultMachine(inA, m.ID, func(x *vault.Machine) (bool, error) {
			x.Name = "lost"
			return true, errors.New("refused")
		}); err == nil {
			t.Error("a failing change succeeded")
		}
		if _, _, err := db.UpdateVaultMachine(inA, m.ID, func(x *vault.Machine) (bool, error) {
			x.Name = "ci"
			return false, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.FindVaultMachineToken(context.Background(), "t-unlimited"); err != nil {
			t.Errorf("an update without revoke took the token: %v", err)
		}
		if _, _, err := db.UpdateVaultMachine(inA, m.ID, func(x *vault.Machine) (bool, error) {
			x.SecretHash = "new-hash"
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.FindVaultMachineToken(context.Background(), "t-unlimited"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("a revoking update left the token: %v", err)
		}
		if got, _ := db.FindVaultMachine(inA, m.ID); got.SecretHash != "new-hash" || got.Name != "ci" || got.IsActive || len(got.AllowedCIDRs) != 0 {
			t.Errorf("after updates: %+v", got)
		}
		if _, _, err := db.UpdateVaultMachine(inA, m.ID, func(x *vault.Machine) (bool, error) {
			x.ClientID = "ndc_stolen"
			return false, nil
		}); err == nil {
			t.Error("an update changed the client id")
		}

		// Grants of subject type machine, selected by identity only.
		now = nodus.SystemClock{}.Now()
		for _, g := range []vault.Grant{
			{ID: nodus.NewID(), SubjectType: "machine", Subject: m.ID, Environment: "prod", PathPrefix: "/db", Permission: "read", CreatedAt: now},
			{ID: nodus.NewID(), SubjectType: "role", Subject: "user", Environment: "*", PathPrefix: "/", Permission: "read", CreatedAt: now},
			{ID: nodus.NewID(), SubjectType: "user", Subject: m.ID, Environment: "*", PathPrefix: "/", Permission: "write", CreatedAt: now},
		} {
			if err := db.CreateVaultGrant(inA, g); err != nil {
				t.Fatalf("grant %s: %v", g.SubjectType, err)
			}
		}
		if err := db.CreateVaultGrant(inA, vault.Grant{ID: nodus.NewID(), SubjectType: "group", Subject: "x", Environment: "*",
			PathPrefix: "/", Permission: "read", CreatedAt: now}); err == nil {
			t.Error("a grant with an unknown subject type")
		}
		gs, err := db.ListVaultGrants(inA, vault.GrantFilter{MachineID: m.ID})
		if err != nil || len(gs) != 1 || gs[0].SubjectType != "machine" || gs[0].PathPrefix != "/db" {
			t.Fatalf("the machine's grants: %+v, %v", gs, err)
		}
		if gs, _ := db.ListVaultGrants(inA, vault.GrantFilter{Role: "user", UserID: "someone"}); len(gs) != 1 || gs[0].SubjectType != "role" {
			t.Errorf("a user's grants include a machine's: %+v", gs)
		}
		if gs, _ := db.ListVaultGrants(inB, vault.GrantFilter{MachineID: m.ID}); len(gs) != 0 {
			t.Errorf("B sees A's machine grants: %+v", gs)
		}

		// Deleting the identity takes its tokens and grants, not others'.
		if err := db.CreateVaultMachineToken(inA, machineToken(m, "t-last", time.Hour, nil)); err != nil {
			t.Fatal(err)
		}
		del, err := db.DeleteVaultMachine(inA, m.ID)
		if err != nil || del.ID != m.ID {
			t.Fatalf("delete: %+v, %v", del, err)
		}
		if _, _, err := db.FindVaultMachineToken(context.Background(), "t-last"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("a deleted identity's token: %v", err)
		}
		if gs, _ := db.ListVaultGrants(inA, vault.GrantFilter{}); len(gs) != 2 {
			t.Errorf("after delete, grants: %+v; want the role's and the user's", gs)
		}

		// Purging a tenant takes its identities and tokens.
		if err := db.CreateVaultMachineToken(inB, machineToken(mb, "t-b-live", time.Hour, nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.DeleteVaultTenant(inB); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindVaultMachine(inB, mb.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("a purged tenant's identity: %v", err)
		}
		if _, _, err := db.FindVaultMachineToken(context.Background(), "t-b-live"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("a purged tenant's token: %v", err)
		}
	})
}
