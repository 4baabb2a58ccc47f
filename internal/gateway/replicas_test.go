package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// addReplica starts a second gateway over the world's store, egress and
// upstreams, as a second `nodus serve` on the same database would be: it
// shares nothing with the first but the store.
func (w *secWorld) addReplica(t *testing.T) *secWorld {
	t.Helper()
	r := &secWorld{db: w.db, eg: w.eg, a: w.a, b: w.b, tenant: w.tenant, user: w.user, tctx: w.tctx, logs: w.logs,
		audit: w.audit, keys: w.keys, keyIDs: w.keyIDs, hc: w.hc, opts: w.opts, reg: metrics.NewRegistry()}
	// Request ids must not repeat across replicas: the spend log keeps
	// one row per id.
	r.nextReq.Store(1 << 40)
	var err error
	r.svc, err = gateway.NewService(r.config(r.reg))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := r.svc.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.svc.Close(context.Background()) })
	mux := http.NewServeMux()
	for pattern, h := range r.svc.Routes() {
		mux.Handle(pattern, h)
	}
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

// spread sends n requests with key at once, alternating between the
// replicas, and returns the statuses each replica answered.
func spread(ctx context.Context, replicas []*secWorld, key string, n int, model string) [][]int {
	out := make([][]int, len(replicas))
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := replicas[i%len(replicas)].post(ctx, key, chatBody(model, false))
			mu.Lock()
			out[i%len(replicas)] = append(out[i%len(replicas)], r.status)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func countStatus(statuses []int, want int) int {
	n := 0
	for _, s := range statuses {
		if s == want {
			n++
		}
	}
	return n
}

// TestGatewayReplicasShareBudget: two gateways on one store share a
// tenant budget. 100 concurrent requests spread over both never spend
// more than the budget, and once the replicas hand back the parts they
// claimed and no longer use, one replica alone can spend what is left:
// nothing stays claimed for nothing.
func TestGatewayReplicasShareBudget(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		// Worst case per call ≈ 525 µ$ (see
		// TestGatewayUserAndKeyBudgetsUnderConcurrency), 55 µ$ really:
		// 6,000 fits 11 reservations at once and about 100 calls in all.
		const budget = 6000
		w := newSecWorld(t, db, secOptions{keys: 1, shared: true, deps: []secDep{{id: "dep-shared", model: "shared"}},
			budgets: func(w *secWorld) []gateway.Budget {
				return []gateway.Budget{{Scope: gateway.BudgetTenant, MaxMicros: budget}}
			}})
		r := w.addReplica(t)
		ctx := context.Background()

		// Which replica claims first is a race: one may take most of
		// the budget, as a single gateway would give it to the first
		// requests.
		got := spread(ctx, []*secWorld{w, r}, w.keys[0], 100, "shared")
		if ok, refused := countStatus(got[0], 200)+countStatus(got[1], 200), countStatus(got[0], 429)+countStatus(got[1], 429); ok == 0 || ok+refused != 100 {
			t.Errorf("%d passed, %d refused of 100: %v", ok, refused, got)
		}
		spent := func() (logged, stored int64) {
			t.Helper()
			for _, x := range []*secWorld{w, r} {
				if err := x.svc.FlushSpend(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Read(w.tctx, func(tx *store.Tx) error {
				return tx.QueryRow(ctx, "SELECT COALESCE(SUM(cost_micros), 0) FROM gateway_spend_logs WHERE tenant_id = ?", w.tenant).Scan(&logged)
			}); err != nil {
				t.Fatal(err)
			}
			budgets, err := db.ListBudgets(w.tctx)
			if err != nil || len(budgets) != 1 {
				t.Fatalf("budgets: %v %v", budgets, err)
			}
			return logged, budgets[0].Spend
		}
		logged, stored := spent()
		if logged > budget || logged != stored {
			t.Fatalf("after the burst: the spend log says %d, the budget %d, of %d", logged, stored, budget)
		}

		// Idle for over a second, each replica hands back what it claimed
		// and no longer uses; then one replica alone spends the rest.
		time.Sleep(2500 * time.Millisecond)
		for range 300 {
			if w.post(ctx, w.keys[0], chatBody("shared", false)).status != 200 {
				break
			}
		}
		logged, stored = spent()
		if logged > budget || logged != stored || logged < budget-525 {
			t.Fatalf("at the end: the spend log says %d, the budget %d, of %d (want within one call's worst case of it)",
				logged, stored, budget)
		}
		if s := r.post(ctx, w.keys[0], chatBody("shared", false)).status; s != 429 {
			t.Errorf("the other replica after the budget is spent: %d, want 429", s)
		}
		if granted, failed := claimsCounted(t, w.reg, "granted"), claimsCounted(t, w.reg, "error"); granted == 0 || failed != 0 {
			t.Errorf("claims counted: %v granted, %v failed", granted, failed)
		}
	})
}

// TestGatewayReplicasShareRateLimits: a key's rpm and max-parallel limits
// hold across two gateways on one store, exactly: never more than the
// limit, and, once unused claims are handed back, the whole limit.
func TestGatewayReplicasShareRateLimits(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newSecWorld(t, db, secOptions{shared: true, deps: []secDep{{id: "dep-limits", model: "limits"}}})
		r := w.addReplica(t)
		ctx := context.Background()

		rpmKey, _ := w.addKey(t, func(k *gateway.Key) { k.RPM = 10 })
		before := w.a.Served()
		got := spread(ctx, []*secWorld{w, r}, rpmKey, 60, "limits")
		burst := countStatus(got[0], 200) + countStatus(got[1], 200)
		if burst > 10 || burst == 0 {
			t.Fatalf("rpm 10 over two replicas: %d passed (%v)", burst, got)
		}
		time.Sleep(2500 * time.Millisecond)
		more := 0
		for range 15 {
			if w.post(ctx, rpmKey, chatBody("limits", false)).status == 200 {
				more++
			}
		}
		if burst+more != 10 {
			t.Errorf("rpm 10 over two replicas: %d in the burst and %d after, want 10 in all", burst, more)
		}
		if s := r.post(ctx, rpmKey, chatBody("limits", false)).status; s != 429 {
			t.Errorf("rpm 10: the other replica answered %d, want 429", s)
		}
		if n := w.a.Served() - before; n != 10 {
			t.Errorf("rpm 10: the upstream saw %d calls", n)
		}

		// max_parallel 2: the upstream holds every call until the other 18
		// have been answered.
		hold := make(chan struct{})
		w.a.SetScript(gatewaytest.Script{APIKey: secProviderKey, Hold: hold})
		parKey, _ := w.addKey(t, func(k *gateway.Key) { k.MaxParallel = 2 })
		var answered atomic.Int64
		done := make(chan [][]int)
		go func() {
			out := make([][]int, 2)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := []*secWorld{w, r}[i%2].post(ctx, parKey, chatBody("limits", false)).status
					answered.Add(1)
					mu.Lock()
					out[i%2] = append(out[i%2], s)
					mu.Unlock()
				}()
			}
			wg.Wait()
			done <- out
		}()
		deadline := time.Now().Add(10 * time.Second)
		for (w.a.InFlight() < 2 || answered.Load() < 18) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := w.a.InFlight(); n != 2 {
			t.Errorf("max_parallel 2 over two replicas: %d calls in flight upstream", n)
		}
		close(hold)
		out := <-done
		if ok := countStatus(out[0], 200) + countStatus(out[1], 200); ok != 2 {
			t.Errorf("max_parallel 2 over two replicas: %d passed (%v)", ok, out)
		}
	})
}

// TestGatewayReplicasSeeBudgetChanges: a budget created, raised, lowered
// and deleted through one replica binds calls on the other within the
// reload interval, which reads only what changed.
func TestGatewayReplicasSeeBudgetChanges(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newSecWorld(t, db, secOptions{keys: 1, shared: true, deps: []secDep{{id: "dep-changes", model: "changes"}}})
		r := w.addReplica(t)
		ctx := context.Background()
		if s := r.post(ctx, w.keys[0], chatBody("changes", false)).status; s != 200 {
			t.Fatalf("before any budget: %d", s)
		}
		m := gateway.Manager{TenantID: w.tenant, UserID: w.user, Admin: true}
		// until waits for the other replica to answer want.
		until := func(what string, want int) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				s := r.post(ctx, w.keys[0], chatBody("changes", false)).status
				if s == want {
					return
				}
				if (s != 200 && s != 429) || time.Now().After(deadline) {
					t.Fatalf("%s on the other replica: still %d, want %d", what, s, want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		put := func(maxMicros int64) *gateway.Budget {
			t.Helper()
			b, err := w.svc.PutBudget(ctx, m, gateway.BudgetInput{Scope: gateway.BudgetTenant, MaxMicros: maxMicros})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		put(0)
		until("a zero budget created", 429)
		put(1_000_000_000)
		until("the budget raised", 200)
		b := put(0)
		until("the budget lowered to zero again", 429)
		if err := w.svc.DeleteBudget(ctx, m, b.ID); err != nil {
			t.Fatal(err)
		}
		until("the budget deleted", 200)
	})
}
