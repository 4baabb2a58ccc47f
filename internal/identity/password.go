package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Params are argon2id parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are OWASP's argon2id recommendation and SECURITY.md's floor
// (check 6): m=19 MiB, t=2, p=1, a 16-byte salt and a 32-byte key.
// It is a read-only value by convention: copy it, never assign to it.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on parameters, whether given to NewHasher or read from a stored
// hash, so that a stored hash cannot make Verify allocate or spin without
// bound. The lower bounds are argon2's own (RFC 9106 §3.1).
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 10
	maxThreads = 16
	minSaltKey = 8
	maxSaltKey = 64
)

// Password length limits, in bytes after NFKC normalisation.
const (
	minPasswordBytes = 8
	maxPasswordBytes = 1024
)

// Validate reports whether p is within the bounds Verify accepts, so every
// hash a Hasher writes it can also read. It does not enforce SECURITY.md's
// floor, which is DefaultParams; configuration should.
func (p Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("t=%d outside 1..%d", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("p=%d outside 1..%d", p.Threads, maxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("m=%d outside 8*p..%d KiB", p.Memory, maxMemory)
	case p.SaltLen < minSaltKey || p.SaltLen > maxSaltKey:
		return fmt.Errorf("salt length %d outside %d..%d", p.SaltLen, minSaltKey, maxSaltKey)
	case p.KeyLen < minSaltKey || p.KeyLen > maxSaltKey:
		return fmt.Errorf("key length %d outside %d..%d", p.KeyLen, minSaltKey, maxSaltKey)
	}
	return nil
}

// Hasher hashes and verifies passwords with argon2id, bounding how many
// hashes run at once: each holds Memory KiB, so 500 parallel logins must
// queue rather than exhaust memory (SECURITY.md check 6).
type Hasher struct {
	params Params
	slots  chan struct{} // a semaphore: one token per running hash
	dummy  string        // a PHC string of a random password, for VerifyDummy

	// observe, when set, is called with +1 once a slot is taken and -1 just
	// before it is given back, around each argon2 computation. It exists
	// only so tests can watch concurrency; it is nil in production.
	observe func(delta int)
}

// NewHasher returns a Hasher using p that runs at most maxConcurrent hashes
// at once; maxConcurrent <= 0 means runtime.NumCPU(). It hashes once, for
// VerifyDummy. Params outside Validate's bounds are a programming error and
// panic; check configured values with Params.Validate first.
func NewHasher(p Params, maxConcurrent int) *Hasher {
	if err := p.Validate(); err != nil {
		panic("identity: NewHasher: " + err.Error())
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	h := &Hasher{params: p, slots: make(chan struct{}, maxConcurrent)}
	salt := randomBytes(p.SaltLen)
	// Random bytes stand in for the key: verifying against them costs a real
	// argon2id run and never matches, without hashing anything at start-up.
	h.dummy = encodePHC(p, salt, randomBytes(p.KeyLen))
	return h
}

// Hash returns password's PHC string with a fresh random salt:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64. It waits for a slot while
// ctx allows; once hashing has begun it runs to the end. Hash does not apply
// the password policy: call ValidatePassword for new passwords (a rehash at
// login must not fail because the policy has since changed).
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := randomBytes(h.params.SaltLen)
	key, err := h.derive(ctx, password, salt, h.params)
	if err != nil {
		return "", err
	}
	return encodePHC(h.params, salt, key), nil
}

// Verify reports whether password matches phc, comparing in constant time.
// The parameters come from phc itself, within Validate's bounds; a
// malformed phc is an EINTERNAL error, never just false, since it means a
// corrupt or foreign stored hash.
func (h *Hasher) Verify(ctx context.Context, phc, password string) (bool, error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	got, err := h.derive(ctx, password, salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether phc was made with parameters other than h's,
// so login can replace it with a fresh Hash. A malformed phc needs one too.
func (h *Hasher) NeedsRehash(phc string) bool {
	p, _, _, err := parsePHC(phc)
	return err != nil || p != h.params
}

// VerifyDummy does the work of a Verify, queueing included, against a hash
// of a random password made by NewHasher, so an unknown user costs as much
// as a wrong password (SECURITY.md check 7). Stored hashes made with older
// parameters cost what those parameters cost until NeedsRehash upgrades them.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) {
	_, _ = h.Verify(ctx, h.dummy, password)
}

// ValidatePassword checks a new password against the policy: valid UTF-8,
// 8 to 1024 bytes after NFKC normalisation, and not only whitespace. It
// returns an EINVALID *nodus.Error whose Fields["password"] says why; the
// password itself never appears in the error.
func ValidatePassword(password string) error {
	invalid := func(reason string) error {
		return &nodus.Error{Code: nodus.EINVALID, Message: "invalid password", Fields: map[string]string{"password": reason}}
	}
	if !utf8.ValidString(password) {
		return invalid("must be valid UTF-8")
	}
	n := norm.NFKC.String(password)
	switch {
	case len(n) < minPasswordBytes:
		return invalid(fmt.Sprintf("must be at least %d bytes", minPasswordBytes))
	case len(n) > maxPasswordBytes:
		return invalid(fmt.Sprintf("must be at most %d bytes", maxPasswordBytes))
	case strings.TrimSpace(n) == "":
		return invalid("must not be only whitespace")
	}
	return nil
}

// derive runs argon2id over password's NFKC form (NIST SP 800-63B), so the
// same password typed with a ligature, a composed accent or full-width
// letters still matches, holding one slot for the duration.
func (h *Hasher) derive(ctx context.Context, password string, salt []byte, p Params) ([]byte, error) {
	pw := []byte(norm.NFKC.String(password))
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	return argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen), nil
}

// acquire takes a slot, or gives up when ctx is done. A done ctx fails even
// when a slot is free, so the outcome does not depend on select's choice.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return waitError(err)
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return waitError(ctx.Err())
	}
	if h.observe != nil {
		h.observe(+1)
	}
	return nil
}

func (h *Hasher) release() {
	if h.observe != nil {
		h.observe(-1)
	}
	<-h.slots
}

// waitError reports giving up on a slot: ETIMEOUT when ctx's deadline
// passed, EUNAVAILABLE when it was cancelled. The cause stays in the chain
// for errors.Is.
func waitError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return nodus.WrapError(err, nodus.ETIMEOUT, "timed out waiting to check the password")
	}
	return nodus.WrapError(err, nodus.EUNAVAILABLE, "password check abandoned")
}

var b64 = base64.RawStdEncoding.Strict()

func encodePHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parsePHC reads the exact form encodePHC writes. Errors name the part that
// is wrong but never quote phc, which is a secret's hash.
func parsePHC(phc string) (p Params, salt, key []byte, err error) {
	malformed := func(format string, args ...any) error {
		return nodus.WrapError(fmt.Errorf(format, args...), nodus.EINTERNAL, "malformed password hash")
	}
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, malformed("want 5 $-separated fields, got %d", len(parts)-1)
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, malformed("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, malformed("version is not %d", argon2.Version)
	}
	ps := strings.Split(parts[3], ",")
	if len(ps) != 3 {
		return p, nil, nil, malformed("want parameters m,t,p")
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		digits, ok := strings.CutPrefix(ps[i], name)
		if !ok {
			return p, nil, nil, malformed("parameter %d is not %s", i+1, name)
		}
		if vals[i], err = parseDecimal(digits); err != nil {
			return p, nil, nil, malformed("parameter %s: %w", name, err)
		}
	}
	// Bound before narrowing, so m=2^32+1 cannot wrap to a small value.
	if vals[0] > maxMemory || vals[1] > maxTime || vals[2] > maxThreads {
		return p, nil, nil, malformed("parameters out of bounds")
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, malformed("salt: %w", err)
	}
	if key, err = b64.DecodeString(parts[5]); err != nil {
		return p, nil, nil, malformed("hash: %w", err)
	}
	p = Params{
		Memory: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2]),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key)),
	}
	if err := p.Validate(); err != nil {
		return Params{}, nil, nil, malformed("%w", err)
	}
	return p, salt, key, nil
}

// parseDecimal accepts PHC decimals only: digits, no sign, no leading zero,
// at most 10 digits (enough for any uint32 bound above).
func parseDecimal(s string) (uint64, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a PHC decimal")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a PHC decimal")
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// randomBytes returns n bytes from crypto/rand, which since Go 1.24 never
// returns an error (it crashes the program instead).
func randomBytes(n uint32) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
