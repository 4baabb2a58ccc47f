package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

// allBytes is a "ciphertext" holding every byte value, NUL and invalid
// UTF-8 included: BLOB and BYTEA must return it unchanged.
func allBytes(tag byte) []byte {
	b := make([]byte, 0, 257)
	b = append(b, tag)
	for i := range 256 {
		b = append(b, byte(i))
	}
	return b
}

func vaultWrite(tenantID string, loc vault.Location, cas *int) vault.SecretWrite {
	return vault.SecretWrite{ID: nodus.NewID(), TenantID: tenantID, Location: loc, Comment: "c", Tags: []string{"db"},
		Metadata: json.RawMessage(`{"owner":"ops"}`), CAS: cas, MaxVersions: 3, DataKeyVersion: 1,
		At: nodus.SystemClock{}.Now(), By: "u1"}
}

// sealAs returns a seal function that records the secret id and version
// it was asked for and returns bytes naming them.
func sealAs(tag byte) vault.SealFunc {
	return func(secretID string, version int) ([]byte, error) {
		return append(allBytes(tag), []byte(fmt.Sprintf("|%s|%d", secretID, version))...), nil
	}
}

func intp(n int) *int { return &n }

func TestVaultStoreSecrets(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetVault)
		tenant := nodus.NewID()
		in := nodus.WithTenant(ctx, tenant)
		loc := vault.Location{Environment: "prod", Path: "/db", Key: "PASSWORD"}

		// Create only: version 1; the ciphertext comes back byte for byte.
		s, err := db.WriteSecret(in, vaultWrite(tenant, loc, intp(0)), sealAs(1))
		if err != nil || s.Version != 1 || s.Location != loc {
			t.Fatalf("create: %+v, %v", s, err)
		}
		got, v, err := db.FindSecretVersion(in, loc, 0)
		if err != nil || got.ID != s.ID || v.Version != 1 || v.DataKeyVersion != 1 || v.SecretID != s.ID || v.TenantID != tenant {
			t.Fatalf("FindSecretVersion: %+v %+v, %v", got, v, err)
		}
		want, _ := sealAs(1)(s.ID, 1)
		if !bytes.Equal(v.Ciphertext, want) {
			t.Fatalf("ciphertext did not round-trip: %x", v.Ciphertext)
		}
		if !slices.Equal(got.Tags, []string{"db"}) || string(got.Metadata) != `{"owner":"ops"}` || got.Comment != "c" {
			t.Errorf("description: %+v", got)
		}

		// Check-and-set: a wrong expected version, or create-only on an
		// existing secret, writes nothing.
		for _, cas := range []int{0, 2, 5} {
			if _, err := db.WriteSecret(in, vaultWrite(tenant, loc, intp(cas)), sealAs(9)); nodus.ErrorCode(err) != nodus.ECONFLICT {
				t.Errorf("cas %d at version 1: %v, want conflict", cas, err)
			}
		}
		if _, err := db.WriteSecret(in, vaultWrite(tenant, vault.Location{Environment: "prod", Path: "/", Key: "NEW"}, intp(3)), sealAs(9)); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("cas 3 on a missing secret: %v, want conflict", err)
		}
		for i, cas := range []*int{intp(1), nil, intp(3), nil} {
			if s, err = db.WriteSecret(in, vaultWrite(tenant, loc, cas), sealAs(byte(2+i))); err != nil || s.Version != i+2 {
				t.Fatalf("write %d: %+v, %v", i+2, s, err)
			}
		}
		// Five versions written, three kept (MaxVersions 3).
		versions, err := db.ListSecretVersions(in, s.ID)
		if err != nil || len(versions) != 3 || versions[0].Version != 5 || versions[2].Version != 3 {
			t.Fatalf("versions after 5 writes with max 3: %+v, %v", versions, err)
		}
		if _, v, err := db.FindSecretVersion(in, loc, 2); err != nil || v.Version != 0 {
			t.Errorf("pruned version 2: %+v, %v; want the secret without a version", v, err)
		}
		if _, v, err := db.FindSecretVersion(in, loc, 4); err != nil || v.Version != 4 || v.Ciphertext[0] != 4 {
			t.Errorf("version 4: %+v, %v", v, err)
		}
		// The lean read of the same versions.
		if v, latest, err := db.FindSecretValue(in, loc, 0); err != nil || latest != 5 || v.Version != 5 || v.SecretID != s.ID ||
			v.DataKeyVersion != 1 || v.Ciphertext[0] != 5 || v.Location != loc || v.TenantID != tenant {
			t.Errorf("FindSecretValue newest: %+v, %d, %v", v, latest, err)
		}
		if v, latest, err := db.FindSecretValue(in, loc, 2); err != nil || latest != 5 || v.Version != 0 {
			t.Errorf("FindSecretValue pruned: %+v, %d, %v", v, latest, err)
		}
		if _, _, err := db.FindSecretValue(nodus.WithTenant(ctx, nodus.NewID()), loc, 0); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("FindSecretValue from another tenant: %v", err)
		}

		// Destroy wipes ciphertext, keeps the version row.
		sec, destroyed, err := db.DestroySecretVersions(in, loc, []int{4, 2, 99}, nodus.SystemClock{}.Now())
		if err != nil || !slices.Equal(destroyed, []int{4}) || sec.ID != s.ID {
			t.Fatalf("destroy: %v, %v", destroyed, err)
		}
		if _, v, _ := db.FindSecretVersion(in, loc, 4); v.Version != 4 || v.Ciphertext != nil || v.DestroyedAt == nil {
			t.Errorf("destroyed version 4: %+v", v)
		}
		if _, destroyed, _ := db.DestroySecretVersions(in, loc, []int{4}, nodus.SystemClock{}.Now()); len(destroyed) != 0 {
			t.Errorf("destroying twice: %v", destroyed)
		}

		// Soft delete: not found, not listed, not writable; undelete restores.
		if _, err := db.DeleteSecret(in, loc, nodus.SystemClock{}.Now(), "u2"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.FindSecretVersion(in, loc, 0); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("read a deleted secret: %v", err)
		}
		if _, _, err := db.FindSecretValue(in, loc, 0); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("lean read of a deleted secret: %v", err)
		}
		if _, err := db.DeleteSecret(in, loc, nodus.SystemClock{}.Now(), "u2"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("delete twice: %v", err)
		}
		if _, err := db.WriteSecret(in, vaultWrite(tenant, loc, nil), sealAs(7)); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("write to a deleted secret: %v, want conflict", err)
		}
		if d, err := db.FindSecret(in, loc, true); err != nil || d.DeletedAt == nil || d.DeletedBy != "u2" {
			t.Errorf("deleted secret withDeleted: %+v, %v", d, err)
		}
		list, _, err := db.ListSecrets(in, vault.SecretFilter{Environment: "prod", Path: "/", Recursive: true, Limit: 10})
		if err != nil || len(list) != 0 {
			t.Errorf("list without deleted: %v, %v", list, err)
		}
		if _, err := db.UndeleteSecret(in, loc, nodus.SystemClock{}.Now(), "u2"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UndeleteSecret(in, loc, nodus.SystemClock{}.Now(), "u2"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("undelete a live secret: %v", err)
		}
		if _, v, err := db.FindSecretVersion(in, loc, 0); err != nil || v.Version != 5 {
			t.Errorf("after undelete: %+v, %v", v, err)
		}

		// Destroy all: gone, and the key is free again.
		if _, err := db.DestroySecret(in, loc); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindSecret(in, loc, true); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("after destroy: %v", err)
		}
		if s2, err := db.WriteSecret(in, vaultWrite(tenant, loc, intp(0)), sealAs(1)); err != nil || s2.Version != 1 || s2.ID == s.ID {
			t.Errorf("recreate after destroy: %+v, %v", s2, err)
		}
	})
}

func TestVaultStoreList(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetVault)
		tenant := nodus.NewID()
		in := nodus.WithTenant(ctx, tenant)
		for _, l := range []struct{ env, path, key, tag string }{
			{"prod", "/", "A", "x_y"}, {"prod", "/db", "B", "xzy"}, {"prod", "/db/replica", "C", "x_y"},
			{"prod", "/dbx", "D", ""}, {"dev", "/db", "E", ""},
		} {
			w := vaultWrite(tenant, vault.Location{Environment: l.env, Path: l.path, Key: l.key}, nil)
			w.Tags = []string{l.tag}
			if l.tag == "" {
				w.Tags = nil
			}
			if _, err := db.WriteSecret(in, w, sealAs(1)); err != nil {
				t.Fatal(err)
			}
		}
		keys := func(f vault.SecretFilter) []string {
			t.Helper()
			f.Environment = "prod"
			var out []string
			for {
				page, next, err := db.ListSecrets(in, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range page {
					out = append(out, s.Key)
				}
				if next == "" {
					return out
				}
				f.Cursor = next
			}
		}
		for _, tc := range []struct {
			f    vault.SecretFilter
			want []string
		}{
			{vault.SecretFilter{Path: "/", Limit: 10}, []string{"A"}},
			{vault.SecretFilter{Path: "/", Recursive: true, Limit: 10}, []string{"A", "B", "C", "D"}},
			{vault.SecretFilter{Path: "/", Recursive: true, Limit: 1}, []string{"A", "B", "C", "D"}},
			{vault.SecretFilter{Path: "/db", Limit: 10}, []string{"B"}},
			{vault.SecretFilter{Path: "/db", Recursive: true, Limit: 10}, []string{"B", "C"}},
			{vault.SecretFilter{Path: "/", Recursive: true, Tag: "x_y", Limit: 10}, []string{"A", "C"}},
		} {
			if got := keys(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
			}
		}
		if _, _, err := db.ListSecrets(in, vault.SecretFilter{Environment: "prod", Path: "/", Cursor: "junk", Limit: 5}); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("bad cursor: %v", err)
		}
	})
}

// overlap makes concurrent writers overlap inside their transactions:
// each writer that gets as far as sealing (it has read the secret and
// passed the version check) waits there until want writers have, or until
// a timeout when a guard keeps the others out. Without the guards, every
// connection of the pool reads the same version before any commits.
type overlap struct {
	mu      sync.Mutex
	arrived int
	want    int
	all     chan struct{}
}

func newOverlap(want int) *overlap { return &overlap{want: want, all: make(chan struct{})} }

func (o *overlap) seal(tag byte) vault.SealFunc {
	return func(secretID string, version int) ([]byte, error) {
		o.mu.Lock()
		o.arrived++
		if o.arrived == o.want {
			close(o.all)
		}
		o.mu.Unlock()
		select {
		case <-o.all:
		case <-time.After(300 * time.Millisecond):
		}
		return sealAs(tag)(secretID, version)
	}
}

// TestVaultStoreConcurrentCAS: 20 writers with the same expected version
// at once, exactly one wins, and the versions are 1 and 2 only. On
// PostgreSQL this holds because of the row lock, the (secret_id, version)
// primary key and the conditional update in WriteSecret: with all three
// removed, this test fails: every writer that overlaps "wins".
func TestVaultStoreConcurrentCAS(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetVault)
		tenant := nodus.NewID()
		in := nodus.WithTenant(ctx, tenant)
		loc := vault.Location{Environment: "prod", Path: "/", Key: "API_KEY"}
		first, err := db.WriteSecret(in, vaultWrite(tenant, loc, intp(0)), sealAs(1))
		if err != nil {
			t.Fatal(err)
		}
		const n = 20
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, n)
		o := newOverlap(storetest.Config("").PoolSize)
		for i := range n {
			wg.Go(func() {
				<-start
				w := vaultWrite(tenant, loc, intp(1))
				w.MaxVersions = 100
				_, errs[i] = db.WriteSecret(in, w, o.seal(byte(i)))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch nodus.ErrorCode(err) {
			case "":
				won++
			case nodus.ECONFLICT:
			default:
				t.Errorf("writer failed with %v, want success or conflict", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d writers won, want exactly 1", won)
		}
		versions, err := db.ListSecretVersions(in, first.ID)
		if err != nil || len(versions) != 2 || versions[0].Version != 2 || versions[1].Version != 1 {
			t.Fatalf("versions: %+v, %v", versions, err)
		}
		if s, _ := db.FindSecret(in, loc, false); s.Version != 2 {
			t.Errorf("secret at version %d, want 2", s.Version)
		}

		// 20 creators of a new secret with create-only: one wins too.
		newLoc := vault.Location{Environment: "prod", Path: "/", Key: "NEW_KEY"}
		start = make(chan struct{})
		o = newOverlap(storetest.Config("").PoolSize)
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = db.WriteSecret(in, vaultWrite(tenant, newLoc, intp(0)), o.seal(byte(i)))
			})
		}
		close(start)
		wg.Wait()
		won = 0
		for _, err := range errs {
			if err == nil {
				won++
			} else if nodus.ErrorCode(err) != nodus.ECONFLICT {
				t.Errorf("creator failed with %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d creators won, want exactly 1", won)
		}
	})
}

func TestVaultStoreDataKeysAndCheck(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetVault)
		a, b := nodus.NewID(), nodus.NewID()
		inA, inB := nodus.WithTenant(ctx, a), nodus.WithTenant(ctx, b)
		now := nodus.SystemClock{}.Now()

		if _, err := db.FindVaultCheck(allTenants); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Fatalf("no check value yet: %v", err)
		}
		if err := db.CreateVaultCheck(inA, []byte("x"), now); err == nil {
			t.Error("a tenant scope created the check value")
		}
		if err := db.CreateVaultCheck(allTenants, allBytes(1), now); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateVaultCheck(allTenants, allBytes(2), now); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("second check value: %v", err)
		}
		if err := db.UpdateVaultCheck(allTenants, allBytes(3), allBytes(2), now); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("update from a stale value: %v", err)
		}
		if err := db.UpdateVaultCheck(allTenants, allBytes(3), allBytes(1), now); err != nil {
			t.Fatal(err)
		}
		if v, err := db.FindVaultCheck(allTenants); err != nil || !bytes.Equal(v, allBytes(3)) {
			t.Errorf("check value: %x, %v", v, err)
		}

		dk := func(tenant string, version int, master byte) vault.DataKey {
			return vault.DataKey{TenantID: tenant, Version: version, Wrapped: allBytes(byte(version)), MasterKeyID: master, CreatedAt: now, UpdatedAt: now}
		}
		if _, err := db.FindVaultDataKey(inA, 0); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("no data key yet: %v", err)
		}
		for _, k := range []vault.DataKey{dk(a, 1, 1), dk(a, 2, 2), dk(b, 1, 1)} {
			in := nodus.WithTenant(ctx, k.TenantID)
			if err := db.CreateVaultDataKey(in, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.CreateVaultDataKey(inA, dk(a, 2, 1)); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate data key version: %v", err)
		}
		if err := db.CreateVaultDataKey(inA, dk(b, 3, 1)); err == nil {
			t.Error("tenant A stored a data key for B")
		}
		if got, err := db.FindVaultDataKey(inA, 0); err != nil || got.Version != 2 || got.MasterKeyID != 2 || !bytes.Equal(got.Wrapped, allBytes(2)) {
			t.Errorf("newest of A: %+v, %v", got, err)
		}
		if got, err := db.FindVaultDataKey(inB, 2); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B's version 2 (A's exists): %+v, %v", got, err)
		}
		if _, err := db.FindVaultDataKey(allTenants, 0); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("FindVaultDataKey needs one tenant: %v", err)
		}
		counts, err := db.CountVaultDataKeys(allTenants)
		if err != nil || counts[1] != 2 || counts[2] != 1 {
			t.Errorf("counts: %v, %v", counts, err)
		}
		if counts, _ := db.CountVaultDataKeys(inB); counts[1] != 1 || counts[2] != 0 {
			t.Errorf("B's counts: %v", counts)
		}
		under1, err := db.ListVaultDataKeys(allTenants, 2, 10)
		if err != nil || len(under1) != 2 {
			t.Fatalf("keys not under 2: %v, %v", under1, err)
		}
		if got, _ := db.ListVaultDataKeys(inB, 0, 10); len(got) != 1 || got[0].TenantID != b {
			t.Errorf("B's keys: %v", got)
		}
		k := under1[0]
		k.Wrapped, k.MasterKeyID = allBytes(9), 2
		if ok, err := db.UpdateVaultDataKeyWrap(allTenants, k, 2); err != nil || ok {
			t.Errorf("rewrap with a stale old key id: %v, %v", ok, err)
		}
		if ok, err := db.UpdateVaultDataKeyWrap(inB, k, 1); err != nil || (ok != (k.TenantID == b)) {
			t.Errorf("rewrap across the scope: %v, %v", ok, err)
		}
		if ok, err := db.UpdateVaultDataKeyWrap(allTenants, k, 1); err != nil || (ok != (k.TenantID == a)) {
			t.Errorf("rewrap: %v, %v", ok, err)
		}
		if left, _ := db.ListVaultDataKeys(allTenants, 2, 10); len(left) != 1 {
			t.Errorf("after one rewrap, %d left", len(left))
		}
	})
}

func TestVaultStoreReencrypt(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetVault)
		tenant := nodus.NewID()
		in := nodus.WithTenant(ctx, tenant)
		var ids []string
		for i, key := range []string{"A", "B", "C"} {
			w := vaultWrite(tenant, vault.Location{Environment: "dev", Path: "/", Key: key}, nil)
			w.DataKeyVersion = 1 + i%2 // A and C under 1, B under 2
			s, err := db.WriteSecret(in, w, sealAs(1))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.ID)
		}
		stale, err := db.ListStaleSecretVersions(in, 2, 10)
		if err != nil || len(stale) != 2 || stale[0].Key == "B" || stale[1].Key == "B" || stale[0].Ciphertext == nil {
			t.Fatalf("stale: %+v, %v", stale, err)
		}
		if other, _ := db.ListStaleSecretVersions(nodus.WithTenant(ctx, nodus.NewID()), 2, 10); len(other) != 0 {
			t.Errorf("another tenant sees %d stale versions", len(other))
		}
		rs := []vault.Reencrypted{
			{SecretID: stale[0].SecretID, Version: 1, OldDataKeyVersion: 1, DataKeyVersion: 2, Ciphertext: allBytes(5)},
			{SecretID: stale[1].SecretID, Version: 1, OldDataKeyVersion: 7, DataKeyVersion: 2, Ciphertext: allBytes(5)}, // stale expectation
			{SecretID: ids[1], Version: 1, OldDataKeyVersion: 1, DataKeyVersion: 2, Ciphertext: allBytes(5)},            // already at 2
		}
		if n, err := db.UpdateSecretCiphertexts(in, rs); err != nil || n != 1 {
			t.Fatalf("UpdateSecretCiphertexts = %d, %v; want 1", n, err)
		}
		if left, _ := db.ListStaleSecretVersions(in, 2, 10); len(left) != 1 || left[0].SecretID != stale[1].SecretID {
			t.Errorf("left: %+v", left)
		}
		if n, _ := db.UpdateSecretCiphertexts(nodus.WithTenant(ctx, nodus.NewID()), rs[1:2]); n != 0 {
			t.Error("another tenant re-encrypted a version")
		}
	})
}

func TestVaultStoreTenancy(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetVault)
		a, b := nodus.NewID(), nodus.NewID()
		inA, inB := nodus.WithTenant(ctx, a), nodus.WithTenant(ctx, b)
		loc := vault.Location{Environment: "prod", Path: "/", Key: "K"}
		if _, err := db.WriteSecret(inA, vaultWrite(a, loc, nil), sealAs(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.WriteSecret(inA, vaultWrite(b, loc, nil), sealAs(1)); err == nil {
			t.Error("a write for B in A's scope")
		}
		now := nodus.SystemClock{}.Now()
		if err := db.CreateSecretEnvironment(inA, vault.Environment{Slug: "qa", Name: "QA", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateVaultGrant(inA, vault.Grant{ID: nodus.NewID(), SubjectType: "role", Subject: "user", Environment: "*",
			PathPrefix: "/", Permission: "read", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateVaultConfig(inA, vault.TenantConfig{MaxVersions: 4, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}

		// B sees nothing of A's, and cannot change it.
		if _, err := db.FindSecret(inB, loc, true); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's secret: %v", err)
		}
		if _, _, err := db.FindSecretVersion(inB, loc, 1); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B reads A's version: %v", err)
		}
		if l, _, _ := db.ListSecrets(inB, vault.SecretFilter{Environment: "prod", Path: "/", Recursive: true, IncludeDeleted: true, Limit: 10}); len(l) != 0 {
			t.Errorf("B lists %d of A's secrets", len(l))
		}
		for name, err := range map[string]error{
			"delete":   second(db.DeleteSecret(inB, loc, now, "x")),
			"undelete": second(db.UndeleteSecret(inB, loc, now, "x")),
			"destroy":  second(db.DestroySecret(inB, loc)),
			"env":      db.DeleteSecretEnvironment(inB, "qa"),
		} {
			if nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("B %s on A's: %v", name, err)
			}
		}
		if _, d, err := db.DestroySecretVersions(inB, loc, []int{1}, now); nodus.ErrorCode(err) != nodus.ENOTFOUND || len(d) != 0 {
			t.Errorf("B destroys A's versions: %v %v", d, err)
		}
		if envs, _ := db.ListSecretEnvironments(inB); len(envs) != 0 {
			t.Errorf("B sees environments %v", envs)
		}
		if g, _ := db.ListVaultGrants(inB, vault.GrantFilter{}); len(g) != 0 {
			t.Errorf("B sees grants %v", g)
		}
		ga, _ := db.ListVaultGrants(inA, vault.GrantFilter{Role: "user", UserID: "u"})
		if len(ga) != 1 {
			t.Fatalf("A's grants for the role user: %v", ga)
		}
		if _, err := db.DeleteVaultGrant(inB, ga[0].ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B deletes A's grant: %v", err)
		}
		if g, _ := db.ListVaultGrants(inA, vault.GrantFilter{Role: "viewer", UserID: "u"}); len(g) != 0 {
			t.Errorf("grants for a viewer: %v", g)
		}
		if _, err := db.FindVaultConfig(inB); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B's config: %v", err)
		}
		if c, err := db.FindVaultConfig(inA); err != nil || c.MaxVersions != 4 {
			t.Errorf("A's config: %+v, %v", c, err)
		}

		// A's environment with a secret cannot go; an empty one can.
		if err := db.CreateSecretEnvironment(inA, vault.Environment{Slug: "qa", Name: "again", CreatedAt: now}); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate environment: %v", err)
		}
		if _, err := db.WriteSecret(inA, vaultWrite(a, vault.Location{Environment: "qa", Path: "/", Key: "K"}, nil), sealAs(1)); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteSecretEnvironment(inA, "qa"); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("delete a non-empty environment: %v", err)
		}

		// Without a scope everything fails closed.
		noScope := context.Background()
		for name, err := range map[string]error{
			"find":      second(db.FindSecret(noScope, loc, false)),
			"list":      third(db.ListSecrets(noScope, vault.SecretFilter{Environment: "prod", Path: "/"})),
			"write":     second(db.WriteSecret(noScope, vaultWrite(a, loc, nil), sealAs(1))),
			"versions":  second(db.ListSecretVersions(noScope, "x")),
			"grants":    second(db.ListVaultGrants(noScope, vault.GrantFilter{})),
			"envs":      second(db.ListSecretEnvironments(noScope)),
			"data keys": second(db.ListVaultDataKeys(noScope, 0, 1)),
			"check":     second(db.FindVaultCheck(noScope)),
			"handles":   third(db.ListSecretHandles(noScope, "", 10)),
			"handle":    second(db.FindSecretHandle(noScope, nodus.NewID())),
		} {
			if !errors.Is(err, nodus.ErrNoScope) {
				t.Errorf("%s without a scope: %v", name, err)
			}
		}
	})
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

func TestSecretHandleStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetMain)
		a, b := nodus.NewID(), nodus.NewID()
		inA, inB := nodus.WithTenant(ctx, a), nodus.WithTenant(ctx, b)
		now := nodus.SystemClock{}.Now()
		h := vault.Handle{ID: nodus.NewID(), Location: vault.Location{Environment: "prod", Path: "/llm", Key: "OPENAI_API_KEY"},
			AllowedHosts: []string{"api.openai.com"}, Purpose: "gateway.provider_key", Label: "OpenAI",
			CreatedAt: now, CreatedBy: "u1", UpdatedAt: now, UpdatedBy: "u1"}
		if err := db.CreateSecretHandle(inA, h); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindSecretHandle(inA, h.ID)
		h.TenantID = a
		if err != nil || got.TenantID != a || got.Location != h.Location || !slices.Equal(got.AllowedHosts, h.AllowedHosts) ||
			got.Purpose != h.Purpose || got.Label != h.Label || got.LastUsedAt != nil || !got.CreatedAt.Equal(now) {
			t.Fatalf("FindSecretHandle = %+v, %v", got, err)
		}
		if _, err := db.FindSecretHandle(inB, h.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's handle: %v", err)
		}
		if got, err := db.FindSecretHandle(allTenants, h.ID); err != nil || got.ID != h.ID {
			t.Errorf("platform scope: %v", err)
		}
		for name, err := range map[string]error{
			"touch":  db.TouchSecretHandle(inB, h.ID, now, "x"),
			"update": db.UpdateSecretHandle(inB, h),
			"delete": db.DeleteSecretHandle(inB, h.ID),
		} {
			if nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("B %s A's handle: %v", name, err)
			}
		}
		later := now.Add(time.Minute)
		if err := db.TouchSecretHandle(inA, h.ID, later, "u9"); err != nil {
			t.Fatal(err)
		}
		h.Version, h.AllowedHosts, h.Label = 3, []string{"*.openai.com"}, "renamed"
		if err := db.UpdateSecretHandle(inA, h); err != nil {
			t.Fatal(err)
		}
		got, _ = db.FindSecretHandle(inA, h.ID)
		if got.LastUsedAt == nil || !got.LastUsedAt.Equal(later) || got.LastUsedBy != "u9" || got.Version != 3 ||
			!slices.Equal(got.AllowedHosts, []string{"*.openai.com"}) || got.Label != "renamed" {
			t.Errorf("after touch and update: %+v", got)
		}
		for range 4 {
			x := h
			x.ID = nodus.NewID()
			if err := db.CreateSecretHandle(inA, x); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.CreateSecretHandle(inB, h); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("B reuses A's handle id: %v", err)
		}
		var all []vault.Handle
		for cursor := ""; ; {
			page, next, err := db.ListSecretHandles(inA, cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if next == "" {
				break
			}
			cursor = next
		}
		if len(all) != 5 || all[0].ID != h.ID {
			t.Errorf("listed %d handles of A, want 5", len(all))
		}
		if l, _, _ := db.ListSecretHandles(inB, "", 10); len(l) != 0 {
			t.Errorf("B lists %d handles", len(l))
		}
		if err := db.DeleteSecretHandle(inA, h.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindSecretHandle(inA, h.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("after delete: %v", err)
		}
	})
}
