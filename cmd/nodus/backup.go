package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// The archive of `nodus backup` is a gzip-compressed tar whose first entry
// is manifest.json; every other entry is a regular file the manifest lists
// with its size and SHA-256:
//
//	manifest.json
//	databases/<label>.db       a SQLite database (VACUUM INTO copy)
//	databases/<label>.pgdump   a PostgreSQL database (pg_dump --format=custom)
//	blobs/<xx>/<yy>/<id>       the blob store's files, in its own layout
//	keys/master.key            the key text, only with --include-keys
//
// The manifest comes first so that restore knows every size before it
// writes a byte, and can refuse an archive that claims more than it holds.
const (
	backupFormat   = 1
	manifestName   = "manifest.json"
	maxManifest    = 64 << 20 // a manifest line is ~200 bytes: room for 300k blobs
	maxGzipTrailer = 1 << 20  // tar's end-of-archive blocks and padding
	archiveKeyPath = "keys/master.key"
)

// backupManifest describes one archive.
type backupManifest struct {
	Format       int              `json:"format"`
	NodusVersion string           `json:"nodus_version"`
	CreatedAt    time.Time        `json:"created_at"`
	Databases    []backupDatabase `json:"databases"`
	Keys         backupKeys       `json:"keys"`
	Files        []backupFile     `json:"files"`
}

// backupDatabase is one database of the deployment: the migration sets
// it holds (the jobs queue lives in main's), its engine and its file.
type backupDatabase struct {
	Label  string   `json:"label"`
	Sets   []string `json:"sets"`
	Engine string   `json:"engine"` // "sqlite" or "postgres"
	// Schema is the PostgreSQL schema the URL's search_path named, which
	// alone was dumped; "" for a whole database.
	Schema     string         `json:"schema,omitempty"`
	Migrations map[string]int `json:"migrations"` // set → current version
	File       string         `json:"file"`
	Size       int64          `json:"size"`
}

// backupKeys says which master keys the data needs. Without the keys a
// restored vault stays sealed, so the ids are recorded even when the key
// text is not included.
type backupKeys struct {
	Included bool `json:"included"`
	// Source is where serve reads the keys: "env" (NODUS_MASTER_KEY) or
	// the key file's path.
	Source string `json:"source"`
	// Required are the master key ids that seal the vault's check value
	// and data keys, the SMTP passwords and the webhook secrets;
	// Available are the ids of the configured key text.
	Required  []int `json:"required_key_ids"`
	Available []int `json:"available_key_ids"`
}

type backupFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// backupCmd runs `nodus backup --out FILE [--include-keys]`.
func backupCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", "backup --out FILE [--include-keys] [flags]", stderr)
	out := fs.String("out", "", "archive to write (tar.gz, mode 0600); written to a temporary name and renamed when complete")
	includeKeys := fs.Bool("include-keys", false, "also store the master key text; whoever holds such an archive can read every secret in it")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errUsage{fmt.Sprintf("backup: unexpected arguments %q", pos)}
	}
	if *out == "" {
		return errUsage{"backup needs --out FILE"}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}
	m, err := writeBackup(ctx, cfg, *out, *includeKeys)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	for _, d := range m.Databases {
		fmt.Fprintf(stdout, "database %-8s %-8s sets %s, %s\n", d.Label, d.Engine, strings.Join(d.Sets, ","), formatVersions(d.Migrations))
	}
	blobs, size := 0, int64(0)
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, "blobs/") {
			blobs++
			size += f.Size
		}
	}
	fmt.Fprintf(stdout, "blobs    %d files, %d bytes\n", blobs, size)
	if m.Keys.Included {
		fmt.Fprintf(stdout, "keys     included (ids %v): keep this archive as secret as the keys\n", m.Keys.Available)
	} else {
		fmt.Fprintf(stdout, "keys     not included: restoring needs master key ids %v from %s\n", m.Keys.Required, m.Keys.Source)
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// writeBackup snapshots every database and the blob store into a staging
// directory beside out, then writes the archive to a temporary file there
// and renames it: a failed or interrupted backup leaves no archive.
func writeBackup(ctx context.Context, cfg Config, out string, includeKeys bool) (*backupManifest, error) {
	dir := filepath.Dir(out)
	stage, err := os.MkdirTemp(dir, ".nodus-backup-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	m := &backupManifest{Format: backupFormat, NodusVersion: versionString(), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	// staged maps an archive path to the file that holds its bytes.
	staged := map[string]string{}
	if err := snapshotDatabases(ctx, cfg, stage, m, staged); err != nil {
		return nil, err
	}
	// Blobs after the databases: a blob no row names is harmless, a row
	// whose blob is missing is not.
	if err := stageBlobs(filepath.Join(cfg.DataDir, "blobs"), filepath.Join(stage, "blobs"), staged); err != nil {
		return nil, err
	}
	if err := stageKeys(cfg, stage, includeKeys, m, staged); err != nil {
		return nil, err
	}
	for _, p := range sortedKeys(staged) {
		sum, size, err := hashFile(staged[p])
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, backupFile{Path: p, Size: size, SHA256: sum})
		for i := range m.Databases {
			if m.Databases[i].File == p {
				m.Databases[i].Size = size
			}
		}
	}

	tmp, err := os.CreateTemp(dir, ".nodus-backup-*.tar.gz")
	if err != nil {
		return nil, err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return nil, err
	}
	if err := writeArchive(tmp, m, staged); err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, err
	}
	tmp = nil
	syncDir(dir)
	return m, nil
}

// snapshotDatabases copies each distinct database once, with the versions
// of the migration sets it holds.
func snapshotDatabases(ctx context.Context, cfg Config, stage string, m *backupManifest, staged map[string]string) error {
	urls := cfg.DatabaseURLs()
	// store.Open creates a missing SQLite file; a backup must not invent
	// an empty database where the operator pointed at the wrong place.
	for _, set := range store.MigrationSets() {
		if d, _ := store.ParseDialect(urls[set]); d == store.SQLite {
			if _, err := os.Stat(store.SQLitePath(urls[set])); err != nil {
				return fmt.Errorf("%s database: %w (is --data-dir or the database URL right?)", set, err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(stage, "databases"), 0o700); err != nil {
		return err
	}
	dbs, err := store.OpenDatabases(ctx, urls, cfg.StoreConfig)
	if err != nil {
		return err
	}
	defer dbs.Close()
	sets, _, err := migrationSets(dbs)
	if err != nil {
		return err
	}
	required, err := requiredKeyIDs(ctx, dbs)
	if err != nil {
		return err
	}
	m.Keys.Required = required

	for _, db := range dbs.Unique() {
		label := dbs.Label(db)
		var url string
		entry := backupDatabase{Label: label, Migrations: map[string]int{}}
		for _, s := range sets {
			// The jobs queue lives in the main database.
			owner := s.Name()
			if owner == jobs.SetName {
				owner = store.SetMain
			}
			if dbs.DB(owner) != db {
				continue
			}
			url = urls[owner]
			if s.Name() != jobs.SetName {
				entry.Sets = append(entry.Sets, s.Name())
			}
			st, err := s.Status(ctx)
			if err != nil {
				return err
			}
			entry.Migrations[s.Name()] = st.Current()
		}
		switch db.Dialect() {
		case store.SQLite:
			entry.Engine = "sqlite"
			entry.File = "databases/" + label + ".db"
			dst := filepath.Join(stage, filepath.FromSlash(entry.File))
			if err := snapshotSQLite(ctx, store.SQLitePath(url), dst); err != nil {
				return fmt.Errorf("%s database: %w", label, err)
			}
			staged[entry.File] = dst
		case store.Postgres:
			entry.Engine = "postgres"
			entry.File = "databases/" + label + ".pgdump"
			dst := filepath.Join(stage, filepath.FromSlash(entry.File))
			conn, err := libpqConn(url)
			if err != nil {
				return fmt.Errorf("%s database: %w", label, err)
			}
			entry.Schema = conn.schema
			if err := pgDump(ctx, conn, dst); err != nil {
				return fmt.Errorf("%s database: %w", label, err)
			}
			staged[entry.File] = dst
		}
		m.Databases = append(m.Databases, entry)
	}
	return nil
}

// snapshotSQLite writes a consistent copy of a live SQLite database with
// VACUUM INTO: it runs in one read transaction, so it sees one commit's
// state while serve keeps writing, and leaves out the WAL and free pages.
func snapshotSQLite(ctx context.Context, src, dst string) error {
	// Not query_only: SQLite counts VACUUM INTO's write to the new file
	// against it. The statement only reads the source.
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return os.Chmod(dst, 0o600)
}

// requiredKeyIDs lists the master keys the data is sealed with: the
// vault's check value's and every data key's, the SMTP passwords' and the
// webhook secrets'.
func requiredKeyIDs(ctx context.Context, dbs *store.Databases) ([]int, error) {
	all := nodus.WithAllTenants(ctx)
	ids := map[int]bool{}
	smtp, hooks, err := sealedSecretCounts(all, dbs)
	if err != nil {
		return nil, err
	}
	for id := range smtp {
		ids[id] = true
	}
	for id := range hooks {
		ids[id] = true
	}
	db := dbs.DB(store.SetVault)
	check, err := db.FindVaultCheck(all)
	switch {
	case nodus.ErrorCode(err) == nodus.ENOTFOUND:
	case err != nil:
		return nil, fmt.Errorf("vault check value: %w", err)
	default:
		if id, ok := keyring.KeyID(check); ok {
			ids[int(id)] = true
		}
	}
	counts, err := db.CountVaultDataKeys(all)
	if err != nil {
		return nil, fmt.Errorf("vault data keys: %w", err)
	}
	for id := range counts {
		ids[int(id)] = true
	}
	return sortedKeys(ids), nil
}

// stageBlobs links (or, across file systems, copies) every blob file into
// dst, so that a blob deleted while the archive is written is still in it
// as the manifest says. Only files in the blob store's layout are taken;
// its .tmp directory holds unfinished uploads.
func stageBlobs(src, dst string, staged map[string]string) error {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == src && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir // no uploads yet
			}
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if rel == ".tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		name := "blobs/" + filepath.ToSlash(rel)
		if !d.Type().IsRegular() || !validBlobPath(name) {
			return nil
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		if err := os.Link(p, target); err != nil {
			if err := copyFile(p, target); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // deleted since the walk saw it
				}
				return err
			}
		}
		staged[name] = target
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// validBlobPath reports whether an archive path is blobs/xx/yy/ID in the
// blob store's layout (package blob: the shards are ID[34:36]/ID[32:34]).
func validBlobPath(p string) bool {
	parts := strings.Split(p, "/")
	if len(parts) != 4 || parts[0] != "blobs" || !blob.ValidID(parts[3]) {
		return false
	}
	id := parts[3]
	return parts[1] == id[34:36] && parts[2] == id[32:34]
}

// stageKeys records where the key text lives and which ids it holds, and
// stages the text itself only when asked. The key file is read as it is:
// unlike keyring.Load, a backup never creates one.
func stageKeys(cfg Config, stage string, include bool, m *backupManifest, staged map[string]string) error {
	text, source := cfg.MasterKey, keyring.SourceEnv
	if text == "" {
		source = filepath.Join(cfg.DataDir, keyring.KeyFile)
		b, err := os.ReadFile(source)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !include:
		case err != nil:
			return fmt.Errorf("master key: %w", err)
		default:
			text = string(b)
		}
	}
	m.Keys.Source = source
	if text != "" {
		ring, err := keyring.Parse(text, source)
		if err != nil {
			return err
		}
		for _, id := range ring.IDs() {
			m.Keys.Available = append(m.Keys.Available, int(id))
		}
	}
	if !include {
		return nil
	}
	p := filepath.Join(stage, "master.key")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		return err
	}
	staged[archiveKeyPath] = p
	m.Keys.Included = true
	return nil
}

// writeArchive writes the manifest, then every staged file, as tar.gz.
func writeArchive(w io.Writer, m *backupManifest, staged map[string]string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: m.CreatedAt, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(manifestName, int64(len(manifest)))); err != nil {
		return err
	}
	if _, err := tw.Write(manifest); err != nil {
		return err
	}
	for _, f := range m.Files {
		if err := tw.WriteHeader(hdr(f.Path, f.Size)); err != nil {
			return err
		}
		in, err := os.Open(staged[f.Path])
		if err != nil {
			return err
		}
		// The staged file is private to this backup, so it still has the
		// size it was hashed at; a short copy would be a bug worth failing on.
		_, err = io.Copy(tw, in)
		in.Close()
		if err != nil {
			return fmt.Errorf("archive %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// restoreCmd runs `nodus restore --in FILE [--force]`.
func restoreCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", "restore --in FILE [--force] [flags]", stderr)
	in := fs.String("in", "", "archive written by nodus backup")
	force := fs.Bool("force", false, "restore over databases, blobs and a key file that already hold data (replacing them)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errUsage{fmt.Sprintf("restore: unexpected arguments %q", pos)}
	}
	if *in == "" {
		return errUsage{"restore needs --in FILE"}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}
	if err := restoreBackup(ctx, cfg, *in, *force, stdout); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// restoreTarget is where one archived database goes.
type restoreTarget struct {
	db     backupDatabase
	url    string
	staged string // the verified file, in the target's directory for SQLite
}

// restoreBackup verifies the whole archive while extracting it to
// temporary names, checks the target, and only then puts everything in
// place. Every refusal leaves the target as it was.
func restoreBackup(ctx context.Context, cfg Config, archive string, force bool, stdout io.Writer) (err error) {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s is not a nodus backup (gzip: %w)", archive, err)
	}
	tr := tar.NewReader(gz)
	m, err := readManifest(tr)
	if err != nil {
		return err
	}
	targets, err := planRestore(cfg, m)
	if err != nil {
		return err
	}
	if err := checkTargetEmpty(ctx, cfg, m, targets, force); err != nil {
		return err
	}

	// Extract to temporary names: SQLite files beside their targets (so
	// the final rename is atomic), the rest in a directory of the data dir.
	// Directories this restore creates are removed again if it fails
	// (os.Remove: only while they are empty).
	var temps, made []string
	mkdir := func(dir string) error {
		if _, err := os.Stat(dir); err == nil {
			return nil
		}
		made = append(made, dir)
		return os.MkdirAll(dir, 0o700)
	}
	if err := mkdir(cfg.DataDir); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(cfg.DataDir, ".nodus-restore-*")
	if err != nil {
		return err
	}
	defer func() {
		os.RemoveAll(stage)
		for _, t := range temps {
			os.Remove(t)
		}
		if err != nil {
			for i := len(made) - 1; i >= 0; i-- {
				os.Remove(made[i])
			}
		}
	}()
	dest := func(p string) (string, error) {
		for i := range targets {
			if targets[i].db.File == p && targets[i].db.Engine == "sqlite" {
				dir := filepath.Dir(store.SQLitePath(targets[i].url))
				if err := mkdir(dir); err != nil {
					return "", err
				}
				t, err := os.CreateTemp(dir, ".nodus-restore-*.db")
				if err != nil {
					return "", err
				}
				t.Close()
				temps = append(temps, t.Name())
				targets[i].staged = t.Name()
				return t.Name(), nil
			}
			if targets[i].db.File == p {
				targets[i].staged = filepath.Join(stage, filepath.FromSlash(p))
				return targets[i].staged, nil
			}
		}
		return filepath.Join(stage, filepath.FromSlash(p)), nil
	}
	if err := extractVerified(tr, gz, m, dest); err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}

	// PostgreSQL first: each pg_restore is one transaction, so a failure
	// there still leaves every file as it was.
	for _, t := range targets {
		if t.db.Engine != "postgres" {
			continue
		}
		conn, err := libpqConn(t.url)
		if err != nil {
			return err
		}
		if err := pgRestore(ctx, conn, t.staged, force); err != nil {
			return fmt.Errorf("%s database: %w", t.db.Label, err)
		}
		fmt.Fprintf(stdout, "database %-8s postgres %s: %s\n", t.db.Label, store.Redact(t.url), formatVersions(t.db.Migrations))
	}
	for _, t := range targets {
		if t.db.Engine != "sqlite" {
			continue
		}
		p := store.SQLitePath(t.url)
		// A WAL left by the replaced database would be replayed into the
		// restored one.
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := os.Remove(p + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := os.Rename(t.staged, p); err != nil {
			return err
		}
		syncDir(filepath.Dir(p))
		fmt.Fprintf(stdout, "database %-8s sqlite   %s: %s\n", t.db.Label, p, formatVersions(t.db.Migrations))
	}
	blobs, size, err := installBlobs(filepath.Join(stage, "blobs"), filepath.Join(cfg.DataDir, "blobs"), m)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "blobs    %d files, %d bytes\n", blobs, size)
	return installKeys(cfg, m, stage, stdout)
}

// readManifest reads and checks the archive's first entry.
func readManifest(tr *tar.Reader) (*backupManifest, error) {
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("not a nodus backup: %w", err)
	}
	if h.Name != manifestName || h.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("not a nodus backup: the first entry is %q, not %s", h.Name, manifestName)
	}
	if h.Size > maxManifest {
		return nil, fmt.Errorf("manifest of %d bytes is larger than the %d a backup writes", h.Size, maxManifest)
	}
	b, err := io.ReadAll(io.LimitReader(tr, maxManifest))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m backupManifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.Format != backupFormat {
		return nil, fmt.Errorf("manifest format %d: this nodus reads format %d (restore with the version that wrote it)", m.Format, backupFormat)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if err := checkArchivePath(f.Path); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("manifest lists %s twice", f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 || len(f.SHA256) != 2*sha256.Size {
			return nil, fmt.Errorf("manifest: bad size or checksum for %s", f.Path)
		}
	}
	for _, d := range m.Databases {
		if !seen[d.File] || (d.Engine != "sqlite" && d.Engine != "postgres") ||
			(d.Engine == "sqlite") != strings.HasSuffix(d.File, ".db") {
			return nil, fmt.Errorf("manifest: database %s names no file of its engine", d.Label)
		}
	}
	if m.Keys.Included != seen[archiveKeyPath] {
		return nil, fmt.Errorf("manifest: keys.included does not match the files")
	}
	return &m, nil
}

// checkArchivePath accepts only the paths a backup writes: no absolute
// path, no "..", nothing outside the three trees.
func checkArchivePath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, `\`) || path.Clean(p) != p ||
		slices.Contains(strings.Split(p, "/"), "..") {
		return fmt.Errorf("unsafe path %q in the archive", p)
	}
	switch dir, name, _ := strings.Cut(p, "/"); {
	case p == archiveKeyPath:
	case dir == "databases" && !strings.Contains(name, "/") && (strings.HasSuffix(name, ".db") || strings.HasSuffix(name, ".pgdump")):
	case dir == "blobs" && validBlobPath(p):
	default:
		return fmt.Errorf("unexpected path %q in the archive", p)
	}
	return nil
}

// planRestore maps each archived database to the configured URL of its
// sets, which must group the sets as the archive does and use its engine.
func planRestore(cfg Config, m *backupManifest) ([]restoreTarget, error) {
	urls := cfg.DatabaseURLs()
	known, err := knownVersions()
	if err != nil {
		return nil, err
	}
	var targets []restoreTarget
	used := map[string]string{}
	covered := map[string]bool{}
	for _, d := range m.Databases {
		for set, v := range d.Migrations {
			k, ok := known[d.Engine+"/"+set]
			if !ok {
				return nil, fmt.Errorf("the archive's %s database has migration set %q, which this nodus does not know", d.Label, set)
			}
			if v > k {
				return nil, fmt.Errorf("the archive's %s set is at migration %d, newer than this nodus knows (%d): restore with the nodus that made the backup", set, v, k)
			}
		}
		if len(d.Sets) == 0 {
			return nil, fmt.Errorf("manifest: database %s holds no set", d.Label)
		}
		url := urls[d.Sets[0]]
		for _, s := range d.Sets {
			if _, ok := urls[s]; !ok || covered[s] {
				return nil, fmt.Errorf("manifest: set %q is unknown or in two databases", s)
			}
			covered[s] = true
			if urls[s] != url {
				return nil, fmt.Errorf("the archive keeps sets %s in one database, but the configuration gives %s another one", strings.Join(d.Sets, ","), s)
			}
		}
		if other, ok := used[url]; ok {
			return nil, fmt.Errorf("the archive's %s and %s databases would both go to %s: configure a database URL per set as the backed-up deployment had", other, d.Label, store.Redact(url))
		}
		used[url] = d.Label
		dialect, _ := store.ParseDialect(url)
		if engine := map[store.Dialect]string{store.SQLite: "sqlite", store.Postgres: "postgres"}[dialect]; engine != d.Engine {
			return nil, fmt.Errorf("the archive's %s database is %s, the configured one %s: restore into the same engine", d.Label, d.Engine, engine)
		}
		if d.Engine == "postgres" {
			conn, err := libpqConn(url)
			if err != nil {
				return nil, err
			}
			if conn.schema != d.Schema {
				return nil, fmt.Errorf("the archive's %s database was dumped from schema %q; the target's search_path names %q", d.Label, d.Schema, conn.schema)
			}
		}
		targets = append(targets, restoreTarget{db: d, url: url})
	}
	for _, s := range store.MigrationSets() {
		if !covered[s] {
			return nil, fmt.Errorf("the archive has no %s database", s)
		}
	}
	return targets, nil
}

// knownVersions is the newest migration this binary has for each engine
// and set, keyed "engine/set".
func knownVersions() (map[string]int, error) {
	out := map[string]int{}
	for engine, d := range map[string]store.Dialect{"sqlite": store.SQLite, "postgres": store.Postgres} {
		for _, set := range store.MigrationSets() {
			ms, err := store.EmbeddedMigrations(set, d)
			if err != nil {
				return nil, err
			}
			for _, mg := range ms {
				out[engine+"/"+set] = max(out[engine+"/"+set], mg.Version)
			}
		}
	}
	// River's versions come from its drivers; neither needs a connection
	// to list them.
	for engine, all := range map[string]func() ([]rivermigrate.Migration, error){
		"sqlite": func() ([]rivermigrate.Migration, error) {
			rm, err := rivermigrate.New(riversqlite.New(nil), nil)
			if err != nil {
				return nil, err
			}
			return rm.AllVersions(), nil
		},
		"postgres": func() ([]rivermigrate.Migration, error) {
			rm, err := rivermigrate.New(riverpgxv5.New(nil), nil)
			if err != nil {
				return nil, err
			}
			return rm.AllVersions(), nil
		},
	} {
		ms, err := all()
		if err != nil {
			return nil, err
		}
		for _, mg := range ms {
			out[engine+"/"+jobs.SetName] = max(out[engine+"/"+jobs.SetName], mg.Version)
		}
	}
	return out, nil
}

// checkTargetEmpty refuses, unless force, a target where any database has
// tables, the blob store has a file, or a different key file exists.
func checkTargetEmpty(ctx context.Context, cfg Config, m *backupManifest, targets []restoreTarget, force bool) error {
	if force {
		return nil
	}
	for _, t := range targets {
		has, err := holdsData(ctx, t)
		if err != nil {
			return fmt.Errorf("check the %s database: %w", t.db.Label, err)
		}
		if has {
			return fmt.Errorf("the %s database (%s) already holds data: restore into an empty one, or pass --force to replace it", t.db.Label, store.Redact(t.url))
		}
	}
	blobs := filepath.Join(cfg.DataDir, "blobs")
	found := false
	err := filepath.WalkDir(blobs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.Contains(p, string(filepath.Separator)+".tmp"+string(filepath.Separator)) {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if found {
		return fmt.Errorf("the blob store %s already holds files: restore into an empty data directory, or pass --force", blobs)
	}
	if m.Keys.Included && cfg.MasterKey == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, keyring.KeyFile)); err == nil {
			return fmt.Errorf("%s already exists: move it away, or pass --force to keep it as %s.before-restore and restore the archive's", filepath.Join(cfg.DataDir, keyring.KeyFile), keyring.KeyFile)
		}
	}
	return nil
}

// holdsData reports whether a target database has any table.
func holdsData(ctx context.Context, t restoreTarget) (bool, error) {
	if t.db.Engine == "sqlite" {
		p := store.SQLitePath(t.url)
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if st.Size() == 0 {
			if _, err := os.Stat(p + "-wal"); errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
		}
		db, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
		if err != nil {
			return false, err
		}
		defer db.Close()
		var n int
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table'").Scan(&n)
		return n > 0, err
	}
	conn, err := pgx.Connect(ctx, t.url)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var n int
	q := `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`
	args := []any{}
	if t.db.Schema != "" {
		q += ` AND n.nspname = $1`
		args = append(args, t.db.Schema)
	}
	err = conn.QueryRow(ctx, q, args...).Scan(&n)
	return n > 0, err
}

// extractVerified reads every entry after the manifest and writes it where
// dest says, refusing anything the manifest does not list with the same
// size, a second entry of one path, anything but a regular file, and
// content whose SHA-256 differs. It never writes more than the manifest
// claims, and it reads the gzip stream to its end so its CRC is checked.
func extractVerified(tr *tar.Reader, gz *gzip.Reader, m *backupManifest, dest func(string) (string, error)) error {
	want := map[string]backupFile{}
	for _, f := range m.Files {
		want[f.Path] = f
	}
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("corrupt or truncated archive: %w", err)
		}
		if err := checkArchivePath(h.Name); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("entry %q is not a regular file (type %q)", h.Name, h.Typeflag)
		}
		if seen[h.Name] {
			return fmt.Errorf("entry %q appears twice", h.Name)
		}
		seen[h.Name] = true
		f, ok := want[h.Name]
		if !ok {
			return fmt.Errorf("entry %q is not in the manifest", h.Name)
		}
		if h.Size != f.Size {
			return fmt.Errorf("entry %q has %d bytes, the manifest says %d", h.Name, h.Size, f.Size)
		}
		p, err := dest(h.Name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := writeVerified(p, io.LimitReader(tr, f.Size), f); err != nil {
			return err
		}
	}
	for _, f := range m.Files {
		if !seen[f.Path] {
			return fmt.Errorf("truncated archive: %s is missing", f.Path)
		}
	}
	n, err := io.Copy(io.Discard, io.LimitReader(gz, maxGzipTrailer+1))
	if err != nil {
		return fmt.Errorf("corrupt or truncated archive: %w", err)
	}
	if n > maxGzipTrailer {
		return fmt.Errorf("unexpected data after the archive's end")
	}
	return nil
}

// writeVerified copies r to a new file at p, fsynced, and checks its
// length and SHA-256 against f.
func writeVerified(p string, r io.Reader, f backupFile) error {
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("corrupt or truncated archive: %s: %w", f.Path, err)
	}
	if n != f.Size {
		return fmt.Errorf("truncated archive: %s has %d of %d bytes", f.Path, n, f.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fmt.Errorf("checksum mismatch for %s: the archive is corrupt or was altered", f.Path)
	}
	return nil
}

// installBlobs renames the verified blob files into the blob store; both
// are in the data directory, so each rename is atomic.
func installBlobs(staged, root string, m *backupManifest) (int, int64, error) {
	n, size := 0, int64(0)
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Path, "blobs/") {
			continue
		}
		rel := filepath.FromSlash(strings.TrimPrefix(f.Path, "blobs/"))
		dst := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return n, size, err
		}
		if err := os.Rename(filepath.Join(staged, rel), dst); err != nil {
			return n, size, err
		}
		n++
		size += f.Size
	}
	return n, size, nil
}

// installKeys puts the archive's key text in place, or says which keys
// the restored data needs and whether the configured ones have them.
func installKeys(cfg Config, m *backupManifest, stage string, stdout io.Writer) error {
	path := filepath.Join(cfg.DataDir, keyring.KeyFile)
	if m.Keys.Included {
		if cfg.MasterKey != "" {
			fmt.Fprintf(stdout, "keys     in the archive, not installed: NODUS_MASTER_KEY is set and wins over %s; its ids must include %v\n", path, m.Keys.Required)
			return nil
		}
		if _, err := os.Stat(path); err == nil {
			old := path + ".before-restore"
			if err := os.Rename(path, old); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "keys     kept the previous key file as %s\n", old)
		}
		if err := os.Rename(filepath.Join(stage, filepath.FromSlash(archiveKeyPath)), path); err != nil {
			return err
		}
		syncDir(cfg.DataDir)
		fmt.Fprintf(stdout, "keys     restored %s (ids %v)\n", path, m.Keys.Available)
		return nil
	}
	text, source := cfg.MasterKey, keyring.SourceEnv
	if text == "" {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stdout, "keys     not in the archive and no key file at %s: put the key text with ids %v there before starting nodus, or the vault stays sealed\n", path, m.Keys.Required)
			return nil
		}
		text, source = string(b), path
	}
	ring, err := keyring.Parse(text, source)
	if err != nil {
		return fmt.Errorf("the configured master key: %w", err)
	}
	var missing []int
	for _, id := range m.Keys.Required {
		if !ring.Has(byte(id)) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stdout, "keys     not in the archive; %s lacks key ids %v: the vault stays sealed until they are added\n", source, missing)
		return nil
	}
	fmt.Fprintf(stdout, "keys     not in the archive; %s has the needed ids %v\n", source, m.Keys.Required)
	return nil
}

// pgConn is a PostgreSQL URL split for libpq's tools: pg_dump rejects the
// pgx-only parameters Nodus accepts (search_path, pool settings), and the
// password goes in the environment, not the process list.
type pgConn struct {
	url      string // libpq URL without the password
	password string
	schema   string // first entry of search_path, "" for none
}

// libpqParams are the URL parameters libpq understands.
var libpqParams = []string{"host", "hostaddr", "port", "dbname", "user", "passfile", "channel_binding",
	"connect_timeout", "client_encoding", "options", "application_name", "fallback_application_name",
	"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	"sslmode", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode", "sslrootcert", "sslcrl",
	"sslcrldir", "sslsni", "requirepeer", "ssl_min_protocol_version", "ssl_max_protocol_version",
	"krbsrvname", "gsslib", "gssencmode", "gssdelegation", "service", "target_session_attrs", "load_balance_hosts"}

func libpqConn(raw string) (pgConn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return pgConn{}, fmt.Errorf("invalid PostgreSQL URL %s", store.Redact(raw))
	}
	var c pgConn
	if u.User != nil {
		c.password, _ = u.User.Password()
		u.User = url.User(u.User.Username())
	}
	q := url.Values{}
	for k, v := range u.Query() {
		switch {
		case k == "password":
			c.password = v[0]
		case k == "search_path":
			c.schema = strings.Trim(strings.TrimSpace(strings.Split(v[0], ",")[0]), `"`)
		case slices.Contains(libpqParams, k):
			q[k] = v
		}
	}
	u.RawQuery = q.Encode()
	c.url = u.String()
	return c, nil
}

func (c pgConn) env() []string {
	// The tools get the caller's environment (PGSSLROOTCERT, HOME for
	// .pgpass, …), plus the password when the URL had one.
	env := os.Environ()
	if c.password != "" {
		env = append(env, "PGPASSWORD="+c.password)
	}
	// Row-level security forces every tenant table's policies on the role
	// (internal/store/migrations/*/postgres/*_row_level_security): the
	// all-tenants setting lets the tools see and write every tenant's rows,
	// as the store's all-tenants scope does.
	opts := "-c nodus.all_tenants=on"
	if c.schema != "" {
		opts = "-c search_path=" + c.schema + " " + opts
	}
	return append(env, "PGOPTIONS="+opts)
}

// pgTool finds pg_dump or pg_restore: the newest /usr/lib/postgresql/N/bin
// first (Debian keeps versioned tools there, and pg_dump must be at least
// the server's version), then pg_config --bindir, then PATH.
func pgTool(name string) (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	return findTool(name, dirs, exec.LookPath)
}

// findTool returns the first executable name in dirs, else lookPath's.
func findTool(name string, dirs []string, lookPath func(string) (string, error)) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := lookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found: install the PostgreSQL client tools of the server's major version or newer "+
		"(Debian/Ubuntu: apt-get install postgresql-client; Alpine: apk add postgresql-client), or put %s on PATH", name, name)
}

// pgMajor is N of /usr/lib/postgresql/N/bin, 0 when it is not a number.
func pgMajor(dir string) int {
	var n int
	fmt.Sscanf(filepath.Base(filepath.Dir(dir)), "%d", &n)
	return n
}

func pgDump(ctx context.Context, c pgConn, dst string) error {
	bin, err := pgTool("pg_dump")
	if err != nil {
		return err
	}
	// pg_dump turns row security off and fails on a table whose policies
	// would filter its rows, unless the role bypasses them; Nodus's roles
	// do not. With it on, nodus.all_tenants (see env) admits every row.
	args := []string{"--format=custom", "--file=" + dst, "--enable-row-security"}
	if c.schema != "" {
		args = append(args, "--schema="+c.schema)
	}
	return runPGTool(ctx, c, bin, append(args, "--dbname="+c.url)...)
}

func pgRestore(ctx context.Context, c pgConn, src string, force bool) error {
	bin, err := pgTool("pg_restore")
	if err != nil {
		return err
	}
	// One transaction: a failed restore leaves the database as it was.
	// Ownership and grants are the target's to set (nodus db provision),
	// not the source's: the roles may be named otherwise there.
	args := []string{"--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"}
	if force {
		args = append(args, "--clean", "--if-exists")
	}
	return runPGTool(ctx, c, bin, append(args, "--dbname="+c.url, src)...)
}

func runPGTool(ctx context.Context, c pgConn, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		return fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, msg)
	}
	return nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename in dir durable; a failure only weakens that.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func formatVersions(v map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(v) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v[k]))
	}
	return "migrations " + strings.Join(parts, " ")
}

func sortedKeys[K interface{ ~string | ~int }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
