package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// KeyPrefix starts every virtual key, so a leaked key is recognisable (and
// secret scanners can be taught it) and junk is refused before any lookup.
const KeyPrefix = "sk-nodus-"

// keyRandomBytes is the entropy of a key: 256 bits, so a fast hash is
// enough to store it; there is nothing to guess.
const keyRandomBytes = 32

// NewKeySecret returns a fresh virtual key and its stored hash.
func NewKeySecret() (secret string, hash []byte) {
	b := make([]byte, keyRandomBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	secret = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashKey(secret)
}

// HashKey is the stored form of a virtual key.
func HashKey(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// LooksLikeKey reports whether s has the shape of a virtual key.
func LooksLikeKey(s string) bool {
	rest, ok := strings.CutPrefix(s, KeyPrefix)
	if !ok || len(rest) != base64.RawURLEncoding.EncodedLen(keyRandomBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

// keyDisplayPrefix is what is shown of a key after creation: the prefix
// and four characters, enough to tell keys apart and nothing to guess with.
func keyDisplayPrefix(secret string) string {
	return secret[:len(KeyPrefix)+4]
}

// sameHash compares two key hashes in constant time.
func sameHash(a, b []byte) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}
