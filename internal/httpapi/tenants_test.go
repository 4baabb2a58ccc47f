package httpapi

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// twoTenants is a database migrated for sets (auth and main always) with
// identity over it: a super_admin (root) and two tenants, for route tests
// that compare what a tenant's callers see with the other tenant's.
type twoTenants struct {
	ids     *identity.Service
	aud     *audit.Service
	root    *identity.User
	tenants [2]string
	all     context.Context // the all-tenants scope
}

func newTwoTenants(t *testing.T, db *store.DB, sets ...string) *twoTenants {
	t.Helper()
	ctx := context.Background()
	for _, set := range append([]string{store.SetAuth, store.SetMain}, sets...) {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock := nodus.SystemClock{}
	w := &twoTenants{aud: audit.NewService(db, clock), all: nodus.WithAllTenants(ctx)}
	w.ids = identity.NewService(db, identity.NewHasher(identity.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0),
		identity.NewThrottle(20, 100, 15*time.Minute), w.aud, clock)
	root, _, err := w.ids.Bootstrap(ctx, "root@example.test", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	w.root = root
	for i := range w.tenants {
		tn := &identity.Tenant{Name: fmt.Sprintf("Tenant %d", i), IsActive: true}
		if err := w.ids.CreateTenant(w.all, identity.Actor{User: root}, tn); err != nil {
			t.Fatal(err)
		}
		w.tenants[i] = tn.ID
	}
	return w
}

// user creates an active user of the first tenant with role.
func (w *twoTenants) user(t *testing.T, name string, role identity.Role) *identity.User {
	t.Helper()
	u := &identity.User{Email: name + "@example.test", Username: name, Role: role, TenantID: w.tenants[0], IsActive: true}
	if err := w.ids.CreateUser(w.all, u, "a long enough password", audit.Entry{ActorKind: "system"}); err != nil {
		t.Fatal(err)
	}
	return u
}

// token mints an API token for u and returns its secret.
func (w *twoTenants) token(t *testing.T, u *identity.User) string {
	t.Helper()
	_, secret, err := w.ids.CreateToken(w.all, u, "test", "", 0, identity.Client{})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}
