package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/nodus-os/nodus/internal/nodus"
)

// Config says how to reach one database and how to pool its connections.
type Config struct {
	// URL is postgres://… or postgresql://… for PostgreSQL, and sqlite:PATH
	// or file:PATH for SQLite.
	URL string
	// PoolSize is the PostgreSQL pool's size and the SQLite read pool's.
	PoolSize int
	// PoolTimeout bounds the wait for a free connection.
	PoolTimeout time.Duration
	// Recycle closes connections older than this (PostgreSQL).
	Recycle time.Duration
	// BusyTimeout is how long SQLite waits on a lock held by another process.
	BusyTimeout time.Duration
	// Synchronous is SQLite's synchronous setting: NORMAL or FULL.
	Synchronous string
	// SearchCache bounds the full-text postings kept in memory for
	// search, in postings of 16 bytes; 0 is DefaultSearchCache, negative
	// keeps none.
	SearchCache int
	// VectorCache bounds the vectors kept in memory for search, in
	// bytes; 0 is DefaultVectorCache, negative keeps none (every vector
	// search reads the database).
	VectorCache int64
	// ExactVectors is how many vectors a knowledge base may hold and
	// still be searched exactly rather than through an approximate
	// index; 0 is DefaultExactVectors.
	ExactVectors int
	// WriteCacheKiB is the page cache of a SQLite file's write
	// connection; 0 is SQLite's default (2 MiB). OpenDatabases gives the
	// tracing database TracingWriteCacheKiB.
	WriteCacheKiB int
	// WriteTempMemory keeps a SQLite file's write connection's temporary
	// storage in memory (temp_store MEMORY): see TempMemorySets. Migrations
	// still sort on disk.
	WriteTempMemory bool
	// Logger takes the warnings of work the store does in the background
	// (a knowledge base's vector graph it could not save or load); nil
	// discards them.
	Logger *slog.Logger
}

// DB is one database: a SQLite file with a write and a read pool, or a
// PostgreSQL pool.
type DB struct {
	dialect     Dialect
	url         string
	poolTimeout time.Duration

	write *sql.DB    // SQLite: one connection
	stmts *stmtCache // SQLite: the writer's prepared statements
	read  *sql.DB    // SQLite: query_only connections
	pool  *pgxpool.Pool
	// tempMemory: the SQLite writer keeps temp_store MEMORY
	// (Config.WriteTempMemory).
	tempMemory bool

	// SQLite checkpoints the WAL in the background, off the commit path:
	// ckpt is its own connection, commits counts writes so an idle
	// database is left alone, and stopCkpt ends the loop at Close.
	ckpt     *sql.DB
	commits  atomic.Uint64
	stopCkpt context.CancelFunc
	ckptDone chan struct{}

	// postings caches knowledge bases' posting lists for search.
	postings *postingCache
	// vectors holds knowledge bases' vectors for search.
	vectors *vectorCache
}

// ParseDialect tells which engine a database URL names.
func ParseDialect(rawURL string) (Dialect, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return Postgres, nil
	case strings.HasPrefix(rawURL, "sqlite:"), strings.HasPrefix(rawURL, "file:"):
		return SQLite, nil
	}
	return 0, nodus.Errorf(nodus.EINVALID, "database URL must start with postgres://, postgresql://, sqlite: or file:")
}

// SQLitePath returns the file path of a sqlite: or file: URL.
func SQLitePath(rawURL string) string {
	p := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "file:")
	if strings.HasPrefix(p, "//") { // sqlite:///abs/path or sqlite://rel/path
		p = p[2:]
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

// Redact returns a database URL fit for logs: the password of a PostgreSQL
// URL is replaced, and so is every parameter naming a password
// (password=, sslpassword=).
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "[unparseable database URL]"
	}
	if u.Scheme == "sqlite" || u.Scheme == "file" {
		return rawURL
	}
	q := u.Query()
	changed := false
	for k := range q {
		// password, sslpassword and any other secret pgx may accept.
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Open connects to the database cfg names and checks that it answers.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	d, err := ParseDialect(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 5
	}
	if cfg.PoolTimeout <= 0 {
		cfg.PoolTimeout = 30 * time.Second
	}
	if cfg.Recycle <= 0 {
		cfg.Recycle = 300 * time.Second
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = 10 * time.Second
	}
	if d == Postgres {
		return openPostgres(ctx, cfg)
	}
	return openSQLite(ctx, cfg)
}

func openPostgres(ctx context.Context, cfg Config) (*DB, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, nodus.Errorf(nodus.EINVALID, "invalid PostgreSQL URL %s", Redact(cfg.URL))
	}
	pc.MaxConns = int32(cfg.PoolSize)
	pc.MaxConnLifetime = cfg.Recycle
	pc.MaxConnLifetimeJitter = cfg.Recycle / 10
	pc.MaxConnIdleTime = cfg.Recycle
	// Pre-ping: a connection that sat idle may have been cut by a proxy or a
	// server restart; ping it before handing it out.
	pc.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		return p.IdleDuration >= time.Second
	}
	pc.PingTimeout = 5 * time.Second
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > cfg.PoolTimeout {
		pc.ConnConfig.ConnectTimeout = min(cfg.PoolTimeout, 10*time.Second)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", Redact(cfg.URL), mapError(err))
	}
	db := &DB{dialect: Postgres, url: cfg.URL, poolTimeout: cfg.PoolTimeout, pool: pool, postings: newPostingCache(cfg.SearchCache),
		vectors: newVectorCache(cfg.VectorCache, cfg.ExactVectors, cfg.Logger)}
	db.vectors.save, db.vectors.read = db.saveVectorGraph, db.readVectorGraph
	pctx, cancel := context.WithTimeout(ctx, cfg.PoolTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", Redact(cfg.URL), mapError(err))
	}
	return db, nil
}

func openSQLite(ctx context.Context, cfg Config) (*DB, error) {
	path := SQLitePath(cfg.URL)
	if path == "" || path == ":memory:" {
		return nil, nodus.Errorf(nodus.EINVALID, "SQLite URL needs a file path")
	}
	sync := strings.ToUpper(cfg.Synchronous)
	if sync == "" {
		sync = "NORMAL"
	}
	if sync != "NORMAL" && sync != "FULL" {
		return nil, nodus.Errorf(nodus.EINVALID, "SQLite synchronous must be NORMAL or FULL, not %q", cfg.Synchronous)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
	}
	// Create the file ourselves so it is private to the service account;
	// SQLite gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: create %s: %w", path, err)
	}
	f.Close()

	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(%s)&_pragma=journal_size_limit(67108864)",
		cfg.BusyTimeout.Milliseconds(), sync)
	// The writer never checkpoints (wal_autocheckpoint 0): a checkpoint on
	// the commit that crosses the threshold would cost that one request
	// milliseconds. checkpointLoop does it in the background instead.
	writeDSN := "file:" + path + "?_pragma=journal_mode(WAL)&" + pragmas + "&_pragma=wal_autocheckpoint(0)&_txlock=immediate"
	if cfg.WriteCacheKiB > 0 {
		writeDSN += fmt.Sprintf("&_pragma=cache_size(-%d)", cfg.WriteCacheKiB)
	}
	if cfg.WriteTempMemory {
		writeDSN += "&_pragma=temp_store(MEMORY)"
	}
	write, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	read, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(cfg.PoolSize)
	read.SetMaxIdleConns(cfg.PoolSize)
	read.SetConnMaxIdleTime(5 * time.Minute)

	ckpt, err := sql.Open("sqlite", "file:"+path+"?"+pragmas)
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	ckpt.SetMaxOpenConns(1)
	ckpt.SetMaxIdleConns(1)

	db := &DB{dialect: SQLite, url: cfg.URL, poolTimeout: cfg.PoolTimeout, write: write, stmts: newStmtCache(write),
		tempMemory: cfg.WriteTempMemory, read: read, ckpt: ckpt,
		postings: newPostingCache(cfg.SearchCache), vectors: newVectorCache(cfg.VectorCache, cfg.ExactVectors, cfg.Logger)}
	db.vectors.save, db.vectors.read = db.saveVectorGraph, db.readVectorGraph
	var mode string
	if err := write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, mapError(err))
	}
	if mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("store: %s: journal mode is %q, not wal (is the file system able to hold a WAL?)", path, mode)
	}
	var cctx context.Context
	cctx, db.stopCkpt = context.WithCancel(context.Background())
	db.ckptDone = make(chan struct{})
	go db.checkpointLoop(cctx, checkpointEvery)
	return db, nil
}

// TracingWriteCacheKiB is the tracing database's writer page cache. A
// batch of SDK events, whose ids are random, dirties a page of each id
// index per event; past SQLite's default 2 MiB cache the pages spill to
// the WAL mid-transaction and are written again at commit.
// BenchmarkRecordGatewayCalls with random ids: 5,200-6,300 calls/s at
// 2 MiB, 7,700-7,800 at 32 MiB. (Nodus's own ids are time-ordered and
// gain nothing from it.) The cache fills only as pages are used, and
// costs about twice its size in memory: SQLite allocates a page with its
// header, which the allocator rounds up to the next power of two.
const TracingWriteCacheKiB = 32 << 10

// TempMemorySets are the databases whose SQLite writer keeps its temporary
// storage in memory. Their hot writes are multi-row inserts inside a
// transaction, and each such statement keeps a statement journal (the
// pages it changes, to undo it alone should a constraint stop it). SQLite
// spills that journal to a temporary file past 64 KiB, so a 128-row
// insert of traces wrote every page it touched twice, once to a file
// nothing ever reads. Their other large statements (retention, spend log
// pruning) go in bounded batches, so the journal stays small; migrations,
// whose CREATE INDEX sorts a whole table, switch back to files
// (Migrator.UpTo). BenchmarkRecordGatewayCalls on SQLite, the median of
// five runs of each alternating: 18,279 calls/s with files, 20,146 in
// memory.
var TempMemorySets = []string{SetTracing, SetGateway}

// spillTemp switches a SQLite writer that keeps temp_store MEMORY to files
// for the length of a migration, so a CREATE INDEX on a large table sorts
// on disk rather than in memory. The returned function switches back.
func (db *DB) spillTemp(ctx context.Context) (restore func(), err error) {
	if db.dialect != SQLite || !db.tempMemory {
		return func() {}, nil
	}
	if _, err := db.write.ExecContext(ctx, "PRAGMA temp_store = FILE"); err != nil {
		return nil, mapError(err)
	}
	return func() {
		// A failure leaves the writer on files: slower, not wrong.
		_, _ = db.write.ExecContext(context.WithoutCancel(ctx), "PRAGMA temp_store = MEMORY")
	}, nil
}

// checkpointEvery is how often the background checkpoint looks for new
// commits. At a few thousand commits a second the WAL then stays within a
// few megabytes.
const checkpointEvery = 50 * time.Millisecond

// A round copies the WAL back only once checkpointCommits commits wait in
// it, or the oldest has waited checkpointAge. A checkpoint that copies
// everything lets the next commit start the WAL again from its
// beginning, and under synchronous=NORMAL that commit syncs the WAL's
// header: with a round after every commit, a writer committing a few
// times a second paid an fsync on almost every commit
// (BenchmarkSparseCommits, single-row writes 20 ms apart: p50 264–305 µs
// → 172–227 µs, p90 520–606 → 346–394 µs). A busy writer still has its
// WAL copied back at every tick.
const (
	checkpointCommits = 32
	checkpointAge     = time.Second
)

// walLimitFrames is the WAL's length (64 MiB of 4 KiB pages) past which
// the background checkpoint stops relying on passive rounds. The WAL
// starts again from its beginning only when a writer begins while every
// frame is already copied back; under writes that never pause long
// enough for a round to finish first, that moment never comes and the
// file grows without bound (seen at 140 MB in 40 s with rounds every
// 500 ms). walTruncateEvery spaces the attempts to force it.
var (
	walLimitFrames   = 16384
	walTruncateEvery = 10 * time.Second
)

// walReaderWait bounds how long a forced truncation waits for readers
// still in the WAL (a backup, a long export); writers wait as long.
const walReaderWait = 200 * time.Millisecond

// checkpointLoop copies committed WAL frames back into the database file
// (a PASSIVE checkpoint: it waits for no reader or writer) once
// checkpointCommits commits wait or the oldest has waited checkpointAge,
// so the WAL stays short and no commit pays for a checkpoint. A failed
// round is retried at the next tick. When
// the WAL has grown past walLimitFrames all the same, it is truncated
// with writers held back for the moment it takes.
func (db *DB) checkpointLoop(ctx context.Context, every time.Duration) {
	defer close(db.ckptDone)
	t := time.NewTicker(every)
	defer t.Stop()
	var done uint64
	var truncated time.Time
	var waiting time.Time // when a commit was first seen waiting for a round
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		n := db.commits.Load()
		if n == done {
			continue
		}
		if waiting.IsZero() {
			waiting = now
		}
		if n-done < checkpointCommits && now.Sub(waiting) < checkpointAge {
			continue
		}
		var busy, frames, copied int
		if err := db.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
			continue
		}
		done, waiting = n, time.Time{}
		if frames > walLimitFrames && time.Since(truncated) >= walTruncateEvery {
			truncated = time.Now()
			db.truncateWAL(ctx, walReaderWait) // busy or failed: tried again later
		}
	}
}

// truncateWAL copies the whole WAL back and truncates it to nothing. It
// holds the write connection meanwhile, so writers queue rather than add
// frames, and waits up to readerWait for readers still in the WAL; with
// one left it reports busy and leaves the WAL as it is.
func (db *DB) truncateWAL(ctx context.Context, readerWait time.Duration) (busy bool, err error) {
	w, err := db.write.Conn(ctx)
	if err != nil {
		return false, mapError(err)
	}
	defer w.Close()
	c, err := db.ckpt.Conn(ctx)
	if err != nil {
		return false, mapError(err)
	}
	defer c.Close()
	// The checkpointer's connection waits on readers as long as its
	// busy_timeout; bound it for this call only.
	var was int
	if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&was); err != nil {
		return false, mapError(err)
	}
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", readerWait.Milliseconds())); err != nil {
		return false, mapError(err)
	}
	defer c.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", was))
	var b, frames, copied int
	if err := c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&b, &frames, &copied); err != nil {
		return false, mapError(err)
	}
	return b != 0, nil
}

// Dialect reports the database engine.
func (db *DB) Dialect() Dialect { return db.dialect }

// URL returns the database's URL, password redacted.
func (db *DB) URL() string { return Redact(db.url) }

// Close closes every connection.
func (db *DB) Close() error {
	db.vectors.stopSaving()
	if db.pool != nil {
		db.pool.Close()
		return nil
	}
	if db.stopCkpt != nil {
		db.stopCkpt()
		<-db.ckptDone
	}
	return errors.Join(db.stmts.close(), db.read.Close(), db.write.Close(), db.ckpt.Close())
}

// Ping checks that the database answers. On SQLite it also takes the write
// lock for an empty transaction: a file whose lock another process holds
// (a stuck backup or migration) cannot serve writes, and readiness should
// say so.
func (db *DB) Ping(ctx context.Context) error {
	if db.dialect == Postgres {
		return mapError(db.pool.Ping(ctx))
	}
	var one int
	if err := db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return mapError(err)
	}
	return db.Write(ctx, func(*Tx) error { return nil })
}

// WritePool returns SQLite's one-connection write pool, for the job queue,
// which must share it so a job inserted in a transaction commits with it.
// It is nil on PostgreSQL.
func (db *DB) WritePool() *sql.DB { return db.write }

// PgxPool returns the PostgreSQL pool, for the job queue. It is nil on SQLite.
func (db *DB) PgxPool() *pgxpool.Pool { return db.pool }

// Write runs fn in a read-write transaction, committed when fn returns nil
// and rolled back otherwise (also when fn panics).
func (db *DB) Write(ctx context.Context, fn func(*Tx) error) error {
	if db.dialect == Postgres {
		return db.pgTx(ctx, pgx.TxOptions{}, fn)
	}
	err := db.sqliteTx(ctx, db.write, fn)
	if err == nil {
		db.commits.Add(1)
	}
	if db.stmts.pending() {
		// The connection is back in the pool: prepare what the
		// transaction ran for the next ones.
		db.stmts.prepareWanted(context.WithoutCancel(ctx))
	}
	return err
}

// readSnapshot runs fn in a read-only transaction whose statements all
// see one snapshot: SQLite's read transactions do; PostgreSQL's need
// REPEATABLE READ.
func (db *DB) readSnapshot(ctx context.Context, fn func(*Tx) error) error {
	if db.dialect == Postgres {
		return db.pgTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	}
	return db.sqliteTx(ctx, db.read, fn)
}

// Read runs fn in a read-only transaction.
func (db *DB) Read(ctx context.Context, fn func(*Tx) error) error {
	if db.dialect == Postgres {
		return db.pgTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}, fn)
	}
	return db.sqliteTx(ctx, db.read, fn)
}

// errPoolTimeout reports a pool that stayed exhausted for PoolTimeout.
func (db *DB) errPoolTimeout(err error) error {
	return nodus.WrapError(err, nodus.EUNAVAILABLE,
		fmt.Sprintf("database busy: no connection free within %s", db.poolTimeout))
}

func (db *DB) sqliteTx(ctx context.Context, pool *sql.DB, fn func(*Tx) error) (err error) {
	actx, cancel := context.WithTimeout(ctx, db.poolTimeout)
	conn, err := pool.Conn(actx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return db.errPoolTimeout(err)
		}
		return mapError(err)
	}
	defer conn.Close()
	sqlTx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return mapError(err)
	}
	tx := &Tx{dialect: SQLite, sqlTx: sqlTx}
	if pool == db.write {
		tx.stmts = db.stmts
	}
	return runTx(tx, fn, sqlTx.Rollback, sqlTx.Commit)
}

func (db *DB) pgTx(ctx context.Context, opts pgx.TxOptions, fn func(*Tx) error) error {
	actx, cancel := context.WithTimeout(ctx, db.poolTimeout)
	conn, err := db.pool.Acquire(actx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return db.errPoolTimeout(err)
		}
		return mapError(err)
	}
	defer conn.Release()
	pgTx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return mapError(err)
	}
	// pgx's Rollback and Commit take a context; a rollback must run even
	// when ctx is already cancelled.
	rollback := func() error { return pgTx.Rollback(context.WithoutCancel(ctx)) }
	if err := setScope(ctx, pgTx); err != nil {
		_ = rollback()
		return err
	}
	commit := func() error { return pgTx.Commit(ctx) }
	return runTx(&Tx{dialect: Postgres, pgTx: pgTx}, fn, rollback, commit)
}

// setScope tells PostgreSQL's row-level security policies (the
// row_level_security migrations) whose rows the transaction may touch: the
// context's tenant, or every tenant. set_config's third argument makes
// both settings local to the transaction, so a pooled connection never
// carries one request's tenant into the next. A context without a scope
// sets neither, and the policies then admit no tenant row: the database
// fails closed just as scopeCond does.
//
// One parameterised statement sets both, one round trip, prepared once
// per connection by pgx. Folding it into the BEGIN instead (pgx's
// BeginQuery, a multi-statement simple query) measured slower: about 60µs
// per transaction against this statement's 20µs.
func setScope(ctx context.Context, tx pgx.Tx) error {
	id, all, ok := nodus.TenantScope(ctx)
	if !ok {
		return nil
	}
	allTenants := "off"
	if all {
		allTenants = "on"
	}
	_, err := tx.Exec(ctx, "SELECT set_config('nodus.tenant_id', $1, true), set_config('nodus.all_tenants', $2, true)",
		id, allTenants)
	return mapError(err)
}

func runTx(tx *Tx, fn func(*Tx) error, rollback, commit func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			_ = rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = rollback()
		return err
	}
	return mapError(commit())
}

// PoolStat describes one connection pool, for metrics.
type PoolStat struct {
	Pool         string // "write", "read" (SQLite) or "pool" (PostgreSQL)
	MaxOpen      int
	Open         int
	InUse        int
	Idle         int
	WaitCount    int64
	WaitDuration time.Duration
}

// PoolStats returns the state of the database's pools.
func (db *DB) PoolStats() []PoolStat {
	if db.dialect == Postgres {
		s := db.pool.Stat()
		return []PoolStat{{
			Pool: "pool", MaxOpen: int(s.MaxConns()), Open: int(s.TotalConns()), InUse: int(s.AcquiredConns()),
			Idle: int(s.IdleConns()), WaitCount: s.EmptyAcquireCount(), WaitDuration: s.EmptyAcquireWaitTime(),
		}}
	}
	stat := func(name string, p *sql.DB) PoolStat {
		s := p.Stats()
		return PoolStat{Pool: name, MaxOpen: s.MaxOpenConnections, Open: s.OpenConnections, InUse: s.InUse,
			Idle: s.Idle, WaitCount: s.WaitCount, WaitDuration: s.WaitDuration}
	}
	return []PoolStat{stat("write", db.write), stat("read", db.read)}
}

// Maintain keeps a SQLite file lean: it refreshes the query planner's
// statistics (PRAGMA optimize) and folds the WAL back into the database,
// truncating it. PostgreSQL's autovacuum does this job there.
func (db *DB) Maintain(ctx context.Context) error {
	if db.dialect != SQLite {
		return nil
	}
	// PRAGMA optimize cannot run inside a transaction: it runs on the
	// write connection between two.
	if _, err := db.write.ExecContext(ctx, "PRAGMA optimize"); err != nil {
		return mapError(err)
	}
	// A reader still in the WAL makes the truncation busy; it is retried
	// briefly, writers free to go on between attempts.
	for attempt := 0; ; attempt++ {
		busy, err := db.truncateWAL(ctx, time.Second)
		if err != nil || !busy || attempt == 10 {
			return err
		}
		select {
		case <-ctx.Done():
			return mapError(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
