package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KeySize is the length of the master key and of every derived key.
const KeySize = 32

// KeyFile is the name of the key file in the data directory.
const KeyFile = "master.key"

// SourceEnv is what Source reports for a key given in the environment.
const SourceEnv = "env"

// keyID names the master key in every sealed value. There is one key
// today; rotation will add ids and keep the old keys to open old values.
const keyID byte = 1

// Sealed value layout: key id, nonce, then ciphertext and the GCM tag.
const (
	nonceSize = 12
	tagSize   = 16
	header    = 1 + nonceSize
)

// ErrOpen is returned for every sealed value that does not open: changed
// bytes, other additional data, another key, or a truncated value. It is
// one error on purpose: the reason is not the caller's to act on.
var ErrOpen = errors.New("keyring: the sealed value does not open: it was changed, belongs to another record or was sealed with another master key")

// Keyring holds the master key and where it came from.
type Keyring struct {
	master  []byte
	source  string
	created bool
}

// ParseKey decodes a base64 master key, in the standard or the URL-safe
// alphabet, with or without padding, and checks that it is KeySize bytes.
// Its errors never quote the input.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		b, err := enc.Strict().DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != KeySize {
			return nil, fmt.Errorf("the master key must be %d bytes, base64-encoded; this one is %d bytes (make one with: head -c 32 /dev/urandom | base64)", KeySize, len(b))
		}
		return b, nil
	}
	return nil, fmt.Errorf("the master key must be %d bytes, base64-encoded; this is not base64 (make one with: head -c 32 /dev/urandom | base64)", KeySize)
}

// New returns a keyring over a master key of KeySize bytes. source says
// where the key came from, for the start-up log.
func New(master []byte, source string) (*Keyring, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("keyring: the master key must be %d bytes, not %d", KeySize, len(master))
	}
	return &Keyring{master: append([]byte(nil), master...), source: source}, nil
}

// Load returns the keyring of a deployment: the base64 key envKey when it
// is not empty, otherwise the key in dataDir/master.key, which it creates
// on first start. A key file that others may read, or that holds no valid
// key, is refused rather than replaced.
func Load(envKey, dataDir string) (*Keyring, error) {
	if envKey != "" {
		key, err := ParseKey(envKey)
		if err != nil {
			return nil, fmt.Errorf("keyring: NODUS_MASTER_KEY: %w", err)
		}
		return New(key, SourceEnv)
	}
	path := filepath.Join(dataDir, KeyFile)
	key, created, err := loadOrCreate(path)
	if err != nil {
		return nil, err
	}
	k, err := New(key, path)
	if err != nil {
		return nil, err
	}
	k.created = created
	return k, nil
}

// Source is "env" for a key from NODUS_MASTER_KEY, otherwise the key
// file's path. It never contains the key.
func (k *Keyring) Source() string { return k.source }

// Created reports whether Load generated the key file just now: the
// moment to tell the operator to back it up.
func (k *Keyring) Created() bool { return k.created }

// LogValue keeps the key out of logs.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String keeps the key out of fmt output.
func (k *Keyring) String() string { return "keyring.Keyring{[redacted]}" }

// GoString keeps the key out of %#v.
func (k *Keyring) GoString() string { return k.String() }

// Sealer returns the sealer for one purpose ("settings", "vault"), keyed
// with HKDF-SHA-256 of the master key and the purpose, so every purpose
// has its own key and the master key encrypts nothing itself.
func (k *Keyring) Sealer(purpose string) (*Sealer, error) {
	if purpose == "" {
		return nil, errors.New("keyring: a sealer needs a purpose")
	}
	sub, err := hkdf.Key(sha256.New, k.master, nil, "nodus keyring v1 purpose="+purpose, KeySize)
	if err != nil {
		return nil, fmt.Errorf("keyring: derive the %s key: %w", purpose, err)
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return &Sealer{id: keyID, aead: aead}, nil
}

// Sealer encrypts and authenticates values for one purpose.
type Sealer struct {
	id   byte
	aead cipher.AEAD
}

// Seal encrypts plaintext. ad (additional data) is not stored but must be
// given again to Open: it names what the value is and whom it belongs to,
// e.g. "settings|<tenant>|email.smtp_password". Sealing the same plaintext
// twice gives different bytes.
func (s *Sealer) Seal(plaintext, ad []byte) ([]byte, error) {
	out := make([]byte, header, header+len(plaintext)+tagSize)
	out[0] = s.id
	_, _ = rand.Read(out[1:header]) // crypto/rand.Read never fails
	return s.aead.Seal(out, out[1:header], plaintext, s.additional(out[0], ad)), nil
}

// Open decrypts a value made by Seal with the same additional data. Any
// failure is ErrOpen, and no plaintext is returned with it.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < header+tagSize {
		return nil, fmt.Errorf("%w (too short)", ErrOpen)
	}
	if sealed[0] != s.id {
		return nil, fmt.Errorf("%w (unknown key id %d)", ErrOpen, sealed[0])
	}
	plain, err := s.aead.Open(nil, sealed[1:header], sealed[header:], s.additional(sealed[0], ad))
	if err != nil {
		return nil, ErrOpen
	}
	if plain == nil {
		plain = []byte{}
	}
	return plain, nil
}

// additional binds the key id byte as well as the caller's data, so the
// header cannot be swapped independently of the ciphertext.
func (s *Sealer) additional(id byte, ad []byte) []byte {
	return append([]byte{id}, ad...)
}

// LogValue keeps the key out of logs.
func (s *Sealer) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String keeps the key out of fmt output.
func (s *Sealer) String() string { return "keyring.Sealer{[redacted]}" }

// GoString keeps the key out of %#v.
func (s *Sealer) GoString() string { return s.String() }

// loadOrCreate reads the key file, or creates it with a new random key
// when there is none. When another process creates it at the same moment,
// the one that lands first wins and both use it.
func loadOrCreate(path string) ([]byte, bool, error) {
	key, err := readKeyFile(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key = make([]byte, KeySize)
	_, _ = rand.Read(key)
	err = createKeyFile(path, key)
	if errors.Is(err, fs.ErrExist) {
		key, err = readKeyFile(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return key, true, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("keyring: read the master key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: read the master key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("keyring: %s has mode %04o, so users other than its owner may read the master key; "+
			"refusing to start: run `chmod 600 %s` (and check who copied it)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("keyring: read the master key: %w", err)
	}
	key, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("keyring: %s does not hold a valid master key (%w); restore it from your backup, "+
			"never replace it: what it sealed cannot be opened with another key", path, err)
	}
	return key, nil
}

// createKeyFile writes the key to a new temporary file (O_EXCL, mode
// 0600), syncs it and then links it into place: link fails rather than
// replace an existing file, and the key file appears only whole.
func createKeyFile(path string, key []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+KeyFile+".*")
	if err != nil {
		return fmt.Errorf("keyring: create the master key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keyring: write the master key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("keyring: create %s: %w", path, err)
	}
	// Make the new name durable before anything is sealed with the key.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
