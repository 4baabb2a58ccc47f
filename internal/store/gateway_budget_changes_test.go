package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// budgetChanges reads the changes since cursor and returns the ids read,
// the ids deleted, and the next cursor.
func budgetChanges(t *testing.T, db *store.DB, since int64) (changed, deleted []string, next int64) {
	t.Helper()
	ch, err := db.BudgetChanges(ctx, since)
	if err != nil {
		t.Fatalf("BudgetChanges(%d): %v", since, err)
	}
	for _, b := range ch.Budgets {
		changed = append(changed, b.ID)
	}
	if since > 0 && ch.Next < since {
		t.Errorf("BudgetChanges(%d): next cursor %d goes back", since, ch.Next)
	}
	return changed, ch.Deleted, ch.Next
}

// wantChanges checks a read of changes (the budgets read, or the ids
// deleted): every id in want was read, and nothing in never was. On
// SQLite the read is exact; on PostgreSQL it may read more, what an
// earlier read returned already, since a transaction running anywhere on
// the server (another test's) holds the cursor back.
func wantChanges(t *testing.T, db *store.DB, what string, got, want, never []string) {
	t.Helper()
	for _, id := range want {
		if !slices.Contains(got, id) {
			t.Errorf("%s: %v misses %s", what, got, id)
		}
	}
	for _, id := range never {
		if slices.Contains(got, id) {
			t.Errorf("%s: %v holds %s", what, got, id)
		}
	}
	if db.Dialect() == store.SQLite && len(got) != len(want) {
		t.Errorf("%s: read %v, want exactly %v", what, got, want)
	}
}

// TestBudgetChanges: a read of budget changes returns every budget written
// since the cursor (created, edited, spent, rolled over) and every budget
// deleted since, tenant purges included, and nothing else on SQLite.
func TestBudgetChanges(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		ta, ua := newBudget(a.id, gateway.BudgetTenant, "", 1000), newBudget(a.id, gateway.BudgetUser, "u", 500)
		tb := newBudget(b.id, gateway.BudgetTenant, "", 7)
		for _, c := range []struct {
			s  tenantScope
			bg gateway.Budget
		}{{a, ta}, {a, ua}, {b, tb}} {
			if err := db.CreateBudget(c.s.ctx, c.bg); err != nil {
				t.Fatal(err)
			}
		}
		all, deleted, cur := budgetChanges(t, db, 0)
		if len(all) != 3 || deleted != nil || cur <= 0 {
			t.Fatalf("from 0: %v, deleted %v, cursor %d", all, deleted, cur)
		}
		got, deleted, cur := budgetChanges(t, db, cur)
		wantChanges(t, db, "nothing written", got, nil, nil)
		if deleted != nil {
			t.Errorf("nothing deleted: %v", deleted)
		}

		ua.MaxMicros = 900
		if err := db.UpdateBudget(a.ctx, ua); err != nil {
			t.Fatal(err)
		}
		got, _, cur = budgetChanges(t, db, cur)
		wantChanges(t, db, "edit", got, []string{ua.ID}, nil)

		if err := db.WriteSpend(ctx, nil, []gateway.BudgetSpend{{BudgetID: tb.ID, Micros: 3}}); err != nil {
			t.Fatal(err)
		}
		ch, err := db.BudgetChanges(ctx, cur)
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(ch.Budgets, func(b gateway.Budget) bool { return b.ID == tb.ID }); i < 0 || ch.Budgets[i].Spend != 3 {
			t.Errorf("spend written: %+v", ch.Budgets)
		}
		got, _, cur = budgetChanges(t, db, cur)
		wantChanges(t, db, "spend", got, []string{tb.ID}, nil)

		if ok, err := db.ResetBudget(a.ctx, ta.ID, *ta.ResetAt, ta.ResetAt.Add(24*time.Hour)); !ok || err != nil {
			t.Fatalf("ResetBudget = %v, %v", ok, err)
		}
		got, _, cur = budgetChanges(t, db, cur)
		wantChanges(t, db, "rollover", got, []string{ta.ID}, nil)

		// A new budget after a deletion; the deletion is reported, the
		// budget read.
		if err := db.DeleteBudget(b.ctx, tb.ID); err != nil {
			t.Fatal(err)
		}
		tb2 := newBudget(b.id, gateway.BudgetTenant, "", 8)
		if err := db.CreateBudget(b.ctx, tb2); err != nil {
			t.Fatal(err)
		}
		got, deleted, cur = budgetChanges(t, db, cur)
		wantChanges(t, db, "after a deletion", got, []string{tb2.ID}, []string{tb.ID})
		wantChanges(t, db, "deleted", deleted, []string{tb.ID}, []string{tb2.ID, ta.ID, ua.ID})

		// A tenant's purge deletes its budgets without DeleteBudget.
		if err := db.DeleteGatewayTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		got, deleted, cur = budgetChanges(t, db, cur)
		wantChanges(t, db, "after a purge", got, nil, []string{ta.ID, ua.ID})
		wantChanges(t, db, "deleted by the purge", deleted, []string{ta.ID, ua.ID}, []string{tb2.ID})
		if all, deleted, _ := budgetChanges(t, db, 0); !slices.Equal(all, []string{tb2.ID}) || deleted != nil {
			t.Errorf("from 0 after the purge: %v, deleted %v", all, deleted)
		}

		// A budget deleted and created again under the same id reads as
		// it is now.
		if err := db.DeleteBudget(b.ctx, tb2.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateBudget(b.ctx, tb2); err != nil {
			t.Fatal(err)
		}
		got, deleted, _ = budgetChanges(t, db, cur)
		wantChanges(t, db, "deleted and created again", got, []string{tb2.ID}, nil)
		wantChanges(t, db, "deleted after deleted and created again", deleted, nil, []string{tb2.ID})

		// Tombstones are kept until pruned.
		if n, err := db.PruneBudgetTombstones(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Errorf("prune before the deletions = %d, %v", n, err)
		}
		if n, err := db.PruneBudgetTombstones(ctx, time.Now().Add(time.Minute)); err != nil || n != 4 {
			t.Errorf("prune after the deletions = %d, %v; want 4 (tb, ta, ua, tb2 once)", n, err)
		}
		if _, err := db.BudgetChanges(ctx, -1); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("negative cursor: %v", err)
		}
	})
}

// TestBudgetChangesSeesLateCommits: a write that has not committed when a
// read of changes takes its cursor is read by the next read, however long
// it takes to commit. (Transactions stamp rows when they write them;
// PostgreSQL commits them in any order.)
func TestBudgetChangesSeesLateCommits(t *testing.T) {
	runGateway(t, func(t *testing.T, db *store.DB, a, _ tenantScope) {
		bg := newBudget(a.id, gateway.BudgetTenant, "", 1000)
		if err := db.CreateBudget(a.ctx, bg); err != nil {
			t.Fatal(err)
		}
		_, _, cur := budgetChanges(t, db, 0)

		written, commit, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			done <- db.Write(nodus.WithAllTenants(ctx), func(tx *store.Tx) error {
				if _, err := tx.Exec(nodus.WithAllTenants(ctx), `UPDATE gateway_budgets SET spend = spend + 5 WHERE id = ?`, bg.ID); err != nil {
					return err
				}
				close(written)
				<-commit
				return nil
			})
		}()
		select {
		case <-written:
		case err := <-done:
			t.Fatal(err)
		}
		// On PostgreSQL, a later transaction commits first. (SQLite's
		// single writer makes that impossible.)
		later := newBudget(a.id, gateway.BudgetUser, "later", 1)
		if db.Dialect() == store.Postgres {
			if err := db.CreateBudget(a.ctx, later); err != nil {
				t.Fatal(err)
			}
		}
		before, err := db.BudgetChanges(ctx, cur)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range before.Budgets {
			if b.ID == bg.ID && b.Spend != 0 {
				t.Errorf("before the commit: read %+v", b)
			}
		}
		if db.Dialect() == store.SQLite && len(before.Budgets) != 0 {
			t.Errorf("before the commit: read %+v", before.Budgets)
		}
		next := before.Next
		close(commit)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		ch, err := db.BudgetChanges(ctx, next)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ch.Budgets, func(b gateway.Budget) bool { return b.ID == bg.ID })
		if i < 0 || ch.Budgets[i].Spend != 5 {
			t.Errorf("after the commit: %+v, want %s with spend 5", ch.Budgets, bg.ID)
		}
	})
}

// BenchmarkBudgetChanges is a replica's read of budgets, with 10,000 in
// the store: all of them (what every reload did before reads of changes,
// and what a start does), and the 100 whose spend was written since the
// last read.
//
//	NODUS_TEST_POSTGRES_URL=… go test -run '^$' -bench BudgetChanges ./internal/store/
func BenchmarkBudgetChanges(b *testing.B) {
	storetest.BenchMigrated(b, store.SetGateway, func(b *testing.B, db *store.DB) {
		s := newTenantScope()
		const n = 10_000
		spend := make([]gateway.BudgetSpend, 0, 100)
		for i := range n {
			bg := newBudget(s.id, gateway.BudgetUser, fmt.Sprint("user-", i), 1<<40)
			if err := db.CreateBudget(s.ctx, bg); err != nil {
				b.Fatal(err)
			}
			if i%(n/100) == 0 {
				spend = append(spend, gateway.BudgetSpend{BudgetID: bg.ID, Micros: 1})
			}
		}
		// As autovacuum (PostgreSQL) and the optimize runs (SQLite)
		// would have by then: without statistics PostgreSQL guesses a
		// third of the rows are newer than any cursor, and scans them
		// all.
		all := nodus.WithAllTenants(ctx)
		if err := db.Write(all, func(tx *store.Tx) error { _, err := tx.Exec(all, `ANALYZE`); return err }); err != nil {
			b.Fatal(err)
		}
		first, err := db.BudgetChanges(ctx, 0)
		if err != nil || len(first.Budgets) != n {
			b.Fatalf("%d budgets, %v", len(first.Budgets), err)
		}
		if err := db.WriteSpend(ctx, nil, spend); err != nil {
			b.Fatal(err)
		}
		b.Run("all", func(b *testing.B) {
			for b.Loop() {
				if _, err := db.BudgetChanges(ctx, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("changed-100", func(b *testing.B) {
			for b.Loop() {
				ch, err := db.BudgetChanges(ctx, first.Next)
				if err != nil || len(ch.Budgets) != len(spend) {
					b.Fatalf("%d changed, %v", len(ch.Budgets), err)
				}
			}
		})
	})
}
