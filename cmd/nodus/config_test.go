package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/store"
)

// parseTestConfig parses args as `nodus serve` would, with vars as the
// environment.
func parseTestConfig(t *testing.T, args []string, vars map[string]string) (Config, error) {
	t.Helper()
	fs := newFlagSet("serve", "serve [flags]", io.Discard)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return parseConfig(fs, func(k string) string { return vars[k] })
}

func TestConfigDefaults(t *testing.T) {
	got, err := parseTestConfig(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr:               ":8080",
		DataDir:            "./data",
		DatabaseURL:        "sqlite:data/main.db",
		AuthDatabaseURL:    "sqlite:data/auth.db",
		GatewayDatabaseURL: "sqlite:data/gateway.db",
		TracingDatabaseURL: "sqlite:data/tracing.db",
		VaultDatabaseURL:   "sqlite:data/vault.db",
		PoolSize:           5,
		PoolTimeout:        30 * time.Second,
		PoolRecycle:        300 * time.Second,
		SQLiteSynchronous:  "NORMAL",
		SearchCacheMiB:     128,
		VectorCacheMiB:     1024,
		ExactVectors:       20000,
		AutoMigrate:        true,
		LogLevel:           slog.LevelInfo,
		LogFormat:          "text",
		MaxBodyBytes:       1 << 20,
		RecordingMaxBytes:  100 << 20,
		RequestTimeout:     30 * time.Second,
		ReadHeaderTimeout:  10 * time.Second,
		IdleTimeout:        120 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		JobWorkers:         10,
		JobPollInterval:    time.Second,
		UsageRollupEvery:   5 * time.Minute,
		TraceGatewayCalls:  "all",
		GatewayShared:      "auto",
		AdminEmail:         "admin@localhost",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestConfigSources(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		get  func(Config) any
		want any
	}{
		{"env over default", nil, map[string]string{"NODUS_ADDR": ":9090"},
			func(c Config) any { return c.Addr }, ":9090"},
		{"flag over env", []string{"--addr", ":7070"}, map[string]string{"NODUS_ADDR": ":9090"},
			func(c Config) any { return c.Addr }, ":7070"},
		{"flag over default", []string{"-addr=127.0.0.1:0"}, nil,
			func(c Config) any { return c.Addr }, "127.0.0.1:0"},
		{"empty env is unset", nil, map[string]string{"NODUS_ADDR": ""},
			func(c Config) any { return c.Addr }, ":8080"},
		{"pool size from env", nil, map[string]string{"DATABASE_POOL_SIZE": "20"},
			func(c Config) any { return c.PoolSize }, 20},
		{"pool size flag over env", []string{"--database-pool-size", "7"}, map[string]string{"DATABASE_POOL_SIZE": "20"},
			func(c Config) any { return c.PoolSize }, 7},
		{"pool timeout in seconds", nil, map[string]string{"DATABASE_POOL_TIMEOUT": "45"},
			func(c Config) any { return c.PoolTimeout }, 45 * time.Second},
		{"pool timeout as a duration", nil, map[string]string{"DATABASE_POOL_TIMEOUT": "1m"},
			func(c Config) any { return c.PoolTimeout }, time.Minute},
		{"pool timeout in fractional seconds", nil, map[string]string{"DATABASE_POOL_TIMEOUT": "1.5"},
			func(c Config) any { return c.PoolTimeout }, 1500 * time.Millisecond},
		{"pool recycle in seconds", nil, map[string]string{"DATABASE_POOL_RECYCLE": "600"},
			func(c Config) any { return c.PoolRecycle }, 10 * time.Minute},
		{"synchronous in lower case", nil, map[string]string{"NODUS_SQLITE_SYNCHRONOUS": "full"},
			func(c Config) any { return c.SQLiteSynchronous }, "FULL"},
		{"search cache in postings", nil, map[string]string{"NODUS_SEARCH_CACHE_MIB": "32"},
			func(c Config) any { return c.StoreConfig("sqlite:x.db").SearchCache }, 2 << 20},
		{"search cache off", []string{"--search-cache-mib", "0"}, nil,
			func(c Config) any { return c.StoreConfig("sqlite:x.db").SearchCache }, -1},
		{"log level", nil, map[string]string{"NODUS_LOG_LEVEL": "debug"},
			func(c Config) any { return c.LogLevel }, slog.LevelDebug},
		{"log format flag", []string{"--log-format", "json"}, map[string]string{"NODUS_LOG_FORMAT": "text"},
			func(c Config) any { return c.LogFormat }, "json"},
		{"auto migrate off", nil, map[string]string{"NODUS_AUTO_MIGRATE": "false"},
			func(c Config) any { return c.AutoMigrate }, false},
		{"request timeout", nil, map[string]string{"NODUS_REQUEST_TIMEOUT": "5s"},
			func(c Config) any { return c.RequestTimeout }, 5 * time.Second},
		{"data dir moves the SQLite files", nil, map[string]string{"NODUS_DATA_DIR": "/var/lib/nodus"},
			func(c Config) any {
				return []string{c.DatabaseURL, c.AuthDatabaseURL, c.GatewayDatabaseURL, c.TracingDatabaseURL, c.VaultDatabaseURL}
			},
			[]string{"sqlite:/var/lib/nodus/main.db", "sqlite:/var/lib/nodus/auth.db", "sqlite:/var/lib/nodus/gateway.db",
				"sqlite:/var/lib/nodus/tracing.db", "sqlite:/var/lib/nodus/vault.db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseTestConfig(t, tt.args, tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(c); !equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func equal(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return strings.Join(as, "\n") == strings.Join(bs, "\n")
	}
	return a == b
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		vars  map[string]string
		names []string // the error must name one of these
	}{
		{"pool size not a number", nil, map[string]string{"DATABASE_POOL_SIZE": "abc"}, []string{"DATABASE_POOL_SIZE"}},
		{"pool size zero", nil, map[string]string{"DATABASE_POOL_SIZE": "0"}, []string{"DATABASE_POOL_SIZE"}},
		{"pool size too big", nil, map[string]string{"DATABASE_POOL_SIZE": "1001"}, []string{"DATABASE_POOL_SIZE"}},
		{"pool size flag", []string{"--database-pool-size", "abc"}, map[string]string{"DATABASE_POOL_SIZE": "5"}, []string{"--database-pool-size"}},
		{"pool timeout not a duration", nil, map[string]string{"DATABASE_POOL_TIMEOUT": "soon"}, []string{"DATABASE_POOL_TIMEOUT"}},
		{"pool timeout zero", nil, map[string]string{"DATABASE_POOL_TIMEOUT": "0"}, []string{"DATABASE_POOL_TIMEOUT"}},
		{"pool timeout negative", nil, map[string]string{"DATABASE_POOL_TIMEOUT": "-5"}, []string{"DATABASE_POOL_TIMEOUT"}},
		{"pool recycle rounds to zero", nil, map[string]string{"DATABASE_POOL_RECYCLE": "0.0000000001"}, []string{"DATABASE_POOL_RECYCLE"}},
		{"log format", nil, map[string]string{"NODUS_LOG_FORMAT": "xml"}, []string{"NODUS_LOG_FORMAT"}},
		{"log level", nil, map[string]string{"NODUS_LOG_LEVEL": "loud"}, []string{"NODUS_LOG_LEVEL"}},
		{"synchronous off", nil, map[string]string{"NODUS_SQLITE_SYNCHRONOUS": "OFF"}, []string{"NODUS_SQLITE_SYNCHRONOUS"}},
		{"auto migrate", nil, map[string]string{"NODUS_AUTO_MIGRATE": "maybe"}, []string{"NODUS_AUTO_MIGRATE"}},
		{"max body zero", nil, map[string]string{"NODUS_MAX_BODY_BYTES": "0"}, []string{"NODUS_MAX_BODY_BYTES"}},
		{"job workers", []string{"--job-workers", "0"}, nil, []string{"--job-workers"}},
		{"debug address not loopback", nil, map[string]string{"NODUS_DEBUG_ADDR": "0.0.0.0:6060"}, []string{"NODUS_DEBUG_ADDR"}},
		{"debug address without port", nil, map[string]string{"NODUS_DEBUG_ADDR": "localhost"}, []string{"NODUS_DEBUG_ADDR"}},
		{"spend retention negative", nil, map[string]string{"NODUS_GATEWAY_SPEND_RETENTION_DAYS": "-1"}, []string{"NODUS_GATEWAY_SPEND_RETENTION_DAYS"}},
		{"trace gateway calls unknown", nil, map[string]string{"NODUS_TRACE_GATEWAY_CALLS": "some"}, []string{"NODUS_TRACE_GATEWAY_CALLS"}},
		{"database URL scheme", nil, map[string]string{"DATABASE_URL": "mysql://x"}, []string{"DATABASE_URL"}},
		{"database URL flag", []string{"--database-url", "mysql://x"}, nil, []string{"--database-url", "DATABASE_URL"}},
		{"database URL with a password", nil, map[string]string{"DATABASE_URL": "mysql://nodus:s3cret@db/nodus"}, []string{"DATABASE_URL"}},
		{"module URL scheme", nil, map[string]string{"AUTH_DATABASE_URL": "redis://cache"}, []string{"AUTH_DATABASE_URL"}},
		{"trusted proxy not an address", nil, map[string]string{"NODUS_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"}, []string{"NODUS_TRUSTED_PROXIES"}},
		{"module URL bare path", nil, map[string]string{"DATABASE_URL": "postgres://db/nodus", "VAULT_DATABASE_URL": "vault.db"}, []string{"VAULT_DATABASE_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTestConfig(t, tt.args, tt.vars)
			if err == nil {
				t.Fatal("no error")
			}
			named := false
			for _, n := range tt.names {
				named = named || strings.Contains(err.Error(), n)
			}
			if !named {
				t.Errorf("error %q names none of %q", err, tt.names)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestConfigDatabases(t *testing.T) {
	const pg = "postgres://nodus:s3cret@db/nodus"
	tests := []struct {
		name string
		vars map[string]string
		want map[string]string // by migration set
	}{
		{"PostgreSQL everywhere", map[string]string{"DATABASE_URL": pg}, map[string]string{
			store.SetMain: pg, store.SetAuth: pg, store.SetGateway: pg, store.SetTracing: pg, store.SetVault: pg,
		}},
		{"postgresql scheme", map[string]string{"DATABASE_URL": "postgresql://db/nodus"}, map[string]string{
			store.SetMain: "postgresql://db/nodus", store.SetAuth: "postgresql://db/nodus", store.SetGateway: "postgresql://db/nodus",
			store.SetTracing: "postgresql://db/nodus", store.SetVault: "postgresql://db/nodus",
		}},
		{"PostgreSQL with its own vault", map[string]string{"DATABASE_URL": pg, "VAULT_DATABASE_URL": "postgres://vault@db2/vault"}, map[string]string{
			store.SetMain: pg, store.SetAuth: pg, store.SetGateway: pg, store.SetTracing: pg, store.SetVault: "postgres://vault@db2/vault",
		}},
		{"SQLite main elsewhere", map[string]string{"DATABASE_URL": "sqlite:/x/y.db", "NODUS_DATA_DIR": "/srv/nodus"}, map[string]string{
			store.SetMain: "sqlite:/x/y.db", store.SetAuth: "sqlite:/srv/nodus/auth.db", store.SetGateway: "sqlite:/srv/nodus/gateway.db",
			store.SetTracing: "sqlite:/srv/nodus/tracing.db", store.SetVault: "sqlite:/srv/nodus/vault.db",
		}},
		{"SQLite main, PostgreSQL tracing", map[string]string{"TRACING_DATABASE_URL": pg}, map[string]string{
			store.SetMain: "sqlite:data/main.db", store.SetAuth: "sqlite:data/auth.db", store.SetGateway: "sqlite:data/gateway.db",
			store.SetTracing: pg, store.SetVault: "sqlite:data/vault.db",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseTestConfig(t, nil, tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			got := c.DatabaseURLs()
			if len(got) != len(tt.want) {
				t.Errorf("DatabaseURLs has %d sets, want %d: %v", len(got), len(tt.want), got)
			}
			for set, want := range tt.want {
				if got[set] != want {
					t.Errorf("%s: %q, want %q", set, got[set], want)
				}
			}
		})
	}
}

func TestConfigLogValue(t *testing.T) {
	tests := []struct {
		name, url string
		secrets   []string
	}{
		{"password in user info", "postgres://nodus:s3cret@db/nodus", []string{"s3cret"}},
		{"escaped password", "postgresql://nodus:p%40ss%2Fw0rd@db:5432/nodus?sslmode=disable", []string{"p%40ss", "p@ss"}},
		{"password parameter", "postgres://nodus@db/nodus?password=s3cret", []string{"s3cret"}},
		{"client key password parameter", "postgres://nodus@db/nodus?sslmode=verify-full&sslpassword=s3cret", []string{"s3cret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseTestConfig(t, nil, map[string]string{"DATABASE_URL": tt.url})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("starting nodus", "config", c)
			out := buf.String()
			for _, s := range tt.secrets {
				if strings.Contains(out, s) {
					t.Errorf("log shows the secret %q:\n%s", s, out)
				}
			}
			if !strings.Contains(out, "xxxxx") {
				t.Errorf("log does not show the redaction:\n%s", out)
			}
			for _, want := range []string{"config.database_url=", "config.vault_database_url=", "db", "config.database_pool_size=5"} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestConfigMasterKey: NODUS_MASTER_KEY is read from the environment only,
// checked at start-up without quoting it, and redacted in the log.
func TestConfigMasterKey(t *testing.T) {
	key := strings.Repeat("k", 32)
	std := base64.StdEncoding.EncodeToString([]byte(key))
	for _, v := range []string{std, base64.RawURLEncoding.EncodeToString([]byte(key))} {
		c, err := parseTestConfig(t, nil, map[string]string{"NODUS_MASTER_KEY": v})
		if err != nil || c.MasterKey != v {
			t.Errorf("NODUS_MASTER_KEY=%s: %q, %v", v, c.MasterKey, err)
		}
	}

	short := base64.StdEncoding.EncodeToString([]byte("short-but-secret-key-material"))
	for name, v := range map[string]string{"29 bytes": short, "not base64": "not-base64-secret!!"} {
		_, err := parseTestConfig(t, nil, map[string]string{"NODUS_MASTER_KEY": v})
		if err == nil || !strings.Contains(err.Error(), "NODUS_MASTER_KEY") || !strings.Contains(err.Error(), "32 bytes") {
			t.Errorf("%s: %v; want an error naming NODUS_MASTER_KEY and the length", name, err)
		} else if strings.Contains(err.Error(), v) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}

	fs := newFlagSet("serve", "serve [flags]", io.Discard)
	if err := fs.Parse([]string{"--master-key", std}); err == nil {
		t.Error("--master-key is a flag; the key belongs in the environment only")
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"nodus", "serve", "-h"}, env(map[string]string{"NODUS_DATA_DIR": t.TempDir()}), nil, io.Discard, &help); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(help.String(), "NODUS_MASTER_KEY") {
		t.Errorf("serve -h does not list NODUS_MASTER_KEY:\n%s", help.String())
	}

	for _, tt := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"NODUS_MASTER_KEY": std}, `config.master_key=[redacted]`},
		{nil, `config.master_key=""`},
	} {
		c, err := parseTestConfig(t, nil, tt.vars)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("starting nodus", "config", c)
		if out := buf.String(); strings.Contains(out, std) || strings.Contains(out, key) || !strings.Contains(out, tt.want) {
			t.Errorf("log line %s: want %s and never the key", out, tt.want)
		}
	}
}

func TestConfigTrustedProxies(t *testing.T) {
	got, err := parseTestConfig(t, nil, map[string]string{"NODUS_TRUSTED_PROXIES": " 10.1.2.3/8, 192.0.2.7 ,::ffff:198.51.100.1,fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("198.51.100.1/32"), netip.MustParsePrefix("fd00::/8")}
	if !reflect.DeepEqual(got.TrustedProxies, want) {
		t.Errorf("trusted proxies = %v, want %v", got.TrustedProxies, want)
	}
}
