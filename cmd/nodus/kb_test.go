package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// kbImport runs `nodus kb import` with args and returns its stdout,
// stderr and error.
func kbImport(getenv func(string) string, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"nodus", "kb", "import"}, args...), getenv, strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// TestKBImportCommand runs `nodus kb import` against a running Nodus, on
// both databases, with an org_admin's personal token: a folder (a file in
// a subfolder, a hidden file and a symlink skipped) and a JSON Lines file
// become documents the job queue completes; a second run reports every
// document as a duplicate; an unsupported file fails the run naming it; a
// wrong token and a missing --kb are refused.
func TestKBImportCommand(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		vars["NODUS_JOB_POLL_INTERVAL"] = "100ms"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		var tenant struct{ Tenant struct{ ID string } }
		admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Importers"}, 201, &tenant)
		admin.must("POST", "/api/v1/users", map[string]any{"email": "librarian@example.test", "username": "librarian",
			"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": memberPassword}, 201, nil)
		librarian := signIn(t, in.base, "librarian", memberPassword)
		var kb struct {
			KnowledgeBase struct{ ID string } `json:"knowledge_base"`
		}
		librarian.must("POST", "/api/v1/knowledge-bases", map[string]any{"name": "Library"}, 201, &kb)
		kbID := kb.KnowledgeBase.ID

		dir := t.TempDir()
		write := func(path, content string) {
			t.Helper()
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		folder := filepath.Join(dir, "docs")
		write(filepath.Join(folder, "atlas.md"), "# Atlas\n\nThe atlas maps every river of the northern valley.\n")
		write(filepath.Join(folder, "notes.txt"), "Plain notes about the copper mine.\n")
		write(filepath.Join(folder, "sub", "deep.md"), "# Deep\n\nA file in a subfolder about glaciers.\n")
		write(filepath.Join(folder, ".secret.md"), "# Hidden\n\nThis hidden file must be skipped.\n")
		write(filepath.Join(dir, "outside.md"), "# Outside\n\nReached only through a symlink.\n")
		if err := os.Symlink(filepath.Join(dir, "outside.md"), filepath.Join(folder, "link.md")); err != nil {
			t.Fatal(err)
		}
		records := filepath.Join(dir, "records.jsonl")
		write(records, `{"filename": "first.md", "text": "# First\n\nThe first record is about lighthouses.\n", "metadata": {"src": "jsonl"}}`+"\n\n"+
			`{"filename": "second.txt", "content_base64": "`+base64.StdEncoding.EncodeToString([]byte("The second record is about tides.\n"))+`"}`+"\n")

		stdout, stderr, err := kbImport(env(nil), "--server", in.base, "--token", librarian.token, "--kb", kbID, "--workers", "2",
			folder, records)
		if err != nil || !strings.Contains(stdout, "created 5, duplicates 0, failed 0") {
			t.Fatalf("import: %v\nstdout %s\nstderr %s", err, stdout, stderr)
		}
		if !strings.Contains(stderr, "5/5 docs") {
			t.Errorf("progress: %q", stderr)
		}

		// Every document is there and ends completed.
		var list struct {
			Documents []struct {
				ID               string
				Status           string
				OriginalFilename string `json:"original_filename"`
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			librarian.must("GET", "/api/v1/knowledge-bases/"+kbID+"/documents", nil, 200, &list)
			done := 0
			for _, d := range list.Documents {
				if d.Status == "completed" {
					done++
				}
			}
			if done == len(list.Documents) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not completed: %+v\n%s", list.Documents, in.logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		var names []string
		for _, d := range list.Documents {
			names = append(names, d.OriginalFilename)
		}
		slices.Sort(names)
		if want := []string{"atlas.md", "deep.md", "first.md", "notes.txt", "second.txt"}; !slices.Equal(names, want) {
			t.Errorf("documents %v, want %v", names, want)
		}

		// Again, the token from the environment: all duplicates, success.
		stdout, _, err = kbImport(env(map[string]string{"NODUS_TOKEN": librarian.token}), "--server", in.base, "--kb", kbID,
			folder, records)
		if err != nil || !strings.Contains(stdout, "created 0, duplicates 5, failed 0") {
			t.Errorf("second import: %v\n%s", err, stdout)
		}

		// A file of no supported type fails the run, named in the summary.
		bad := filepath.Join(dir, "bad")
		write(filepath.Join(bad, "image.png"), "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")
		write(filepath.Join(bad, "fine.txt"), "A fine text file about meadows.\n")
		stdout, _, err = kbImport(env(nil), "--server", in.base, "--token", librarian.token, "--kb", kbID, bad)
		if err == nil || exitCode(err) != 1 || !strings.Contains(stdout, "created 1, duplicates 0, failed 1") ||
			!strings.Contains(stdout, "image.png") {
			t.Errorf("unsupported file: %v\n%s", err, stdout)
		}

		// Imports from a URL go through the tenant's egress policy, which
		// refuses loopback; the member is not told the address's range
		// (the audit log has it).
		status, body := librarian.do("POST", "/api/v1/knowledge-bases/"+kbID+"/documents/import-url",
			map[string]any{"url": in.base + "/health"})
		if status != 403 || !strings.Contains(string(body), "egress policy refused") || strings.Contains(string(body), "loopback") {
			t.Errorf("import from loopback: %d %s", status, body)
		}

		// A wrong token: a clear message, exit code 1, nothing sent.
		stdout, _, err = kbImport(env(nil), "--server", in.base, "--token", "nodus_wrong", "--kb", kbID, folder)
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "refused the token") {
			t.Errorf("wrong token: %v\n%s", err, stdout)
		}
		// Usage mistakes: exit code 2.
		for name, args := range map[string][]string{
			"no --kb":     {"--server", in.base, "--token", librarian.token, folder},
			"no token":    {"--server", in.base, "--kb", kbID, folder},
			"no path":     {"--server", in.base, "--token", librarian.token, "--kb", kbID},
			"bad workers": {"--server", in.base, "--token", librarian.token, "--kb", kbID, "--workers", "0", folder},
		} {
			if _, _, err := kbImport(env(nil), args...); err == nil || exitCode(err) != 2 {
				t.Errorf("%s: %v, want a usage error", name, err)
			}
		}
	})
}

func TestKBImportProgressBar(t *testing.T) {
	p := &progress{total: 500, start: time.Now().Add(-5 * time.Second)}
	p.done.Store(120)
	p.sent.Store(3_100_000)
	if got, want := p.bar(), "[=======>                      ] 120/500 docs 3.1 MB 24/s"; got != want {
		t.Errorf("bar %q, want %q", got, want)
	}
	p.done.Store(500)
	if got := p.bar(); !strings.HasPrefix(got, "["+strings.Repeat("=", 30)+"] 500/500") {
		t.Errorf("full bar %q", got)
	}
}
