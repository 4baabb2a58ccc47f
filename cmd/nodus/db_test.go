package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// nodusRun runs the nodus command line with vars as its environment and
// returns what it printed.
func nodusRun(t *testing.T, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"nodus"}, args...), env(vars), nil, &out, &out)
	return out.String(), err
}

// provisionPrefix returns a prefix of its own for this test, and drops the
// databases and roles it names when the test ends, so runs never collide
// and leave nothing behind.
func provisionPrefix(t *testing.T, admin *pgx.Conn) string {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	prefix := "nodustest_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, l := range productionLayout() {
			name := quoteIdent(prefix + "_" + l.name)
			if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Errorf("drop database %s: %v", name, err)
			}
		}
		for _, l := range productionLayout() {
			for _, name := range []string{l.app(prefix), l.owner(prefix)} {
				if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+quoteIdent(name)); err != nil {
					t.Errorf("drop role %s: %v", name, err)
				}
			}
		}
	})
	return prefix
}

func adminConn(t *testing.T, adminURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// printedURLs reads the VAR=URL lines provision prints: the owners', in
// the `nodus migrate up` command, and the runtime roles', for serve.
func printedURLs(out string) (owners, apps map[string]string) {
	parse := func(block string) map[string]string {
		vars := map[string]string{}
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSuffix(line, " \\")
			if k, v, ok := strings.Cut(line, "="); ok && strings.HasSuffix(k, "DATABASE_URL") && !strings.Contains(k, " ") {
				vars[k] = strings.Trim(v, "'")
			}
		}
		return vars
	}
	migrate, serve, _ := strings.Cut(out, "  nodus migrate up\n")
	return parse(migrate), parse(serve)
}

// adminConnTo connects as the admin to database.
func adminConnTo(t *testing.T, adminURL, database string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = database
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// layoutState is what provisioning may change on the server: each role's
// attributes and password verifier, each database's owner and ACL.
func layoutState(t *testing.T, admin *pgx.Conn, prefix string) string {
	t.Helper()
	var state string
	err := admin.QueryRow(context.Background(), `SELECT
		coalesce((SELECT string_agg(concat_ws(' ', rolname, rolcanlogin, rolsuper, rolcreatedb, rolpassword), ';' ORDER BY rolname)
			FROM pg_authid WHERE rolname LIKE $1), '') || '|' ||
		coalesce((SELECT string_agg(concat_ws(' ', datname, pg_get_userbyid(datdba), datacl::text), ';' ORDER BY datname)
			FROM pg_database WHERE datname LIKE $1), '')`, prefix+"\\_%").Scan(&state)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// withUser returns rawURL connecting as the role of from (its user and
// password) to the database of to.
func withUser(t *testing.T, from, to string) string {
	t.Helper()
	f, err := url.Parse(from)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	u.User = f.User
	return u.String()
}

func TestDBProvisionAndCheck(t *testing.T) {
	adminURL := storetest.ServerURL(t)
	ctx := context.Background()
	admin := adminConn(t, adminURL)
	prefix := provisionPrefix(t, admin)
	before := layoutState(t, admin, prefix)
	q := quoteIdent

	// --dry-run prints the plan and executes none of it.
	out, err := nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix, "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, want := range []string{
		`CREATE ROLE "` + prefix + `_vault" LOGIN`,
		`CREATE ROLE "` + prefix + `_vault_app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS`,
		`CREATE DATABASE "` + prefix + `_vault" OWNER "` + prefix + `_vault"`,
		`REVOKE ALL ON DATABASE "` + prefix + `_main" FROM PUBLIC`,
		`GRANT CONNECT, TEMPORARY ON DATABASE "` + prefix + `_vault" TO "` + prefix + `_vault_app";`,
		`\connect "` + prefix + `_main"`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE "` + prefix + `_main" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "` + prefix + `_main_app";`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE "` + prefix + `_main" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "` + prefix + `_main_app";`,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run does not print %q:\n%s", want, out)
		}
	}
	owners, apps := printedURLs(out)
	if strings.Contains(out, "SCRAM-SHA-256$") || len(owners)+len(apps) > 0 {
		t.Fatalf("dry run shows a password verifier or URLs:\n%s", out)
	}
	if after := layoutState(t, admin, prefix); after != before {
		t.Fatalf("dry run changed the server: %q, then %q", before, after)
	}

	out, err = nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix)
	if err != nil {
		t.Fatalf("provision: %v\n%s", err, out)
	}
	owners, apps = printedURLs(out)
	for _, env := range []string{"DATABASE_URL", "AUTH_DATABASE_URL", "GATEWAY_DATABASE_URL", "TRACING_DATABASE_URL", "VAULT_DATABASE_URL"} {
		for block, vars := range map[string]map[string]string{"owner": owners, "runtime": apps} {
			u, err := url.Parse(vars[env])
			if err != nil || u.User == nil {
				t.Fatalf("provision printed no %s URL with credentials for %s:\n%s", block, env, out)
			}
			if pw, _ := u.User.Password(); len(pw) < 32 {
				t.Fatalf("%s %s has a weak or no password: %q", block, env, pw)
			}
			if isApp := strings.HasSuffix(u.User.Username(), "_app"); isApp != (block == "runtime") {
				t.Fatalf("the %s URL of %s connects as %s", block, env, u.User.Username())
			}
		}
	}
	if owners["DATABASE_URL"] != owners["AUTH_DATABASE_URL"] || apps["DATABASE_URL"] != apps["AUTH_DATABASE_URL"] {
		t.Fatalf("main and auth should share a database:\n%s", out)
	}
	if !strings.Contains(out, "NODUS_AUTO_MIGRATE=false") {
		t.Fatalf("the serve block does not turn auto-migration off:\n%s", out)
	}
	provisioned := layoutState(t, admin, prefix)

	// A second run finds nothing to do and changes nothing, passwords
	// included.
	out, err = nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix)
	if err != nil || !strings.Contains(out, "nothing to do") || strings.Contains(out, ";\n") {
		t.Fatalf("second provision: %v\n%s", err, out)
	}
	if again := layoutState(t, admin, prefix); again != provisioned {
		t.Fatalf("second provision changed the server:\n%s\n%s", provisioned, again)
	}
	if _, a := printedURLs(out); strings.Contains(a["VAULT_DATABASE_URL"], ":"+"//"+prefix+"_vault_app:") {
		t.Fatalf("second provision printed a password it does not know: %s", a["VAULT_DATABASE_URL"])
	}

	vars := maps.Clone(apps)
	vars["NODUS_DATA_DIR"] = t.TempDir()
	owners["NODUS_DATA_DIR"] = vars["NODUS_DATA_DIR"]
	if out, err := nodusRun(t, vars, "db", "check"); err == nil || !strings.Contains(out, "pending") {
		t.Fatalf("check before migrating should report pending migrations: %v\n%s", err, out)
	}
	if out, err := nodusRun(t, owners, "migrate", "up"); err != nil {
		t.Fatalf("migrate up with the printed owner URLs: %v\n%s", err, out)
	}
	if out, err := nodusRun(t, vars, "db", "check"); err != nil || !strings.Contains(out, "ok: the deployment matches the layout") {
		t.Fatalf("check after provision and migrate: %v\n%s", err, out)
	}
	// Provision after the migrations finds the tables granted already
	// (default privileges did it).
	if out, err := nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix); err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("provision after migrate up: %v\n%s", err, out)
	}

	// The vault is walled off both ways, for owners and runtime roles, by a
	// real connection attempt.
	for _, c := range []struct {
		from     map[string]string
		env, dst string
	}{
		{apps, "DATABASE_URL", "VAULT_DATABASE_URL"},
		{owners, "DATABASE_URL", "VAULT_DATABASE_URL"},
		{apps, "GATEWAY_DATABASE_URL", "VAULT_DATABASE_URL"},
		{apps, "VAULT_DATABASE_URL", "DATABASE_URL"},
		{owners, "VAULT_DATABASE_URL", "DATABASE_URL"},
		{apps, "VAULT_DATABASE_URL", "GATEWAY_DATABASE_URL"},
	} {
		conn, err := pgx.Connect(ctx, withUser(t, c.from[c.env], apps[c.dst]))
		if err == nil {
			conn.Close(ctx)
			t.Fatalf("the role of %s connected to the database of %s", c.from[c.env], c.dst)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Fatalf("the role of %s connecting to the database of %s: %v; want permission denied (42501)", c.env, c.dst, err)
		}
	}

	// Seeded differences: the vault opened to everyone, a role given
	// CREATEDB, a set rolled back, the runtime role given CREATE on the
	// schema and deprived of DELETE, a table given to it. Check reports
	// each one.
	for _, sql := range []string{
		"GRANT CONNECT ON DATABASE " + q(prefix+"_vault") + " TO PUBLIC",
		"ALTER ROLE " + q(prefix+"_gateway_app") + " CREATEDB",
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	mainDB := adminConnTo(t, adminURL, prefix+"_main")
	gatewayDB := adminConnTo(t, adminURL, prefix+"_gateway")
	for _, c := range []struct {
		conn *pgx.Conn
		sql  string
	}{
		{mainDB, "GRANT CREATE ON SCHEMA public TO " + q(prefix+"_main_app")},
		{mainDB, "REVOKE DELETE ON schema_migrations FROM " + q(prefix+"_main_app")},
		{gatewayDB, "ALTER TABLE schema_migrations OWNER TO " + q(prefix+"_gateway_app")},
	} {
		if _, err := c.conn.Exec(ctx, c.sql); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := nodusRun(t, owners, "migrate", "down", "3", "--set", "tracing"); err != nil {
		t.Fatalf("migrate down: %v\n%s", err, out)
	}
	out, err = nodusRun(t, vars, "db", "check")
	if err == nil {
		t.Fatalf("check passed with seeded differences:\n%s", out)
	}
	for _, want := range []string{
		`vault: PUBLIC has CONNECT`,
		`vault: role "` + prefix + `_main_app" may connect to database "` + prefix + `_vault"`,
		`vault: role "` + prefix + `_main" may connect to database "` + prefix + `_vault"`,
		`gateway: role "` + prefix + `_gateway_app" has CREATEDB`,
		`gateway: role "` + prefix + `_gateway_app" owns schema_migrations in database "` + prefix + `_gateway"`,
		`main: role "` + prefix + `_main_app" may create in schema public`,
		`main: role "` + prefix + `_main_app" lacks SELECT, INSERT, UPDATE or DELETE on schema_migrations`,
		`tracing: migrations [7 8 9] pending`,
		// Rolling back tracing's row_level_security migration (0007, and
		// 0008 and 0009 after it) left its tenant tables unguarded.
		`tracing: table public.traces has a tenant_id but not row-level security enabled, forced, a policy`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check does not report %q:\n%s", want, out)
		}
	}
	// Table ownership is the migrations' business, not provision's: the
	// operator gives it back.
	if _, err := gatewayDB.Exec(ctx, "ALTER TABLE schema_migrations OWNER TO "+q(prefix+"_gateway")); err != nil {
		t.Fatal(err)
	}
	if out, err := nodusRun(t, owners, "migrate", "up"); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}

	// A role that lost CONNECT to its own database cannot tell check
	// anything; with --admin-url, check reads why.
	if _, err := admin.Exec(ctx, "REVOKE CONNECT ON DATABASE "+q(prefix+"_tracing")+" FROM "+q(prefix+"_tracing_app")); err != nil {
		t.Fatal(err)
	}
	out, err = nodusRun(t, vars, "db", "check", "--admin-url", adminURL)
	if err == nil || !strings.Contains(out, `tracing: role "`+prefix+`_tracing_app" may not connect to its database`) {
		t.Fatalf("check --admin-url after revoking the runtime role's CONNECT: %v\n%s", err, out)
	}

	// Provision repairs every drift it owns, keeping the passwords.
	out, err = nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix)
	if err != nil || strings.Contains(out, "nothing to do") {
		t.Fatalf("provision over drift: %v\n%s", err, out)
	}
	if out, err := nodusRun(t, vars, "db", "check"); err != nil {
		t.Fatalf("check after provision repaired the drift: %v\n%s", err, out)
	}
	if again := layoutState(t, admin, prefix); again != provisioned {
		t.Fatalf("repair did not restore the provisioned state:\n%s\n%s", provisioned, again)
	}

	// --rotate-passwords gives every role a new password (a new verifier
	// on the server; the test server's pg_hba.conf may trust local
	// connections, so TestScramVerifier checks the verifier itself) and
	// the new URLs work.
	out, err = nodusRun(t, nil, "db", "provision", "--admin-url", adminURL, "--prefix", prefix, "--rotate-passwords")
	if err != nil {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	rotatedOwners, rotatedApps := printedURLs(out)
	verifiers := func() map[string]string {
		rows, err := admin.Query(ctx, "SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE $1", prefix+"\\_%")
		if err != nil {
			t.Fatal(err)
		}
		m, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv [2]string, err error) {
			err = r.Scan(&kv[0], &kv[1])
			return kv, err
		})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, kv := range m {
			out[kv[0]] = kv[1]
		}
		return out
	}
	after := verifiers()
	if len(after) != 8 {
		t.Fatalf("roles after rotation: %v", after)
	}
	for role, v := range after {
		if !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") || strings.Contains(provisioned, v) {
			t.Fatalf("role %s: verifier %q is not a new SCRAM verifier", role, v)
		}
	}
	for _, env := range []string{"DATABASE_URL", "GATEWAY_DATABASE_URL", "TRACING_DATABASE_URL", "VAULT_DATABASE_URL"} {
		for _, c := range [][2]string{{owners[env], rotatedOwners[env]}, {apps[env], rotatedApps[env]}} {
			if c[0] == c[1] {
				t.Fatalf("%s unchanged after --rotate-passwords", env)
			}
			conn, err := pgx.Connect(ctx, c[1])
			if err != nil {
				t.Fatalf("the new URL of %s: %v", env, err)
			}
			conn.Close(ctx)
		}
	}
}

// TestScramVerifier checks the verifier against RFC 7677's example
// exchange (user "user", password "pencil"): the server signature must be
// the RFC's, and the client's proof must open to the stored key.
func TestScramVerifier(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramVerifierSalted("pencil", salt)
	if err != nil {
		t.Fatal(err)
	}
	head, keys, ok := strings.Cut(v, "$")
	if !ok || head != "SCRAM-SHA-256" {
		t.Fatalf("verifier %q", v)
	}
	iterSalt, storedServer, _ := strings.Cut(keys, "$")
	if iterSalt != "4096:W22ZaJ0SNY7soEsUEjb6gQ==" {
		t.Fatalf("iterations and salt = %q", iterSalt)
	}
	storedB64, serverB64, _ := strings.Cut(storedServer, ":")
	stored, _ := base64.StdEncoding.DecodeString(storedB64)
	serverKey, _ := base64.StdEncoding.DecodeString(serverB64)

	const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	authMessage := "n=user,r=rOprNGfwEbeRWgbNEkqO,r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=" + nonce
	sign := func(key []byte) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(authMessage))
		return h.Sum(nil)
	}
	if got := base64.StdEncoding.EncodeToString(sign(serverKey)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server signature %s does not match RFC 7677", got)
	}
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	clientKey := sign(stored)
	for i := range clientKey {
		clientKey[i] ^= proof[i]
	}
	if sum := sha256.Sum256(clientKey); !hmac.Equal(sum[:], stored) {
		t.Fatal("RFC 7677's client proof does not open to the stored key")
	}
}

func TestDBCommandsOnSQLite(t *testing.T) {
	vars := map[string]string{"NODUS_DATA_DIR": t.TempDir()}
	out, err := nodusRun(t, vars, "db", "provision", "--admin-url", "sqlite:"+vars["NODUS_DATA_DIR"]+"/x.db")
	var u errUsage
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("provision on SQLite: %v\n%s", err, out)
	}

	out, err = nodusRun(t, vars, "db", "check")
	if err == nil || !strings.Contains(out, "main: migrations [1 2 3") || !strings.Contains(out, "on SQLite") {
		t.Fatalf("check of an empty SQLite deployment: %v\n%s", err, out)
	}
	if _, err := nodusRun(t, vars, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	if out, err := nodusRun(t, vars, "db", "check"); err != nil || strings.Contains(out, "DIFF") {
		t.Fatalf("check after migrate up: %v\n%s", err, out)
	}
}

func TestDBCommandUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"db"}, "provision or check"},
		{[]string{"db", "nope"}, "unknown db subcommand"},
		{[]string{"db", "provision"}, "needs --admin-url"},
		{[]string{"db", "provision", "--admin-url", "postgres://x@h/db", "--prefix", `a"; DROP ROLE x; --`}, "--prefix"},
		{[]string{"db", "provision", "--admin-url", "postgres://x@h/db", "--prefix", strings.Repeat("p", 60)}, "too long"},
		{[]string{"db", "check", "extra"}, "unexpected arguments"},
	} {
		_, err := nodusRun(t, map[string]string{"NODUS_DATA_DIR": t.TempDir()}, c.args...)
		var u errUsage
		if !errors.As(err, &u) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want a usage error with %q", c.args, err, c.want)
		}
	}
}

// TestQuoteIdent: names are quoted so that no prefix could end the
// identifier early.
func TestQuoteIdent(t *testing.T) {
	if got, want := quoteIdent(`a"b`), `"a""b"`; got != want {
		t.Fatalf("quoteIdent = %s, want %s", got, want)
	}
	if got, want := quoteLiteral(`it's`), `'it''s'`; got != want {
		t.Fatalf("quoteLiteral = %s, want %s", got, want)
	}
}
