package notify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/notify"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("whsec_test")
	body := []byte(`{"id":"e1","type":"budget.exhausted"}`)
	at := time.Unix(1700000000, 0)
	sig := notify.Sign(secret, at, body)

	// The documented recipe, done by hand, gives the same header.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1700000000." + string(body)))
	if want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil)); sig != want {
		t.Fatalf("Sign = %s, want %s", sig, want)
	}

	ok := func(err error) bool { return err == nil }
	for _, tc := range []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   bool
	}{
		{"valid", secret, sig, body, at.Add(time.Minute), true},
		{"another secret", []byte("whsec_other"), sig, body, at, false},
		{"body changed", secret, sig, append([]byte(nil), append(body, ' ')...), at, false},
		{"too old", secret, sig, body, at.Add(10 * time.Minute), false},
		{"from the future", secret, sig, body, at.Add(-10 * time.Minute), false},
		{"timestamp changed", secret, strings.Replace(sig, "t=1700000000", "t=1700000001", 1), body, at, false},
		{"no signature", secret, "t=1700000000", body, at, false},
		{"empty", secret, "", body, at, false},
		{"a second, valid signature among others", secret, sig + ",v1=00ff", body, at, true},
	} {
		if got := ok(notify.Verify(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute)); got != tc.want {
			t.Errorf("%s: verified %v, want %v", tc.name, got, tc.want)
		}
	}
}
