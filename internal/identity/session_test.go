package identity_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestSessionLifetimes checks the idle and absolute timeouts and that a
// disabled user's session ends (SECURITY.md check 8).
func TestSessionLifetimes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		setup(t, db) // migrations
		clock := &testClock{now: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
		ids := identity.NewService(db, identity.NewHasher(fastParams, 0), identity.NewThrottle(20, 100, time.Minute),
			audit.NewService(db, clock), clock)
		u := &identity.User{Email: "root@example.test", Username: "root", Role: identity.RoleSuperAdmin, IsActive: true}
		if err := ids.CreateUser(nodus.WithAllTenants(ctx), u, "correct horse battery", audit.Entry{ActorKind: "system"}); err != nil {
			t.Fatal(err)
		}
		p := &identity.Principal{User: *u, TenantActive: true}
		c := identity.Client{Address: "192.0.2.1"}

		// Idle: used every 29 minutes it lives; 30 minutes unused ends it.
		secret, _, err := ids.StartSession(ctx, p, c)
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			clock.Add(29 * time.Minute)
			if _, _, err := ids.ResolveSession(ctx, secret); err != nil {
				t.Fatalf("session used every 29 minutes ended: %v", err)
			}
		}
		clock.Add(identity.SessionIdle)
		if _, _, err := ids.ResolveSession(ctx, secret); nodus.ErrorCode(err) != nodus.EUNAUTHORIZED {
			t.Fatalf("session idle for 30 minutes: %v, want unauthorized", err)
		}

		// Absolute: even in constant use, it ends after 12 hours.
		secret, _, _ = ids.StartSession(ctx, p, c)
		for elapsed := time.Duration(0); elapsed < identity.SessionMax-10*time.Minute; elapsed += 10 * time.Minute {
			clock.Add(10 * time.Minute)
			if _, _, err := ids.ResolveSession(ctx, secret); err != nil {
				t.Fatalf("session in use ended after %v: %v", elapsed, err)
			}
		}
		clock.Add(10 * time.Minute)
		if _, _, err := ids.ResolveSession(ctx, secret); nodus.ErrorCode(err) != nodus.EUNAUTHORIZED {
			t.Fatalf("session past 12 hours: %v, want unauthorized", err)
		}

		// A disabled user's session ends at once.
		secret, _, _ = ids.StartSession(ctx, p, c)
		u.IsActive, u.UpdatedAt = false, clock.Now()
		if err := putUser(nodus.WithAllTenants(ctx), db, u); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ids.ResolveSession(ctx, secret); nodus.ErrorCode(err) != nodus.EUNAUTHORIZED {
			t.Fatalf("disabled user's session: %v, want unauthorized", err)
		}

		// Junk cookies never reach the database as errors.
		for _, junk := range []string{"", "x", string(make([]byte, 4096))} {
			if _, _, err := ids.ResolveSession(ctx, junk); nodus.ErrorCode(err) != nodus.EUNAUTHORIZED {
				t.Errorf("cookie %.10q: %v", junk, err)
			}
		}
	})
}
