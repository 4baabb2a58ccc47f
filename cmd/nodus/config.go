package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/store"
)

// Config is every setting Nodus reads. It is filled in one place, parseConfig,
// from flags, then environment variables, then defaults, and validated there.
type Config struct {
	Addr string
	// DebugAddr, when set, serves Go's pprof profiles there; loopback only.
	DebugAddr string
	DataDir   string

	DatabaseURL        string
	AuthDatabaseURL    string
	GatewayDatabaseURL string
	TracingDatabaseURL string
	VaultDatabaseURL   string
	PoolSize           int
	PoolTimeout        time.Duration
	PoolRecycle        time.Duration
	SQLiteSynchronous  string
	SearchCacheMiB     int
	VectorCacheMiB     int
	ExactVectors       int
	AutoMigrate        bool

	LogLevel  slog.Level
	LogFormat string

	MaxBodyBytes int64
	// RecordingMaxBytes bounds an uploaded audio recording.
	RecordingMaxBytes int64
	RequestTimeout    time.Duration
	TrustedProxies    []netip.Prefix
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration

	JobWorkers      int
	JobPollInterval time.Duration
	// UsageRollupEvery is how often yesterday's and today's usage metrics
	// are recomputed: how far the dashboard's usage lags.
	UsageRollupEvery time.Duration

	// SpendRetentionDays is how long the gateway keeps per-request spend
	// rows; 0 keeps them. Daily rollups are kept either way.
	SpendRetentionDays int

	// TraceGatewayCalls is which gateway calls become generations in
	// tracing: "all", "traced" (only calls inside a caller's trace: a
	// traceparent or a chat turn) or "none".
	TraceGatewayCalls string
	// GatewayShared is whether the gateway shares budgets and rate limits
	// with other replicas through its database: auto (when that database
	// is PostgreSQL), on or off.
	GatewayShared string

	AdminEmail    string
	AdminPassword string

	// MasterKey is NODUS_MASTER_KEY, base64; "" means the key file in
	// DataDir. Environment only: a flag would show it in the process list.
	MasterKey string
}

// setting is one configuration entry: its flag, its environment variable,
// its default and how to store its value. A setting without a flag is a
// secret, read from the environment only: it stays out of the process list,
// and its value out of error messages.
type setting struct {
	flag, env, def, help string
	set                  func(c *Config, v string) error
}

func settings() []setting {
	return []setting{
		{"addr", "NODUS_ADDR", ":8080", "address to listen on", func(c *Config, v string) error { c.Addr = v; return nil }},
		{"debug-addr", "NODUS_DEBUG_ADDR", "", "loopback address to serve Go's pprof profiles on (unauthenticated: loopback only); empty serves none", setDebugAddr},
		{"data-dir", "NODUS_DATA_DIR", "./data", "directory for SQLite files and other local state", func(c *Config, v string) error { c.DataDir = v; return nil }},

		{"database-url", "DATABASE_URL", "", "main database (postgres://… or sqlite:PATH); default SQLite under the data directory", func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
		{"auth-database-url", "AUTH_DATABASE_URL", "", "identity database; default the main one on PostgreSQL, auth.db on SQLite", func(c *Config, v string) error { c.AuthDatabaseURL = v; return nil }},
		{"gateway-database-url", "GATEWAY_DATABASE_URL", "", "gateway database; default as for auth", func(c *Config, v string) error { c.GatewayDatabaseURL = v; return nil }},
		{"tracing-database-url", "TRACING_DATABASE_URL", "", "tracing database; default as for auth", func(c *Config, v string) error { c.TracingDatabaseURL = v; return nil }},
		{"vault-database-url", "VAULT_DATABASE_URL", "", "vault database; default as for auth", func(c *Config, v string) error { c.VaultDatabaseURL = v; return nil }},
		{"database-pool-size", "DATABASE_POOL_SIZE", "5", "connections per PostgreSQL pool, and SQLite readers", intSetting(1, 1000, func(c *Config, n int) { c.PoolSize = n })},
		{"database-pool-timeout", "DATABASE_POOL_TIMEOUT", "30", "seconds to wait for a free connection", durationSetting(func(c *Config, d time.Duration) { c.PoolTimeout = d })},
		{"database-pool-recycle", "DATABASE_POOL_RECYCLE", "300", "seconds after which a connection is replaced", durationSetting(func(c *Config, d time.Duration) { c.PoolRecycle = d })},
		{"sqlite-synchronous", "NODUS_SQLITE_SYNCHRONOUS", "NORMAL", "NORMAL (crash-safe) or FULL (also power-loss-safe, slower writes)", func(c *Config, v string) error {
			v = strings.ToUpper(v)
			if v != "NORMAL" && v != "FULL" {
				return fmt.Errorf("must be NORMAL or FULL")
			}
			c.SQLiteSynchronous = v
			return nil
		}},
		{"search-cache-mib", "NODUS_SEARCH_CACHE_MIB", "128", "memory for the posting lists full-text search keeps, in MiB; 0 keeps none", intSetting(0, 1<<20, func(c *Config, n int) { c.SearchCacheMiB = n })},
		{"vector-cache-mib", "NODUS_VECTOR_CACHE_MIB", "1024", "memory for the vectors vector search keeps, in MiB; 0 keeps none (every search reads the database)", intSetting(0, 1<<22, func(c *Config, n int) { c.VectorCacheMiB = n })},
		{"exact-vectors", "NODUS_EXACT_VECTORS", "20000", "vectors a knowledge base may hold and still be searched exactly; past it an approximate (HNSW) index is built", intSetting(100, 1<<30, func(c *Config, n int) { c.ExactVectors = n })},
		{"migrate", "NODUS_AUTO_MIGRATE", "true", "apply pending migrations when serve starts", func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			c.AutoMigrate = b
			if err != nil {
				return fmt.Errorf("must be true or false")
			}
			return nil
		}},

		{"log-level", "NODUS_LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
		{"log-format", "NODUS_LOG_FORMAT", "text", "text or json", func(c *Config, v string) error {
			if v != "text" && v != "json" {
				return fmt.Errorf("must be text or json")
			}
			c.LogFormat = v
			return nil
		}},

		{"max-body-bytes", "NODUS_MAX_BODY_BYTES", "1048576", "largest request body a route accepts unless it sets its own", func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return fmt.Errorf("must be a positive number of bytes")
			}
			c.MaxBodyBytes = n
			return nil
		}},
		{"recording-max-bytes", "NODUS_RECORDING_MAX_BYTES", "104857600", "largest audio recording an upload accepts (413 beyond)", func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > 8<<30 {
				return fmt.Errorf("must be a number of bytes from 1 to 8 GiB")
			}
			c.RecordingMaxBytes = n
			return nil
		}},
		{"trusted-proxies", "NODUS_TRUSTED_PROXIES", "", "reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For gives the client address for throttling and audit; empty: the peer's address", func(c *Config, v string) error {
			c.TrustedProxies = nil
			for _, item := range strings.Split(v, ",") {
				item = strings.TrimSpace(item)
				if item == "" {
					continue
				}
				p, err := netip.ParsePrefix(item)
				if err != nil {
					a, aerr := netip.ParseAddr(item)
					if aerr != nil {
						return fmt.Errorf("%q is not an address or CIDR", item)
					}
					p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
				}
				c.TrustedProxies = append(c.TrustedProxies, p.Masked())
			}
			return nil
		}},
		{"request-timeout", "NODUS_REQUEST_TIMEOUT", "30s", "time a request may take unless its route sets its own", durationSetting(func(c *Config, d time.Duration) { c.RequestTimeout = d })},
		{"read-header-timeout", "NODUS_READ_HEADER_TIMEOUT", "10s", "time a client has to send its request headers", durationSetting(func(c *Config, d time.Duration) { c.ReadHeaderTimeout = d })},
		{"idle-timeout", "NODUS_IDLE_TIMEOUT", "120s", "time an idle keep-alive connection stays open", durationSetting(func(c *Config, d time.Duration) { c.IdleTimeout = d })},
		{"shutdown-timeout", "NODUS_SHUTDOWN_TIMEOUT", "30s", "time in-flight requests and jobs get to finish at shutdown", durationSetting(func(c *Config, d time.Duration) { c.ShutdownTimeout = d })},

		{"job-workers", "NODUS_JOB_WORKERS", "10", "background jobs run at once", intSetting(1, 10000, func(c *Config, n int) { c.JobWorkers = n })},
		{"gateway-spend-retention-days", "NODUS_GATEWAY_SPEND_RETENTION_DAYS", "0", "days the gateway keeps per-request spend rows (0: forever; daily totals are always kept)", intSetting(0, 100000, func(c *Config, n int) { c.SpendRetentionDays = n })},
		{"trace-gateway-calls", "NODUS_TRACE_GATEWAY_CALLS", "all", "which gateway calls are recorded as generations in tracing: all, traced (only those inside a caller's trace: a traceparent or a chat turn) or none; recording costs about as much CPU as the call itself", func(c *Config, v string) error {
			switch v {
			case "all", "traced", "none":
				c.TraceGatewayCalls = v
				return nil
			}
			return fmt.Errorf("must be all, traced or none, not %q", v)
		}},
		{"gateway-shared-limits", "NODUS_GATEWAY_SHARED_LIMITS", "auto", "whether replicas share budgets and key rate limits through the gateway database, so several `nodus serve` on one PostgreSQL never overspend: auto (on with PostgreSQL, off with SQLite), on or off (one replica only)", func(c *Config, v string) error {
			switch v {
			case "auto", "on", "off":
				c.GatewayShared = v
				return nil
			}
			return fmt.Errorf("must be auto, on or off, not %q", v)
		}},
		{"job-poll-interval", "NODUS_JOB_POLL_INTERVAL", "1s", "how often an idle SQLite job queue looks for work", durationSetting(func(c *Config, d time.Duration) { c.JobPollInterval = d })},
		{"usage-rollup-interval", "NODUS_USAGE_ROLLUP_INTERVAL", "5m", "how often the usage metrics of yesterday and today are recomputed (how far the dashboard's usage lags)", durationSetting(func(c *Config, d time.Duration) { c.UsageRollupEvery = d })},

		{"admin-email", "NODUS_ADMIN_EMAIL", "admin@localhost", "email of the first super_admin, created when there are no users", func(c *Config, v string) error { c.AdminEmail = v; return nil }},
		{"admin-password", "NODUS_ADMIN_PASSWORD", "", "password of the first super_admin; when unset one is generated and printed once", func(c *Config, v string) error { c.AdminPassword = v; return nil }},

		{"", "NODUS_MASTER_KEY", "", "master key (32 bytes, base64) that encrypts secrets at rest, or several as \"ID:KEY,*ID:KEY\" (* marks the current one) during a rotation; when unset, master.key in the data directory (created on first start: back it up)", func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			if _, err := keyring.Parse(v, keyring.SourceEnv); err != nil {
				return err
			}
			c.MasterKey = v
			return nil
		}},
	}
}

// setDebugAddr accepts a loopback address only: the profiles answer
// anyone who can connect.
func setDebugAddr(c *Config, v string) error {
	if v == "" {
		c.DebugAddr = ""
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || port == "" {
		return fmt.Errorf("must be host:port, such as 127.0.0.1:6060")
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return fmt.Errorf("must be a loopback address (127.0.0.1, [::1] or localhost): the profiles have no authentication")
	}
	c.DebugAddr = v
	return nil
}

func intSetting(lo, hi int, set func(*Config, int)) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
		}
		set(c, n)
		return nil
	}
}

// durationSetting accepts a Go duration ("1m30s") or a plain number of
// seconds, as the seeds' DATABASE_POOL_TIMEOUT is written.
func durationSetting(set func(*Config, time.Duration)) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, ferr := strconv.ParseFloat(v, 64)
			if ferr != nil {
				return fmt.Errorf("must be a duration such as 30s or a number of seconds")
			}
			d = time.Duration(secs * float64(time.Second))
		}
		if d <= 0 {
			return fmt.Errorf("must be positive")
		}
		set(c, d)
		return nil
	}
}

// addFlags registers every setting on fs, with its environment variable in
// the help text.
func addFlags(fs *flag.FlagSet) {
	var envOnly []setting
	for _, s := range settings() {
		if s.flag == "" {
			envOnly = append(envOnly, s)
			continue
		}
		help := fmt.Sprintf("%s (env %s, default %s)", s.help, s.env, s.def)
		if s.def == "" { // the help text says what the default is
			help = fmt.Sprintf("%s (env %s)", s.help, s.env)
		}
		fs.String(s.flag, "", help)
	}
	// Settings without a flag are listed after the flags, so -h still
	// names every variable Nodus reads.
	usage := fs.Usage
	if usage == nil {
		usage = fs.PrintDefaults
	}
	fs.Usage = func() {
		usage()
		fmt.Fprintf(fs.Output(), "\nEnvironment only (no flag, to keep secrets out of the process list):\n")
		for _, s := range envOnly {
			fmt.Fprintf(fs.Output(), "  %s\n    \t%s\n", s.env, s.help)
		}
	}
}

// parseConfig fills a Config from the flags set on fs, then getenv, then the
// defaults, and checks it. Errors name the flag or variable at fault.
func parseConfig(fs *flag.FlagSet, getenv func(string) string) (Config, error) {
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	var c Config
	for _, s := range settings() {
		v, from := s.def, "default"
		if e := getenv(s.env); e != "" {
			v, from = e, s.env
		}
		if f, ok := set[s.flag]; ok && s.flag != "" {
			v, from = f, "--"+s.flag
		}
		if err := s.set(&c, v); err != nil {
			if from == "default" {
				from = s.env
			}
			if s.flag == "" {
				return Config{}, fmt.Errorf("config: %s: %w", from, err)
			}
			return Config{}, fmt.Errorf("config: %s=%q: %w", from, v, err)
		}
	}
	if err := c.resolveDatabases(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// resolveDatabases applies the per-module defaults: on PostgreSQL every
// module shares the main database; on SQLite each has its own file under
// the data directory, which also spreads the single-writer locks.
func (c *Config) resolveDatabases() error {
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite:" + filepath.Join(c.DataDir, "main.db")
	}
	main, err := store.ParseDialect(c.DatabaseURL)
	if err != nil {
		return fmt.Errorf("config: DATABASE_URL (--database-url): %w", err)
	}
	for _, m := range []struct {
		name, env string
		url       *string
	}{
		{"auth", "AUTH_DATABASE_URL (--auth-database-url)", &c.AuthDatabaseURL},
		{"gateway", "GATEWAY_DATABASE_URL (--gateway-database-url)", &c.GatewayDatabaseURL},
		{"tracing", "TRACING_DATABASE_URL (--tracing-database-url)", &c.TracingDatabaseURL},
		{"vault", "VAULT_DATABASE_URL (--vault-database-url)", &c.VaultDatabaseURL},
	} {
		if *m.url == "" {
			if main == store.Postgres {
				*m.url = c.DatabaseURL
			} else {
				*m.url = "sqlite:" + filepath.Join(c.DataDir, m.name+".db")
			}
		}
		if _, err := store.ParseDialect(*m.url); err != nil {
			return fmt.Errorf("config: %s: %w", m.env, err)
		}
	}
	return nil
}

// DatabaseURLs returns each migration set's database URL.
func (c Config) DatabaseURLs() map[string]string {
	return map[string]string{
		store.SetMain:    c.DatabaseURL,
		store.SetAuth:    c.AuthDatabaseURL,
		store.SetGateway: c.GatewayDatabaseURL,
		store.SetTracing: c.TracingDatabaseURL,
		store.SetVault:   c.VaultDatabaseURL,
	}
}

// StoreConfig returns the pool settings for one database URL.
func (c Config) StoreConfig(url string) store.Config {
	// A posting is 16 bytes; -1 turns the cache off.
	postings := -1
	if c.SearchCacheMiB > 0 {
		postings = c.SearchCacheMiB << 20 / 16
	}
	vectors := int64(-1)
	if c.VectorCacheMiB > 0 {
		vectors = int64(c.VectorCacheMiB) << 20
	}
	return store.Config{URL: url, PoolSize: c.PoolSize, PoolTimeout: c.PoolTimeout,
		Recycle: c.PoolRecycle, Synchronous: c.SQLiteSynchronous, SearchCache: postings,
		VectorCache: vectors, ExactVectors: c.ExactVectors}
}

// LogValue prints the effective configuration with passwords redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("data_dir", c.DataDir),
		slog.String("database_url", store.Redact(c.DatabaseURL)),
		slog.String("auth_database_url", store.Redact(c.AuthDatabaseURL)),
		slog.String("gateway_database_url", store.Redact(c.GatewayDatabaseURL)),
		slog.String("tracing_database_url", store.Redact(c.TracingDatabaseURL)),
		slog.String("vault_database_url", store.Redact(c.VaultDatabaseURL)),
		slog.Int("database_pool_size", c.PoolSize),
		slog.Duration("database_pool_timeout", c.PoolTimeout),
		slog.Duration("database_pool_recycle", c.PoolRecycle),
		slog.String("sqlite_synchronous", c.SQLiteSynchronous),
		slog.Int("search_cache_mib", c.SearchCacheMiB),
		slog.Int("vector_cache_mib", c.VectorCacheMiB),
		slog.Int("exact_vectors", c.ExactVectors),
		slog.Bool("auto_migrate", c.AutoMigrate),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.Int64("recording_max_bytes", c.RecordingMaxBytes),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Any("trusted_proxies", c.TrustedProxies),
		slog.Duration("read_header_timeout", c.ReadHeaderTimeout),
		slog.Duration("idle_timeout", c.IdleTimeout),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Int("job_workers", c.JobWorkers),
		slog.Int("gateway_spend_retention_days", c.SpendRetentionDays),
		slog.String("trace_gateway_calls", c.TraceGatewayCalls),
		slog.String("gateway_shared_limits", c.GatewayShared),
		slog.Duration("job_poll_interval", c.JobPollInterval),
		slog.Duration("usage_rollup_interval", c.UsageRollupEvery),
		slog.String("admin_email", c.AdminEmail),
		slog.Bool("admin_password_set", c.AdminPassword != ""),
		slog.String("master_key", redactedSecret(c.MasterKey)),
	)
}

// redactedSecret stands in for a secret in logs: "[redacted]" when it is
// set, "" when it is not.
func redactedSecret(v string) string {
	if v == "" {
		return ""
	}
	return "[redacted]"
}
