package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// backupWorld is a running Nodus with one of everything a backup must
// carry: a tenant and its org_admin, a knowledge base with an uploaded
// document, a vault secret and a gateway key.
type backupWorld struct {
	in       *instance
	vars     map[string]string
	admin    *client
	tenantID string
	kbID     string
	docID    string
	doc      string
	gwKey    string
	owner    *client
}

const backupOwnerPassword = "the owner's long password"

func newBackupWorld(t *testing.T, vars map[string]string) *backupWorld {
	t.Helper()
	vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
	vars["NODUS_JOB_POLL_INTERVAL"] = "100ms"
	w := &backupWorld{vars: vars, in: startNodus(t, vars)}
	w.admin = signIn(t, w.in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
	var tenant struct{ Tenant struct{ ID string } }
	w.admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Backed Up"}, 201, &tenant)
	w.tenantID = tenant.Tenant.ID
	w.admin.must("POST", "/api/v1/users", map[string]any{"email": "owner@example.test", "username": "owner",
		"role": "org_admin", "tenant_id": w.tenantID, "password": backupOwnerPassword}, 201, nil)
	owner := signIn(t, w.in.base, "owner", backupOwnerPassword)
	w.owner = owner

	var kb struct {
		KnowledgeBase struct{ ID string } `json:"knowledge_base"`
	}
	owner.must("POST", "/api/v1/knowledge-bases", map[string]any{"name": "Handbook"}, 201, &kb)
	w.kbID = kb.KnowledgeBase.ID
	w.doc = "# Restores\n\nThe copper kettle procedure survives every backup.\n"
	status, body := owner.upload("/api/v1/knowledge-bases/"+w.kbID+"/documents", "restores.md", w.doc)
	var d documentAnswer
	if status != 201 || json.Unmarshal(body, &d) != nil {
		t.Fatalf("upload: %d %s", status, body)
	}
	w.docID = d.Document.ID
	for deadline := time.Now().Add(20 * time.Second); d.Document.Status != "completed"; time.Sleep(50 * time.Millisecond) {
		owner.must("GET", "/api/v1/knowledge-bases/"+w.kbID+"/documents/"+w.docID, nil, 200, &d)
		if d.Document.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("document: %+v", d.Document)
		}
	}

	owner.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/db",
		"key": "PASSWORD", "value": "backup-canary-secret"}, 200, nil)
	var key struct{ Key struct{ Key string } }
	owner.must("POST", "/api/v1/gateway/keys", map[string]any{"name": "restored-key"}, 201, &key)
	w.gwKey = key.Key.Key
	(&client{t: t, base: w.in.base, token: w.gwKey}).must("GET", "/v1/models", nil, 200, nil)
	return w
}

// check reads everything newBackupWorld wrote back from the Nodus at base.
func (w *backupWorld) check(t *testing.T, base string) {
	t.Helper()
	owner := signIn(t, base, "owner", backupOwnerPassword)
	if owner.user.TenantID != w.tenantID {
		t.Fatalf("owner's tenant: %q, want %q", owner.user.TenantID, w.tenantID)
	}
	resp, body := call(t, "GET", base+"/api/v1/knowledge-bases/"+w.kbID+"/documents/"+w.docID+"/file", nil, withBearer(owner.token))
	if resp.StatusCode != 200 || string(body) != w.doc {
		t.Fatalf("document download: %d %q, want %q", resp.StatusCode, body, w.doc)
	}
	var d documentAnswer
	owner.must("GET", "/api/v1/knowledge-bases/"+w.kbID+"/documents/"+w.docID, nil, 200, &d)
	if d.Document.Status != "completed" || d.Document.ChunkCount == 0 {
		t.Fatalf("document: %+v", d.Document)
	}
	var secret struct{ Value string }
	owner.must("POST", "/api/v1/vault/secret/reveal", map[string]any{"environment": "prod", "path": "/db", "key": "PASSWORD"}, 200, &secret)
	if secret.Value != "backup-canary-secret" {
		t.Fatalf("revealed %q", secret.Value)
	}
	(&client{t: t, base: base, token: w.gwKey}).must("GET", "/v1/models", nil, 200, nil)
	(&client{t: t, base: base, token: w.gwKey + "x"}).must("GET", "/v1/models", nil, 401, nil)
}

func runCmd(vars map[string]string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"nodus"}, args...), env(vars), strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), err
}

// readEntries returns an archive's entries in order.
func readEntries(t *testing.T, path string) []tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, b})
	}
}

type tarEntry struct {
	h    *tar.Header
	data []byte
}

func writeEntries(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := tw.WriteHeader(e.h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.data)
	}
	tw.Close()
	gz.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func manifestOf(t *testing.T, entries []tarEntry) backupManifest {
	t.Helper()
	var m backupManifest
	if entries[0].h.Name != manifestName || json.Unmarshal(entries[0].data, &m) != nil {
		t.Fatalf("first entry %q is not a manifest", entries[0].h.Name)
	}
	return m
}

// TestBackupRestore backs up a running Nodus, restores the archive into a
// fresh data directory (and a fresh PostgreSQL database) and reads every
// kind of row and the uploaded file back from a Nodus started on it.
func TestBackupRestore(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		src := nodusEnv(t, databaseURL)
		dst := map[string]string{"NODUS_DATA_DIR": t.TempDir()}
		if strings.HasPrefix(databaseURL, "postgres") {
			// A fresh database, with the search_path schema of the source:
			// pg_dump --schema keeps the schema's name.
			target, _ := url.Parse(storetest.PostgresDatabase(t))
			q := target.Query()
			q.Set("search_path", must(url.Parse(databaseURL)).Query().Get("search_path"))
			target.RawQuery = q.Encode()
			dst["DATABASE_URL"] = target.String()
		}
		wantDBs := 5 // a SQLite file per set
		if strings.HasPrefix(databaseURL, "postgres") {
			wantDBs = 1 // every set shares the one PostgreSQL database
		}
		backupRestoreScenario(t, src, dst, wantDBs)
	})
}

// TestBackupRestorePostgresLayout is the production layout: whole
// PostgreSQL databases (no search_path), the vault in a database of its
// own, restored into two fresh ones.
func TestBackupRestorePostgresLayout(t *testing.T) {
	src := map[string]string{"NODUS_DATA_DIR": t.TempDir(), "DATABASE_URL": storetest.PostgresDatabase(t),
		"VAULT_DATABASE_URL": storetest.PostgresDatabase(t)}
	dst := map[string]string{"NODUS_DATA_DIR": t.TempDir(), "DATABASE_URL": storetest.PostgresDatabase(t),
		"VAULT_DATABASE_URL": storetest.PostgresDatabase(t)}
	backupRestoreScenario(t, src, dst, 2)

	// The archive keeps main and vault apart: a target that would put
	// them in one database is refused before anything is written.
	one := map[string]string{"NODUS_DATA_DIR": t.TempDir(), "DATABASE_URL": storetest.PostgresDatabase(t)}
	archive := filepath.Join(t.TempDir(), "layout.tar.gz")
	if out, err := runCmd(src, "backup", "--out", archive); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if out, err := runCmd(one, "restore", "--in", archive); err == nil || !strings.Contains(err.Error(), "would both go to") {
		t.Fatalf("restore into another layout: %v\n%s", err, out)
	}
	if left, _ := os.ReadDir(one["NODUS_DATA_DIR"]); len(left) != 0 {
		t.Errorf("the refused restore left %v", left)
	}
}

// backupRestoreScenario fills a Nodus on src, backs it up while it
// serves, restores into dst and checks everything from a Nodus on dst.
func backupRestoreScenario(t *testing.T, src, dst map[string]string, wantDBs int) {
	w := newBackupWorld(t, src)

	// Writes keep coming while the backup runs, as they would in
	// production: the snapshot must still be consistent.
	stop, writes := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				writes <- n
				return
			default:
			}
			req, _ := http.NewRequest("PUT", w.in.base+"/api/v1/vault/secret", jsonBody(map[string]any{
				"environment": "prod", "path": "/churn", "key": "N", "value": fmt.Sprint(n)}))
			req.Header.Set("Authorization", "Bearer "+w.owner.token)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				if resp.StatusCode == 200 {
					n++
				}
				resp.Body.Close()
			}
		}
	}()
	archive := filepath.Join(t.TempDir(), "nodus.tar.gz")
	out, err := runCmd(src, "backup", "--out", archive, "--include-keys")
	close(stop)
	if n := <-writes; n == 0 {
		t.Error("no write succeeded while the backup ran")
	}
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if st, err := os.Stat(archive); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v %v, want mode 0600", st, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(archive), ".nodus-backup-*")); len(leftovers) > 0 {
		t.Errorf("backup left %v", leftovers)
	}
	entries := readEntries(t, archive)
	m := manifestOf(t, entries)
	if len(m.Databases) != wantDBs || !m.Keys.Included || len(m.Keys.Required) != 1 || m.Keys.Required[0] != 1 ||
		m.Databases[0].Migrations["main"] == 0 || m.Databases[0].Migrations["jobs"] == 0 {
		t.Fatalf("manifest: %+v", m)
	}
	blobs := 0
	for _, e := range entries[1:] {
		if strings.HasPrefix(e.h.Name, "blobs/") {
			blobs++
		}
	}
	if blobs != 1 || len(entries) != len(m.Files)+1 {
		t.Fatalf("archive holds %d blobs and %d entries for %d files", blobs, len(entries), len(m.Files))
	}

	// Without --include-keys the key text stays out, and the manifest
	// names the ids a restore needs.
	noKeys := filepath.Join(t.TempDir(), "nokeys.tar.gz")
	if out, err := runCmd(src, "backup", "--out", noKeys); err != nil || !strings.Contains(out, "restoring needs master key ids [1]") {
		t.Fatalf("backup without keys: %v\n%s", err, out)
	}
	for _, e := range readEntries(t, noKeys) {
		if strings.HasPrefix(e.h.Name, "keys/") {
			t.Fatalf("key text in an archive made without --include-keys: %s", e.h.Name)
		}
	}
	w.in.stop(t)

	out, err = runCmd(dst, "restore", "--in", archive)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	for _, want := range []string{"database main", "blobs    1 files", "keys     restored"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore report lacks %q:\n%s", want, out)
		}
	}
	// The target now holds data: a second restore is refused.
	if out, err := runCmd(dst, "restore", "--in", archive); err == nil || !strings.Contains(err.Error(), "already holds data") {
		t.Fatalf("restore over data: %v\n%s", err, out)
	}

	dst["NODUS_ADMIN_PASSWORD"] = "not used: the restored admin exists"
	restored := startNodus(t, dst)
	w.check(t, restored.base)
	if strings.Contains(restored.logs.String(), "vault sealed") {
		t.Fatalf("the restored vault is sealed:\n%s", restored.logs.String())
	}
	restored.stop(t)

	// --force restores over the data just restored.
	if out, err := runCmd(dst, "restore", "--in", archive, "--force"); err != nil {
		t.Fatalf("restore --force: %v\n%s", err, out)
	}
	restored = startNodus(t, dst)
	w.check(t, restored.base)
}

// flipContent returns raw with one byte flipped, from the middle on, at
// the first place where the flip changes what the archive decompresses to.
// A flip in a compressed stream can decode to the same bytes (a copy's
// distance changed within a run of zeros), and that archive is not damaged.
func flipContent(t *testing.T, raw []byte) []byte {
	t.Helper()
	want := gunzipAll(raw)
	for i := len(raw) / 2; i < len(raw)-8; i++ {
		b := bytes.Clone(raw)
		b[i] ^= 0x40
		if !bytes.Equal(gunzipAll(b), want) {
			return b
		}
	}
	t.Fatal("no flipped byte changes the archive's content")
	return nil
}

// gunzipAll returns what a gzip stream decodes to up to its end or its
// first error, ignoring the checksum.
func gunzipAll(b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	out, _ := io.ReadAll(zr)
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRestoreRefusesBadArchives alters a good archive in each way a
// damaged or hostile one could differ, and checks that restore refuses it
// with a reason and leaves the empty target empty.
func TestRestoreRefusesBadArchives(t *testing.T) {
	w := newBackupWorld(t, nodusEnv(t, storetest.SQLiteURL(t)))
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.gz")
	if out, err := runCmd(w.vars, "backup", "--out", good); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	entries := readEntries(t, good)
	blobAt := -1
	for i, e := range entries {
		if strings.HasPrefix(e.h.Name, "blobs/") {
			blobAt = i
		}
	}
	if blobAt < 0 {
		t.Fatal("no blob in the archive")
	}
	// edit returns the archive's entries with the manifest changed by fn.
	edit := func(fn func(m *backupManifest)) []tarEntry {
		m := manifestOf(t, entries)
		fn(&m)
		b, _ := json.Marshal(m)
		h := *entries[0].h
		h.Size = int64(len(b))
		return append([]tarEntry{{&h, b}}, entries[1:]...)
	}
	with := func(at int, extra ...tarEntry) []tarEntry {
		out := append([]tarEntry{}, entries[:at]...)
		out = append(out, extra...)
		return append(out, entries[at:]...)
	}
	blob := entries[blobAt]
	symlink := *blob.h
	symlink.Typeflag, symlink.Linkname, symlink.Size = tar.TypeSymlink, "/etc/passwd", 0
	bigger := *blob.h
	bigger.Size++

	for _, tc := range []struct {
		name    string
		archive func(path string)
		want    string
	}{
		{"flipped byte", func(p string) {
			os.WriteFile(p, flipContent(t, raw), 0o600)
		}, `corrupt|checksum|truncated|not a nodus backup`},
		{"flipped gzip checksum", func(p string) {
			// The content is intact; only reading the gzip stream to its
			// end (its CRC-32 is in the last 8 bytes) finds the damage.
			b := bytes.Clone(raw)
			b[len(b)-8] ^= 0x40
			os.WriteFile(p, b, 0o600)
		}, `corrupt|checksum`},
		{"truncated", func(p string) { os.WriteFile(p, raw[:len(raw)*2/3], 0o600) }, `corrupt or truncated|truncated archive`},
		{"parent path", func(p string) {
			writeEntries(t, p, with(1, tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: "../escaped", Size: 2, Mode: 0o600}, []byte("hi")}))
		}, `unsafe path "../escaped"`},
		{"absolute path", func(p string) {
			writeEntries(t, p, with(1, tarEntry{&tar.Header{Typeflag: tar.TypeReg, Name: "/tmp/escaped", Size: 2, Mode: 0o600}, []byte("hi")}))
		}, `unsafe path "/tmp/escaped"`},
		{"mismatched checksum", func(p string) {
			writeEntries(t, p, edit(func(m *backupManifest) {
				for i := range m.Files {
					if m.Files[i].Path == blob.h.Name {
						m.Files[i].SHA256 = strings.Repeat("ab", 32)
					}
				}
			}))
		}, `checksum mismatch for blobs/`},
		{"duplicate entry", func(p string) { writeEntries(t, p, with(blobAt, blob)) }, `appears twice`},
		{"symlink", func(p string) { writeEntries(t, p, with(blobAt, tarEntry{&symlink, nil})) }, `not a regular file`},
		{"more bytes than claimed", func(p string) {
			out := with(blobAt)
			out[blobAt] = tarEntry{&bigger, append(bytes.Clone(blob.data), 0)}
			writeEntries(t, p, out)
		}, `the manifest says`},
		{"unlisted entry", func(p string) {
			writeEntries(t, p, edit(func(m *backupManifest) {
				for i := range m.Files {
					if m.Files[i].Path == blob.h.Name {
						m.Files = append(m.Files[:i], m.Files[i+1:]...)
						break
					}
				}
			}))
		}, `not in the manifest`},
		{"newer migrations", func(p string) {
			writeEntries(t, p, edit(func(m *backupManifest) { m.Databases[0].Migrations["main"] = 99999 }))
		}, `newer than this nodus knows`},
		{"no manifest", func(p string) { writeEntries(t, p, entries[1:]) }, `not a nodus backup`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			// A target that does not exist yet must not exist after.
			target := filepath.Join(base, "data")
			p := filepath.Join(base, "bad.tar.gz")
			tc.archive(p)
			out, err := runCmd(map[string]string{"NODUS_DATA_DIR": target}, "restore", "--in", p)
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("restore: %v, want an error matching %q\n%s", err, tc.want, out)
			}
			if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
				left, _ := os.ReadDir(target)
				t.Errorf("the refused restore left the target %v", left)
			}
			if _, err := os.Stat(filepath.Join(base, "escaped")); err == nil {
				t.Error("an entry escaped the target")
			}
		})
	}

	// The good archive restores into the same kind of empty target, so
	// every refusal above came from its alteration.
	target := filepath.Join(t.TempDir(), "data")
	if out, err := runCmd(map[string]string{"NODUS_DATA_DIR": target}, "restore", "--in", good); err != nil {
		t.Fatalf("restore of the unaltered archive: %v\n%s", err, out)
	}
}

func TestFindPGTool(t *testing.T) {
	notOnPath := func(string) (string, error) { return "", exec.ErrNotFound }
	empty := t.TempDir()
	_, err := findTool("pg_dump", []string{empty}, notOnPath)
	if err == nil || !strings.Contains(err.Error(), "pg_dump not found") || !strings.Contains(err.Error(), "postgresql-client") {
		t.Fatalf("missing pg_dump: %v, want an error naming the package to install", err)
	}
	dir := t.TempDir()
	tool := filepath.Join(dir, "pg_dump")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findTool("pg_dump", []string{empty, dir}, notOnPath); err != nil || got != tool {
		t.Fatalf("findTool: %q, %v; want %q", got, err, tool)
	}
	if got, err := findTool("pg_dump", []string{empty}, func(string) (string, error) { return "/on/path/pg_dump", nil }); err != nil || got != "/on/path/pg_dump" {
		t.Fatalf("findTool on PATH: %q, %v", got, err)
	}
}

// TestLibpqConn checks that the URL handed to pg_dump keeps what libpq
// understands, loses what only pgx accepts, and carries no password.
func TestLibpqConn(t *testing.T) {
	for _, tc := range []struct {
		in, url, password, schema string
	}{
		{"postgres://nodus:s3cret@db:5432/nodus?sslmode=require&pool_max_conns=10", "postgres://nodus@db:5432/nodus?sslmode=require", "s3cret", ""},
		{"postgres://nodus@db/nodus?search_path=tenant_x,public&password=p2", "postgres://nodus@db/nodus", "p2", "tenant_x"},
		{"postgresql://db/nodus", "postgresql://db/nodus", "", ""},
	} {
		c, err := libpqConn(tc.in)
		if err != nil || c.url != tc.url || c.password != tc.password || c.schema != tc.schema {
			t.Errorf("libpqConn(%q) = %+v, %v; want url %q password %q schema %q", tc.in, c, err, tc.url, tc.password, tc.schema)
		}
	}
}
