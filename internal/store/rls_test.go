package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// The row-level-security tests connect as storetest.RLSRole, which owns
// the tables but is neither superuser nor BYPASSRLS: the test server's own
// user is a superuser, and superusers pass every policy, which would make
// these tests prove nothing. SECURITY.md check 5.

// openRLS returns a PostgreSQL database, as the application role, with
// every set migrated. poolSize 0 is the tests' default pool.
func openRLS(t *testing.T, poolSize int) *store.DB {
	t.Helper()
	cfg := storetest.Config(storetest.PostgresAppURL(t))
	if poolSize > 0 {
		cfg.PoolSize = poolSize
	}
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, set := range store.MigrationSets() {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatalf("migrate %s: %v", set, err)
		}
	}
	// Without this the test is vacuous: a superuser or BYPASSRLS role
	// sees every row whatever the policies say.
	var super, bypass bool
	if err := db.Read(ctx, func(tx *store.Tx) error {
		return tx.QueryRow(ctx, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&super, &bypass)
	}); err != nil {
		t.Fatal(err)
	}
	if super || bypass {
		t.Fatalf("the test role has superuser=%v bypassrls=%v: row-level security does not apply to it", super, bypass)
	}
	return db
}

// insertRule adds an egress rule of tenant ("" for the platform's) in
// ctx's scope, with raw SQL as a store bug would write it.
func insertRule(ctx context.Context, db *store.DB, id, tenant string) error {
	var owner any
	if tenant != "" {
		owner = tenant
	}
	return db.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO egress_rules (id, tenant_id, host, created_at) VALUES (?, ?, ?, ?)",
			id, owner, id+".example", time.Now())
		return err
	})
}

// visibleOwners returns the tenant_id of every egress rule ctx's
// transaction can see, through a SELECT with no tenant filter at all: a
// store bug that forgot scopeCond. "-" stands for a platform row.
func visibleOwners(t *testing.T, ctx context.Context, db *store.DB) []string {
	t.Helper()
	var out []string
	err := db.Read(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, "SELECT COALESCE(tenant_id, '-') FROM egress_rules ORDER BY id")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// isRLSViolation reports PostgreSQL's refusal of a row by a policy.
func isRLSViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}

func TestRowLevelSecurity(t *testing.T) {
	db := openRLS(t, 0)
	a, b := nodus.WithTenant(ctx, "tenant-a"), nodus.WithTenant(ctx, "tenant-b")
	all := nodus.WithAllTenants(ctx)
	for _, r := range []struct {
		ctx        context.Context
		id, tenant string
	}{{a, "a1", "tenant-a"}, {a, "a2", "tenant-a"}, {b, "b1", "tenant-b"}, {all, "p1", ""}} {
		if err := insertRule(r.ctx, db, r.id, r.tenant); err != nil {
			t.Fatalf("insert %s in its own scope: %v", r.id, err)
		}
	}

	t.Run("no scope sees and writes no tenant row", func(t *testing.T) {
		if got := visibleOwners(t, ctx, db); len(got) != 0 {
			t.Errorf("no scope sees %v", got)
		}
		if err := insertRule(ctx, db, "x1", "tenant-a"); !isRLSViolation(err) {
			t.Errorf("insert with no scope: %v, want a row-level security violation", err)
		}
		var n int64
		err := db.Write(ctx, func(tx *store.Tx) error {
			var err error
			n, err = tx.Exec(ctx, "DELETE FROM egress_rules")
			return err
		})
		if err != nil || n != 0 {
			t.Errorf("delete with no scope: %d rows, %v; want 0", n, err)
		}
	})

	t.Run("a tenant sees its rows and the platform's only", func(t *testing.T) {
		if got := visibleOwners(t, a, db); !slices.Equal(got, []string{"tenant-a", "tenant-a", "-"}) {
			t.Errorf("A sees %v", got)
		}
		if got := visibleOwners(t, b, db); !slices.Equal(got, []string{"tenant-b", "-"}) {
			t.Errorf("B sees %v", got)
		}
	})

	t.Run("a tenant cannot write another's rows or the platform's", func(t *testing.T) {
		if err := insertRule(a, db, "x2", "tenant-b"); !isRLSViolation(err) {
			t.Errorf("A inserting B's row: %v, want a row-level security violation", err)
		}
		if err := insertRule(a, db, "x3", ""); !isRLSViolation(err) {
			t.Errorf("A inserting a platform row: %v, want a row-level security violation", err)
		}
		// Moving its own row to B is refused by WITH CHECK.
		err := db.Write(a, func(tx *store.Tx) error {
			_, err := tx.Exec(a, "UPDATE egress_rules SET tenant_id = 'tenant-b' WHERE id = 'a1'")
			return err
		})
		if !isRLSViolation(err) {
			t.Errorf("A moving its row to B: %v, want a row-level security violation", err)
		}
		// Unfiltered updates and deletes reach A's rows only.
		var updated, deleted int64
		err = db.Write(a, func(tx *store.Tx) error {
			var err error
			if updated, err = tx.Exec(a, "UPDATE egress_rules SET comment = 'touched'"); err != nil {
				return err
			}
			deleted, err = tx.Exec(a, "DELETE FROM egress_rules WHERE tenant_id IS NULL OR tenant_id = 'tenant-b'")
			return err
		})
		if err != nil || updated != 2 || deleted != 0 {
			t.Errorf("A's unfiltered update and delete: %d, %d rows, %v; want 2, 0", updated, deleted, err)
		}
	})

	t.Run("the all-tenants scope sees every row", func(t *testing.T) {
		if got := visibleOwners(t, all, db); !slices.Equal(got, []string{"tenant-a", "tenant-a", "tenant-b", "-"}) {
			t.Errorf("all tenants sees %v", got)
		}
	})
}

// TestRowLevelSecurityPooledConnection runs A, B, A and no scope on a pool
// of one connection: the scope is local to each transaction, so none
// carries over to the next one on the same connection.
func TestRowLevelSecurityPooledConnection(t *testing.T) {
	db := openRLS(t, 1)
	a, b := nodus.WithTenant(ctx, "tenant-a"), nodus.WithTenant(ctx, "tenant-b")
	for _, r := range []struct {
		ctx context.Context
		id  string
	}{{a, "a1"}, {b, "b1"}} {
		tenant, _, _ := nodus.TenantScope(r.ctx)
		if err := insertRule(r.ctx, db, r.id, tenant); err != nil {
			t.Fatal(err)
		}
	}
	for i, step := range []struct {
		ctx  context.Context
		want []string
	}{{a, []string{"tenant-a"}}, {b, []string{"tenant-b"}}, {a, []string{"tenant-a"}}, {ctx, nil}, {b, []string{"tenant-b"}}, {ctx, nil}} {
		if got := visibleOwners(t, step.ctx, db); !slices.Equal(got, step.want) {
			t.Errorf("step %d sees %v, want %v", i, got, step.want)
		}
	}
	// A failed transaction must not leave its scope behind either.
	_ = db.Write(a, func(tx *store.Tx) error { return errors.New("rolled back") })
	if got := visibleOwners(t, ctx, db); len(got) != 0 {
		t.Errorf("after A's rollback, no scope sees %v", got)
	}
}

// TestRowLevelSecurityEveryTenantTable checks the catalog: every table
// with a tenant_id column has row-level security enabled and forced, and a
// policy. A migration that adds a tenant table without its policy fails
// here.
func TestRowLevelSecurityEveryTenantTable(t *testing.T) {
	db := openRLS(t, 0)
	var missing []string
	n := 0
	err := db.Read(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
				EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
			FROM pg_class c
			JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
			WHERE c.relkind IN ('r', 'p') AND c.relnamespace = current_schema()::regnamespace
			ORDER BY c.relname`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var enabled, forced, policy bool
			if err := rows.Scan(&name, &enabled, &forced, &policy); err != nil {
				return err
			}
			n++
			if !enabled || !forced || !policy {
				missing = append(missing, name)
			}
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 40 {
		t.Fatalf("found %d tables with a tenant_id: the catalog query is wrong", n)
	}
	if len(missing) > 0 {
		t.Errorf("tables with a tenant_id but without row-level security enabled, forced and a policy: %v", missing)
	}
}

// TestRowLevelSecurityScopeSetting checks what each transaction tells
// PostgreSQL: the tenant id exactly, whatever characters it holds, the
// all-tenants flag, nothing without a scope, and the transaction's own
// options kept.
func TestRowLevelSecurityScopeSetting(t *testing.T) {
	db := storetest.OpenPostgres(t)
	settings := func(ctx context.Context) (tenant, all, readOnly string) {
		t.Helper()
		err := db.Read(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT COALESCE(current_setting('nodus.tenant_id', true), ''),
				COALESCE(current_setting('nodus.all_tenants', true), ''), current_setting('transaction_read_only')`).
				Scan(&tenant, &all, &readOnly)
		})
		if err != nil {
			t.Fatal(err)
		}
		return tenant, all, readOnly
	}
	for _, id := range []string{"tenant-a", `o'brien\'); SELECT set_config('nodus.all_tenants', 'on', true); --`, "ünï  ☃"} {
		if tenant, all, ro := settings(nodus.WithTenant(ctx, id)); tenant != id || all != "off" || ro != "on" {
			t.Errorf("scope %q: tenant %q, all_tenants %q, read only %q", id, tenant, all, ro)
		}
	}
	if tenant, all, _ := settings(nodus.WithAllTenants(ctx)); tenant != "" || all != "on" {
		t.Errorf("all tenants: tenant %q, all_tenants %q", tenant, all)
	}
	if tenant, all, ro := settings(ctx); tenant != "" || all != "" || ro != "on" {
		t.Errorf("no scope: tenant %q, all_tenants %q, read only %q", tenant, all, ro)
	}
	// An id PostgreSQL cannot hold as text fails the transaction rather
	// than running it with no scope or another.
	err := db.Read(nodus.WithTenant(ctx, "bad\xff\x00"), func(tx *store.Tx) error { return nil })
	if err == nil {
		t.Error("a transaction scoped to an id that is not UTF-8 began")
	}
}
