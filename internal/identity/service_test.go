package identity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// fastParams keep these tests quick; the real parameters are tested in
// password_test.go.
var fastParams = identity.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func setup(t *testing.T, db *store.DB) (*identity.Service, *audit.Service) {
	t.Helper()
	for _, set := range []string{store.SetAuth, store.SetMain} {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	clock := nodus.SystemClock{}
	aud := audit.NewService(db, clock)
	return identity.NewService(db, identity.NewHasher(fastParams, 0), identity.NewThrottle(20, 100, 15*time.Minute), aud, clock), aud
}

func actions(t *testing.T, aud *audit.Service) []string {
	t.Helper()
	entries, _, err := aud.List(nodus.WithAllTenants(context.Background()), audit.Filter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Action)
	}
	return out
}

func TestAuthenticate(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ids, aud := setup(t, db)
		platform := nodus.WithAllTenants(ctx)
		now := nodus.SystemClock{}.Now()
		tn := &identity.Tenant{ID: nodus.NewID(), Name: "Acme", IsActive: true, CreatedAt: now, UpdatedAt: now}
		if err := db.CreateTenant(platform, tn); err != nil {
			t.Fatal(err)
		}
		u := &identity.User{Email: "ann@example.test", Username: "ann", Role: identity.RoleUser, TenantID: tn.ID, IsActive: true}
		if err := ids.CreateUser(platform, u, "correct horse battery", audit.Entry{ActorKind: "system"}); err != nil {
			t.Fatal(err)
		}
		client := identity.Client{Address: "192.0.2.1", UserAgent: "test"}

		p, err := ids.Authenticate(ctx, "ANN@example.test", "correct horse battery", client)
		if err != nil || p.User.ID != u.ID || p.User.LastLoginAt == nil {
			t.Fatalf("Authenticate = %+v, %v", p, err)
		}

		// Unknown login and wrong password answer identically.
		_, errUnknown := ids.Authenticate(ctx, "nobody@example.test", "whatever password", client)
		_, errWrong := ids.Authenticate(ctx, "ann", "wrong password!", client)
		if errUnknown == nil || errWrong == nil || errUnknown.Error() != errWrong.Error() ||
			nodus.ErrorCode(errWrong) != nodus.EUNAUTHORIZED {
			t.Fatalf("unknown login: %v; wrong password: %v; want the same unauthorized", errUnknown, errWrong)
		}

		// A deactivated tenant's user gets the same answer, even with the
		// right password.
		tn.IsActive = false
		if err := putTenant(platform, db, tn); err != nil {
			t.Fatal(err)
		}
		if _, err := ids.Authenticate(ctx, "ann", "correct horse battery", client); err == nil || err.Error() != errWrong.Error() {
			t.Fatalf("deactivated tenant: %v, want %v", err, errWrong)
		}
		tn.IsActive = true
		if err := putTenant(platform, db, tn); err != nil {
			t.Fatal(err)
		}

		got := strings.Join(actions(t, aud), " ")
		want := "user.create auth.login auth.login_failed auth.login_failed auth.login_failed"
		if got != want {
			t.Fatalf("audit = %s\nwant    %s", got, want)
		}
		if n, err := aud.Verify(platform); err != nil || n != 5 {
			t.Fatalf("audit chain: %d, %v", n, err)
		}
	})
}

// TestAuthenticateThrottle: twenty wrong passwords from one address, then
// the twenty-first attempt is refused with a retry time, even with the
// right password; another address still signs in.
func TestAuthenticateThrottle(t *testing.T) {
	db := storetest.OpenSQLite(t)
	ctx := context.Background()
	ids, aud := setup(t, db)
	u := &identity.User{Email: "root@example.test", Username: "root", Role: identity.RoleSuperAdmin, IsActive: true}
	if err := ids.CreateUser(nodus.WithAllTenants(ctx), u, "correct horse battery", audit.Entry{ActorKind: "system"}); err != nil {
		t.Fatal(err)
	}
	attacker := identity.Client{Address: "203.0.113.9"}
	for i := range 20 {
		if _, err := ids.Authenticate(ctx, "root", "guess", attacker); nodus.ErrorCode(err) != nodus.EUNAUTHORIZED {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	_, err := ids.Authenticate(ctx, "root", "correct horse battery", attacker)
	if nodus.ErrorCode(err) != nodus.ERATELIMIT || nodus.ErrorRetryAfter(err) <= 0 {
		t.Fatalf("21st attempt: %v (retry after %v), want rate_limited with a retry time", err, nodus.ErrorRetryAfter(err))
	}
	if _, err := ids.Authenticate(ctx, "root", "correct horse battery", identity.Client{Address: "192.0.2.50"}); err != nil {
		t.Fatalf("the owner from another address: %v", err)
	}
	acts := actions(t, aud)
	if acts[len(acts)-2] != "auth.login_throttled" || acts[len(acts)-1] != "auth.login" {
		t.Fatalf("audit tail = %v", acts[len(acts)-3:])
	}
}

// putTenant and putUser write every field of t or u through the store's
// read-change-write update.
func putTenant(ctx context.Context, db *store.DB, t *identity.Tenant) error {
	_, err := db.UpdateTenant(ctx, t.ID, func(cur *identity.Tenant) error { *cur = *t; return nil })
	return err
}

func putUser(ctx context.Context, db *store.DB, u *identity.User) error {
	_, err := db.UpdateUser(ctx, u.ID, func(cur *identity.User) error { *cur = *u; return nil })
	return err
}
