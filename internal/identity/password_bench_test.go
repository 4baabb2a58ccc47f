package identity

import "testing"

// The login cost: one Hash (set or change a password, or rehash at login)
// and one Verify (every password login, and VerifyDummy for unknown users)
// at DefaultParams, one at a time. Reproduce with
//
//	go test -run '^$' -bench . -benchtime 20x ./internal/identity/
//
// B/op is dominated by argon2's 19 MiB of memory blocks.

func BenchmarkHash(b *testing.B) {
	h := NewHasher(DefaultParams, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(b.Context(), "pässwörd-日本語-🔑"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := NewHasher(DefaultParams, 1)
	phc, err := h.Hash(b.Context(), "pässwörd-日本語-🔑")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := h.Verify(b.Context(), phc, "pässwörd-日本語-🔑"); !ok || err != nil {
			b.Fatalf("Verify = %v, %v; want true, nil", ok, err)
		}
	}
}
