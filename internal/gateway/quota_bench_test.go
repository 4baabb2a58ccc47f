package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// BenchmarkSharedLimits measures what sharing budgets and rate limits
// between replicas costs a call while there is room: the same chat call
// through the gateway's HTTP handler, from parallel clients, with a
// tenant budget and a key rpm limit, enforced by this process alone
// ("local") and through claims in the store ("shared"), on each
// database. claims/1k is how many times the replica went to the store to
// grow a claim per thousand calls.
//
//	go test -run '^$' -bench SharedLimits -benchtime 20000x ./internal/gateway/
func BenchmarkSharedLimits(b *testing.B) {
	dbs := map[string]func(testing.TB) *store.DB{"sqlite": storetest.OpenSQLite}
	if os.Getenv("NODUS_TEST_POSTGRES_URL") != "" {
		dbs["postgres"] = storetest.OpenPostgres
	}
	for _, dbName := range []string{"sqlite", "postgres"} {
		open := dbs[dbName]
		if open == nil {
			continue
		}
		for _, shared := range []bool{false, true} {
			name := dbName + "/local"
			if shared {
				name = dbName + "/shared"
			}
			b.Run(name, func(b *testing.B) {
				// A database of its own each time: the benchmark runs the
				// body again for its final b.N.
				db := open(b)
				w := newWorldWith(b, db, func(c *gateway.Config) {
					if shared {
						c.Quotas = db
					}
				})
				w.fake.SetScript(gatewaytest.Script{APIKey: upstreamKey, DisableRecording: true})
				m := gateway.Manager{TenantID: w.tenant, UserID: w.user, Admin: true}
				if _, err := w.svc.PutBudget(context.Background(), m, gateway.BudgetInput{Scope: gateway.BudgetTenant, MaxMicros: 1 << 50}); err != nil {
					b.Fatal(err)
				}
				secret, hash := gateway.NewKeySecret()
				now := time.Now().UTC().Truncate(time.Millisecond)
				if err := db.CreateKey(w.tctx, gateway.Key{ID: nodus.NewID(), TenantID: w.tenant, Name: "bench", Hash: hash,
					Prefix: secret[:13], UserID: w.user, RPM: 1 << 40, Status: gateway.KeyActive, CreatedAt: now, UpdatedAt: now}); err != nil {
					b.Fatal(err)
				}
				body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}],"max_tokens":50}`)
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				before := claimsGranted(b, w)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest("POST", w.srv.URL+"/v1/chat/completions", bytes.NewReader(body))
						req.Header.Set("Authorization", "Bearer "+secret)
						req.Header.Set("Content-Type", "application/json")
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Errorf("%d", resp.StatusCode)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric((claimsGranted(b, w)-before)*1000/float64(b.N), "claims/1k")
			})
		}
	}
}

// claimsGranted reads nodus_gateway_quota_claims_total{result="granted"}
// from the world's metrics.
func claimsGranted(tb testing.TB, w *world) float64 { return claimsCounted(tb, w.reg, "granted") }

// claimsCounted reads nodus_gateway_quota_claims_total for result from reg.
func claimsCounted(tb testing.TB, reg *metrics.Registry, result string) float64 {
	tb.Helper()
	var text bytes.Buffer
	if err := reg.WriteText(&text); err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(text.String(), "\n") {
		if v, ok := strings.CutPrefix(line, `nodus_gateway_quota_claims_total{result="`+result+`"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	return 0
}
