package identity

import (
	"strings"
	"testing"
)

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		secret, hash := NewSecret(TokenPrefix)
		if !strings.HasPrefix(secret, TokenPrefix) || len(secret) != len(TokenPrefix)+43 {
			t.Fatalf("secret %q: want %s and 43 base64 characters (256 bits)", secret, TokenPrefix)
		}
		if hash != HashSecret(secret) || len(hash) != 64 || strings.Contains(hash, secret) {
			t.Fatalf("hash %q of %q", hash, secret)
		}
		if seen[secret] {
			t.Fatal("a secret repeated")
		}
		seen[secret] = true
	}
	for _, s := range []string{"", "nds_", "Bearer nds_x", "nds_" + strings.Repeat("!", 43), strings.Repeat("a", 47), "' OR 1=1 --"} {
		if LooksLikeToken(s) {
			t.Errorf("LooksLikeToken(%q) = true", s)
		}
	}
}
