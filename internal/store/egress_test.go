package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

func egressRule(tenantID, host string, port int, prefix string) egress.Rule {
	return egress.Rule{ID: nodus.NewID(), TenantID: tenantID, Host: host, Port: port, PathPrefix: prefix,
		Comment: "c " + host, CreatedAt: nodus.SystemClock{}.Now(), CreatedBy: "u1"}
}

// setEgress replaces a tenant's policy with mode and rules.
func setEgress(t *testing.T, db *store.DB, scope, tenantID string, mode egress.Mode, rules ...egress.Rule) (*egress.Policy, *egress.Policy, error) {
	t.Helper()
	ctx := platform
	if scope != "" {
		ctx = nodus.WithTenant(ctx, scope)
	}
	return db.UpdateEgressPolicy(ctx, tenantID, func(p *egress.Policy) error {
		p.Mode, p.Rules, p.UpdatedAt, p.UpdatedBy = mode, rules, nodus.SystemClock{}.Now(), "u1"
		egress.SortRules(p.Rules)
		return nil
	})
}

func TestEgressStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetMain)
		a := nodus.NewID()
		inA := nodus.WithTenant(ctx, a)

		p, err := db.FindEgressPolicy(inA, a)
		if err != nil || p.Mode != egress.ModeEnforce || len(p.Rules) != 0 || !p.UpdatedAt.IsZero() || p.TenantID != a {
			t.Fatalf("a tenant without a policy: %+v, %v", p, err)
		}
		r1, r2 := egressRule(a, "api.example.com", 0, ""), egressRule(a, "*.example.org", 8443, "/v1")
		before, after, err := setEgress(t, db, a, a, egress.ModeReport, r1, r2)
		if err != nil || before.Mode != egress.ModeEnforce || len(before.Rules) != 0 || len(after.Rules) != 2 {
			t.Fatalf("first write: %+v %+v %v", before, after, err)
		}
		p, err = db.FindEgressPolicy(inA, a)
		if err != nil {
			t.Fatal(err)
		}
		got := p.Rules[1]
		if p.Mode != egress.ModeReport || len(p.Rules) != 2 || p.Rules[0].Host != "*.example.org" || got.ID != r1.ID ||
			got.TenantID != a || got.Comment != r1.Comment || !got.CreatedAt.Equal(r1.CreatedAt) || got.CreatedBy != "u1" ||
			p.Rules[0].Port != 8443 || p.Rules[0].PathPrefix != "/v1" || p.UpdatedAt.IsZero() || p.UpdatedBy != "u1" {
			t.Fatalf("read back: %+v", p)
		}

		// Replacing is atomic: the new list, nothing of the old one.
		r3 := egressRule(a, "new.example.com", 0, "")
		before, after, err = setEgress(t, db, a, a, egress.ModeEnforce, r1, r3)
		if err != nil || len(before.Rules) != 2 || after.Mode != egress.ModeEnforce {
			t.Fatal(before, after, err)
		}
		p, _ = db.FindEgressPolicy(inA, a)
		if len(p.Rules) != 2 || p.Rules[0].ID != r1.ID || p.Rules[1].ID != r3.ID || p.Mode != egress.ModeEnforce {
			t.Errorf("after replacing: %+v", p.Rules)
		}
		// An unchanged policy is not written: updated_at stays.
		stamp := p.UpdatedAt
		time.Sleep(2 * time.Millisecond)
		if _, _, err := setEgress(t, db, a, a, egress.ModeEnforce, r1, r3); err != nil {
			t.Fatal(err)
		}
		if p, _ = db.FindEgressPolicy(inA, a); !p.UpdatedAt.Equal(stamp) {
			t.Errorf("an unchanged policy was written: %v, was %v", p.UpdatedAt, stamp)
		}
		// An error from change aborts.
		boom := errors.New("boom")
		_, _, err = db.UpdateEgressPolicy(inA, a, func(p *egress.Policy) error { p.Rules = nil; return boom })
		if !errors.Is(err, boom) {
			t.Errorf("change error: %v", err)
		}
		if p, _ = db.FindEgressPolicy(inA, a); len(p.Rules) != 2 {
			t.Errorf("an aborted change was written: %+v", p.Rules)
		}
		// The database refuses what validation should have caught.
		bad := egressRule(a, "x.example", 70000, "")
		if _, _, err := setEgress(t, db, a, a, egress.ModeEnforce, bad); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("port 70000: %v, want invalid (check constraint)", err)
		}
		if _, _, err := setEgress(t, db, a, a, "block"); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("mode block: %v, want invalid (check constraint)", err)
		}
		dup := egressRule(a, "dup.example", 0, "")
		dup2 := dup
		dup2.ID = nodus.NewID()
		if _, _, err := setEgress(t, db, a, a, egress.ModeEnforce, dup, dup2); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate rule: %v, want conflict", err)
		}
		// A rule of another owner is refused.
		if _, _, err := setEgress(t, db, a, a, egress.ModeEnforce, egressRule("", "platform.example", 0, "")); nodus.ErrorCode(err) != nodus.EINTERNAL {
			t.Errorf("a platform rule through a tenant policy: %v", err)
		}
	})
}

func TestEgressPlatformStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetMain)
		a := nodus.NewID()
		inA := nodus.WithTenant(ctx, a)
		now := nodus.SystemClock{}.Now()
		ex := egress.AddressException{ID: nodus.NewID(), IP: "127.0.0.1", Port: 11434, Comment: "Ollama", CreatedAt: now, CreatedBy: "root"}
		pr := egressRule("", "127.0.0.1", 11434, "")
		set := func(ctx2 context.Context, rules []egress.Rule, exceptions []egress.AddressException) error {
			_, _, err := db.UpdateEgressPlatform(ctx2, func(p *egress.Platform) error {
				p.Rules, p.Exceptions = rules, exceptions
				return nil
			})
			return err
		}
		if err := set(inA, []egress.Rule{pr}, nil); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("platform rules from a tenant scope: %v, want forbidden", err)
		}
		if err := set(ctx, []egress.Rule{pr}, nil); err != nodus.ErrNoScope {
			t.Errorf("platform rules without a scope: %v", err)
		}
		if err := set(platform, []egress.Rule{pr}, []egress.AddressException{ex}); err != nil {
			t.Fatal(err)
		}
		p, err := db.FindEgressPlatform(platform)
		if err != nil || len(p.Rules) != 1 || p.Rules[0].TenantID != "" || len(p.Exceptions) != 1 ||
			p.Exceptions[0] != ex {
			t.Fatalf("platform: %+v, %v", p, err)
		}
		// A tenant scope reads the platform's rules, not the exceptions.
		p, err = db.FindEgressPlatform(inA)
		if err != nil || len(p.Rules) != 1 || p.Exceptions != nil {
			t.Errorf("platform from A: %+v, %v", p, err)
		}
		if _, err := db.FindEgressPlatform(ctx); err != nodus.ErrNoScope {
			t.Errorf("no scope: %v", err)
		}
		// Platform rules are not a tenant's rules.
		if pa, _ := db.FindEgressPolicy(inA, a); len(pa.Rules) != 0 {
			t.Errorf("A's own rules include the platform's: %+v", pa.Rules)
		}
		dup := ex
		dup.ID = nodus.NewID()
		if err := set(platform, nil, []egress.AddressException{ex, dup}); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate exception: %v", err)
		}
		if err := set(platform, nil, []egress.AddressException{{ID: nodus.NewID(), IP: "10.0.0.1", Port: 0, CreatedAt: now}}); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("port 0: %v", err)
		}
		if err := set(platform, nil, nil); err != nil {
			t.Fatal(err)
		}
		if p, _ := db.FindEgressPlatform(platform); len(p.Rules) != 0 || len(p.Exceptions) != 0 {
			t.Errorf("after clearing: %+v", p)
		}
	})
}

// TestEgressIsolation: tenant A's scope cannot read or change B's policy,
// nor the platform's, and no scope fails closed.
func TestEgressIsolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetMain)
		a, b := nodus.NewID(), nodus.NewID()
		inA := nodus.WithTenant(ctx, a)
		rb := egressRule(b, "b.example.com", 0, "")
		if _, _, err := setEgress(t, db, "", b, egress.ModeReport, rb); err != nil {
			t.Fatal(err)
		}
		if _, _, err := setEgress(t, db, a, a, egress.ModeEnforce, egressRule(a, "a.example.com", 0, "")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindEgressPolicy(inA, b); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A reads B: %v", err)
		}
		if _, _, err := setEgress(t, db, a, b, egress.ModeEnforce); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A writes B: %v", err)
		}
		pa, err := db.FindEgressPolicy(inA, a)
		if err != nil || len(pa.Rules) != 1 || pa.Rules[0].Host != "a.example.com" {
			t.Errorf("A's policy: %+v, %v", pa, err)
		}
		pb, err := db.FindEgressPolicy(nodus.WithTenant(ctx, b), b)
		if err != nil || pb.Mode != egress.ModeReport || len(pb.Rules) != 1 || pb.Rules[0].ID != rb.ID {
			t.Errorf("B changed: %+v, %v", pb, err)
		}
		for name, err := range map[string]error{
			"FindEgressPolicy": func() error { _, err := db.FindEgressPolicy(ctx, a); return err }(),
			"UpdateEgressPolicy": func() error {
				_, _, err := db.UpdateEgressPolicy(ctx, a, func(*egress.Policy) error { return nil })
				return err
			}(),
			"FindEgressPlatform": func() error { _, err := db.FindEgressPlatform(ctx); return err }(),
		} {
			if err != nodus.ErrNoScope {
				t.Errorf("%s without a scope: %v, want ErrNoScope", name, err)
			}
		}
	})
}

// TestEgressConcurrentReplace: concurrent replacements of one tenant's
// rules are serialised: each reads what the one before it wrote (so the
// audit log's before and after form one history) and the last one's list
// is what remains, never a mixture of two.
func TestEgressConcurrentReplace(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetMain)
		a := nodus.NewID()
		hostsOf := func(p *egress.Policy) string {
			var out []string
			for _, r := range p.Rules {
				out = append(out, r.Host)
			}
			return strings.Join(out, ",")
		}
		var mu sync.Mutex
		befores, afters := map[string]int{}, map[string]bool{}
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				rules := []egress.Rule{egressRule(a, fmt.Sprintf("w%d.example.com", i), 0, ""),
					egressRule(a, fmt.Sprintf("x%d.example.com", i), 0, "")}
				before, after, err := db.UpdateEgressPolicy(nodus.WithTenant(ctx, a), a, func(p *egress.Policy) error {
					time.Sleep(20 * time.Millisecond) // overlap the transactions
					p.Mode, p.Rules, p.UpdatedAt = egress.ModeEnforce, rules, nodus.SystemClock{}.Now()
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				befores[hostsOf(before)]++
				afters[hostsOf(after)] = true
				mu.Unlock()
			})
		}
		wg.Wait()
		for b, n := range befores {
			if n != 1 || (b != "" && !afters[b]) {
				t.Errorf("%d updates read the rules %q: the updates were not serialised (befores %v)", n, b, befores)
			}
		}
		p, err := db.FindEgressPolicy(nodus.WithTenant(ctx, a), a)
		if err != nil || len(p.Rules) != 2 || p.Rules[0].Host[1:] != p.Rules[1].Host[1:] || !afters[hostsOf(p)] || befores[hostsOf(p)] != 0 {
			t.Errorf("after concurrent replacements: %+v, %v", p, err)
		}
	})
}
