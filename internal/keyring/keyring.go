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
	"slices"
	"strconv"
	"strings"
)

// KeySize is the length of the master key and of every derived key.
const KeySize = 32

// KeyFile is the name of the key file in the data directory.
const KeyFile = "master.key"

// SourceEnv is what Source reports for a key given in the environment.
const SourceEnv = "env"

// keyID is the id of a key written bare, without "ID:": the only form
// before rotation existed, so every value sealed then carries it.
const keyID byte = 1

// maxKeyFile bounds what is read from a key file: 255 keys of 44 base64
// characters with their ids, markers, separators and some comments.
const maxKeyFile = 64 << 10

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

// Keyring holds the master keys, which one is current, and where they
// came from. The current key seals; every key opens what it sealed.
type Keyring struct {
	keys    map[byte][]byte
	current byte
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

// Parse reads a key text, the content of master.key or of
// NODUS_MASTER_KEY, and returns its keyring. The text is one or more
// entries separated by line breaks, commas or spaces; "#" starts a
// comment that runs to the end of its line. An entry is
//
//	[*]ID:KEY   a key with an id from 1 to 255
//	[*]KEY      a bare key, whose id is 1 (the format of a single key)
//
// where KEY is ParseKey's base64. The entry marked "*" is the current key,
// which seals; without a mark the highest id is current. Ids must be
// unique and at most one entry may be marked. Errors name entries by
// position and never quote a key.
func Parse(text, source string) (*Keyring, error) {
	keys := map[byte][]byte{}
	var current byte
	n := 0
	for line := range strings.Lines(text) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, entry := range strings.FieldsFunc(line, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n'
		}) {
			n++
			marked := strings.HasPrefix(entry, "*")
			entry = strings.TrimPrefix(entry, "*")
			id := keyID
			if idText, key, ok := strings.Cut(entry, ":"); ok {
				v, err := strconv.Atoi(idText)
				if err != nil || v < 1 || v > 255 {
					return nil, fmt.Errorf("key entry %d: the id before ':' must be a number from 1 to 255", n)
				}
				id, entry = byte(v), key
			}
			key, err := ParseKey(entry)
			if err != nil {
				return nil, fmt.Errorf("key entry %d: %w", n, err)
			}
			if _, dup := keys[id]; dup {
				return nil, fmt.Errorf("key entry %d: key id %d is given twice", n, id)
			}
			keys[id] = key
			if marked {
				if current != 0 {
					return nil, fmt.Errorf("key entry %d: only one key may be marked current with '*'", n)
				}
				current = id
			}
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key found: the master key must be %d bytes, base64-encoded (make one with: head -c 32 /dev/urandom | base64)", KeySize)
	}
	return NewKeys(keys, current, source)
}

// New returns a keyring over one master key of KeySize bytes, with id 1.
// source says where the key came from, for the start-up log.
func New(master []byte, source string) (*Keyring, error) {
	return NewKeys(map[byte][]byte{keyID: master}, keyID, source)
}

// NewKeys returns a keyring over several master keys by id (1 to 255).
// current is the id of the key that seals; 0 means the highest id.
func NewKeys(keys map[byte][]byte, current byte, source string) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring: no master key")
	}
	k := &Keyring{keys: make(map[byte][]byte, len(keys)), source: source}
	for id, key := range keys {
		if id == 0 {
			return nil, errors.New("keyring: master key ids run from 1 to 255")
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("keyring: the master key must be %d bytes, not %d", KeySize, len(key))
		}
		k.keys[id] = append([]byte(nil), key...)
		k.current = max(k.current, id)
	}
	if current != 0 {
		if _, ok := keys[current]; !ok {
			return nil, fmt.Errorf("keyring: the current key id %d is not among the keys", current)
		}
		k.current = current
	}
	return k, nil
}

// Load returns the keyring of a deployment: the key text envKey when it is
// not empty, otherwise the keys in dataDir/master.key, which it creates
// with one new key on first start. A key file that others may read, or
// that holds no valid key text, is refused rather than replaced. See Parse
// for the text.
func Load(envKey, dataDir string) (*Keyring, error) {
	if envKey != "" {
		k, err := Parse(envKey, SourceEnv)
		if err != nil {
			return nil, fmt.Errorf("keyring: NODUS_MASTER_KEY: %w", err)
		}
		return k, nil
	}
	path := filepath.Join(dataDir, KeyFile)
	k, created, err := loadOrCreate(path)
	if err != nil {
		return nil, err
	}
	k.created = created
	return k, nil
}

// Source is "env" for keys from NODUS_MASTER_KEY, otherwise the key
// file's path. It never contains a key.
func (k *Keyring) Source() string { return k.source }

// Created reports whether Load generated the key file just now: the
// moment to tell the operator to back it up.
func (k *Keyring) Created() bool { return k.created }

// CurrentID is the id of the key that seals new values.
func (k *Keyring) CurrentID() byte { return k.current }

// IDs lists the ids of every key, in increasing order.
func (k *Keyring) IDs() []byte {
	ids := make([]byte, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Has reports whether the keyring holds the key with this id.
func (k *Keyring) Has(id byte) bool {
	_, ok := k.keys[id]
	return ok
}

// LogValue keeps the keys out of logs.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String keeps the keys out of fmt output.
func (k *Keyring) String() string { return "keyring.Keyring{[redacted]}" }

// GoString keeps the keys out of %#v.
func (k *Keyring) GoString() string { return k.String() }

// Sealer returns the sealer for one purpose ("settings", "vault"). Each
// master key gives the purpose its own AES-256 key, derived with
// HKDF-SHA-256 from the master key and the purpose, so every purpose has
// its own keys and a master key encrypts nothing itself. The sealer seals
// with the current key and opens with whichever key a value names.
func (k *Keyring) Sealer(purpose string) (*Sealer, error) {
	if purpose == "" {
		return nil, errors.New("keyring: a sealer needs a purpose")
	}
	s := &Sealer{current: k.current}
	for id, master := range k.keys {
		sub, err := hkdf.Key(sha256.New, master, nil, "nodus keyring v1 purpose="+purpose, KeySize)
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
		s.aeads[id] = aead
	}
	return s, nil
}

// Sealer encrypts and authenticates values for one purpose.
type Sealer struct {
	aeads   [256]cipher.AEAD // by key id; nil for ids the keyring lacks
	current byte
}

// CurrentID is the id of the key Seal uses.
func (s *Sealer) CurrentID() byte { return s.current }

// Has reports whether the sealer can open values sealed with key id.
func (s *Sealer) Has(id byte) bool { return id != 0 && s.aeads[id] != nil }

// KeyID returns the id of the master key that sealed a value, read from
// its first byte; ok is false for a value too short to be sealed. The id
// is not authenticated until Open succeeds.
func KeyID(sealed []byte) (id byte, ok bool) {
	if len(sealed) < header+tagSize {
		return 0, false
	}
	return sealed[0], true
}

// Seal encrypts plaintext with the current key. ad (additional data) is
// not stored but must be given again to Open: it names what the value is
// and whom it belongs to, e.g. "settings|<tenant>|email.smtp_password".
// Sealing the same plaintext twice gives different bytes.
func (s *Sealer) Seal(plaintext, ad []byte) ([]byte, error) {
	out := make([]byte, header, header+len(plaintext)+tagSize)
	out[0] = s.current
	_, _ = rand.Read(out[1:header]) // crypto/rand.Read never fails
	return s.aeads[s.current].Seal(out, out[1:header], plaintext, additional(out[0], ad)), nil
}

// Open decrypts a value made by Seal, under any key of the keyring, with
// the same additional data. Any failure is ErrOpen, and no plaintext is
// returned with it.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < header+tagSize {
		return nil, fmt.Errorf("%w (too short)", ErrOpen)
	}
	aead := s.aeads[sealed[0]]
	if aead == nil {
		return nil, fmt.Errorf("%w (master key id %d is not loaded)", ErrOpen, sealed[0])
	}
	plain, err := aead.Open(nil, sealed[1:header], sealed[header:], additional(sealed[0], ad))
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
func additional(id byte, ad []byte) []byte {
	return append([]byte{id}, ad...)
}

// LogValue keeps the keys out of logs.
func (s *Sealer) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String keeps the keys out of fmt output.
func (s *Sealer) String() string { return "keyring.Sealer{[redacted]}" }

// GoString keeps the keys out of %#v.
func (s *Sealer) GoString() string { return s.String() }

// AddKeyToFile adds a new random key to the key file at path, with the
// next free id, and returns that id. With current the new key becomes the
// one that seals; without, the key that sealed until now is marked current
// and the new one only opens (the first step of a rotation across several
// replicas, see docs/operations.md). Every existing key is kept; the file
// is replaced whole and atomically, with mode 0600.
func AddKeyToFile(path string, current bool) (byte, error) {
	k, err := readKeyFile(path)
	if err != nil {
		return 0, err
	}
	ids := k.IDs()
	if ids[len(ids)-1] == 255 {
		return 0, fmt.Errorf("keyring: %s already uses key id 255, the last one; remove retired keys and renumber by hand", path)
	}
	id := ids[len(ids)-1] + 1
	key := make([]byte, KeySize)
	_, _ = rand.Read(key)
	k.keys[id] = key
	if current {
		k.current = id
	}
	if err := replaceKeyFile(path, k.format()); err != nil {
		return 0, err
	}
	return id, nil
}

// SetCurrentInFile marks key id current in the key file at path, which
// must hold it, and replaces the file atomically.
func SetCurrentInFile(path string, id byte) error {
	k, err := readKeyFile(path)
	if err != nil {
		return err
	}
	if !k.Has(id) {
		return fmt.Errorf("keyring: %s holds no key with id %d", path, id)
	}
	k.current = id
	return replaceKeyFile(path, k.format())
}

// format writes the keyring as a key file: a bare key when it is the only
// key and has id 1 (the original format), else one "ID:KEY" line per key
// with the current one marked.
func (k *Keyring) format() string {
	if len(k.keys) == 1 && k.keys[keyID] != nil {
		return base64.StdEncoding.EncodeToString(k.keys[keyID]) + "\n"
	}
	var b strings.Builder
	b.WriteString("# Nodus master keys, one per line: ID:KEY (base64 of 32 bytes).\n")
	b.WriteString("# '*' marks the key that seals new values; every key opens what it sealed.\n")
	b.WriteString("# Back this file up apart from the databases. Never delete a key that still seals data.\n")
	for _, id := range k.IDs() {
		if id == k.current {
			b.WriteByte('*')
		}
		fmt.Fprintf(&b, "%d:%s\n", id, base64.StdEncoding.EncodeToString(k.keys[id]))
	}
	return b.String()
}

// loadOrCreate reads the key file, or creates it with a new random key
// when there is none. When another process creates it at the same moment,
// the one that lands first wins and both use it.
func loadOrCreate(path string) (*Keyring, bool, error) {
	k, err := readKeyFile(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key := make([]byte, KeySize)
	_, _ = rand.Read(key)
	err = createKeyFile(path, key)
	if errors.Is(err, fs.ErrExist) {
		k, err = readKeyFile(path)
		return k, false, err
	}
	if err != nil {
		return nil, false, err
	}
	k, err = New(key, path)
	return k, err == nil, err
}

func readKeyFile(path string) (*Keyring, error) {
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
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: read the master key: %w", err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("keyring: %s is larger than %d bytes: it is not a key file", path, maxKeyFile)
	}
	k, err := Parse(string(b), path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %s does not hold a valid master key (%w); restore it from your backup, "+
			"never replace it: what it sealed cannot be opened with another key", path, err)
	}
	return k, nil
}

// createKeyFile writes the key to a new temporary file (O_EXCL, mode
// 0600), syncs it and then links it into place: link fails rather than
// replace an existing file, and the key file appears only whole.
func createKeyFile(path string, key []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: create %s: %w", dir, err)
	}
	tmp, err := writeTemp(dir, base64.StdEncoding.EncodeToString(key)+"\n")
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("keyring: create %s: %w", path, err)
	}
	// Make the new name durable before anything is sealed with the key.
	syncDir(dir)
	return nil
}

// replaceKeyFile replaces the key file with text: a synced temporary file
// renamed over it, so the file is always either the old keys or the new.
func replaceKeyFile(path, text string) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, text)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keyring: replace %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// writeTemp writes text to a new mode-0600 file in dir, synced, and
// returns its name.
func writeTemp(dir, text string) (string, error) {
	tmp, err := os.CreateTemp(dir, "."+KeyFile+".*")
	if err != nil {
		return "", fmt.Errorf("keyring: create the master key file: %w", err)
	}
	_, err = tmp.WriteString(text)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("keyring: write the master key file: %w", err)
	}
	return tmp.Name(), nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
