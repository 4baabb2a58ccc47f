package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

// sealedCalls calls every method of the service that must refuse while
// the vault is sealed. Sealed, Unseal, RetryUnseal, KeyStatus and
// DeleteExpiredMachineTokens work while sealed, and Can says false.
func sealedCalls(in context.Context, handleID string) map[string]func(s *vault.Service) error {
	l := loc("prod", "/", "K")
	platform := nodus.WithAllTenants(ctx)
	tenant, _ := nodus.RequireTenant(in)
	return map[string]func(s *vault.Service) error{
		"ListEnvironments":   func(s *vault.Service) error { _, err := s.ListEnvironments(in, admin); return err },
		"CreateEnvironment":  func(s *vault.Service) error { _, err := s.CreateEnvironment(in, admin, "qa", ""); return err },
		"DeleteEnvironment":  func(s *vault.Service) error { return s.DeleteEnvironment(in, admin, "qa") },
		"FindTenantConfig":   func(s *vault.Service) error { _, err := s.FindTenantConfig(in, admin); return err },
		"UpdateTenantConfig": func(s *vault.Service) error { _, err := s.UpdateTenantConfig(in, admin, 5); return err },
		"ListSecrets": func(s *vault.Service) error {
			_, _, err := s.ListSecrets(in, admin, vault.SecretFilter{Environment: "prod"})
			return err
		},
		"FindSecret":   func(s *vault.Service) error { _, err := s.FindSecret(in, admin, l); return err },
		"ListVersions": func(s *vault.Service) error { _, err := s.ListVersions(in, admin, l); return err },
		"ReadSecret":   func(s *vault.Service) error { _, err := s.ReadSecret(in, admin, l, vault.ReadOptions{}); return err },
		"WriteSecret": func(s *vault.Service) error {
			_, err := s.WriteSecret(in, admin, vault.WriteInput{Location: l, Value: vault.NewValue("x")})
			return err
		},
		"DeleteSecret":    func(s *vault.Service) error { return s.DeleteSecret(in, admin, l) },
		"UndeleteSecret":  func(s *vault.Service) error { return s.UndeleteSecret(in, admin, l) },
		"DestroyVersions": func(s *vault.Service) error { _, err := s.DestroyVersions(in, admin, l, []int{1}); return err },
		"DestroySecret":   func(s *vault.Service) error { return s.DestroySecret(in, admin, l) },
		"ListGrants":      func(s *vault.Service) error { _, err := s.ListGrants(in, admin); return err },
		"CreateGrant": func(s *vault.Service) error {
			_, err := s.CreateGrant(in, admin, vault.GrantInput{SubjectType: "role", Subject: "user", Environment: "*", Permission: "read"})
			return err
		},
		"DeleteGrant": func(s *vault.Service) error { return s.DeleteGrant(in, admin, nodus.NewID()) },
		"CreateHandle": func(s *vault.Service) error {
			_, err := s.CreateHandle(in, admin, vault.HandleInput{Location: l})
			return err
		},
		"FindHandle":  func(s *vault.Service) error { _, err := s.FindHandle(in, admin, handleID); return err },
		"ListHandles": func(s *vault.Service) error { _, _, err := s.ListHandles(in, admin, "", 0); return err },
		"UpdateHandle": func(s *vault.Service) error {
			_, err := s.UpdateHandle(in, admin, handleID, vault.HandleInput{Location: l})
			return err
		},
		"DeleteHandle":    func(s *vault.Service) error { return s.DeleteHandle(in, admin, handleID) },
		"ResolveHandle":   func(s *vault.Service) error { _, err := s.ResolveHandle(in, handleID, "u"); return err },
		"RotateDataKey":   func(s *vault.Service) error { _, err := s.RotateDataKey(in, admin, tenant); return err },
		"ReencryptTenant": func(s *vault.Service) error { _, err := s.ReencryptTenant(in, admin, tenant, 0); return err },
		"RotateMasterKey": func(s *vault.Service) error { _, err := s.RotateMasterKey(platform, vault.System(), 0); return err },
		"PurgeTenant":     func(s *vault.Service) error { return s.PurgeTenant(platform, vault.System(), tenant) },
		"CreateMachine": func(s *vault.Service) error {
			_, _, err := s.CreateMachine(in, admin, vault.MachineInput{Name: "ci"})
			return err
		},
		"FindMachine":  func(s *vault.Service) error { _, err := s.FindMachine(in, admin, nodus.NewID()); return err },
		"ListMachines": func(s *vault.Service) error { _, _, err := s.ListMachines(in, admin, "", 0); return err },
		"UpdateMachine": func(s *vault.Service) error {
			_, err := s.UpdateMachine(in, admin, nodus.NewID(), vault.MachineUpdate{})
			return err
		},
		"RotateMachineSecret": func(s *vault.Service) error { _, _, err := s.RotateMachineSecret(in, admin, nodus.NewID()); return err },
		"DeleteMachine":       func(s *vault.Service) error { return s.DeleteMachine(in, admin, nodus.NewID()) },
		"Login": func(s *vault.Service) error {
			_, err := s.Login(ctx, "ndc_00000000000000000000000000000000", "ndcs_x", "127.0.0.1")
			return err
		},
		"ResolveMachineToken": func(s *vault.Service) error {
			_, err := s.ResolveMachineToken(ctx, vault.MachineTokenPrefix+strings.Repeat("A", 43), "127.0.0.1")
			return err
		},
	}
}

// TestSealed is SECURITY.md check 14: with no master key, a wrong one, a
// lost key file replaced by a new one, or a key that has been retired,
// the vault stays sealed: every call fails with EUNAVAILABLE, nothing is
// decrypted, and a later Unseal with the right key opens it.
func TestSealed(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, _ := tenantCtx()
		write(t, e.svc, in, loc("prod", "/", "K"), canary)
		h, err := e.svc.CreateHandle(in, admin, vault.HandleInput{Location: loc("prod", "/", "K")})
		if err != nil {
			t.Fatal(err)
		}
		calls := sealedCalls(in, h.ID)

		// Every method of Service is either in calls or answers sealed.
		// Deleting expired machine tokens needs no key.
		exempt := map[string]bool{"Sealed": true, "Unseal": true, "RetryUnseal": true, "KeyStatus": true, "Can": true,
			"DeleteExpiredMachineTokens": true}
		typ := reflect.TypeOf(e.svc)
		for i := range typ.NumMethod() {
			if name := typ.Method(i).Name; calls[name] == nil && !exempt[name] {
				t.Errorf("method %s is not checked while sealed: add it to sealedCalls", name)
			}
		}

		dir := t.TempDir()
		lostFile, err := keyring.Load("", dir) // the key file was lost: a new one is made
		if err != nil || !lostFile.Created() {
			t.Fatal(err)
		}
		wrong := ringOf(t, map[byte][]byte{1: newKey(t)}, 0)
		for name, ring := range map[string]*keyring.Keyring{
			"no master key":            nil,
			"wrong key":                wrong,
			"a new key file":           lostFile,
			"the right key under id 2": ringOf(t, map[byte][]byte{2: e.key}, 0),
			"a retired key only":       ringOf(t, map[byte][]byte{3: newKey(t)}, 0),
		} {
			svc := e.open(t, ring)
			if !svc.Sealed() {
				t.Fatalf("%s: a new service is open before Unseal", name)
			}
			err := svc.Unseal(ctx)
			code(t, name+": Unseal", err, nodus.EUNAVAILABLE)
			if err == nil || !strings.Contains(err.Error(), "vault is sealed") || !svc.Sealed() {
				t.Fatalf("%s: Unseal = %v, sealed %v", name, err, svc.Sealed())
			}
			for call, fn := range calls {
				err := fn(svc)
				code(t, name+": "+call, err, nodus.EUNAVAILABLE)
				if err != nil && !strings.Contains(nodus.ErrorMessage(err), "vault is sealed: ") {
					t.Errorf("%s: %s: %q does not say the vault is sealed", name, call, nodus.ErrorMessage(err))
				}
				// Login answers anyone: it does not say why.
				if call == "Login" && nodus.ErrorMessage(err) != "vault is sealed: ask the operator to unseal it" {
					t.Errorf("%s: Login tells an unauthenticated caller why the vault is sealed: %q", name, nodus.ErrorMessage(err))
				}
			}
			if svc.Can(in, vault.RoleOrgAdmin, admin.UserID, "prod", "/", vault.PermRead) {
				t.Errorf("%s: Can is true while sealed", name)
			}
			st, err := svc.KeyStatus(nodus.WithAllTenants(ctx), vault.System())
			if err != nil || !st.Sealed || st.SealedReason == "" || st.CheckKeyID != 1 {
				t.Errorf("%s: KeyStatus while sealed = %+v, %v", name, st, err)
			}
		}

		// The check value is gone but data keys exist: a wrong key is not
		// allowed to make a new check value; the right one is.
		if err := db.Write(allTenants, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM vault_meta`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		w := e.open(t, wrong)
		code(t, "no check value, wrong key", w.Unseal(ctx), nodus.EUNAVAILABLE)
		if _, err := db.FindVaultCheck(nodus.WithAllTenants(ctx)); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("a wrong key stored a check value: %v", err)
		}
		right := e.open(t, e.ring)
		if err := right.Unseal(ctx); err != nil || right.Sealed() {
			t.Fatalf("right key: %v", err)
		}
		if got := read(t, right, in, admin, loc("prod", "/", "K"), vault.ReadOptions{}); got != canary {
			t.Errorf("after unseal: %q", got)
		}
		code(t, "wrong key after the check value was re-made", e.open(t, wrong).Unseal(ctx), nodus.EUNAVAILABLE)
	})
}

// TestSealedUntilMigrated: a vault database without its tables keeps the
// vault sealed (Nodus starts anyway), and Unseal opens it once migrated.
func TestSealedUntilMigrated(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		auditor := &switchAuditor{inner: audit.NewService(db, nil)}
		svc, err := vault.NewService(vault.Config{Store: db, Handles: db, Keyring: ringOf(t, map[byte][]byte{1: newKey(t)}, 0), Audit: auditor})
		if err != nil {
			t.Fatal(err)
		}
		err = svc.Unseal(ctx)
		code(t, "unmigrated", err, nodus.EUNAVAILABLE)
		if !strings.Contains(nodus.ErrorMessage(err), "migrations") {
			t.Errorf("the reason does not mention migrations: %v", err)
		}
		// RetryUnseal opens it by itself once the tables exist.
		opened := make(chan struct{})
		done := make(chan struct{})
		go func() {
			svc.RetryUnseal(ctx, 5*time.Millisecond, func() { close(opened) })
			close(done)
		}()
		time.Sleep(20 * time.Millisecond)
		if !svc.Sealed() {
			t.Fatal("opened before the migrations")
		}
		migrate(t, db)
		select {
		case <-opened:
		case <-time.After(10 * time.Second):
			t.Fatal("RetryUnseal did not open the vault after the migrations")
		}
		<-done
		if svc.Sealed() {
			t.Fatal("still sealed")
		}
		in, _ := tenantCtx()
		write(t, svc, in, loc("dev", "/", "K"), "v")

		// A wrong key is not retried: RetryUnseal gives up at once.
		wrong, err := vault.NewService(vault.Config{Store: db, Handles: db, Keyring: ringOf(t, map[byte][]byte{1: newKey(t)}, 0), Audit: auditor})
		if err != nil {
			t.Fatal(err)
		}
		code(t, "wrong key", wrong.Unseal(ctx), nodus.EUNAVAILABLE)
		stopped := make(chan struct{})
		go func() {
			wrong.RetryUnseal(ctx, time.Millisecond, func() { t.Error("a wrong key opened the vault") })
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatal("RetryUnseal kept retrying a wrong key")
		}
	})
}

// TestReadsAreAudited is check 15: every value read is in the audit log
// (who, which secret, where, which version, never the value), and when
// the audit log cannot be written the read fails without a value.
func TestReadsAreAudited(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, tenant := tenantCtx()
		l := loc("prod", "/db", "PASSWORD")
		s := write(t, e.svc, in, l, canary)
		write(t, e.svc, in, loc("prod", "/db", "URL"), "postgres://app:${PASSWORD}@db")
		h, err := e.svc.CreateHandle(in, admin, vault.HandleInput{Location: l, Purpose: "app.db"})
		if err != nil {
			t.Fatal(err)
		}
		before := len(entries(t, db))
		reader := vault.Principal{UserID: admin.UserID, Role: vault.RoleOrgAdmin, ActorKind: audit.ActorToken, Address: "192.0.2.7", UserAgent: "cli"}
		if got := read(t, e.svc, in, reader, l, vault.ReadOptions{}); got != canary {
			t.Fatalf("read %q", got)
		}
		if _, err := e.svc.ResolveHandle(in, h.ID, "0190d7a0-0000-7000-8000-0000000000c3"); err != nil {
			t.Fatal(err)
		}
		if got := read(t, e.svc, in, reader, loc("prod", "/db", "URL"), vault.ReadOptions{Expand: true}); got != "postgres://app:"+canary+"@db" {
			t.Fatalf("expanded %q", got)
		}
		all := entries(t, db)
		got := all[before:]
		if want := []string{"secret.read", "secret.handle_use", "secret.read", "secret.read"}; !slices.Equal(actions(got), want) {
			t.Fatalf("audited %v, want %v", actions(got), want)
		}
		r := got[0]
		if r.TenantID != tenant || r.ActorID != admin.UserID || r.ActorKind != audit.ActorToken || r.TargetType != "secret" ||
			r.TargetID != s.ID || r.Address != "192.0.2.7" || r.UserAgent != "cli" {
			t.Errorf("read entry %+v", r)
		}
		wantChanges := map[string]string{"environment": "prod", "path": "/db", "key": "PASSWORD", "version": "1"}
		for k, v := range wantChanges {
			if c, ok := r.Changes[k]; !ok || fmt.Sprint(c.After) != v {
				t.Errorf("read entry change %s = %#v, want %v", k, r.Changes[k], v)
			}
		}
		if u := got[1]; u.ActorID != "0190d7a0-0000-7000-8000-0000000000c3" || u.TargetID != s.ID || u.Changes["handle_id"].After != h.ID ||
			u.Changes["purpose"].After != "app.db" {
			t.Errorf("handle use entry %+v", u)
		}
		if ref := got[3]; ref.Changes["key"].After != "PASSWORD" || ref.Changes["referenced_by"].After != "prod:/db/URL" {
			t.Errorf("reference read entry %+v", ref)
		}
		for _, entry := range all {
			b, _ := json.Marshal(entry)
			if strings.Contains(string(b), canary) {
				t.Fatalf("audit entry %s holds the value", entry.Action)
			}
		}

		// The audit log fails: every way of reading fails, without a value.
		e.audit.fail.Store(true)
		n := e.audit.n.Load()
		r1, err := e.svc.ReadSecret(in, admin, l, vault.ReadOptions{})
		if r1 != nil {
			t.Error("ReadSecret returned a value it could not audit")
		}
		code(t, "read, audit down", err, nodus.EUNAVAILABLE)
		if !errors.Is(err, errAuditDown) {
			t.Errorf("the cause is not kept: %v", err)
		}
		r2, err := e.svc.ResolveHandle(in, h.ID, "")
		if r2 != nil {
			t.Error("ResolveHandle returned a value it could not audit")
		}
		code(t, "handle, audit down", err, nodus.EUNAVAILABLE)
		r3, err := e.svc.ReadSecret(in, admin, loc("prod", "/db", "URL"), vault.ReadOptions{Expand: true})
		if r3 != nil {
			t.Error("an expanded read returned a value it could not audit")
		}
		code(t, "expanded read, audit down", err, nodus.EUNAVAILABLE)
		if e.audit.n.Load() != n || len(entries(t, db)) != len(all) {
			t.Error("entries were recorded while the audit log was down")
		}

		// Only the referenced read fails to audit: the expanded read fails.
		e.audit.fail.Store(false)
		fails := &failAfter{inner: e.audit, n: 1}
		svc, err := vault.NewService(vault.Config{Store: db, Handles: db, Keyring: e.ring, Audit: fails})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Unseal(ctx); err != nil {
			t.Fatal(err)
		}
		r4, err := svc.ReadSecret(in, admin, loc("prod", "/db", "URL"), vault.ReadOptions{Expand: true})
		if r4 != nil {
			t.Error("an expanded read whose reference was not audited returned a value")
		}
		code(t, "reference not audited", err, nodus.EUNAVAILABLE)
	})
}

// failAfter records n entries, then fails.
type failAfter struct {
	inner *switchAuditor
	mu    sync.Mutex
	n     int
}

func (f *failAfter) Record(ctx context.Context, e audit.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return errAuditDown
	}
	f.n--
	return f.inner.Record(ctx, e)
}

// TestWritesAreAudited: writes, deletes, destroys and rotations are in the
// audit log too.
func TestWritesAreAudited(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, tenant := tenantCtx()
		l := loc("staging", "/", "K")
		before := len(entries(t, db))
		write(t, e.svc, in, l, canary)
		mustOK(t, e.svc.DeleteSecret(in, admin, l))
		mustOK(t, e.svc.UndeleteSecret(in, admin, l))
		if _, err := e.svc.DestroyVersions(in, admin, l, []int{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.RotateDataKey(in, admin, tenant); err != nil {
			t.Fatal(err)
		}
		mustOK(t, e.svc.DestroySecret(in, admin, l))
		got := entries(t, db)[before:]
		want := []string{"secret.write", "secret.delete", "secret.undelete", "secret.destroy", "vault.rotate_data_key", "secret.destroy"}
		if !slices.Equal(actions(got), want) {
			t.Fatalf("audited %v, want %v", actions(got), want)
		}
		if c := got[0].Changes; fmt.Sprint(c["version"].After) != "1" || c["key"].After != "K" {
			t.Errorf("write entry changes %v", c)
		}
		if c := got[3].Changes; fmt.Sprint(c["versions"].After) != "[1]" {
			t.Errorf("destroy entry changes %v", c)
		}
	})
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentCheckAndSet is check 16 through the service: 20 writers
// with the same expected version, exactly one wins.
func TestConcurrentCheckAndSet(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, _ := tenantCtx()
		l := loc("prod", "/", "COUNTER")
		write(t, e.svc, in, l, "v1")
		const n = 20
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				one := 1
				_, errs[i] = e.svc.WriteSecret(in, admin, vault.WriteInput{Location: l, Value: vault.NewValue("writer"), CAS: &one})
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else {
				code(t, "losing writer", err, nodus.ECONFLICT)
			}
		}
		if won != 1 {
			t.Fatalf("%d writers won, want 1", won)
		}
		vs, err := e.svc.ListVersions(in, admin, l)
		if err != nil || len(vs) != 2 {
			t.Errorf("versions %+v, %v", vs, err)
		}

		// Without CAS, concurrent first writes all land, one after another.
		var wg2 sync.WaitGroup
		for i := range 5 {
			wg2.Go(func() {
				_, errs[i] = e.svc.WriteSecret(in, admin, vault.WriteInput{Location: loc("prod", "/", "FRESH"), Value: vault.NewValue("x")})
			})
		}
		wg2.Wait()
		for _, err := range errs[:5] {
			mustOK(t, err)
		}
		if s, _ := e.svc.FindSecret(in, admin, loc("prod", "/", "FRESH")); s == nil || s.Version != 5 {
			t.Errorf("5 writes without CAS: %+v", s)
		}
	})
}

// TestVersions: create-only, CAS, reading versions, the kept-versions
// limit, soft delete, undelete and destroy through the service.
func TestVersions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, _ := tenantCtx()
		l := loc("dev", "/app/api", "TOKEN")
		zero := 0
		s, err := e.svc.WriteSecret(in, admin, vault.WriteInput{Location: l, Value: vault.NewValue("v1"), Comment: "the token",
			Tags: []string{"api", "api", "team:core"}, Metadata: json.RawMessage(` { "owner" : "core" } `), CAS: &zero})
		if err != nil || s.Version != 1 || !slices.Equal(s.Tags, []string{"api", "team:core"}) || string(s.Metadata) != `{"owner":"core"}` {
			t.Fatalf("create: %+v, %v", s, err)
		}
		_, err = e.svc.WriteSecret(in, admin, vault.WriteInput{Location: l, Value: vault.NewValue("again"), CAS: &zero})
		code(t, "create-only on an existing secret", err, nodus.ECONFLICT)
		for i := 2; i <= 12; i++ {
			prev := i - 1
			if s, err = e.svc.WriteSecret(in, admin, vault.WriteInput{Location: l, Value: vault.NewValue("v" + string(rune('0'+i%10))), CAS: &prev}); err != nil {
				t.Fatal(err)
			}
		}
		// 12 versions written, the default 10 kept.
		vs, _ := e.svc.ListVersions(in, admin, l)
		if len(vs) != vault.DefaultMaxVersions || vs[0].Version != 12 || vs[9].Version != 3 {
			t.Fatalf("versions after 12 writes: %d, newest %d", len(vs), vs[0].Version)
		}
		_, err = e.svc.ReadSecret(in, admin, l, vault.ReadOptions{Version: 2})
		code(t, "pruned version", err, nodus.ENOTFOUND)
		_, err = e.svc.ReadSecret(in, admin, l, vault.ReadOptions{Version: 13})
		code(t, "future version", err, nodus.ENOTFOUND)
		if got := read(t, e.svc, in, admin, l, vault.ReadOptions{Version: 3}); got != "v3" {
			t.Errorf("version 3 = %q", got)
		}
		// A smaller limit applies at the next write.
		if c, err := e.svc.UpdateTenantConfig(in, admin, 2); err != nil || c.MaxVersions != 2 {
			t.Fatal(err)
		}
		_, err = e.svc.UpdateTenantConfig(in, admin, 0)
		code(t, "max versions 0", err, nodus.EINVALID)
		_, err = e.svc.UpdateTenantConfig(in, viewer, 3)
		code(t, "viewer changes settings", err, nodus.EFORBIDDEN)
		write(t, e.svc, in, l, "v13")
		if vs, _ := e.svc.ListVersions(in, admin, l); len(vs) != 2 || vs[1].Version != 12 {
			t.Errorf("after limit 2: %+v", vs)
		}
		// The write's audit entry says which versions it left deleted.
		var last audit.Entry
		for _, en := range entries(t, db) {
			if en.Action == "secret.write" {
				last = en
			}
		}
		if c := last.Changes["versions_deleted_through"]; fmt.Sprint(c.After) != "11" {
			t.Errorf("the last write's audit entry: versions_deleted_through %+v, want 11", c)
		}

		// Destroy one version: it stays listed, as destroyed, and reads as not found.
		destroyed, err := e.svc.DestroyVersions(in, admin, l, []int{12})
		if err != nil || !slices.Equal(destroyed, []int{12}) {
			t.Fatalf("destroy: %v, %v", destroyed, err)
		}
		_, err = e.svc.ReadSecret(in, admin, l, vault.ReadOptions{Version: 12})
		code(t, "destroyed version", err, nodus.ENOTFOUND)
		if vs, _ := e.svc.ListVersions(in, admin, l); !vs[1].Destroyed || vs[0].Destroyed {
			t.Errorf("destroyed flags: %+v", vs)
		}
		_, err = e.svc.DestroyVersions(in, vault.Principal{UserID: admin.UserID, Role: vault.RoleUser}, l, []int{13})
		code(t, "a user destroys", err, nodus.EFORBIDDEN)

		// Soft delete and undelete.
		mustOK(t, e.svc.DeleteSecret(in, admin, l))
		_, err = e.svc.ReadSecret(in, admin, l, vault.ReadOptions{})
		code(t, "read a deleted secret", err, nodus.ENOTFOUND)
		_, err = e.svc.FindSecret(in, admin, l)
		code(t, "find a deleted secret", err, nodus.ENOTFOUND)
		_, err = e.svc.WriteSecret(in, admin, vault.WriteInput{Location: l, Value: vault.NewValue("x")})
		code(t, "write a deleted secret", err, nodus.ECONFLICT)
		if list, _, _ := e.svc.ListSecrets(in, admin, vault.SecretFilter{Environment: "dev", Path: "/app", Recursive: true, IncludeDeleted: true}); len(list) != 1 || list[0].DeletedAt == nil {
			t.Errorf("admin's list with deleted: %+v", list)
		}
		_, _, err = e.svc.ListSecrets(in, viewer, vault.SecretFilter{Environment: "dev", IncludeDeleted: true})
		code(t, "viewer lists deleted", err, nodus.EFORBIDDEN)
		mustOK(t, e.svc.UndeleteSecret(in, admin, l))
		if got := read(t, e.svc, in, admin, l, vault.ReadOptions{}); got != "v13" {
			t.Errorf("after undelete: %q", got)
		}
		mustOK(t, e.svc.DestroySecret(in, admin, l))
		code(t, "read a destroyed secret", func() error { _, err := e.svc.ReadSecret(in, admin, l, vault.ReadOptions{}); return err }(), nodus.ENOTFOUND)

		// Validation.
		big := strings.Repeat("x", vault.MaxValueBytes+1)
		for name, in2 := range map[string]vault.WriteInput{
			"bad env":      {Location: loc("Prod", "/", "K")},
			"bad path":     {Location: loc("dev", "/a/../b", "K")},
			"trailing /":   {Location: loc("dev", "/a/", "K")},
			"too deep":     {Location: loc("dev", "/1/2/3/4/5/6/7/8/9/10/11", "K")},
			"bad key":      {Location: loc("dev", "/", "1K")},
			"big value":    {Location: loc("dev", "/", "K"), Value: vault.NewValue(big)},
			"metadata":     {Location: loc("dev", "/", "K"), Metadata: json.RawMessage(`[1]`)},
			"big meta":     {Location: loc("dev", "/", "K"), Metadata: json.RawMessage(`{"a":"` + strings.Repeat("x", 5000) + `"}`)},
			"tag":          {Location: loc("dev", "/", "K"), Tags: []string{"Bad Tag"}},
			"many tags":    {Location: loc("dev", "/", "K"), Tags: strings.Split("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u", ",")},
			"negative cas": {Location: loc("dev", "/", "K"), CAS: intp(-1)},
		} {
			_, err := e.svc.WriteSecret(in, admin, in2)
			code(t, name, err, nodus.EINVALID)
		}
		_, err = e.svc.WriteSecret(in, admin, vault.WriteInput{Location: loc("qa", "/", "K")})
		code(t, "unknown environment", err, nodus.ENOTFOUND)
		if _, err := e.svc.CreateEnvironment(in, admin, "qa", "QA"); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.CreateEnvironment(in, admin, "prod", "")
		code(t, "create a default environment", err, nodus.ECONFLICT)
		write(t, e.svc, in, loc("qa", "/", "K"), "in qa")
		envs, _ := e.svc.ListEnvironments(in, viewer)
		if len(envs) != 4 || envs[3].Slug != "qa" || !envs[0].Default {
			t.Errorf("environments %+v", envs)
		}
		code(t, "delete a non-empty environment", e.svc.DeleteEnvironment(in, admin, "qa"), nodus.ECONFLICT)
		code(t, "delete prod", e.svc.DeleteEnvironment(in, admin, "prod"), nodus.EINVALID)
		mustOK(t, e.svc.DestroySecret(in, admin, loc("qa", "/", "K")))
		mustOK(t, e.svc.DeleteEnvironment(in, admin, "qa"))
	})
}

// TestTenancy: one tenant's secrets, handles and grants are not found from
// another's scope, and a call without a scope fails closed.
func TestTenancy(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		inA, _ := tenantCtx()
		inB, _ := tenantCtx()
		l := loc("prod", "/", "K")
		write(t, e.svc, inA, l, canary)
		h, err := e.svc.CreateHandle(inA, admin, vault.HandleInput{Location: l})
		if err != nil {
			t.Fatal(err)
		}
		g, err := e.svc.CreateGrant(inA, admin, vault.GrantInput{SubjectType: "role", Subject: "user", Environment: "*", Permission: "read"})
		if err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"read":    second(e.svc.ReadSecret(inB, admin, l, vault.ReadOptions{})),
			"find":    second(e.svc.FindSecret(inB, admin, l)),
			"resolve": second(e.svc.ResolveHandle(inB, h.ID, "")),
			"handle":  second(e.svc.FindHandle(inB, admin, h.ID)),
			"update":  second(e.svc.UpdateHandle(inB, admin, h.ID, vault.HandleInput{Location: l})),
			"delete":  e.svc.DeleteHandle(inB, admin, h.ID),
			"grant":   e.svc.DeleteGrant(inB, admin, g.ID),
			"destroy": e.svc.DestroySecret(inB, admin, l),
		} {
			code(t, "B "+name, err, nodus.ENOTFOUND)
		}
		if list, _, _ := e.svc.ListSecrets(inB, admin, vault.SecretFilter{Environment: "prod", Recursive: true}); len(list) != 0 {
			t.Errorf("B lists A's secrets")
		}
		if got := read(t, e.svc, inA, admin, l, vault.ReadOptions{}); got != canary {
			t.Errorf("A's secret after B's attempts: %q", got)
		}
		_, err = e.svc.ReadSecret(ctx, admin, l, vault.ReadOptions{})
		if !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("read without a scope: %v", err)
		}
		_, err = e.svc.ReadSecret(nodus.WithAllTenants(ctx), admin, l, vault.ReadOptions{})
		if !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("read in the platform scope (no single tenant): %v", err)
		}
	})
}

func second[T any](_ T, err error) error { return err }

func intp(n int) *int { return &n }

// TestValueNeverPrints: a Value and everything holding one print, log and
// encode as [redacted].
func TestValueNeverPrints(t *testing.T) {
	v := vault.NewValue(canary)
	r := vault.Revealed{Value: v}
	w := vault.WriteInput{Value: v}
	var b strings.Builder
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		b.WriteString(sprintf(f, v))
		b.WriteString(sprintf(f, r))
		b.WriteString(sprintf(f, w))
	}
	j, _ := json.Marshal(r)
	b.Write(j)
	j, _ = json.Marshal(w)
	b.Write(j)
	if strings.Contains(b.String(), canary) || strings.Contains(b.String(), "6b61") {
		t.Fatalf("the value printed: %s", b.String())
	}
	if !strings.Contains(b.String(), "[redacted]") || v.Reveal() != canary || v.Len() != len(canary) {
		t.Error("Value lost its text or its marker")
	}
	if j, _ := json.Marshal(vault.Revealed{Value: v}); strings.Contains(string(j), "redacted") {
		t.Errorf("Revealed encodes its value field at all: %s", j)
	}
}

func sprintf(format string, v any) string { return fmt.Sprintf(format, v) }
