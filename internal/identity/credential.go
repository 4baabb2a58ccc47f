package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// Principal is who a login name, session or token stands for: the user,
// and whether their tenant is active (always true for super_admins).
type Principal struct {
	User         User
	TenantActive bool
}

// Session is a signed-in browser. The cookie holds a random secret; the
// database holds only its SHA-256 (IDHash), so a copy of the database
// signs no one in.
type Session struct {
	IDHash     string
	UserID     string
	TenantID   string // "" for super_admins
	CSRFToken  string // sent back in X-CSRF-Token on state changes
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute limit; the idle limit is LastSeenAt + idle timeout
	Address    string
	UserAgent  string
}

// Token is a personal API token, shown once at creation. The database
// holds only its SHA-256 and a short prefix to recognise it in lists.
type Token struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	TenantID string `json:"tenant_id,omitempty"`
	Name     string `json:"name"`
	Prefix   string `json:"prefix"`
	Hash     string `json:"-"`
	// Role, when set, caps what the token may do below its owner's role;
	// the owner's current role always caps it too.
	Role       Role       `json:"role,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// TokenPrefix starts every Nodus API token, so secret scanners can find
// leaked ones and a token is never mistaken for a session id.
const TokenPrefix = "nds_"

// NewSecret returns 256 random bits, URL-safe base64, with an optional
// prefix, and the SHA-256 the database stores in its place.
func NewSecret(prefix string) (secret, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is the stored form of a session id or token. Secrets carry
// 256 random bits, so a fast hash is enough: there is nothing to guess.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// LooksLikeToken reports whether s has the shape of a Nodus API token, so
// junk in an Authorization header is refused before any lookup.
func LooksLikeToken(s string) bool {
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}
