package main

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestDBRuntimeRole is SECURITY.md check 5 end to end: Nodus provisioned,
// migrated as the owners and served as the runtime roles, which own
// nothing, create nothing and see no tenant row unless the transaction
// names the tenant; then `nodus db check` passes for the runtime roles and
// tells a deployment still serving as the owners what to change.
func TestDBRuntimeRole(t *testing.T) {
	adminURL := storetest.ServerURL(t)
	ctx := context.Background()
	admin := adminConn(t, adminURL)
	prefix := provisionPrefix(t, admin)
	q := quoteIdent

	out, err := nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix)
	if err != nil {
		t.Fatalf("provision: %v\n%s", err, out)
	}
	owners, apps := printedURLs(out)
	if out, err := nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix); err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second provision: %v\n%s", err, out)
	}

	// The tables of a deployment of the one-role layout predate the
	// runtime role: no default privileges granted them. Emulated by taking
	// the main database's default privileges back before migrating.
	mainDB := adminConnTo(t, adminURL, prefix+"_main")
	for _, sql := range []string{
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + q(prefix+"_main") + " IN SCHEMA public REVOKE ALL ON TABLES FROM " + q(prefix+"_main_app"),
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + q(prefix+"_main") + " IN SCHEMA public REVOKE ALL ON SEQUENCES FROM " + q(prefix+"_main_app"),
	} {
		if _, err := mainDB.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	dataDir := t.TempDir()
	owners["NODUS_DATA_DIR"] = dataDir
	if out, err := nodusRun(t, owners, "migrate", "up"); err != nil {
		t.Fatalf("migrate up as the owners: %v\n%s", err, out)
	}
	vars := maps.Clone(apps)
	vars["NODUS_DATA_DIR"] = dataDir
	out, err = nodusRun(t, vars, "db", "check")
	if err == nil || !strings.Contains(out, `main: role "`+prefix+`_main_app" lacks SELECT, INSERT, UPDATE or DELETE on `) ||
		!strings.Contains(out, `main: tables "`+prefix+`_main" creates will not be granted`) {
		t.Fatalf("check of ungranted tables: %v\n%s", err, out)
	}
	out, err = nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix)
	if err != nil || !strings.Contains(out, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \""+prefix+"_main_app\"") ||
		!strings.Contains(out, "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public") {
		t.Fatalf("provision over existing tables: %v\n%s", err, out)
	}
	if out, err := nodusRun(t, vars, "db", "check"); err != nil || !strings.Contains(out, "ok: the deployment matches the layout") {
		t.Fatalf("check as the runtime roles: %v\n%s", err, out)
	}

	// Serving as the runtime roles with auto-migration on fails at once,
	// saying why: they cannot create tables.
	on := maps.Clone(vars)
	on["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var logs syncBuffer
	err = run(sctx, []string{"nodus", "serve", "--addr", "127.0.0.1:0"}, env(on), strings.NewReader(""), &logs, &logs)
	if err == nil || !strings.Contains(err.Error(), "the role cannot create tables: run `nodus migrate up` with the owner URLs") {
		t.Fatalf("serve as the runtime roles with auto-migration: %v\n%s", err, logs.String())
	}

	// With NODUS_AUTO_MIGRATE=false it serves: ready, and writing through
	// the knowledge, gateway and vault modules.
	vars["NODUS_AUTO_MIGRATE"] = "false"
	vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
	in := startNodus(t, vars)
	var ready struct{ Ready bool }
	if resp := getJSON(t, "GET", in.base+"/ready", nil, &ready); resp.StatusCode != 200 || !ready.Ready {
		t.Fatalf("/ready as the runtime roles = %d %+v", resp.StatusCode, ready)
	}
	superAdmin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
	var tenant struct{ Tenant struct{ ID string } }
	superAdmin.must("POST", "/api/v1/tenants", map[string]any{"name": "Runtime"}, 201, &tenant)
	superAdmin.must("POST", "/api/v1/users", map[string]any{"email": "rt-admin@example.test", "username": "rt-admin",
		"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": memberPassword}, 201, nil)
	org := signIn(t, in.base, "rt-admin", memberPassword)
	org.must("POST", "/api/v1/knowledge-bases", map[string]any{"name": "rt-kb"}, 201, nil)
	org.must("POST", "/api/v1/gateway/keys", map[string]any{"name": "rt-key", "max_budget_micros": 1000}, 201, nil)
	// A deleted budget leaves a tombstone for the other replicas (a
	// trigger, run as the runtime role).
	var budget struct{ Budget struct{ ID string } }
	org.must("PUT", "/api/v1/gateway/budgets", map[string]any{"scope": "tenant", "max_micros": 5000}, 200, &budget)
	org.must("DELETE", "/api/v1/gateway/budgets/"+budget.Budget.ID, nil, 204, nil)
	org.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/db",
		"key": "PASSWORD", "value": "rt-canary"}, 200, nil)
	// A reveal is audited in the main database: a write across two.
	var secret struct{ Value string }
	org.must("POST", "/api/v1/vault/secret/reveal", map[string]any{"environment": "prod", "path": "/db", "key": "PASSWORD"}, 200, &secret)
	if secret.Value != "rt-canary" {
		t.Fatalf("revealed %+v", secret)
	}
	// River runs as the runtime role too: a leader elected, and no
	// privilege refused anywhere.
	var leaders int
	for deadline := time.Now().Add(10 * time.Second); leaders == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := mainDB.QueryRow(ctx, "SELECT count(*) FROM river_leader").Scan(&leaders); err != nil {
			t.Fatal(err)
		}
	}
	if leaders == 0 {
		t.Errorf("no River leader elected as the runtime role:\n%s", in.logs.String())
	}
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	if logs := in.logs.String(); strings.Contains(logs, "permission denied") || strings.Contains(logs, "42501") ||
		strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("serving as the runtime roles was refused a privilege:\n%s", logs)
	}
	// River's nightly REINDEX needs the owner: the runtime role skips it
	// rather than fail every night.
	if !strings.Contains(in.logs.String(), "River's nightly reindex is left to the owner") {
		t.Errorf("River's reindexer is scheduled for a role that cannot run it")
	}

	// As the runtime role of the main database, by hand.
	app, err := pgx.Connect(ctx, apps["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	var owned int
	if err := app.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tableowner = current_user").Scan(&owned); err != nil || owned != 0 {
		t.Fatalf("the runtime role owns %d tables (%v)", owned, err)
	}
	var pgErr *pgconn.PgError
	if _, err := app.Exec(ctx, "CREATE TABLE intruder (id int)"); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("CREATE TABLE as the runtime role: %v; want permission denied (42501)", err)
	}
	// Row-level security: no tenant set, no row; the tenant set in the
	// transaction, its rows.
	var all, none, mine int
	if err := mainDB.QueryRow(ctx, "SELECT count(*) FROM knowledge_bases").Scan(&all); err != nil || all != 1 {
		t.Fatalf("knowledge bases seen by the superuser: %d (%v)", all, err)
	}
	if err := app.QueryRow(ctx, "SELECT count(*) FROM knowledge_bases").Scan(&none); err != nil || none != 0 {
		t.Fatalf("knowledge bases seen by the runtime role with no tenant set: %d (%v)", none, err)
	}
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('nodus.tenant_id', $1, true)", tenant.Tenant.ID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT count(*) FROM knowledge_bases").Scan(&mine)
	})
	if err != nil || mine != 1 {
		t.Fatalf("knowledge bases seen by the runtime role in the tenant's transaction: %d (%v)", mine, err)
	}
	vault, err := pgx.Connect(ctx, apps["VAULT_DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer vault.Close(ctx)
	if err := vault.QueryRow(ctx, "SELECT count(*) FROM vault_secrets").Scan(&none); err != nil || none != 0 {
		t.Fatalf("vault secrets seen by the vault's runtime role with no tenant set: %d (%v)", none, err)
	}
	// The main runtime role cannot reach the vault database.
	if c, err := pgx.Connect(ctx, withUser(t, apps["DATABASE_URL"], apps["VAULT_DATABASE_URL"])); err == nil {
		c.Close(ctx)
		t.Fatal("the main runtime role connected to the vault database")
	} else if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("the main runtime role connecting to the vault database: %v; want 42501", err)
	}

	// A deployment still serving as the owners (the one-role layout) is
	// told to switch.
	out, err = nodusRun(t, owners, "db", "check")
	if err == nil {
		t.Fatalf("check with the owner URLs passed:\n%s", out)
	}
	for _, l := range productionLayout() {
		want := l.name + `: Nodus is configured to serve as "` + l.owner(prefix) + `", the owner of database`
		if !strings.Contains(out, want) || !strings.Contains(out, "Run `nodus db provision` again") || !strings.Contains(out, "_app URLs") {
			t.Errorf("check with the owner URLs does not report %q and the fix:\n%s", want, out)
		}
	}
}

// TestSchemaSteps: what provision does inside a database, from its state.
func TestSchemaSteps(t *testing.T) {
	done := schemaState{owner: "pg_database_owner", appUsage: true, defaultTables: true, defaultSeqs: true}
	for _, c := range []struct {
		name  string
		state schemaState
		want  []string
	}{
		{"provisioned", done, nil},
		{"fresh, PostgreSQL 15 on", freshSchema(), []string{
			`ALTER DEFAULT PRIVILEGES FOR ROLE "o" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "o_app"`,
			`ALTER DEFAULT PRIVILEGES FOR ROLE "o" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "o_app"`,
		}},
		{"before PostgreSQL 15", schemaState{owner: "postgres", publicCreate: true, appUsage: true, defaultTables: true, defaultSeqs: true}, []string{
			`ALTER SCHEMA public OWNER TO "o"`,
			`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		}},
		{"tables of the one-role layout", schemaState{owner: "o", appUsage: true, tablesMissing: 40, seqsMissing: 2, defaultTables: true, defaultSeqs: true}, []string{
			`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "o_app"`,
			`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "o_app"`,
		}},
		{"drift", schemaState{owner: "pg_database_owner", appCreate: true, defaultTables: true, defaultSeqs: true}, []string{
			`REVOKE CREATE ON SCHEMA public FROM "o_app"`,
			`GRANT USAGE ON SCHEMA public TO "o_app"`,
		}},
	} {
		got := c.state.steps("o", "o_app")
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s: steps\n%s\nwant\n%s", c.name, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

// TestPrintURLs: two blocks, the owners' for `nodus migrate up` and the
// runtime roles' for serve, each with every variable; a password only for
// the roles given one.
func TestPrintURLs(t *testing.T) {
	var out strings.Builder
	err := printURLs(&out, "postgres://admin:secret@db:5432/postgres?sslmode=require&user=admin", "n",
		map[string]string{"n_main": "ownerpw", "n_main_app": "apppw"})
	if err != nil {
		t.Fatal(err)
	}
	owners, apps := printedURLs(out.String())
	want := map[string][2]string{
		"DATABASE_URL":         {"postgres://n_main:ownerpw@db:5432/n_main?sslmode=require", "postgres://n_main_app:apppw@db:5432/n_main?sslmode=require"},
		"AUTH_DATABASE_URL":    {"postgres://n_main:ownerpw@db:5432/n_main?sslmode=require", "postgres://n_main_app:apppw@db:5432/n_main?sslmode=require"},
		"GATEWAY_DATABASE_URL": {"postgres://n_gateway@db:5432/n_gateway?sslmode=require", "postgres://n_gateway_app@db:5432/n_gateway?sslmode=require"},
		"TRACING_DATABASE_URL": {"postgres://n_tracing@db:5432/n_tracing?sslmode=require", "postgres://n_tracing_app@db:5432/n_tracing?sslmode=require"},
		"VAULT_DATABASE_URL":   {"postgres://n_vault@db:5432/n_vault?sslmode=require", "postgres://n_vault_app@db:5432/n_vault?sslmode=require"},
	}
	for env, w := range want {
		if owners[env] != w[0] || apps[env] != w[1] {
			t.Errorf("%s: owner %q, runtime %q; want %q, %q", env, owners[env], apps[env], w[0], w[1])
		}
	}
	if len(owners) != len(want) || len(apps) != len(want) {
		t.Errorf("printed %d owner and %d runtime URLs:\n%s", len(owners), len(apps), out.String())
	}
	s := out.String()
	if strings.Contains(s, "admin") || !strings.Contains(s, "NODUS_AUTO_MIGRATE=false") ||
		strings.Index(s, "  nodus migrate up\n") > strings.Index(s, "NODUS_AUTO_MIGRATE=false") {
		t.Errorf("printed:\n%s", s)
	}
}
