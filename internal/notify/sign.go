package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a delivery's signature:
//
//	X-Nodus-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
//
// The HMAC is keyed with the webhook's secret over the timestamp, a dot
// and the raw request body ("1700000000.{...}"). A receiver recomputes it
// over the body it received, compares in constant time, and refuses a
// timestamp far from its clock so a captured request cannot be replayed
// later. Covering the timestamp is what makes that check trustworthy.
const SignatureHeader = "X-Nodus-Signature"

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// ErrSignature is any signature that does not verify.
var ErrSignature = errors.New("notify: webhook signature does not verify")

// Verify checks header (a SignatureHeader value) for body with secret, and
// that its timestamp is within tolerance of now. It is what a receiver
// written in Go runs; the doc of SignatureHeader says how in any language.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrSignature
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrSignature
}
