package vault_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

// countingStore and countingHandles count the reads a resolve makes, so a
// test can tell a cache hit (none) from a fill.
type countingStore struct {
	vault.Store
	reads *atomic.Int64
}

func (c countingStore) FindSecretValue(ctx context.Context, loc vault.Location, version int) (vault.StoredVersion, int, error) {
	c.reads.Add(1)
	return c.Store.FindSecretValue(ctx, loc, version)
}

type countingHandles struct {
	vault.HandleStore
	reads *atomic.Int64
}

func (c countingHandles) FindSecretHandle(ctx context.Context, id string) (vault.Handle, error) {
	c.reads.Add(1)
	return c.HandleStore.FindSecretHandle(ctx, id)
}

// counted is a service over e's databases whose handle and version reads
// are counted, with c's clock, TTL, tenant hook and auditor (e's by
// default). e.svc stays as another replica.
type counted struct {
	svc   *vault.Service
	reads atomic.Int64
}

func (e *env) counted(t *testing.T, c vault.Config) *counted {
	t.Helper()
	s := &counted{}
	c.Store, c.Handles, c.Keyring = countingStore{e.db, &s.reads}, countingHandles{e.db, &s.reads}, e.ring
	if c.Audit == nil {
		c.Audit = e.audit
	}
	svc, err := vault.NewService(c)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, svc.Unseal(ctx))
	s.svc = svc
	return s
}

// handleUses counts the secret.handle_use entries in the audit log.
func handleUses(t *testing.T, db *store.DB) int {
	t.Helper()
	n := 0
	for _, e := range entries(t, db) {
		if e.Action == "secret.handle_use" {
			n++
		}
	}
	return n
}

// handleFixture writes a secret in a new tenant and makes a handle to it.
func handleFixture(t *testing.T, svc *vault.Service, value string) (context.Context, string, vault.Location, *vault.Handle) {
	t.Helper()
	in, tenant := tenantCtx()
	l := loc("prod", "/llm", "KEY")
	write(t, svc, in, l, value)
	h, err := svc.CreateHandle(in, admin, vault.HandleInput{Location: l, AllowedHosts: []string{"api.openai.com"}, Purpose: "gateway.provider_key"})
	if err != nil {
		t.Fatal(err)
	}
	return in, tenant, l, h
}

// TestHandleCache: within the TTL a resolve for the same tenant, handle and
// user is answered from memory (no read, no audit entry) with a copy the
// caller owns; each user gets its own audited fill; the TTL ends it; an
// audit failure on a fill fails the read and keeps nothing; a negative
// TTL audits every call.
func TestHandleCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		clock := newTestClock()
		c := e.counted(t, vault.Config{Clock: clock})
		in, _, _, h := handleFixture(t, c.svc, canary)
		user := nodus.NewID()

		uses := handleUses(t, db)
		r1, err := c.svc.ResolveHandle(in, h.ID, user)
		if err != nil || r1.Value.Reveal() != canary {
			t.Fatalf("fill: %+v, %v", r1, err)
		}
		if got := handleUses(t, db); got != uses+1 {
			t.Fatalf("fill audited %d entries, want 1", got-uses)
		}
		reads, rows := c.reads.Load(), len(entries(t, db))
		// The caller owns what it got: clearing it changes no later answer.
		r1.AllowedHosts[0], r1.Value, r1.Purpose = "evil.example.test", vault.Value{}, ""
		for range 3 {
			r, err := c.svc.ResolveHandle(in, h.ID, user)
			if err != nil || r.Value.Reveal() != canary || r.HandleID != h.ID || r.Version != 1 || !r.Allows("api.openai.com") ||
				r.Allows("evil.example.test") || r.Purpose != "gateway.provider_key" {
				t.Fatalf("hit: %+v, %v", r, err)
			}
		}
		if c.reads.Load() != reads || len(entries(t, db)) != rows {
			t.Errorf("hits read %d times and wrote %d audit entries, want none", c.reads.Load()-reads, len(entries(t, db))-rows)
		}

		// Every user is a fill of its own, audited as that user.
		other := nodus.NewID()
		for _, u := range []string{other, ""} {
			if _, err := c.svc.ResolveHandle(in, h.ID, u); err != nil {
				t.Fatal(err)
			}
		}
		all := entries(t, db)
		if got := actions(all[rows:]); len(got) != 2 || got[0] != "secret.handle_use" || got[1] != "secret.handle_use" ||
			all[rows].ActorID != other || all[rows+1].ActorID != "" {
			t.Errorf("fills for two more users audited %v", got)
		}
		rows = len(all)
		for _, u := range []string{user, other, ""} {
			if _, err := c.svc.ResolveHandle(in, h.ID, u); err != nil {
				t.Fatal(err)
			}
		}
		if len(entries(t, db)) != rows {
			t.Error("hits for the three users were audited")
		}

		// The TTL (30 s by default) ends an entry.
		clock.advance(29 * time.Second)
		if _, err := c.svc.ResolveHandle(in, h.ID, user); err != nil || handleUses(t, db) != uses+3 {
			t.Errorf("within the TTL: %v, %d uses", err, handleUses(t, db)-uses)
		}
		clock.advance(2 * time.Second)
		if _, err := c.svc.ResolveHandle(in, h.ID, user); err != nil || handleUses(t, db) != uses+4 {
			t.Errorf("after the TTL: %v, %d uses, want a new fill", err, handleUses(t, db)-uses)
		}

		// An audit failure on a fill fails it and keeps nothing.
		clock.advance(time.Minute)
		e.audit.fail.Store(true)
		r, err := c.svc.ResolveHandle(in, h.ID, user)
		code(t, "fill, audit down", err, nodus.EUNAVAILABLE)
		if r != nil {
			t.Error("a fill returned a value it could not audit")
		}
		e.audit.fail.Store(false)
		reads = c.reads.Load()
		if _, err := c.svc.ResolveHandle(in, h.ID, user); err != nil || c.reads.Load() == reads || handleUses(t, db) != uses+5 {
			t.Errorf("after the audit came back: %v, %d reads, %d uses: the failed fill was kept", err, c.reads.Load()-reads, handleUses(t, db)-uses)
		}

		// A negative TTL keeps nothing: every call is the audited read.
		off := e.counted(t, vault.Config{HandleCacheTTL: -1})
		before := handleUses(t, db)
		for range 3 {
			if r, err := off.svc.ResolveHandle(in, h.ID, user); err != nil || r.Value.Reveal() != canary {
				t.Fatalf("uncached: %+v, %v", r, err)
			}
		}
		if got := handleUses(t, db) - before; got != 3 {
			t.Errorf("TTL < 0: %d audited uses for 3 calls", got)
		}
	})
}

// TestHandleCacheInvalidation: every change made through the service that
// could alter what a handle resolves to makes the next resolve read
// afresh, at once; the same change made by another replica shows after
// the TTL.
func TestHandleCacheInvalidation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		clock := newTestClock()
		c := e.counted(t, vault.Config{Clock: clock})
		replica := e.svc // no cache of c's
		platform := nodus.WithAllTenants(ctx)
		user := nodus.NewID()

		cases := []struct {
			name   string
			change func(t *testing.T, in context.Context, tenant string, l vault.Location, h *vault.Handle)
			want   string // the value after, or
			code   string // the error after
		}{
			{"new version", func(t *testing.T, in context.Context, _ string, l vault.Location, _ *vault.Handle) {
				write(t, c.svc, in, l, "v2")
			}, "v2", ""},
			{"soft delete", func(t *testing.T, in context.Context, _ string, l vault.Location, _ *vault.Handle) {
				mustOK(t, c.svc.DeleteSecret(in, admin, l))
			}, "", nodus.ENOTFOUND},
			{"undelete", func(t *testing.T, in context.Context, _ string, l vault.Location, _ *vault.Handle) {
				mustOK(t, replica.DeleteSecret(in, admin, l))
				mustOK(t, c.svc.UndeleteSecret(in, admin, l))
			}, "v1", ""},
			{"destroy the version", func(t *testing.T, in context.Context, _ string, l vault.Location, _ *vault.Handle) {
				if _, err := c.svc.DestroyVersions(in, admin, l, []int{1}); err != nil {
					t.Fatal(err)
				}
			}, "", nodus.ENOTFOUND},
			{"destroy the secret", func(t *testing.T, in context.Context, _ string, l vault.Location, _ *vault.Handle) {
				mustOK(t, c.svc.DestroySecret(in, admin, l))
			}, "", nodus.ENOTFOUND},
			{"handle to another secret", func(t *testing.T, in context.Context, _ string, _ vault.Location, h *vault.Handle) {
				other := loc("prod", "/llm", "OTHER")
				write(t, c.svc, in, other, "other")
				if _, err := c.svc.UpdateHandle(in, admin, h.ID, vault.HandleInput{Location: other, ConfirmValue: "other"}); err != nil {
					t.Fatal(err)
				}
			}, "other", ""},
			{"handle deleted", func(t *testing.T, in context.Context, _ string, _ vault.Location, h *vault.Handle) {
				mustOK(t, c.svc.DeleteHandle(in, admin, h.ID))
			}, "", nodus.ENOTFOUND},
			{"data key rotation", func(t *testing.T, in context.Context, tenant string, _ vault.Location, _ *vault.Handle) {
				if _, err := c.svc.RotateDataKey(in, admin, tenant); err != nil {
					t.Fatal(err)
				}
			}, "v1", ""},
			{"re-encryption", func(t *testing.T, in context.Context, tenant string, _ vault.Location, _ *vault.Handle) {
				if _, err := replica.RotateDataKey(in, admin, tenant); err != nil {
					t.Fatal(err)
				}
				if st, err := c.svc.ReencryptTenant(in, admin, tenant, 0); err != nil || st.Reencrypted != 1 {
					t.Fatalf("re-encrypt: %+v, %v", st, err)
				}
			}, "v1", ""},
			{"master key rotation", func(t *testing.T, _ context.Context, _ string, _ vault.Location, _ *vault.Handle) {
				if _, err := c.svc.RotateMasterKey(platform, vault.System(), 0); err != nil {
					t.Fatal(err)
				}
			}, "v1", ""},
			{"settings change", func(t *testing.T, in context.Context, _ string, _ vault.Location, _ *vault.Handle) {
				if _, err := c.svc.UpdateTenantConfig(in, admin, 3); err != nil {
					t.Fatal(err)
				}
			}, "v1", ""},
			{"tenant purge", func(t *testing.T, _ context.Context, tenant string, _ vault.Location, _ *vault.Handle) {
				mustOK(t, c.svc.PurgeTenant(platform, vault.System(), tenant))
			}, "", nodus.ENOTFOUND},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				in, tenant, l, h := handleFixture(t, c.svc, "v1")
				if _, err := c.svc.ResolveHandle(in, h.ID, user); err != nil {
					t.Fatal(err)
				}
				tc.change(t, in, tenant, l, h)
				reads := c.reads.Load()
				r, err := c.svc.ResolveHandle(in, h.ID, user)
				if c.reads.Load() == reads {
					t.Fatal("answered from the cache after the change")
				}
				if tc.code != "" {
					code(t, "after the change", err, tc.code)
				} else if err != nil || r.Value.Reveal() != tc.want {
					t.Errorf("after the change: %+v, %v, want %q", r, err, tc.want)
				}
			})
		}

		t.Run("another replica's write shows after the TTL", func(t *testing.T) {
			in, _, l, h := handleFixture(t, c.svc, "v1")
			if _, err := c.svc.ResolveHandle(in, h.ID, user); err != nil {
				t.Fatal(err)
			}
			write(t, replica, in, l, "v2")
			if r, err := c.svc.ResolveHandle(in, h.ID, user); err != nil || r.Value.Reveal() != "v1" {
				t.Errorf("within the TTL: %+v, %v (the replica's write cannot reach this cache)", r, err)
			}
			clock.advance(vault.DefaultHandleCacheTTL)
			if r, err := c.svc.ResolveHandle(in, h.ID, user); err != nil || r.Value.Reveal() != "v2" {
				t.Errorf("after the TTL: %+v, %v", r, err)
			}
		})

		// A sealed vault answers no hit; opened again, it reads afresh.
		t.Run("seal", func(t *testing.T) {
			in, _, _, h := handleFixture(t, c.svc, "v1")
			if _, err := c.svc.ResolveHandle(in, h.ID, user); err != nil {
				t.Fatal(err)
			}
			// Another replica moves the vault to master key 3, which c does
			// not hold: its next Unseal seals it.
			k3 := newKey(t)
			to3 := openWith(t, e, ringOf(t, map[byte][]byte{1: e.key, 3: k3}, 3))
			if _, err := to3.RotateMasterKey(platform, vault.System(), 0); err != nil {
				t.Fatal(err)
			}
			code(t, "Unseal without key 3", c.svc.Unseal(ctx), nodus.EUNAVAILABLE)
			_, err := c.svc.ResolveHandle(in, h.ID, user)
			code(t, "resolve while sealed", err, nodus.EUNAVAILABLE)
			back := openWith(t, e, ringOf(t, map[byte][]byte{1: e.key, 3: k3}, 1))
			if _, err := back.RotateMasterKey(platform, vault.System(), 0); err != nil {
				t.Fatal(err)
			}
			mustOK(t, c.svc.Unseal(ctx))
			reads := c.reads.Load()
			if r, err := c.svc.ResolveHandle(in, h.ID, user); err != nil || r.Value.Reveal() != "v1" || c.reads.Load() == reads {
				t.Errorf("after Unseal: %+v, %v, %d reads", r, err, c.reads.Load()-reads)
			}
		})
	})
}

// openWith returns another unsealed service over e's databases with ring.
func openWith(t *testing.T, e *env, ring *keyring.Keyring) *vault.Service {
	t.Helper()
	svc := e.open(t, ring)
	mustOK(t, svc.Unseal(ctx))
	return svc
}

// TestHandleCacheInactiveTenant: a tenant deactivated after a fill gets an
// error once the kept "active" answer (one second) has lapsed, from the
// cache or not; reactivated, it reads afresh.
func TestHandleCacheInactiveTenant(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		var inactive sync.Map
		clock := newTestClock()
		c := e.counted(t, vault.Config{Clock: clock, TenantActive: func(_ context.Context, id string) (bool, error) {
			_, off := inactive.Load(id)
			return !off, nil
		}})
		in, tenant, _, h := handleFixture(t, c.svc, canary)
		if _, err := c.svc.ResolveHandle(in, h.ID, ""); err != nil {
			t.Fatal(err)
		}
		inactive.Store(tenant, true)
		if _, err := c.svc.ResolveHandle(in, h.ID, ""); err != nil {
			t.Errorf("within the second the active answer is kept: %v", err)
		}
		clock.advance(1100 * time.Millisecond)
		r, err := c.svc.ResolveHandle(in, h.ID, "")
		code(t, "hit for a deactivated tenant", err, nodus.EFORBIDDEN)
		if r != nil {
			t.Error("a deactivated tenant got a value")
		}
		inactive.Delete(tenant)
		reads := c.reads.Load()
		if r, err := c.svc.ResolveHandle(in, h.ID, ""); err != nil || r.Value.Reveal() != canary || c.reads.Load() == reads {
			t.Errorf("reactivated: %+v, %v, %d reads (want a fill)", r, err, c.reads.Load()-reads)
		}
	})
}

// gateAuditor holds every secret.handle_use entry until gate closes.
type gateAuditor struct {
	inner   vault.Auditor
	gate    chan struct{}
	entered atomic.Int64
}

func (a *gateAuditor) Record(ctx context.Context, e audit.Entry) error {
	if e.Action == "secret.handle_use" {
		a.entered.Add(1)
		<-a.gate
	}
	return a.inner.Record(ctx, e)
}

// TestHandleCacheConcurrentFill: many goroutines resolving the same handle
// for the same user at once cause one read and one audit entry, and all
// get the value.
func TestHandleCacheConcurrentFill(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		gate := &gateAuditor{inner: e.audit, gate: make(chan struct{})}
		c := e.counted(t, vault.Config{Audit: gate})
		in, _, _, h := handleFixture(t, e.svc, canary)
		uses, reads := handleUses(t, db), c.reads.Load()

		const n = 32
		var started sync.WaitGroup
		var wg sync.WaitGroup
		errs := make(chan error, n)
		started.Add(n)
		for range n {
			wg.Go(func() {
				started.Done()
				r, err := c.svc.ResolveHandle(in, h.ID, admin.UserID)
				if err == nil && r.Value.Reveal() != canary {
					err = errors.New("got another value")
				}
				errs <- err
			})
		}
		// Hold the one fill until every goroutine is in ResolveHandle and,
		// give or take scheduling, waiting for it.
		started.Wait()
		for gate.entered.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		close(gate.gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if got := handleUses(t, db) - uses; got != 1 {
			t.Errorf("%d concurrent resolves audited %d uses, want 1", n, got)
		}
		if got := c.reads.Load() - reads; got != 2 { // the handle and the version, once
			t.Errorf("%d concurrent resolves made %d reads, want 2", n, got)
		}
	})
}
