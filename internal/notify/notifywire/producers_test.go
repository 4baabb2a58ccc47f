package notifywire_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notify"
	"github.com/nodus-os/nodus/internal/notify/notifywire"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

var bg = context.Background()

// directory stands for identity: each tenant has one org_admin, "admin"
// of the tenant, and any user id named is an active user.
type directory struct{}

func (directory) Recipients(_ context.Context, tenantID string, to notify.Audience) ([]notify.Recipient, error) {
	var out []notify.Recipient
	for _, id := range to.UserIDs {
		out = append(out, notify.Recipient{ID: id})
	}
	if slices.Contains(to.Roles, notify.RoleOrgAdmin) {
		out = append(out, notify.Recipient{ID: "admin-" + tenantID})
	}
	return out, nil
}

type plainSealer struct{}

func (plainSealer) Seal(p, _ []byte) ([]byte, error) { return p, nil }
func (plainSealer) Open(p, _ []byte) ([]byte, error) { return p, nil }

// backends runs fn on SQLite and PostgreSQL with a migrated main database
// (notifications) and gateway database (keys).
func backends(t *testing.T, fn func(t *testing.T, main, gw *store.DB)) {
	for _, b := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.OpenSQLite}, {"postgres", storetest.OpenPostgres}} {
		t.Run(b.name, func(t *testing.T) {
			main, gw := b.open(t), b.open(t)
			for set, db := range map[string]*store.DB{store.SetMain: main, store.SetGateway: gw} {
				m, err := store.NewMigrator(set, db)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := m.Up(bg); err != nil {
					t.Fatal(err)
				}
			}
			fn(t, main, gw)
		})
	}
}

func newNotify(t *testing.T, db *store.DB, now func() time.Time) *notify.Service {
	t.Helper()
	n, err := notify.NewService(notify.Config{Store: notifywire.Store{DB: db}, Directory: directory{}, Sealer: plainSealer{}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// notes returns the kinds and titles of a user's notifications.
func notes(t *testing.T, n *notify.Service, tenantID, userID string) []notify.Notification {
	t.Helper()
	list, _, err := n.ListNotifications(nodus.WithTenant(bg, tenantID), tenantID, userID, notify.ListFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestKeyExpiry: active keys expiring within a week are reported to their
// owner and the tenant's admins, once per key and expiry however often the
// sweep runs; keys expiring later, already expired or blocked are not, and
// each tenant hears only of its own keys.
func TestKeyExpiry(t *testing.T) {
	backends(t, func(t *testing.T, main, gw *store.DB) {
		now := time.Now().UTC().Truncate(time.Second)
		a, b := nodus.NewID(), nodus.NewID()
		key := func(tenant, name, owner, status string, in time.Duration) gateway.Key {
			exp := now.Add(in)
			k := gateway.Key{ID: nodus.NewID(), TenantID: tenant, Name: name, Hash: []byte(nodus.NewID()), Prefix: "sk-nodus-" + name,
				UserID: owner, Status: status, ExpiresAt: &exp, CreatedAt: now, UpdatedAt: now}
			if err := gw.CreateKey(nodus.WithTenant(bg, tenant), k); err != nil {
				t.Fatal(err)
			}
			return k
		}
		soon := key(a, "soon", "alice", gateway.KeyActive, 3*24*time.Hour)
		key(a, "later", "alice", gateway.KeyActive, 10*24*time.Hour)
		key(a, "expired", "alice", gateway.KeyActive, -time.Hour)
		key(a, "blocked", "alice", gateway.KeyBlocked, 2*24*time.Hour)
		key(b, "bees", "", gateway.KeyActive, 5*time.Hour)

		n := newNotify(t, main, func() time.Time { return now })
		sweep := notifywire.KeyExpiry{Keys: gw, Notify: n, Now: func() time.Time { return now }}
		for range 3 {
			got, err := sweep.NotifyExpiring(bg)
			if err != nil || got != 2 {
				t.Fatalf("NotifyExpiring = %d, %v; want 2", got, err)
			}
		}
		for _, who := range []string{"alice", "admin-" + a} {
			list := notes(t, n, a, who)
			if len(list) != 1 || list[0].Kind != notify.KindKeyExpiring || list[0].Title != "Gateway key soon expires in 3 days" ||
				list[0].Link != "/gateway/keys" {
				t.Errorf("%s's notifications: %+v", who, list)
			}
		}
		if list := notes(t, n, b, "admin-"+b); len(list) != 1 || list[0].Title != "Gateway key bees expires in 5 hours" {
			t.Errorf("B's admin: %+v", list)
		}
		if list := notes(t, n, b, "alice"); len(list) != 0 {
			t.Errorf("alice hears of B's keys: %+v", list)
		}

		// An expiry moved later is another expiry: announced again.
		exp := now.Add(6 * 24 * time.Hour)
		soon.ExpiresAt = &exp
		if err := gw.UpdateKey(nodus.WithTenant(bg, a), soon); err != nil {
			t.Fatal(err)
		}
		if _, err := sweep.NotifyExpiring(bg); err != nil {
			t.Fatal(err)
		}
		if list := notes(t, n, a, "alice"); len(list) != 2 {
			t.Errorf("after the expiry moved, alice has %d notifications, want 2", len(list))
		}
	})
}

// TestEgressDenials: a loop of refusals to one host makes one notification
// to the tenant's admins per hour; another host is another notification.
func TestEgressDenials(t *testing.T) {
	backends(t, func(t *testing.T, main, _ *store.DB) {
		now := time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC)
		a := nodus.NewID()
		n := newNotify(t, main, nil) // the notifications' own clock: the hook's is the one that matters
		hook := notifywire.EgressDenials(func() *notify.Service { return n }, nil, func() time.Time { return now })
		deny := func(target string) {
			hook(bg, egress.Denial{TenantID: a, Target: target, Reason: egress.ReasonNotAllowed, Detail: "no rule", Mode: egress.ModeEnforce})
		}
		wait := func(want int) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				list := notes(t, n, a, "admin-"+a)
				if len(list) == want {
					for _, x := range list {
						if x.Kind != notify.KindEgressDenied || x.Link != "/egress" {
							t.Errorf("notification %+v", x)
						}
					}
					return
				}
				if len(list) > want || time.Now().After(deadline) {
					t.Fatalf("%d notifications, want %d: %+v", len(list), want, list)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		for range 50 {
			deny("evil.example:443")
		}
		wait(1)
		deny("other.example:443")
		wait(2)
		now = now.Add(30 * time.Minute) // the same hour
		deny("evil.example:443")
		time.Sleep(100 * time.Millisecond)
		wait(2)
		now = now.Add(time.Hour)
		deny("evil.example:443")
		wait(3)
	})
}
