package vault_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

// BenchmarkResolveHandle measures a secret read through a handle as the
// gateway does it, with the tenant's data key cached, on three databases
// as in a default deployment (separate SQLite files): main (handles, the
// audit log), vault (versions) and auth (tenants: every resolve asks
// whether the tenant is active, through the store call serve.go's
// Config.TenantActive makes). It reports the median and the 99th and
// 99.9th percentiles of four cases, side by side:
//
//   - hit: the answer kept from an earlier call (Config.HandleCacheTTL):
//     the tenant check, then a copy from memory; no vault or main database
//     read, no audit entry. Target: p99 under 200 µs.
//   - hit-without-tenant-check: the same with no Config.TenantActive, the
//     cache's own cost.
//   - fill: the audited read a miss makes (a service with the cache off):
//     the tenant check, the handle, the version, AES-GCM, and the audit
//     entry appended to the hash-chained log, which the read waits for.
//   - fill-without-audit: the same with the audit append replaced by a
//     no-op, to tell the two costs apart. Never a configuration Nodus runs
//     with.
//
// Reproduce with (PostgreSQL runs when NODUS_TEST_POSTGRES_URL is set):
//
//	go test -run '^$' -bench ResolveHandle -benchtime 20000x ./internal/vault/
func BenchmarkResolveHandle(b *testing.B) {
	engines := []struct {
		name string
		open func(testing.TB) *store.DB
	}{
		{"sqlite", storetest.OpenSQLite},
		{"postgres", storetest.OpenPostgres},
	}
	for _, engine := range engines {
		b.Run(engine.name, func(b *testing.B) {
			main, vdb, auth := engine.open(b), engine.open(b), engine.open(b)
			for _, m := range []struct {
				db  *store.DB
				set string
			}{{main, store.SetMain}, {vdb, store.SetVault}, {auth, store.SetAuth}} {
				mig, err := store.NewMigrator(m.set, m.db)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := mig.Up(ctx); err != nil {
					b.Fatal(err)
				}
			}
			now := time.Now().UTC()
			tenant := &identity.Tenant{ID: nodus.NewID(), Name: "bench", IsActive: true, CreatedAt: now, UpdatedAt: now}
			if err := auth.CreateTenant(nodus.WithAllTenants(ctx), tenant); err != nil {
				b.Fatal(err)
			}
			// As serve.go's tenantActive, through identity.Service.Tenant.
			tenantActive := func(ctx context.Context, id string) (bool, error) {
				t, err := auth.FindTenant(nodus.WithTenant(ctx, id), id)
				if err != nil {
					return false, err
				}
				return t.IsActive, nil
			}
			ring := ringOf(b, map[byte][]byte{1: newKey(b)}, 0)
			open := func(ttl time.Duration, auditor vault.Auditor, active func(context.Context, string) (bool, error)) *vault.Service {
				svc, err := vault.NewService(vault.Config{Store: vdb, Handles: main, Keyring: ring, Audit: auditor,
					HandleCacheTTL: ttl, TenantActive: active})
				if err != nil {
					b.Fatal(err)
				}
				if err := svc.Unseal(ctx); err != nil {
					b.Fatal(err)
				}
				return svc
			}
			auditor := audit.NewService(main, nil)
			// An hour, so that no entry expires during a run.
			cached := open(time.Hour, auditor, tenantActive)
			in := nodus.WithTenant(ctx, tenant.ID)
			l := loc("prod", "/llm", "OPENAI_API_KEY")
			write(b, cached, in, l, "sk-proj-0123456789abcdef0123456789abcdef0123456789abcdef")
			h, err := cached.CreateHandle(in, admin, vault.HandleInput{Location: l, AllowedHosts: []string{"api.openai.com"}, Purpose: "gateway.provider_key"})
			if err != nil {
				b.Fatal(err)
			}
			user := nodus.NewID()
			for _, c := range []struct {
				name string
				svc  *vault.Service
			}{
				{"hit", cached},
				{"hit-without-tenant-check", open(time.Hour, auditor, nil)},
				{"fill", open(-1, auditor, tenantActive)},
				{"fill-without-audit", open(-1, discard{}, tenantActive)},
			} {
				b.Run(c.name, func(b *testing.B) {
					// Caches the data key, records last_used_at, and for
					// the hits fills the cache.
					if _, err := c.svc.ResolveHandle(in, h.ID, user); err != nil {
						b.Fatal(err)
					}
					lat := make([]time.Duration, 0, b.N)
					b.ResetTimer()
					for b.Loop() {
						start := time.Now()
						r, err := c.svc.ResolveHandle(in, h.ID, user)
						lat = append(lat, time.Since(start))
						if err != nil || r.Value.Len() == 0 {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					slices.Sort(lat)
					pct := func(p float64) float64 {
						return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Nanoseconds()) / 1e3
					}
					b.ReportMetric(pct(0.50), "p50-µs")
					b.ReportMetric(pct(0.99), "p99-µs")
					b.ReportMetric(pct(0.999), "p99.9-µs")
				})
			}
		})
	}
}

// discard is an auditor that records nothing, for the benchmark's
// "without audit" line only.
type discard struct{}

func (discard) Record(context.Context, audit.Entry) error { return nil }
