package egress_test

import (
	"context"
	"sync"
	"testing"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestDeniedHook: Options.Denied hears of each refusal of a tenant's
// request, with the target as host:port (never the path or query), and
// not of what is let through, what report mode only reports, or the
// platform's own requests.
func TestDeniedHook(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		var mu sync.Mutex
		var heard []egress.Denial
		w := newWorld(t, db, hosts(map[string]string{"api.example.com": "93.184.215.14", "b.example.com": "93.184.215.15"}),
			func(o *egress.Options) {
				o.Denied = func(_ context.Context, d egress.Denial) {
					mu.Lock()
					defer mu.Unlock()
					heard = append(heard, d)
				}
			})
		w.setPolicy(w.a, egress.ModeEnforce, egress.RuleInput{Host: "api.example.com"})
		w.setPolicy(w.b, egress.ModeReport)
		inA, inB := nodus.WithTenant(bg, w.a), nodus.WithTenant(bg, w.b)
		if _, err := w.get(inA, w.a, "https://b.example.com/secret/path?token=x"); err == nil {
			t.Fatal("a request the policy does not allow went out")
		}
		_, _ = w.get(inB, w.b, "https://api.example.com:1/") // report mode: let through (and fails to connect)
		_, _ = w.get(w.platform, "", "http://127.0.0.1:9/")  // the platform's own: refused, not a tenant's
		mu.Lock()
		defer mu.Unlock()
		if len(heard) != 1 {
			t.Fatalf("heard %d denials, want 1: %+v", len(heard), heard)
		}
		d := heard[0]
		if d.TenantID != w.a || d.Target != "b.example.com:443" || d.Reason != egress.ReasonNotAllowed || d.Mode != egress.ModeEnforce {
			t.Errorf("denial = %+v", d)
		}
	})
}
