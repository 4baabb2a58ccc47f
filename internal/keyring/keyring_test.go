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
		if !bytes.Equal(rings[i].keys[keyID], rings[0].keys[keyID]) {
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

func b64(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

func TestParseSeveralKeys(t *testing.T) {
	k1, k2, k3 := randomKey(t), randomKey(t), randomKey(t)
	for _, tc := range []struct {
		name    string
		text    string
		ids     []byte
		current byte
	}{
		{"bare key", b64(k1) + "\n", []byte{1}, 1},
		{"one key with an id", "7:" + b64(k1), []byte{7}, 7},
		{"lines, highest current", "1:" + b64(k1) + "\n2:" + b64(k2) + "\n", []byte{1, 2}, 2},
		{"bare key then a new one", b64(k1) + "\n2:" + b64(k2) + "\n", []byte{1, 2}, 2},
		{"marked current", "*1:" + b64(k1) + "\n2:" + b64(k2), []byte{1, 2}, 1},
		{"comments and blank lines", "# keys\n\n1:" + b64(k1) + "  # the first\n*3:" + b64(k3) + "\n2:" + b64(k2) + "\n", []byte{1, 2, 3}, 3},
		{"env style, commas", "1:" + b64(k1) + ",*2:" + b64(k2) + ", 3:" + b64(k3), []byte{1, 2, 3}, 2},
		{"env style, spaces", "1:" + b64(k1) + " 2:" + b64(k2), []byte{1, 2}, 2},
		{"url alphabet", "255:" + base64.RawURLEncoding.EncodeToString(k1), []byte{255}, 255},
	} {
		k, err := Parse(tc.text, "test")
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !bytes.Equal(k.IDs(), tc.ids) || k.CurrentID() != tc.current {
			t.Errorf("%s: ids %v current %d; want %v current %d", tc.name, k.IDs(), k.CurrentID(), tc.ids, tc.current)
		}
	}
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "no key"},
		{"only comments", "# nothing\n\n", "no key"},
		{"id 0", "0:" + b64(k1), "1 to 255"},
		{"id 256", "256:" + b64(k1), "1 to 255"},
		{"id not a number", "x:" + b64(k1), "1 to 255"},
		{"duplicate id", "1:" + b64(k1) + "\n1:" + b64(k2), "twice"},
		{"bare key and id 1", b64(k1) + "\n1:" + b64(k2), "twice"},
		{"two marked", "*1:" + b64(k1) + "\n*2:" + b64(k2), "only one"},
		{"short key", "1:" + b64(k1) + "\n2:" + b64(k2[:16]), "entry 2"},
		{"not base64", "2:not-a-key!", "entry 1"},
	} {
		_, err := Parse(tc.text, "test")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error saying %q", tc.name, err, tc.want)
			continue
		}
		for _, key := range [][]byte{k1, k2} {
			if strings.Contains(err.Error(), b64(key)) || strings.Contains(err.Error(), b64(key[:16])) {
				t.Errorf("%s: the error quotes a key: %v", tc.name, err)
			}
		}
	}
}

// TestRotation: values sealed under an old key still open once a new key
// is current; new values name the new key; a keyring without the old key
// cannot open them, and says which key is missing.
func TestRotation(t *testing.T) {
	k1, k2 := randomKey(t), randomKey(t)
	old, err := New(k1, "test")
	if err != nil {
		t.Fatal(err)
	}
	oldBox, _ := old.Sealer("settings")
	ad := []byte("settings|t1|email.smtp_password")
	sealedOld, _ := oldBox.Seal([]byte("before"), ad)

	// A bare key in NODUS_MASTER_KEY is key 1: what the one-key keyring
	// sealed opens under every later form of the text.
	for _, text := range []string{b64(k1), "1:" + b64(k1), b64(k1) + "\n2:" + b64(k2), "*1:" + b64(k1) + ",2:" + b64(k2)} {
		ring, err := Parse(text, SourceEnv)
		if err != nil {
			t.Fatal(err)
		}
		box, _ := ring.Sealer("settings")
		if got, err := box.Open(sealedOld, ad); err != nil || string(got) != "before" {
			t.Errorf("%d keys, current %d: old value = %q, %v", len(ring.IDs()), ring.CurrentID(), got, err)
		}
	}

	both, _ := Parse(b64(k1)+"\n2:"+b64(k2), "test")
	box, _ := both.Sealer("settings")
	if box.CurrentID() != 2 || !box.Has(1) || !box.Has(2) || box.Has(3) || box.Has(0) {
		t.Fatalf("current %d, has 1 %v 2 %v 3 %v", box.CurrentID(), box.Has(1), box.Has(2), box.Has(3))
	}
	sealedNew, _ := box.Seal([]byte("after"), ad)
	if id, ok := KeyID(sealedNew); !ok || id != 2 {
		t.Fatalf("new value sealed under key %d, want 2", id)
	}
	if id, ok := KeyID(sealedOld); !ok || id != 1 {
		t.Fatalf("old value under key %d, want 1", id)
	}
	if _, ok := KeyID(sealedOld[:20]); ok {
		t.Error("KeyID of a truncated value")
	}

	// Only the new key: the old value does not open, and the error names
	// the missing key id, never the plaintext.
	newOnly, _ := Parse("2:"+b64(k2), "test")
	nbox, _ := newOnly.Sealer("settings")
	if got, err := nbox.Open(sealedNew, ad); err != nil || string(got) != "after" {
		t.Errorf("new value with the new key only: %q, %v", got, err)
	}
	got, err := nbox.Open(sealedOld, ad)
	if !errors.Is(err, ErrOpen) || got != nil || !strings.Contains(err.Error(), "id 1 is not loaded") {
		t.Errorf("old value without the old key: %q, %v", got, err)
	}

	// The key id byte is authenticated: relabelling a value as the other
	// key's fails even though both keys are loaded.
	relabelled := bytes.Clone(sealedOld)
	relabelled[0] = 2
	if got, err := box.Open(relabelled, ad); !errors.Is(err, ErrOpen) || got != nil {
		t.Errorf("relabelled value: %q, %v", got, err)
	}

	// Keys under another id are other keys: the same bytes with id 2 do
	// not open a value sealed as id 1.
	swapped, _ := Parse("2:"+b64(k1), "test")
	sbox, _ := swapped.Sealer("settings")
	if _, err := sbox.Open(sealedOld, ad); !errors.Is(err, ErrOpen) {
		t.Errorf("value under id 1 opened by a keyring that only has id 2: %v", err)
	}

	if _, err := NewKeys(map[byte][]byte{1: k1}, 2, "test"); err == nil {
		t.Error("NewKeys accepted a current id that is not among the keys")
	}
	if _, err := NewKeys(map[byte][]byte{0: k1}, 0, "test"); err == nil {
		t.Error("NewKeys accepted key id 0")
	}
}

func TestLoadSeveralKeysFromEnvAndFile(t *testing.T) {
	k1, k2 := randomKey(t), randomKey(t)
	env := "*1:" + b64(k1) + "," + "2:" + b64(k2)
	k, err := Load(env, t.TempDir())
	if err != nil || k.CurrentID() != 1 || len(k.IDs()) != 2 {
		t.Fatalf("Load(env) = %v, %v", k, err)
	}
	if _, err := Load("1:"+b64(k1)+",1:"+b64(k2), t.TempDir()); err == nil || !strings.Contains(err.Error(), "NODUS_MASTER_KEY") {
		t.Errorf("duplicate ids in the env: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	if err := os.WriteFile(path, []byte("# two keys\n1:"+b64(k1)+"\n2:"+b64(k2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err = Load("", dir)
	if err != nil || k.CurrentID() != 2 || k.Created() || k.Source() != path {
		t.Fatalf("Load(file) = %v, %v", k, err)
	}
}

// TestAddKeyToFile walks the rotation procedure on a key file: a new key
// that only opens, then made current; old values open throughout.
func TestAddKeyToFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	first, err := Load("", dir)
	if err != nil {
		t.Fatal(err)
	}
	box1, _ := first.Sealer("vault")
	sealed1, _ := box1.Seal([]byte("one"), nil)

	id, err := AddKeyToFile(path, false)
	if err != nil || id != 2 {
		t.Fatalf("AddKeyToFile = %d, %v", id, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o after AddKeyToFile", st.Mode().Perm())
	}
	staged, err := Load("", dir)
	if err != nil || staged.CurrentID() != 1 || !staged.Has(2) {
		t.Fatalf("after adding a key that only opens: %v, current %d", err, staged.CurrentID())
	}
	if err := SetCurrentInFile(path, 2); err != nil {
		t.Fatal(err)
	}
	if err := SetCurrentInFile(path, 9); err == nil {
		t.Error("SetCurrentInFile accepted a missing id")
	}
	rotated, err := Load("", dir)
	if err != nil || rotated.CurrentID() != 2 {
		t.Fatalf("after making key 2 current: %v, current %d", err, rotated.CurrentID())
	}
	box2, _ := rotated.Sealer("vault")
	if got, err := box2.Open(sealed1, nil); err != nil || string(got) != "one" {
		t.Errorf("old value after the rotation: %q, %v", got, err)
	}
	id, err = AddKeyToFile(path, true)
	if err != nil || id != 3 {
		t.Fatalf("AddKeyToFile(current) = %d, %v", id, err)
	}
	third, _ := Load("", dir)
	if third.CurrentID() != 3 || !bytes.Equal(third.keys[1], first.keys[1]) || !bytes.Equal(third.keys[2], rotated.keys[2]) {
		t.Errorf("after a third key: current %d, old keys kept: %v %v", third.CurrentID(),
			bytes.Equal(third.keys[1], first.keys[1]), bytes.Equal(third.keys[2], rotated.keys[2]))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
	// A file others may read is refused here too.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := AddKeyToFile(path, true); err == nil {
		t.Error("AddKeyToFile rewrote a key file readable by others")
	}
}
