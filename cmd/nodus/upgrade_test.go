package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// firstReleaseRows are rows written through the SQL of each set's first
// migration only, as the first release's schema stored them. Timestamps
// are RFC 3339 text, which both engines accept for their column types;
// flag gives the dialect's boolean.
func firstReleaseRows(d store.Dialect) map[string][]struct {
	sql  string
	args []any
} {
	flag := func(b bool) any {
		if d == store.Postgres {
			return b
		}
		if b {
			return 1
		}
		return 0
	}
	type row = struct {
		sql  string
		args []any
	}
	const t0, t1, t2 = "2025-03-01T10:00:00Z", "2025-03-01T10:00:01.5Z", "2025-03-02T08:30:00Z"
	return map[string][]row{
		store.SetMain: {
			{`INSERT INTO audit_log (id, seq, created_at, tenant_id, actor_id, actor_kind, action, target_type, target_id,
				address, user_agent, changes, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"aud-1", 1, t0, "ten-1", "usr-1", "user", "tenant.create", "tenant", "ten-1",
					"192.0.2.1", "curl/8", `{"name":"Acme"}`, strings.Repeat("0", 64), strings.Repeat("a", 64)}},
		},
		store.SetAuth: {
			{`INSERT INTO tenants (id, name, description, domain, logo_url, is_active, max_users, max_chatbots, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"ten-1", "Acme Ünïcode 'quoted'", "first tenant", "acme.example", "", flag(true), 50, 3, t0, t1}},
			{`INSERT INTO users (id, tenant_id, email, username, full_name, password_hash, role, is_active, last_login_at, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"usr-1", "ten-1", "Ada@Example.com", "ada", "Ada L.", "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA", "org_admin", flag(true), t2, t0, t1}},
			{`INSERT INTO users (id, tenant_id, email, username, password_hash, role, is_active, created_at, updated_at)
				VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"usr-root", "root@example.com", "root", "$argon2id$x", "super_admin", flag(false), t0, t0}},
		},
		store.SetGateway: {
			{`INSERT INTO gateway_deployments (id, tenant_id, model_name, provider, upstream_model, base_url, api_key_handle,
				mode, weight, rpm, tpm, max_concurrency, timeout_ms, is_active, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"dep-1", "ten-1", "gpt-4o", "openai", "gpt-4o-2024-08-06", "https://api.openai.com/v1", "sh-1",
					"chat", 3, 600, 90000, 8, 30000, flag(true), t0, t1}},
			// gateway 0002 rebuilds this table on SQLite: its rows must
			// come through the copy.
			{`INSERT INTO gateway_router_settings (tenant_id, strategy, num_retries, allowed_fails, fail_window_ms, cooldown_ms, fallbacks, updated_at, updated_by)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"ten-1", "least-busy", 2, 3, 60000, 30000, `{"gpt-4o":["gpt-4o-mini"]}`, t1, "usr-1"}},
			{`INSERT INTO gateway_keys (id, tenant_id, name, hash, prefix, user_id, models, rpm, tpm, max_parallel, metadata, status, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"key-1", "ten-1", "ci", []byte{0x00, 0xff, 0x10, 0x80}, "sk-ab", "usr-1", `["gpt-4o"]`, 60, 0, 2, `{"team":"ml"}`, "active", t0, t0}},
			{`INSERT INTO gateway_budgets (id, tenant_id, scope, subject_id, max_micros, period, reset_at, spend, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"bud-1", "ten-1", "tenant", "", int64(5_000_000_000), "monthly", t2, int64(1_234_567), t1}},
			{`INSERT INTO gateway_spend_logs (request_id, tenant_id, key_id, model, prompt_tokens, completion_tokens, usage_estimated,
				cost_micros, started_at, ended_at, status, status_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"req-1", "ten-1", "key-1", "gpt-4o", 1200, 300, flag(false), int64(4_500), t0, t1, "success", 200}},
			{`INSERT INTO gateway_daily_spend (tenant_id, day, key_id, model, provider, requests, successes, prompt_tokens, completion_tokens, cost_micros)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"ten-1", "2025-03-01", "key-1", "gpt-4o", "openai", 1, 1, 1200, 300, int64(4_500)}},
		},
		store.SetTracing: {
			{`INSERT INTO traces (tenant_id, id, name, user_id, session_id, tags, input, output, metadata, timestamp, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"ten-1", "tr-1", "chat", "ada", "sess-1", `["prod"]`, `{"q":"hi"}`, `{"a":"hello"}`, nil, t0, t0, t1}},
			{`INSERT INTO observations (tenant_id, id, trace_id, type, name, start_time, end_time, level, model, usage_details, cost_details, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"ten-1", "obs-1", "tr-1", "GENERATION", "llm", t0, t1, "WARNING", "gpt-4o", `{"input":10}`, `{"total":0.25}`, t0, t1}},
			{`INSERT INTO observations (tenant_id, id, trace_id, type, name, start_time, end_time, level, cost_details, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"ten-1", "obs-2", "tr-1", "SPAN", "retrieve", t0, nil, "DEFAULT", `{"input":0.5,"output":0.25}`, t0, t0}},
			{`INSERT INTO scores (tenant_id, id, trace_id, name, value, timestamp, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"ten-1", "sc-1", "tr-1", "helpfulness", 0.75, t1, t1, t1}},
			{`INSERT INTO tracing_keys (id, tenant_id, public_key, secret_hash, name, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
				[]any{"tk-1", "ten-1", "pk-lf-1", []byte(strings.Repeat("\x07", 32)), "sdk", t0}},
		},
		store.SetVault: {
			{`INSERT INTO vault_meta (name, value, updated_at) VALUES (?, ?, ?)`, []any{"check", []byte{1, 2, 3, 0, 255}, t0}},
			{`INSERT INTO vault_tenants (tenant_id, max_versions, updated_at) VALUES (?, ?, ?)`, []any{"ten-1", 10, t0}},
			{`INSERT INTO vault_data_keys (tenant_id, version, wrapped, master_key_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
				[]any{"ten-1", 1, []byte("wrapped data key"), 1, t0, t0}},
			{`INSERT INTO vault_secrets (id, tenant_id, environment, path, key, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"sec-1", "ten-1", "prod", "/db", "PASSWORD", 1, t0, t0}},
			{`INSERT INTO vault_secret_versions (secret_id, version, tenant_id, ciphertext, data_key_version, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
				[]any{"sec-1", 1, "ten-1", []byte("sealed"), 1, t0}},
			// vault 0002 rebuilds vault_grants on SQLite.
			{`INSERT INTO vault_grants (id, tenant_id, subject_type, subject, environment, path_prefix, permission, created_at, created_by)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"gr-1", "ten-1", "role", "user", "*", "/db", "read", t0, "usr-1"}},
		},
	}
}

// snapshot renders every row of every table the first release created, in
// that release's columns, as text: the same rows with the same values give
// the same snapshot whatever migrations ran since.
func snapshot(t *testing.T, db *store.DB, tables map[string][]string) map[string][]string {
	t.Helper()
	ctx := nodus.WithAllTenants(context.Background()) // the rows of every tenant, under row-level security too
	out := map[string][]string{}
	err := db.Read(ctx, func(tx *store.Tx) error {
		for table, cols := range tables {
			var parts []string
			for _, c := range cols {
				parts = append(parts, "COALESCE(CAST("+c+" AS TEXT), '<null>')")
			}
			rows, err := tx.Query(ctx, "SELECT "+strings.Join(parts, " || '|' || ")+" FROM "+table+" ORDER BY 1")
			if err != nil {
				return err
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					rows.Close()
					return err
				}
				out[table] = append(out[table], s)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tablesOf lists the tables of db (its current schema on PostgreSQL) and
// their columns, leaving out the migration history.
func tablesOf(t *testing.T, db *store.DB) map[string][]string {
	t.Helper()
	ctx := nodus.WithAllTenants(context.Background()) // the rows of every tenant, under row-level security too
	q := `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`
	if db.Dialect() == store.Postgres {
		q = `SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
	}
	out := map[string][]string{}
	err := db.Read(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var table, col string
			if err := rows.Scan(&table, &col); err != nil {
				return err
			}
			if table != "schema_migrations" {
				out[table] = append(out[table], col)
			}
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpgradeFromFirstRelease builds every set's database as the first
// release left it (its first migration only), fills it through that
// schema's SQL, runs `nodus migrate up` and checks that every row is still
// there with every value, and that the migrations' backfills computed what
// they should from the old rows.
func TestUpgradeFromFirstRelease(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		ctx := nodus.WithAllTenants(context.Background()) // the rows of every tenant, under row-level security too
		vars := nodusEnv(t, databaseURL)
		fs := newFlagSet("test", "test", nil)
		cfg, err := parseConfig(fs, env(vars))
		if err != nil {
			t.Fatal(err)
		}
		urls := cfg.DatabaseURLs()

		// open opens each distinct database once; close closes them.
		open := func() (map[string]*store.DB, func()) {
			byURL := map[string]*store.DB{}
			bySet := map[string]*store.DB{}
			for _, set := range store.MigrationSets() {
				if byURL[urls[set]] == nil {
					db, err := store.Open(ctx, storetest.Config(urls[set]))
					if err != nil {
						t.Fatal(err)
					}
					byURL[urls[set]] = db
				}
				bySet[set] = byURL[urls[set]]
			}
			closeAll := func() {
				for _, db := range byURL {
					db.Close()
				}
			}
			t.Cleanup(closeAll)
			return bySet, closeAll
		}

		dbs, closeAll := open()
		rows := firstReleaseRows(dbs[store.SetMain].Dialect())
		for _, set := range store.MigrationSets() {
			m, err := store.NewMigrator(set, dbs[set])
			if err != nil {
				t.Fatal(err)
			}
			if applied, err := m.UpTo(ctx, 1); err != nil || !slices.Equal(applied, []int{1}) {
				t.Fatalf("%s: UpTo(1) = %v, %v", set, applied, err)
			}
			err = dbs[set].Write(ctx, func(tx *store.Tx) error {
				for _, r := range rows[set] {
					if _, err := tx.Exec(ctx, r.sql, r.args...); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s: insert through the first schema: %v", set, err)
			}
		}
		// Snapshots are per database, named by its first set: on
		// PostgreSQL every set shares one.
		first := map[string]string{}
		var unique []string
		for _, set := range store.MigrationSets() {
			i := slices.IndexFunc(unique, func(u string) bool { return dbs[u] == dbs[set] })
			if i < 0 {
				unique = append(unique, set)
				i = len(unique) - 1
			}
			first[set] = unique[i]
		}
		before := map[string]map[string][]string{}
		tables := map[string]map[string][]string{}
		for _, set := range unique {
			tables[set] = tablesOf(t, dbs[set])
			before[set] = snapshot(t, dbs[set], tables[set])
		}
		// Closed, so that migrate up is the only process holding them, as
		// at a real upgrade.
		closeAll()

		if out, err := nodusRun(t, vars, "migrate", "up"); err != nil {
			t.Fatalf("migrate up: %v\n%s", err, out)
		}
		if out, err := nodusRun(t, vars, "db", "check"); err != nil && strings.Contains(out, "pending") {
			t.Fatalf("migrations still pending after upgrade:\n%s", out)
		}

		dbs, _ = open()
		for _, set := range unique {
			after := snapshot(t, dbs[set], tables[set])
			for table, want := range before[set] {
				if !slices.Equal(after[table], want) {
					t.Errorf("%s database, %s after upgrade:\n got %q\nwant %q", set, table, after[table], want)
				}
			}
		}
		for _, set := range store.MigrationSets() {
			for _, r := range rows[set] {
				table := strings.Fields(r.sql)[2]
				if len(before[first[set]][table]) == 0 {
					t.Errorf("%s.%s had no rows before the upgrade: the test inserted nothing", set, table)
				}
			}
		}

		// The backfills of later migrations saw the old rows: tracing 0004
		// summarises each trace's observations, 0006 lists its sessions
		// and users.
		var count, latency int64
		var cost float64
		var level string
		var sessions, users int
		err = dbs[store.SetTracing].Read(ctx, func(tx *store.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT observation_count, total_cost, level, latency_ms FROM traces
				WHERE tenant_id = 'ten-1' AND id = 'tr-1'`).Scan(&count, &cost, &level, &latency); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM trace_sessions WHERE tenant_id = 'ten-1' AND session_id = 'sess-1'").Scan(&sessions); err != nil {
				return err
			}
			return tx.QueryRow(ctx, "SELECT count(*) FROM trace_users WHERE tenant_id = 'ten-1' AND user_id = 'ada'").Scan(&users)
		})
		if err != nil {
			t.Fatal(err)
		}
		if count != 2 || cost != 1.0 || level != "WARNING" || latency != 1500 || sessions != 1 || users != 1 {
			t.Fatalf("tracing backfill: observations %d, cost %v, level %q, latency %d ms, sessions %d, users %d; want 2, 1, WARNING, 1500, 1, 1",
				count, cost, level, latency, sessions, users)
		}
	})
}
