package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func randomKey(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, KeySize)
	_, _ = rand.Read(b)
	return b
}

func sealer(t *testing.T, key []byte, purpose string) *Sealer {
	t.Helper()
	k, err := New(key, "test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := k.Sealer(purpose)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealRoundTrip(t *testing.T) {
	s := sealer(t, randomKey(t), "settings")
	ad := []byte("settings|platform|email.smtp_password")
	for _, plain := range [][]byte{[]byte("hunter2"), {}, bytes.Repeat([]byte{0, 0xff}, 5000)} {
		sealed, err := s.Seal(plain, ad)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 1+12+len(plain)+16 || sealed[0] != keyID {
			t.Fatalf("sealed %d bytes of plaintext into %d bytes starting %#x; want key id, nonce, ciphertext, tag",
				len(plain), len(sealed), sealed[0])
		}
		if len(plain) > 4 && bytes.Contains(sealed, plain) {
			t.Fatal("the sealed value contains the plaintext")
		}
		got, err := s.Open(sealed, ad)
		if err != nil || !bytes.Equal(got, plain) || got == nil {
			t.Fatalf("Open = %q, %v; want %q", got, err, plain)
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	s := sealer(t, randomKey(t), "settings")
	a, _ := s.Seal([]byte("same"), []byte("ad"))
	b, _ := s.Seal([]byte("same"), []byte("ad"))
	if bytes.Equal(a, b) {
		t.Fatal("the same plaintext sealed twice gave the same bytes")
	}
	if bytes.Equal(a[1:13], b[1:13]) {
		t.Fatal("two seals used the same nonce")
	}
}

func TestOpenFails(t *testing.T) {
	key := randomKey(t)
	s := sealer(t, key, "settings")
	ad := []byte("settings|t1|email.smtp_password")
	sealed, err := s.Seal([]byte("the password"), ad)
	if err != nil {
		t.Fatal(err)
	}
	fail := func(name string, sealed, ad []byte, s *Sealer) {
		t.Helper()
		got, err := s.Open(sealed, ad)
		if err == nil || !errors.Is(err, ErrOpen) || got != nil {
			t.Errorf("%s: Open = %q, %v; want no plaintext and ErrOpen", name, got, err)
		}
	}
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			flipped := bytes.Clone(sealed)
			flipped[i] ^= bit
			fail(fmt.Sprintf("bit %#x of byte %d flipped", bit, i), flipped, ad, s)
		}
	}
	fail("other additional data", sealed, []byte("settings|t2|email.smtp_password"), s)
	fail("no additional data", sealed, nil, s)
	fail("other master key", sealed, ad, sealer(t, randomKey(t), "settings"))
	fail("other purpose", sealed, ad, sealer(t, key, "vault"))
	for n := range len(sealed) {
		fail(fmt.Sprintf("truncated to %d bytes", n), sealed[:n], ad, s)
	}
	fail("extra byte", append(bytes.Clone(sealed), 0), ad, s)
	fail("nil", nil, ad, s)
}

func TestParseKey(t *testing.T) {
	key := randomKey(t)
	for name, text := range map[string]string{
		"std":                base64.StdEncoding.EncodeToString(key),
		"url":                base64.URLEncoding.EncodeToString(key),
		"raw std":            base64.RawStdEncoding.EncodeToString(key),
		"raw url":            base64.RawURLEncoding.EncodeToString(key),
		"with a line ending": base64.StdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := ParseKey(text)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: ParseKey = %x, %v", name, got, err)
		}
	}
	short := base64.StdEncoding.EncodeToString(key[:16])
	for name, text := range map[string]string{
		"16 bytes":  short,
		"33 bytes":  base64.StdEncoding.EncodeToString(append(bytes.Clone(key), 1)),
		"not b64":   "this is not base64 at all!",
		"empty":     "",
		"hex":       fmt.Sprintf("%x", key),
		"two lines": short + "\n" + short,
	} {
		_, err := ParseKey(text)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if text != "" && strings.Contains(err.Error(), strings.TrimSpace(text)) {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
}

func TestLoadFromEnv(t *testing.T) {
	dir := t.TempDir()
	key := randomKey(t)
	k, err := Load(base64.StdEncoding.EncodeToString(key), dir)
	if err != nil {
		t.Fatal(err)
	}
	if k.Source() != SourceEnv || k.Created() {
		t.Errorf("source %q created %v; want env, not created", k.Source(), k.Created())
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key from the environment wrote a key file: %v", err)
	}
	a, _ := k.Sealer("settings")
	sealed, _ := a.Seal([]byte("x"), nil)
	if _, err := sealer(t, key, "settings").Open(sealed, nil); err != nil {
		t.Errorf("the env key is not the key in use: %v", err)
	}

	wrong := base64.StdEncoding.EncodeToString(key[:31])
	if _, err := Load(wrong, dir); err == nil || !strings.Contains(err.Error(), "NODUS_MASTER_KEY") ||
		!strings.Contains(err.Error(), "32 bytes") || strings.Contains(err.Error(), wrong) {
		t.Errorf("31-byte env key: %v; want an error naming NODUS_MASTER_KEY and the length, without the key", err)
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	path := filepath.Join(dir, KeyFile)
	first, err := Load("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if first.Source() != path || !first.Created() {
		t.Fatalf("source %q created %v; want %s, created", first.Source(), first.Created(), path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 || st.Mode().Perm()&0o600 != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
	content, _ := os.ReadFile(path)

	// A restart reuses the key: what the first sealed, the second opens.
	s1, _ := first.Sealer("settings")
	sealed, _ := s1.Seal([]byte("kept"), []byte("ad"))
	second, err := Load("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if second.Created() {
		t.Error("the second start created the key again")
	}
	s2, _ := second.Sealer("settings")
	if got, err := s2.Open(sealed, []byte("ad")); err != nil || string(got) != "kept" {
		t.Fatalf("after a restart: %q, %v", got, err)
	}
	// The file's text is a valid NODUS_MASTER_KEY, to move to the environment.
	fromEnv, err := Load(string(content), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s3, _ := fromEnv.Sealer("settings")
	if _, err := s3.Open(sealed, []byte("ad")); err != nil {
		t.Errorf("the key file's text as NODUS_MASTER_KEY: %v", err)
	}

	// Readable by others: refused, and left as it is.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", dir); err == nil || !strings.Contains(err.Error(), "0644") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 key file: %v; want a refusal naming the mode and the fix", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, content) {
		t.Error("the 0644 key file was rewritten")
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", dir); err == nil {
		t.Error("a group-readable key file was accepted")
	}

	// Damaged: refused, never replaced.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", dir); err == nil || !strings.Contains(err.Error(), "backup") {
		t.Errorf("damaged key file: %v; want a refusal", err)
	}
	if now, _ := os.ReadFile(path); string(now) != "garbage\n" {
		t.Error("the damaged key file was overwritten")
	}
}

func TestLoadKeyFileRace(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	rings := make([]*Keyring, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { rings[i], errs[i] = Load("", dir) })
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if rings[i].Created() {
			created++
		}
		if !bytes.Equal(rings[i].master, rings[0].master) {
			t.Fatal("processes starting together ended up with different keys")
		}
	}
	if created != 1 {
		t.Errorf("%d loaders report creating the key, want 1", created)
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	key := randomKey(t)
	k, _ := New(key, "test")
	s, _ := k.Sealer("settings")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "keyring", k, "sealer", s)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %v %+v %#v", k, k, k, s, s, s)
	for _, enc := range []string{base64.StdEncoding.EncodeToString(key), fmt.Sprintf("%x", key), fmt.Sprint(key)} {
		if strings.Contains(out, enc) {
			t.Fatalf("the key is printed: %s", out)
		}
	}
	if !strings.Contains(out, "[redacted]") {
		t.Errorf("no redaction marker in %s", out)
	}
	if _, err := New(key[:16], "short"); err == nil {
		t.Error("New accepted a 16-byte key")
	}
	if _, err := k.Sealer(""); err == nil {
		t.Error("a sealer without a purpose")
	}
}
