package main

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/store"
)

// The production layout on PostgreSQL, after the seed's: one server, a
// database per service, each with two login roles of its own that reach no
// other database: its owner, <prefix>_<name>, which owns the database and
// its tables and which only `nodus migrate up` uses, and its runtime role,
// <prefix>_<name>_app, which `nodus serve` connects as, with rows to read
// and write and nothing else: not the owner, so row-level security binds
// it without relying on FORCE (SECURITY.md check 5). main and auth share
// a database, as the seed's backoffice and authentication share nodus_db
// (AUTH_DATABASE_URL defaults to DATABASE_URL on PostgreSQL), and River's
// job queue lives in it too. The gateway, tracing and the vault each get
// their own; the vault's roles, like the seed's infisical_service, reach
// nothing else.
//
// Extensions: the seed installs uuid-ossp and pg_trgm for LiteLLM and
// Langfuse. Nodus's migrations (and River's) use neither, nor any other:
// ids are made in Go and full-text search is Nodus's own index. So provision
// installs none and check requires none.
type layoutDatabase struct {
	name string   // suffix of the database and role names: <prefix>_<name>
	sets []string // migration sets it holds
	envs []string // the variables that name its URL
}

// appSuffix ends the runtime role's name.
const appSuffix = "_app"

// owner is the name of the database and of the role that owns it.
func (l layoutDatabase) owner(prefix string) string { return prefix + "_" + l.name }

// app is the name of the runtime role.
func (l layoutDatabase) app(prefix string) string { return l.owner(prefix) + appSuffix }

func productionLayout() []layoutDatabase {
	return []layoutDatabase{
		{"main", []string{store.SetMain, store.SetAuth, jobs.SetName}, []string{"DATABASE_URL", "AUTH_DATABASE_URL"}},
		{"gateway", []string{store.SetGateway}, []string{"GATEWAY_DATABASE_URL"}},
		{"tracing", []string{store.SetTracing}, []string{"TRACING_DATABASE_URL"}},
		{"vault", []string{store.SetVault}, []string{"VAULT_DATABASE_URL"}},
	}
}

// adminURLEnv lets the admin URL, which holds a superuser's password, stay
// out of the process list.
const adminURLEnv = "NODUS_ADMIN_DATABASE_URL"

// dbCmd runs `nodus db provision | check`.
func dbCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage{"db needs a subcommand: provision or check"}
	}
	switch args[0] {
	case "provision":
		return dbProvision(ctx, args[1:], getenv, stdout, stderr)
	case "check":
		return dbCheck(ctx, args[1:], getenv, stdout, stderr)
	default:
		return errUsage{fmt.Sprintf("unknown db subcommand %q", args[0])}
	}
}

// prefixPattern keeps names plain: they are quoted in SQL anyway, but a
// lower-case name needs no quoting in psql or in pg_hba.conf either.
var prefixPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// maxIdentifier is PostgreSQL's NAMEDATALEN-1: longer names are truncated
// silently, which would make two of ours collide.
const maxIdentifier = 63

func checkPrefix(prefix string) error {
	if !prefixPattern.MatchString(prefix) {
		return errUsage{fmt.Sprintf("--prefix %q: use lower-case letters, digits and underscores, starting with a letter or underscore", prefix)}
	}
	for _, l := range productionLayout() {
		if len(l.app(prefix)) > maxIdentifier {
			return errUsage{fmt.Sprintf("--prefix %q is too long: %s exceeds PostgreSQL's %d-byte names", prefix, l.app(prefix), maxIdentifier)}
		}
	}
	return nil
}

func quoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// step is one statement of a provisioning plan; shown is what is printed,
// the statement with any password verifier left out. database names the
// database it runs in; "" is the admin URL's.
type step struct {
	sql, shown string
	database   string
}

// roleState is what provisioning needs to know of an existing role.
type roleState struct {
	exists                                                  bool
	login, super, createDB, createRole, replication, bypass bool
}

func (r roleState) leastPrivilege() bool {
	return r.login && !r.super && !r.createDB && !r.createRole && !r.replication && !r.bypass
}

// roleAttributes are the attributes every Nodus role has: it logs in and
// can do nothing beyond what it owns. NOBYPASSRLS keeps row-level security
// in force for it.
const roleAttributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

func readRole(ctx context.Context, conn *pgx.Conn, name string) (roleState, error) {
	r := roleState{exists: true}
	err := conn.QueryRow(ctx, `SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
		FROM pg_catalog.pg_roles WHERE rolname = $1`, name).
		Scan(&r.login, &r.super, &r.createDB, &r.createRole, &r.replication, &r.bypass)
	if errors.Is(err, pgx.ErrNoRows) {
		return roleState{}, nil
	}
	return r, err
}

// databaseState is what provisioning and check need to know of a database.
type databaseState struct {
	exists bool
	owner  string
	// public lists the privileges granted to PUBLIC; a database without an
	// ACL has the default, CONNECT and TEMPORARY for everyone.
	public []string
}

func readDatabase(ctx context.Context, conn *pgx.Conn, name string) (databaseState, error) {
	d := databaseState{exists: true}
	err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(d.datdba),
			ARRAY(SELECT a.privilege_type FROM pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
				WHERE a.grantee = 0 ORDER BY 1)
		FROM pg_catalog.pg_database d WHERE d.datname = $1`, name).Scan(&d.owner, &d.public)
	if errors.Is(err, pgx.ErrNoRows) {
		return databaseState{}, nil
	}
	return d, err
}

// connectors returns the login roles, other than superusers (who connect
// anywhere) and except, that may connect to database db, directly, through
// PUBLIC or through a role they inherit from.
func connectors(ctx context.Context, conn *pgx.Conn, db string, except []string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT r.rolname FROM pg_catalog.pg_roles r
		WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname <> ALL ($2)
		AND pg_catalog.has_database_privilege(r.oid, (SELECT oid FROM pg_catalog.pg_database WHERE datname = $1), 'CONNECT')
		ORDER BY 1`, db, except)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// newPassword returns 32 random URL-safe characters (192 bits), which need
// no escaping in a database URL.
func newPassword() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// scramVerifier computes PostgreSQL's SCRAM-SHA-256 verifier for password
// (RFC 5802, 4096 iterations as PostgreSQL uses), so the password itself
// never reaches the server, where statement logging could record it.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	return scramVerifierSalted(password, salt)
}

func scramVerifierSalted(password string, salt []byte) (string, error) {
	const iterations = 4096
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}

// plan compares the server with the layout for prefix and returns the
// statements that bring it there, and the new password of each role it
// creates or rotates. The statements on roles and databases come first
// and run on the admin's connection; those on a database's schema and
// tables follow, grouped by database (step.database), and run on a
// connection to it (connect). A database that does not exist yet is
// planned as CREATE DATABASE will leave it.
func plan(ctx context.Context, conn *pgx.Conn, connect func(ctx context.Context, database string) (*pgx.Conn, error),
	prefix string, rotate bool) ([]step, map[string]string, error) {
	var cluster, inDatabases []step
	add := func(s string) { cluster = append(cluster, step{sql: s, shown: s}) }
	passwords := map[string]string{}
	var roles []string
	for _, l := range productionLayout() {
		roles = append(roles, l.owner(prefix), l.app(prefix))
	}
	for _, l := range productionLayout() {
		owner, app := l.owner(prefix), l.app(prefix)
		exists := map[string]bool{}
		for _, name := range []string{owner, app} {
			r, err := readRole(ctx, conn, name)
			if err != nil {
				return nil, nil, fmt.Errorf("read role %s: %w", name, err)
			}
			exists[name] = r.exists
			role := quoteIdent(name)
			if !r.exists || rotate {
				pw := newPassword()
				verifier, err := scramVerifier(pw)
				if err != nil {
					return nil, nil, err
				}
				passwords[name] = pw
				verb := "CREATE ROLE " + role + " " + roleAttributes
				if r.exists {
					verb = "ALTER ROLE " + role
				}
				cluster = append(cluster, step{
					sql:   verb + " PASSWORD " + quoteLiteral(verifier),
					shown: verb + " PASSWORD '<SCRAM-SHA-256 verifier of a new random password>'",
				})
			}
			if r.exists && !r.leastPrivilege() {
				add("ALTER ROLE " + role + " " + roleAttributes)
			}
		}

		name := owner // the database is named as its owner
		db := quoteIdent(name)
		d, err := readDatabase(ctx, conn, name)
		if err != nil {
			return nil, nil, fmt.Errorf("read database %s: %w", name, err)
		}
		if !d.exists {
			// template0 and UTF8, so the database does not inherit whatever
			// was added to template1 and stores any text.
			add("CREATE DATABASE " + db + " OWNER " + quoteIdent(owner) + " ENCODING 'UTF8' TEMPLATE template0")
			d.public = []string{"CONNECT", "TEMPORARY"}
		} else if d.owner != owner {
			add("ALTER DATABASE " + db + " OWNER TO " + quoteIdent(owner))
		}
		if len(d.public) > 0 {
			add("REVOKE ALL ON DATABASE " + db + " FROM PUBLIC")
		}
		if d.exists {
			// Grants to the layout's other roles are undone; grants to roles
			// outside the layout are the operator's and left alone (check
			// lists them).
			for _, other := range roles {
				if other == owner || other == app {
					continue
				}
				var explicit bool
				if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database d,
						pg_catalog.aclexplode(d.datacl) a WHERE d.datname = $1
						AND a.grantee = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2))`,
					name, other).Scan(&explicit); err != nil {
					return nil, nil, err
				}
				if explicit {
					add("REVOKE ALL ON DATABASE " + db + " FROM " + quoteIdent(other))
				}
			}
		}
		// The owner and the runtime role connect, and may create temporary
		// tables; nothing else on the database.
		for _, role := range []string{owner, app} {
			ok := false
			if d.exists && exists[role] && (role == app || d.owner == owner) {
				if err := conn.QueryRow(ctx, `SELECT pg_catalog.has_database_privilege($1, $2, 'CONNECT')
						AND pg_catalog.has_database_privilege($1, $2, 'TEMPORARY')`, role, name).Scan(&ok); err != nil {
					return nil, nil, err
				}
			} else if role == owner {
				ok = true // a new or re-owned database's owner has both
			}
			if !ok {
				add("GRANT CONNECT, TEMPORARY ON DATABASE " + db + " TO " + quoteIdent(role))
			}
		}

		s := freshSchema()
		if d.exists {
			c, err := connect(ctx, name)
			if err != nil {
				return nil, nil, fmt.Errorf("connect as admin to database %s: %w", name, err)
			}
			s, err = readSchema(ctx, c, owner, app, exists[owner] && exists[app])
			c.Close(context.WithoutCancel(ctx))
			if err != nil {
				return nil, nil, fmt.Errorf("database %s: %w", name, err)
			}
		}
		for _, sql := range s.steps(owner, app) {
			inDatabases = append(inDatabases, step{sql: sql, shown: sql, database: name})
		}
	}
	return append(cluster, inDatabases...), passwords, nil
}

// schemaState is what provisioning needs to know of a database's public
// schema, where the migrations create every table, and of the runtime
// role's privileges in it.
type schemaState struct {
	owner         string // of the schema: pg_database_owner from PostgreSQL 15 on
	publicCreate  bool   // PUBLIC may create in it (the default before 15)
	appCreate     bool   // the runtime role was granted CREATE on it
	appUsage      bool
	tablesMissing int  // tables on which the runtime role lacks some DML
	seqsMissing   int  // sequences it may not use
	defaultTables bool // the owner's new tables grant it DML
	defaultSeqs   bool // the owner's new sequences grant it USAGE, SELECT
}

// freshSchema is the state of a database CREATE DATABASE … TEMPLATE
// template0 makes, from PostgreSQL 15 on; before 15 public belonged to the
// bootstrap superuser and PUBLIC could create in it, which readSchema sees
// once the database exists.
func freshSchema() schemaState {
	return schemaState{owner: "pg_database_owner", appUsage: true}
}

func readSchema(ctx context.Context, conn *pgx.Conn, owner, app string, rolesExist bool) (schemaState, error) {
	var s schemaState
	err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(n.nspowner),
			EXISTS (SELECT 1 FROM pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
				WHERE a.grantee = 0 AND a.privilege_type = 'CREATE')
		FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'`).Scan(&s.owner, &s.publicCreate)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, errors.New("schema public does not exist; the migrations create their tables there")
	}
	if err != nil || !rolesExist {
		return s, err
	}
	err = conn.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee = r.oid AND a.privilege_type = 'CREATE'),
			pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE'),
			(SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
				AND NOT (pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT') AND pg_catalog.has_table_privilege(r.oid, c.oid, 'INSERT')
					AND pg_catalog.has_table_privilege(r.oid, c.oid, 'UPDATE') AND pg_catalog.has_table_privilege(r.oid, c.oid, 'DELETE'))),
			(SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relkind = 'S'
				-- CASE: the planner may test the privilege before relkind.
				AND CASE WHEN c.relkind = 'S' THEN NOT (pg_catalog.has_sequence_privilege(r.oid, c.oid, 'USAGE')
					AND pg_catalog.has_sequence_privilege(r.oid, c.oid, 'SELECT')) END),
			(SELECT count(DISTINCT a.privilege_type) FROM pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) a
				WHERE d.defaclrole = o.oid AND d.defaclnamespace = n.oid AND d.defaclobjtype = 'r' AND a.grantee = r.oid
				AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')) = 4,
			(SELECT count(DISTINCT a.privilege_type) FROM pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) a
				WHERE d.defaclrole = o.oid AND d.defaclnamespace = n.oid AND d.defaclobjtype = 'S' AND a.grantee = r.oid
				AND a.privilege_type IN ('USAGE', 'SELECT')) = 2
		FROM pg_catalog.pg_namespace n, pg_catalog.pg_roles r, pg_catalog.pg_roles o
		WHERE n.nspname = 'public' AND r.rolname = $1 AND o.rolname = $2`, app, owner).
		Scan(&s.appCreate, &s.appUsage, &s.tablesMissing, &s.seqsMissing, &s.defaultTables, &s.defaultSeqs)
	return s, err
}

// steps returns the statements that give the owner the schema and the
// runtime role DML on every table and sequence, present and future (those
// the owner's migrations create), and nothing more.
func (s schemaState) steps(owner, app string) []string {
	o, a := quoteIdent(owner), quoteIdent(app)
	var out []string
	if s.owner != "pg_database_owner" && s.owner != owner {
		out = append(out, "ALTER SCHEMA public OWNER TO "+o)
	}
	if s.publicCreate {
		out = append(out, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
	}
	if s.appCreate {
		out = append(out, "REVOKE CREATE ON SCHEMA public FROM "+a)
	}
	if !s.appUsage {
		out = append(out, "GRANT USAGE ON SCHEMA public TO "+a)
	}
	if s.tablesMissing > 0 {
		out = append(out, "GRANT "+appTablePrivileges+" ON ALL TABLES IN SCHEMA public TO "+a)
	}
	if s.seqsMissing > 0 {
		out = append(out, "GRANT "+appSequencePrivileges+" ON ALL SEQUENCES IN SCHEMA public TO "+a)
	}
	if !s.defaultTables {
		out = append(out, "ALTER DEFAULT PRIVILEGES FOR ROLE "+o+" IN SCHEMA public GRANT "+appTablePrivileges+" ON TABLES TO "+a)
	}
	if !s.defaultSeqs {
		out = append(out, "ALTER DEFAULT PRIVILEGES FOR ROLE "+o+" IN SCHEMA public GRANT "+appSequencePrivileges+" ON SEQUENCES TO "+a)
	}
	return out
}

// The runtime role's privileges: rows, not schema. River's queue needs no
// more (its tables are the owner's, created by `nodus migrate up`).
const (
	appTablePrivileges    = "SELECT, INSERT, UPDATE, DELETE"
	appSequencePrivileges = "USAGE, SELECT"
)

// dbProvision runs `nodus db provision`.
func dbProvision(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("db provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin-url", "", "PostgreSQL URL of a role that may create roles and databases (or env "+adminURLEnv+")")
	prefix := fs.String("prefix", "nodus", "prefix of the role and database names: PREFIX_main, PREFIX_gateway, PREFIX_tracing, PREFIX_vault")
	dryRun := fs.Bool("dry-run", false, "print the SQL without running it")
	rotate := fs.Bool("rotate-passwords", false, "give every role (owners and runtime roles) a new password, printed once")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: nodus db provision --admin-url postgres://… [--prefix nodus] [--dry-run] [--rotate-passwords]\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errUsage{fmt.Sprintf("db provision: unexpected arguments %q", pos)}
	}
	if *adminURL == "" {
		*adminURL = getenv(adminURLEnv)
	}
	if *adminURL == "" {
		return errUsage{"db provision needs --admin-url postgres://… (or " + adminURLEnv + ")"}
	}
	if d, err := store.ParseDialect(*adminURL); err != nil || d != store.Postgres {
		return errUsage{"db provision sets up PostgreSQL; SQLite needs none (each module's file is created at start)"}
	}
	if err := checkPrefix(*prefix); err != nil {
		return err
	}
	adminCfg, err := pgx.ParseConfig(*adminURL)
	if err != nil {
		return fmt.Errorf("db provision: admin URL %s: %w", store.Redact(*adminURL), err)
	}

	conn, err := pgx.ConnectConfig(ctx, adminCfg)
	if err != nil {
		return fmt.Errorf("db provision: connect as admin to %s: %w", store.Redact(*adminURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// connect opens a connection as the admin to another database of the
	// server: grants on tables and default privileges are per database.
	connect := func(ctx context.Context, database string) (*pgx.Conn, error) {
		c := adminCfg.Copy()
		c.Database = database
		return pgx.ConnectConfig(ctx, c)
	}

	steps, passwords, err := plan(ctx, conn, connect, *prefix, *rotate)
	if err != nil {
		return fmt.Errorf("db provision: %w", err)
	}
	if len(steps) == 0 {
		fmt.Fprintln(stdout, "nothing to do: the roles, databases and grants are in place")
	}
	if *dryRun {
		fmt.Fprintln(stdout, "-- dry run: nothing was executed")
	}
	on, in := conn, ""
	defer func() {
		if on != conn {
			on.Close(context.WithoutCancel(ctx))
		}
	}()
	for _, s := range steps {
		if s.database != in {
			// psql's meta-command, so the printed plan runs as it is.
			fmt.Fprintln(stdout, `\connect `+quoteIdent(s.database))
			if !*dryRun {
				c, err := connect(ctx, s.database)
				if err != nil {
					return fmt.Errorf("db provision: connect as admin to database %s: %w", s.database, err)
				}
				if on != conn {
					on.Close(context.WithoutCancel(ctx))
				}
				on = c
			}
			in = s.database
		}
		fmt.Fprintln(stdout, s.shown+";")
		if *dryRun {
			continue
		}
		// One statement at a time and outside a transaction: CREATE
		// DATABASE cannot run in one. A failure part way leaves a state
		// that the next run, comparing again, completes.
		if _, err := on.Exec(ctx, s.sql); err != nil {
			return fmt.Errorf("db provision: %s: %w", s.shown, err)
		}
	}
	if *dryRun {
		return nil
	}
	return printURLs(stdout, *adminURL, *prefix, passwords)
}

// printURLs prints the variables to configure, in two blocks: the owners'
// URLs, for `nodus migrate up` only, and the runtime roles' URLs, for
// `nodus serve`. Each is the admin URL's server and options with the
// role's name, password (when it was just set) and database.
func printURLs(w io.Writer, adminURL, prefix string, passwords map[string]string) error {
	base, err := url.Parse(adminURL)
	if err != nil {
		return fmt.Errorf("db provision: parse admin URL: %w", err)
	}
	q := base.Query()
	for k := range q {
		// The admin's own credentials and database stay out of the URLs.
		if k == "user" || k == "dbname" || strings.Contains(strings.ToLower(k), "password") {
			q.Del(k)
		}
	}
	unchanged := false
	urlOf := func(role, database string) string {
		u := url.URL{Scheme: base.Scheme, Host: base.Host, Path: "/" + database, RawQuery: q.Encode()}
		if pw, ok := passwords[role]; ok {
			u.User = url.UserPassword(role, pw)
		} else {
			u.User = url.User(role)
			unchanged = true
		}
		return u.String()
	}
	fmt.Fprintln(w, "\n# 1. Migrations: the owners' URLs, for `nodus migrate up` only (at install and at each upgrade).")
	fmt.Fprintln(w, "#    Never give them to `nodus serve`: an owner may change the schema.")
	for _, l := range productionLayout() {
		for _, env := range l.envs {
			fmt.Fprintf(w, "%s='%s' \\\n", env, urlOf(l.owner(prefix), l.owner(prefix)))
		}
	}
	fmt.Fprintln(w, "  nodus migrate up")
	fmt.Fprintln(w, "\n# 2. Serving: the runtime roles' URLs (…"+appSuffix+": rows only, bound by row-level security).")
	fmt.Fprintln(w, "#    Configure `nodus serve` with these, and with migrations left to step 1:")
	fmt.Fprintln(w, "NODUS_AUTO_MIGRATE=false")
	for _, l := range productionLayout() {
		for _, env := range l.envs {
			fmt.Fprintf(w, "%s=%s\n", env, urlOf(l.app(prefix), l.owner(prefix)))
		}
	}
	if len(passwords) > 0 {
		fmt.Fprintln(w, "# The passwords above are shown this once: keep them in your secret manager.")
	}
	if unchanged {
		fmt.Fprintln(w, "# A URL without a password is a role that kept its own; --rotate-passwords sets new ones.")
	}
	return nil
}

// dbCheck runs `nodus db check`: it compares the configured deployment with
// the production layout and prints every difference; any makes it fail.
func dbCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("db check", "db check [--admin-url URL] [flags]", stderr)
	adminURL := fs.String("admin-url", "", "PostgreSQL URL of an admin role, to read grants even where a configured role cannot connect (or env "+adminURLEnv+")")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errUsage{fmt.Sprintf("db check: unexpected arguments %q", pos)}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}
	if *adminURL == "" {
		*adminURL = getenv(adminURLEnv)
	}
	if *adminURL != "" {
		if d, err := store.ParseDialect(*adminURL); err != nil || d != store.Postgres {
			return errUsage{"db check: --admin-url must be a postgres:// URL"}
		}
	}

	var diffs []string
	report := func(format string, a ...any) { diffs = append(diffs, fmt.Sprintf(format, a...)) }
	checkMigrations(ctx, cfg, report)
	checkLayout(ctx, cfg.DatabaseURLs(), *adminURL, stdout, report)

	for _, d := range diffs {
		fmt.Fprintln(stdout, "DIFF "+d)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("db check: %d difference(s) from the layout", len(diffs))
	}
	fmt.Fprintln(stdout, "ok: the deployment matches the layout")
	return nil
}

// checkMigrations reports every set whose applied versions differ from
// this binary's: pending, unknown (applied by a newer Nodus) or modified;
// and, on each PostgreSQL database, the tenant tables that row-level
// security does not guard (see checkRowLevelSecurity).
func checkMigrations(ctx context.Context, cfg Config, report func(string, ...any)) {
	urls := cfg.DatabaseURLs()
	opened := map[string]*store.DB{}
	defer func() {
		for _, db := range opened {
			if db != nil { // nil: it failed to open, reported once
				db.Close()
			}
		}
	}()
	open := func(set string) *store.DB {
		u := urls[set]
		if db, ok := opened[u]; ok {
			return db
		}
		db, err := store.Open(ctx, cfg.StoreConfig(u))
		if err != nil {
			report("%s: cannot open %s: %v", set, store.Redact(u), err)
			db = nil
		}
		opened[u] = db
		return db
	}
	var sets []store.MigrationSet
	for _, set := range store.MigrationSets() {
		db := open(set)
		if db == nil {
			continue
		}
		m, err := store.NewMigrator(set, db)
		if err != nil {
			report("%s: %v", set, err)
			continue
		}
		sets = append(sets, m)
	}
	// River's queue lives in the main database, as `nodus serve` puts it.
	if db := open(store.SetMain); db != nil {
		q, err := jobs.NewMigrations(db)
		if err != nil {
			report("%s: %v", jobs.SetName, err)
		} else {
			sets = append(sets, q)
		}
	}
	for _, s := range sets {
		st, err := s.Status(ctx)
		if err != nil {
			report("%s: migration status: %v", s.Name(), err)
			continue
		}
		byState := map[string][]int{}
		for _, v := range st.Versions {
			byState[v.State] = append(byState[v.State], v.Version)
		}
		if v := byState[store.StatePending]; len(v) > 0 {
			report("%s: migrations %v pending (run `nodus migrate up`)", s.Name(), v)
		}
		if v := byState[store.StateUnknown]; len(v) > 0 {
			report("%s: migrations %v were applied by a newer Nodus than this binary", s.Name(), v)
		}
		if v := byState[store.StateModified]; len(v) > 0 {
			report("%s: migrations %v changed since they were applied", s.Name(), v)
		}
	}
	checked := map[*store.DB]bool{}
	for _, set := range store.MigrationSets() {
		db := open(set)
		if db == nil || db.Dialect() != store.Postgres || checked[db] {
			continue
		}
		checked[db] = true
		if err := checkRowLevelSecurity(ctx, db, set, report); err != nil {
			report("%s: reading row-level security: %v", set, err)
		}
	}
}

// checkRowLevelSecurity reports every table of db's schemas that has a
// tenant_id column but not row-level security both enabled and forced, or
// no policy: the database's wall behind the store's tenant filter (the
// row_level_security migrations). Without FORCE the tables' owner, the
// role Nodus connects as, would pass every policy. label names db in the
// report.
func checkRowLevelSecurity(ctx context.Context, db *store.DB, label string, report func(string, ...any)) error {
	return db.Read(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity,
				EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid)
			FROM pg_catalog.pg_class c
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
			WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY (current_schemas(false))
			ORDER BY n.nspname, c.relname`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var schema, table string
			var enabled, forced, policy bool
			if err := rows.Scan(&schema, &table, &enabled, &forced, &policy); err != nil {
				return err
			}
			var missing []string
			if !enabled {
				missing = append(missing, "row-level security enabled")
			}
			if !forced {
				missing = append(missing, "forced")
			}
			if !policy {
				missing = append(missing, "a policy")
			}
			if len(missing) > 0 {
				report("%s: table %s.%s has a tenant_id but not %s (run `nodus migrate up`)",
					label, schema, table, strings.Join(missing, ", "))
			}
		}
		return rows.Err()
	})
}

// target is where one configured URL leads.
type target struct {
	server, database, user string
}

func parseTarget(rawURL string) (target, error) {
	c, err := pgconn.ParseConfig(rawURL)
	if err != nil {
		return target{}, err
	}
	return target{server: net.JoinHostPort(c.Host, fmt.Sprint(c.Port)), database: c.Database, user: c.User}, nil
}

// checkLayout reports how the PostgreSQL databases of urls differ from the
// production layout. SQLite sets have no roles or grants to check.
func checkLayout(ctx context.Context, urls map[string]string, adminURL string, stdout io.Writer, report func(string, ...any)) {
	type placed struct {
		layoutDatabase
		target
		url string
	}
	var dbs []placed
	var sqlite []string
	for _, l := range productionLayout() {
		first := l.sets[0]
		if d, _ := store.ParseDialect(urls[first]); d != store.Postgres {
			sqlite = append(sqlite, l.name)
			continue
		}
		t, err := parseTarget(urls[first])
		if err != nil {
			report("%s: database URL: %v", first, err)
			continue
		}
		for _, set := range l.sets[1:] {
			u, ok := urls[set]
			if !ok {
				continue // jobs has no URL of its own: it is main's
			}
			if ts, err := parseTarget(u); err != nil || ts != t {
				report("%s and %s use different databases or roles; the layout keeps them in one database", first, set)
			}
		}
		for _, p := range dbs {
			if p.server == t.server && p.database == t.database {
				report("%s shares database %q with %s; the layout gives it a database of its own", l.name, t.database, p.name)
			}
			if p.user == t.user {
				report("%s and %s both connect as role %q; the layout gives each database a role of its own", p.name, l.name, t.user)
			}
		}
		dbs = append(dbs, placed{l, t, urls[first]})
	}
	if len(sqlite) > 0 {
		fmt.Fprintf(stdout, "%s on SQLite: roles, owners and grants apply to PostgreSQL only; migration versions checked\n",
			strings.Join(sqlite, ", "))
	}
	if len(dbs) == 0 {
		return
	}

	var adminCfg *pgx.ConnConfig
	var adminServer string
	if adminURL != "" {
		t, err := parseTarget(adminURL)
		if err == nil {
			adminCfg, err = pgx.ParseConfig(adminURL)
		}
		if err != nil {
			report("admin URL: %v", err)
			adminCfg = nil
		}
		adminServer = t.server
	}
	for _, p := range dbs {
		// Ownership and grants on tables are in each database's own
		// catalog: connect to it, as the admin when given (it reads them
		// even when the role's own CONNECT is gone), else as the role.
		var conn *pgx.Conn
		var err error
		if adminCfg != nil && adminServer == p.server {
			c := adminCfg.Copy()
			c.Database = p.database
			if conn, err = pgx.ConnectConfig(ctx, c); err != nil {
				report("%s: cannot connect with the admin URL to %q: %v", p.name, p.database, err)
				continue
			}
		} else if conn, err = pgx.Connect(ctx, p.url); err != nil {
			report("%s: cannot connect as %q to %q: %v", p.name, p.user, p.database, err)
			continue
		}
		var others []string
		for _, o := range dbs {
			if o.name != p.name && o.server == p.server && o.user != p.user {
				// The other databases' runtime roles and their owners.
				others = append(others, o.user, strings.TrimSuffix(o.user, appSuffix))
			}
		}
		if err := checkDatabase(ctx, conn, p.name, p.target, others, report); err != nil {
			report("%s: reading the catalog: %v", p.name, err)
		}
		conn.Close(context.WithoutCancel(ctx))
	}
}

// checkDatabase reports how one database and the role Nodus is configured
// to serve as differ from the layout: a least-privilege login role that
// owns neither the database nor any table, reads and writes every table
// and sequence of schema public, creates nothing there, and shares the
// database with its owner alone (and superusers). conn is connected to the
// database.
func checkDatabase(ctx context.Context, conn *pgx.Conn, name string, t target, others []string, report func(string, ...any)) error {
	r, err := readRole(ctx, conn, t.user)
	if err != nil {
		return err
	}
	switch {
	case !r.exists:
		report("%s: role %q does not exist", name, t.user)
	case !r.leastPrivilege():
		var extra []string
		for flag, on := range map[string]bool{"SUPERUSER": r.super, "CREATEDB": r.createDB, "CREATEROLE": r.createRole,
			"REPLICATION": r.replication, "BYPASSRLS": r.bypass, "NOLOGIN": !r.login} {
			if on {
				extra = append(extra, flag)
			}
		}
		slices.Sort(extra)
		report("%s: role %q has %s; the layout's roles are %s", name, t.user, strings.Join(extra, ", "), roleAttributes)
	}
	d, err := readDatabase(ctx, conn, t.database)
	if err != nil {
		return err
	}
	if !d.exists {
		report("%s: database %q does not exist", name, t.database)
		return nil
	}
	// The owner of a database configured with its owner's URL (the
	// one-role layout) is the role named without the runtime suffix.
	owner := d.owner
	if d.owner == t.user {
		report("%s: Nodus is configured to serve as %q, the owner of database %q (the one-role layout): "+
			"the runtime role must not own the database or its tables (SECURITY.md check 5). "+
			"Run `nodus db provision` again, keep these owner URLs for `nodus migrate up`, "+
			"and configure `nodus serve` with the %s URLs it prints and NODUS_AUTO_MIGRATE=false",
			name, t.user, t.database, appSuffix)
	}
	if !r.exists {
		return nil
	}
	var tables []string
	if err := conn.QueryRow(ctx, `SELECT ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
			AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1) ORDER BY 1)`, t.user).Scan(&tables); err != nil {
		return err
	}
	if len(tables) > 0 && d.owner != t.user {
		report("%s: role %q owns %s in database %q; the runtime role owns nothing (SECURITY.md check 5): "+
			"ALTER TABLE … OWNER TO %s", name, t.user, listSome(tables), t.database, quoteIdent(d.owner))
	}

	var connect, schemaCreate bool
	var noDML, noUsage []string
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.has_database_privilege($1, $2, 'CONNECT'),
			pg_catalog.has_schema_privilege($1, 'public', 'CREATE'),
			ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
				AND NOT (pg_catalog.has_table_privilege($1, c.oid, 'SELECT') AND pg_catalog.has_table_privilege($1, c.oid, 'INSERT')
					AND pg_catalog.has_table_privilege($1, c.oid, 'UPDATE') AND pg_catalog.has_table_privilege($1, c.oid, 'DELETE'))
				ORDER BY 1),
			ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = 'public' AND c.relkind = 'S'
				-- CASE: the planner may test the privilege before relkind.
				AND CASE WHEN c.relkind = 'S' THEN NOT pg_catalog.has_sequence_privilege($1, c.oid, 'USAGE') END
				ORDER BY 1)`, t.user, t.database).Scan(&connect, &schemaCreate, &noDML, &noUsage); err != nil {
		return err
	}
	if !connect {
		report("%s: role %q may not connect to its database %q", name, t.user, t.database)
	}
	if schemaCreate && d.owner != t.user {
		report("%s: role %q may create in schema public of %q; only the owner %q should (REVOKE CREATE ON SCHEMA public FROM …)",
			name, t.user, t.database, d.owner)
	}
	if len(noDML) > 0 {
		report("%s: role %q lacks SELECT, INSERT, UPDATE or DELETE on %s (run `nodus db provision`)", name, t.user, listSome(noDML))
	}
	if len(noUsage) > 0 {
		report("%s: role %q lacks USAGE on sequence %s (run `nodus db provision`)", name, t.user, listSome(noUsage))
	}
	if d.owner != t.user {
		// Tables the next migration creates: the owner's default privileges
		// must grant them to the runtime role.
		var defaults bool
		if err := conn.QueryRow(ctx, `SELECT count(DISTINCT a.privilege_type) = 4 FROM pg_catalog.pg_default_acl da,
				pg_catalog.aclexplode(da.defaclacl) a
			WHERE da.defaclrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2)
			AND da.defaclnamespace = 'public'::regnamespace AND da.defaclobjtype = 'r'
			AND a.grantee = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1)
			AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')`, t.user, d.owner).Scan(&defaults); err != nil {
			return err
		}
		if !defaults {
			report("%s: tables %q creates will not be granted to %q (no default privileges; run `nodus db provision`)",
				name, d.owner, t.user)
		}
	}
	if len(d.public) > 0 {
		report("%s: PUBLIC has %s on database %q: every role may connect (REVOKE ALL ON DATABASE %s FROM PUBLIC)",
			name, strings.Join(d.public, ", "), t.database, quoteIdent(t.database))
	}
	runtime := t.user
	if owner == t.user {
		runtime = owner + appSuffix
	}
	allowed := []string{owner, runtime}
	who, err := connectors(ctx, conn, t.database, allowed)
	if err != nil {
		return err
	}
	for _, role := range who {
		// With PUBLIC's grant every role may connect, reported once
		// above; the other Nodus roles are named all the same, since they
		// are the isolation the layout is about.
		if len(d.public) > 0 && !slices.Contains(others, role) {
			continue
		}
		report("%s: role %q may connect to database %q; only its owner %q and runtime role %q should",
			name, role, t.database, owner, runtime)
	}
	return nil
}

// listSome names up to five of names, and how many more there are.
func listSome(names []string) string {
	const most = 5
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}

// migrateError explains a migration refused for want of privileges: in
// the production layout the runtime role may not create tables, by design.
func migrateError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Errorf("the role cannot create tables: run `nodus migrate up` with the owner URLs that `nodus db provision` printed, "+
			"and serve with NODUS_AUTO_MIGRATE=false: %w", err)
	}
	return err
}
