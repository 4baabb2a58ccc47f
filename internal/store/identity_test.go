package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// migrate applies the embedded migrations of set to db.
func migrate(t testing.TB, db *store.DB, set string) {
	t.Helper()
	m, err := store.NewMigrator(set, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
}

var platform = nodus.WithAllTenants(ctx)

func newTenant(t *testing.T, db *store.DB, name string, maxUsers int) *identity.Tenant {
	t.Helper()
	now := nodus.SystemClock{}.Now()
	tn := &identity.Tenant{ID: nodus.NewID(), Name: name, IsActive: true, MaxUsers: maxUsers, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateTenant(platform, tn); err != nil {
		t.Fatal(err)
	}
	return tn
}

func newUser(tenantID, name string, role identity.Role) *identity.User {
	now := nodus.SystemClock{}.Now()
	return &identity.User{ID: nodus.NewID(), TenantID: tenantID, Email: name + "@example.test", Username: name,
		Role: role, IsActive: true, PasswordHash: "$argon2id$placeholder-for-store-tests", CreatedAt: now, UpdatedAt: now}
}

func mustCreateUser(t *testing.T, db *store.DB, u *identity.User) *identity.User {
	t.Helper()
	if err := db.CreateUser(platform, u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestTenantStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a := newTenant(t, db, "Acme", 0)

		got, err := db.FindTenant(platform, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Acme" || !got.IsActive || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("FindTenant = %+v, want %+v", got, a)
		}

		dup := &identity.Tenant{ID: nodus.NewID(), Name: "ACME", CreatedAt: a.CreatedAt, UpdatedAt: a.CreatedAt}
		if err := db.CreateTenant(platform, dup); nodus.ErrorCode(err) != nodus.ECONFLICT || nodus.ErrorFields(err)["name"] == "" {
			t.Errorf("duplicate name (other case): %v, want ECONFLICT on name", err)
		}

		a.Description, a.MaxUsers, a.UpdatedAt = "updated", 7, a.UpdatedAt.Add(time.Minute)
		if err := putTenant(platform, db, a); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.FindTenant(platform, a.ID); got.Description != "updated" || got.MaxUsers != 7 {
			t.Errorf("after update: %+v", got)
		}

		u := mustCreateUser(t, db, newUser(a.ID, "ann", identity.RoleUser))
		if err := db.DeleteTenant(platform, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindTenant(platform, a.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("deleted tenant: %v", err)
		}
		if _, err := db.FindUser(platform, u.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("user of a deleted tenant: %v, want gone with it", err)
		}
	})
}

// TestTenantIsolation checks every tenant and user method from tenant A's
// scope against tenant B's objects: reads find nothing, writes change
// nothing, and no scope at all fails closed.
func TestTenantIsolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a, b := newTenant(t, db, "A", 0), newTenant(t, db, "B", 0)
		ua := mustCreateUser(t, db, newUser(a.ID, "alice", identity.RoleOrgAdmin))
		ub := mustCreateUser(t, db, newUser(b.ID, "bob", identity.RoleUser))
		root := mustCreateUser(t, db, newUser("", "root", identity.RoleSuperAdmin))
		inA := nodus.WithTenant(ctx, a.ID)

		notFound := func(name string, err error) {
			t.Helper()
			if nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%s from tenant A: %v, want not_found", name, err)
			}
		}
		_, err := db.FindTenant(inA, b.ID)
		notFound("FindTenant(B)", err)
		_, err = db.FindUser(inA, ub.ID)
		notFound("FindUser(B's user)", err)
		_, err = db.FindUser(inA, root.ID)
		notFound("FindUser(super_admin)", err)
		_, err = db.FindUserByUsername(inA, "bob")
		notFound("FindUserByUsername(B's user)", err)
		_, err = db.FindUserByUsername(inA, "root")
		notFound("FindUserByUsername(super_admin)", err)
		_, err = db.FindUserByUsername(inA, "nobody")
		notFound("FindUserByUsername(unknown)", err)
		if got, err := db.FindUserByUsername(inA, "ALICE"); err != nil || got.ID != ua.ID {
			t.Errorf("FindUserByUsername(ALICE) from A = %+v, %v; want alice", got, err)
		}
		bCopy := *b
		bCopy.Name = "B hijacked"
		notFound("UpdateTenant(B)", putTenant(inA, db, &bCopy))
		ubCopy := *ub
		ubCopy.Role = identity.RoleViewer
		notFound("UpdateUser(B's user)", putUser(inA, db, &ubCopy))
		notFound("SetPasswordHash(B's user)", db.SetPasswordHash(inA, ub.ID, "x", time.Now()))
		notFound("DeleteUser(B's user)", db.DeleteUser(inA, ub.ID))
		notFound("CreateUser(in B)", db.CreateUser(inA, newUser(b.ID, "mallory", identity.RoleOrgAdmin)))
		if err := db.CreateTenant(inA, &identity.Tenant{ID: nodus.NewID(), Name: "C"}); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("CreateTenant from a tenant scope: %v, want forbidden", err)
		}
		if err := db.DeleteTenant(inA, b.ID); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("DeleteTenant from a tenant scope: %v, want forbidden", err)
		}

		tenants, _, err := db.ListTenants(inA, 0, "")
		if err != nil || len(tenants) != 1 || tenants[0].ID != a.ID {
			t.Errorf("ListTenants from A = %v, %v; want only A", tenants, err)
		}
		users, _, err := db.ListUsers(inA, 0, "")
		if err != nil || len(users) != 1 || users[0].ID != ua.ID {
			t.Errorf("ListUsers from A = %v, %v; want only alice", users, err)
		}

		// B's rows are as they were.
		if got, _ := db.FindTenant(platform, b.ID); got.Name != "B" {
			t.Errorf("tenant B changed: %+v", got)
		}
		if got, _ := db.FindUser(platform, ub.ID); got.Role != identity.RoleUser || got.PasswordHash != ub.PasswordHash {
			t.Errorf("B's user changed: %+v", got)
		}

		// No scope: fail closed, never unscoped.
		for name, err := range map[string]error{
			"FindTenant":         func() error { _, err := db.FindTenant(ctx, a.ID); return err }(),
			"ListTenants":        func() error { _, _, err := db.ListTenants(ctx, 0, ""); return err }(),
			"FindUser":           func() error { _, err := db.FindUser(ctx, ua.ID); return err }(),
			"FindUserByUsername": func() error { _, err := db.FindUserByUsername(ctx, "alice"); return err }(),
			"ListUsers":          func() error { _, _, err := db.ListUsers(ctx, 0, ""); return err }(),
			"UpdateUser":         putUser(ctx, db, ua),
			"DeleteUser":         db.DeleteUser(ctx, ua.ID),
			"CreateUser":         db.CreateUser(ctx, newUser(a.ID, "nobody", identity.RoleUser)),
		} {
			if err != nodus.ErrNoScope {
				t.Errorf("%s without a scope: %v, want ErrNoScope", name, err)
			}
		}
	})
}

func TestUserStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a, b := newTenant(t, db, "A", 0), newTenant(t, db, "B", 0)
		u := mustCreateUser(t, db, newUser(a.ID, "ann", identity.RoleUser))

		// Email and username are unique across tenants, case-insensitively.
		dup := newUser(b.ID, "other", identity.RoleUser)
		dup.Email = "ANN@example.test"
		if err := db.CreateUser(platform, dup); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate email in another tenant: %v, want conflict", err)
		}
		// The database itself refuses a super_admin inside a tenant.
		bad := newUser(a.ID, "boss", identity.RoleSuperAdmin)
		if err := db.CreateUser(platform, bad); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("super_admin with a tenant: %v, want invalid", err)
		}

		acct, err := db.FindAccountByLogin(ctx, "ANN")
		if err != nil || acct.User.ID != u.ID || !acct.TenantActive || acct.User.PasswordHash != u.PasswordHash || acct.User.TenantID != a.ID {
			t.Fatalf("FindAccountByLogin(ANN) = %+v, %v", acct, err)
		}
		if _, err := db.FindAccountByLogin(ctx, "nobody"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("unknown login: %v", err)
		}

		at := nodus.SystemClock{}.Now()
		if err := db.RecordLogin(ctx, u.ID, at); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindUser(nodus.WithTenant(ctx, a.ID), u.ID)
		if err != nil || got.LastLoginAt == nil || !got.LastLoginAt.Equal(at) {
			t.Fatalf("last_login_at = %v, %v; want %v", got.LastLoginAt, err, at)
		}

		a.IsActive = false
		if err := putTenant(platform, db, a); err != nil {
			t.Fatal(err)
		}
		if acct, _ := db.FindAccountByLogin(ctx, "ann@example.test"); acct.TenantActive {
			t.Error("a deactivated tenant's account reports an active tenant")
		}
		if err := db.CreateUser(platform, newUser(a.ID, "late", identity.RoleUser)); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("user in a deactivated tenant: %v, want conflict", err)
		}
	})
}

// TestUserQuota checks max_users, also under concurrent creation: exactly
// the quota succeeds.
func TestUserQuota(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, url string) {
		// A wide pool, so PostgreSQL really runs the checks side by side.
		cfg := storetest.Config(url)
		cfg.PoolSize = 20
		db, err := store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		migrate(t, db, store.SetAuth)
		a := newTenant(t, db, "A", 3)
		var ok, full atomic.Int32
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				err := db.CreateUser(nodus.WithTenant(ctx, a.ID), newUser(a.ID, fmt.Sprintf("user%d", i), identity.RoleUser))
				switch nodus.ErrorCode(err) {
				case "":
					ok.Add(1)
				case nodus.ECONFLICT:
					full.Add(1)
				default:
					t.Errorf("create user %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 3 || full.Load() != 37 {
			t.Fatalf("%d created, %d refused; want 3 and 37", ok.Load(), full.Load())
		}
	})
}

func TestUserPagination(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a := newTenant(t, db, "A", 0)
		want := map[string]bool{}
		for i := range 7 {
			want[mustCreateUser(t, db, newUser(a.ID, fmt.Sprintf("user%d", i), identity.RoleViewer)).ID] = true
		}
		inA := nodus.WithTenant(ctx, a.ID)
		seen := map[string]bool{}
		var sizes []int
		cursor := ""
		for {
			users, next, err := db.ListUsers(inA, 3, cursor)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(users))
			for _, u := range users {
				if seen[u.ID] {
					t.Fatalf("user %s on two pages", u.ID)
				}
				seen[u.ID] = true
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if fmt.Sprint(sizes) != "[3 3 1]" || len(seen) != len(want) {
			t.Fatalf("pages %v, %d users seen of %d", sizes, len(seen), len(want))
		}
		if _, _, err := db.ListUsers(inA, 3, "not-a-cursor"); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("bad cursor: %v, want invalid", err)
		}
	})
}

// putTenant and putUser write every field of t or u through the
// read-change-write update.
func putTenant(ctx context.Context, db *store.DB, t *identity.Tenant) error {
	_, err := db.UpdateTenant(ctx, t.ID, func(cur *identity.Tenant) error { *cur = *t; return nil })
	return err
}

func putUser(ctx context.Context, db *store.DB, u *identity.User) error {
	_, err := db.UpdateUser(ctx, u.ID, func(cur *identity.User) error { *cur = *u; return nil })
	return err
}

// TestConcurrentUpdatesLoseNothing runs twenty read-change-write updates
// of one tenant and one user at once: each must see the others' writes,
// so every increment and every change survives. On PostgreSQL this holds
// only because the read locks the row (SELECT … FOR UPDATE); without it
// READ COMMITTED would lose updates.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a := newTenant(t, db, "Acme", 0)
		u := newUser(a.ID, "ann", identity.RoleUser)
		if err := db.CreateUser(platform, u); err != nil {
			t.Fatal(err)
		}
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Go(func() {
				_, err := db.UpdateTenant(platform, a.ID, func(t *identity.Tenant) error {
					time.Sleep(2 * time.Millisecond) // widen the window between read and write
					t.MaxUsers++
					return nil
				})
				errs <- err
			})
			wg.Go(func() {
				_, err := db.UpdateUser(platform, u.ID, func(u *identity.User) error {
					time.Sleep(2 * time.Millisecond)
					u.FullName += string(rune('a' + i))
					return nil
				})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := db.FindTenant(platform, a.ID); got.MaxUsers != n {
			t.Errorf("max_users = %d after %d increments", got.MaxUsers, n)
		}
		if got, _ := db.FindUser(platform, u.ID); len(got.FullName) != n {
			t.Errorf("full_name %q after %d appends", got.FullName, n)
		}
	})
}
