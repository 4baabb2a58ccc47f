package identity

import (
	"context"
	"errors"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// testParams keep most tests fast; TestDefaultParams is the one test that
// pays for the real cost.
var testParams = Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func hashOrFatal(t *testing.T, h *Hasher, password string) string {
	t.Helper()
	phc, err := h.Hash(t.Context(), password)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return phc
}

func TestHasherRoundTrip(t *testing.T) {
	long := strings.Repeat("a", 1024)
	longKeys := strings.Repeat("🔑", 256) // 1024 bytes
	tests := []struct {
		name     string
		password string
		attempt  string
		want     bool
	}{
		{"ascii", "correct horse battery staple", "correct horse battery staple", true},
		{"unicode", "pässwörd-日本語-🔑", "pässwörd-日本語-🔑", true},
		{"surrounding spaces kept", "  spaced out  ", "  spaced out  ", true},
		{"1024 bytes", long, long, true},
		{"1024 bytes of emoji", longKeys, longKeys, true},
		{"wrong password", "correct horse battery staple", "Tr0ub4dor&3", false},
		{"case differs", "correct horse battery staple", "Correct horse battery staple", false},
		{"prefix", "correct horse battery staple", "correct horse battery stapl", false},
		{"extra byte", "correct horse battery staple", "correct horse battery staple!", false},
		{"spaces trimmed", "  spaced out  ", "spaced out", false},
		{"empty attempt", "correct horse battery staple", "", false},
		{"unicode differs", "pässwörd-日本語-🔑", "passwort-日本語-🔑", false},
		{"1024 bytes, last differs", long, long[:1023] + "b", false}, // no truncation (bcrypt stops at 72)
		{"emoji, last differs", longKeys, longKeys[:1020] + "🔒", false},
	}
	h := NewHasher(testParams, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phc := hashOrFatal(t, h, tt.password)
			got, err := h.Verify(t.Context(), phc, tt.attempt)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHashFormat(t *testing.T) {
	tests := []struct {
		name       string
		params     Params
		wantPrefix string
	}{
		{"test params", testParams, "$argon2id$v=19$m=1024,t=1,p=1$"},
		{"two threads, long salt and key", Params{Memory: 2048, Time: 3, Threads: 2, SaltLen: 32, KeyLen: 64}, "$argon2id$v=19$m=2048,t=3,p=2$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phc := hashOrFatal(t, NewHasher(tt.params, 1), "correct horse battery staple")
			if !strings.HasPrefix(phc, tt.wantPrefix) {
				t.Fatalf("Hash = %q, want prefix %q", phc, tt.wantPrefix)
			}
			parts := strings.Split(strings.TrimPrefix(phc, tt.wantPrefix), "$")
			if len(parts) != 2 {
				t.Fatalf("Hash = %q, want salt$hash after the prefix", phc)
			}
			for i, want := range []uint32{tt.params.SaltLen, tt.params.KeyLen} {
				if strings.ContainsAny(parts[i], "=") {
					t.Errorf("part %d = %q is padded", i, parts[i])
				}
				raw, err := b64.DecodeString(parts[i])
				if err != nil || uint32(len(raw)) != want {
					t.Errorf("part %d = %q: %d bytes, err %v; want %d bytes", i, parts[i], len(raw), err, want)
				}
			}
		})
	}
}

func TestHashRandomSalt(t *testing.T) {
	h := NewHasher(testParams, 0)
	const password = "correct horse battery staple"
	a, b := hashOrFatal(t, h, password), hashOrFatal(t, h, password)
	if a == b {
		t.Fatalf("two hashes of one password are equal: %q", a)
	}
	if sa, sb := strings.Split(a, "$")[4], strings.Split(b, "$")[4]; sa == sb {
		t.Errorf("two hashes share the salt %q", sa)
	}
	for _, phc := range []string{a, b} {
		if ok, err := h.Verify(t.Context(), phc, password); !ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want true, nil", phc, ok, err)
		}
	}
}

func TestHasherNormalizesNFKC(t *testing.T) {
	tests := []struct {
		name    string
		stored  string
		attempt string
		want    bool
	}{
		{"ligature typed as letters", "\ufb01nancial-secret", "financial-secret", true},
		{"letters typed as ligature", "financial-secret", "\ufb01nancial-secret", true},
		{"composed vs decomposed é", "caf\u00e9-cr\u00e8me-brul\u00e9e", "cafe\u0301-cre\u0300me-brule\u0301e", true},
		{"decomposed vs composed é", "cafe\u0301-cre\u0300me-brule\u0301e", "caf\u00e9-cr\u00e8me-brul\u00e9e", true},
		{"full-width letters", "ｐａｓｓｗｏｒｄ１２３", "password123", true},
		{"superscript two", "squared-x²-secret", "squared-x2-secret", true},
		{"é is not e", "caf\u00e9-cr\u00e8me-brul\u00e9e", "cafe-creme-brulee", false},
		{"case is kept", "financial-secret", "FINANCIAL-SECRET", false},
	}
	h := NewHasher(testParams, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.stored == tt.attempt {
				t.Fatal("stored and attempt must differ as bytes")
			}
			got, err := h.Verify(t.Context(), hashOrFatal(t, h, tt.stored), tt.attempt)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

// phcOf assembles a PHC string from its five fields.
func phcOf(alg, version, params, salt, key string) string {
	return "$" + strings.Join([]string{alg, version, params, salt, key}, "$")
}

// nonCanonical sets a padding bit in the last character of unpadded
// base64, which decodes leniently but is not what any encoder writes.
func nonCanonical(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i^1])
}

func TestVerifyMalformed(t *testing.T) {
	h := NewHasher(testParams, 0)
	const password = "correct horse battery staple"
	parts := strings.Split(hashOrFatal(t, h, password), "$")
	salt, key := parts[4], parts[5]
	const params = "m=1024,t=1,p=1"
	sized := func(n int) string { return b64.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name string
		phc  string
	}{
		{"empty", ""},
		{"plain text", password},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", phcOf("argon2i", "v=19", params, salt, key)},
		{"argon2d", phcOf("argon2d", "v=19", params, salt, key)},
		{"upper case algorithm", phcOf("ARGON2ID", "v=19", params, salt, key)},
		{"version 16", phcOf("argon2id", "v=16", params, salt, key)},
		{"version missing", "$argon2id$" + params + "$" + salt + "$" + key},
		{"no leading $", strings.TrimPrefix(phcOf("argon2id", "v=19", params, salt, key), "$")},
		{"hash missing", "$argon2id$v=19$" + params + "$" + salt},
		{"hash empty", phcOf("argon2id", "v=19", params, salt, "")},
		{"salt empty", phcOf("argon2id", "v=19", params, "", key)},
		{"extra field", phcOf("argon2id", "v=19", params, salt, key) + "$"},
		{"salt bad base64", phcOf("argon2id", "v=19", params, "!!!!not*base64!!!!!!!", key)},
		{"hash bad base64", phcOf("argon2id", "v=19", params, salt, key[:40]+"@@@")},
		{"salt padded", phcOf("argon2id", "v=19", params, salt+"==", key)},
		{"salt non-canonical", phcOf("argon2id", "v=19", params, nonCanonical(salt), key)},
		{"salt 7 bytes", phcOf("argon2id", "v=19", params, sized(7), key)},
		{"salt 65 bytes", phcOf("argon2id", "v=19", params, sized(65), key)},
		{"hash 7 bytes", phcOf("argon2id", "v=19", params, salt, sized(7))},
		{"hash 65 bytes", phcOf("argon2id", "v=19", params, salt, sized(65))},
		{"parameters missing", phcOf("argon2id", "v=19", "", salt, key)},
		{"p missing", phcOf("argon2id", "v=19", "m=1024,t=1", salt, key)},
		{"extra parameter", phcOf("argon2id", "v=19", params+",k=1", salt, key)},
		{"parameters reordered", phcOf("argon2id", "v=19", "t=1,m=1024,p=1", salt, key)},
		{"space in parameters", phcOf("argon2id", "v=19", "m=1024, t=1,p=1", salt, key)},
		{"sign", phcOf("argon2id", "v=19", "m=+1024,t=1,p=1", salt, key)},
		{"leading zero", phcOf("argon2id", "v=19", "m=01024,t=1,p=1", salt, key)},
		{"hex", phcOf("argon2id", "v=19", "m=0x400,t=1,p=1", salt, key)},
		{"empty value", phcOf("argon2id", "v=19", "m=,t=1,p=1", salt, key)},
		{"m over 1 GiB", phcOf("argon2id", "v=19", "m=1048577,t=1,p=1", salt, key)},
		{"m max uint32", phcOf("argon2id", "v=19", "m=4294967295,t=1,p=1", salt, key)},
		{"m wraps uint32 to 1024", phcOf("argon2id", "v=19", "m=4294968320,t=1,p=1", salt, key)},
		{"m 20 digits", phcOf("argon2id", "v=19", "m=99999999999999999999,t=1,p=1", salt, key)},
		{"m below 8p", phcOf("argon2id", "v=19", "m=15,t=1,p=2", salt, key)},
		{"t 0", phcOf("argon2id", "v=19", "m=1024,t=0,p=1", salt, key)},
		{"t 11", phcOf("argon2id", "v=19", "m=1024,t=11,p=1", salt, key)},
		{"t huge", phcOf("argon2id", "v=19", "m=1024,t=4294967295,p=1", salt, key)},
		{"p 0", phcOf("argon2id", "v=19", "m=1024,t=1,p=0", salt, key)},
		{"p 17", phcOf("argon2id", "v=19", "m=1024,t=1,p=17", salt, key)},
		{"p wraps uint8 to 1", phcOf("argon2id", "v=19", "m=1024,t=1,p=257", salt, key)},
	}
	var hashed atomic.Int64
	h.observe = func(delta int) {
		if delta > 0 {
			hashed.Add(1)
		}
	}
	// The harness itself must build a string Verify accepts.
	if ok, err := h.Verify(t.Context(), phcOf("argon2id", "v=19", params, salt, key), password); !ok || err != nil {
		t.Fatalf("Verify(reassembled) = %v, %v; want true, nil", ok, err)
	}
	hashed.Store(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(t.Context(), tt.phc, password)
			if err == nil || ok {
				t.Fatalf("Verify = %v, %v; want false and an error", ok, err)
			}
			if code := nodus.ErrorCode(err); code != nodus.EINTERNAL {
				t.Errorf("code = %q, want %q (err %v)", code, nodus.EINTERNAL, err)
			}
			if tt.phc != "" && strings.Contains(err.Error(), tt.phc) {
				t.Errorf("error %q quotes the stored hash", err)
			}
			if !h.NeedsRehash(tt.phc) {
				t.Error("NeedsRehash = false for a malformed hash")
			}
		})
	}
	if n := hashed.Load(); n != 0 {
		t.Errorf("malformed hashes ran argon2 %d times, want 0: parameters must be rejected before hashing", n)
	}
}

// TestParsePHCBounds checks the accepted side of every bound, which
// TestVerifyMalformed cannot (hashing at m=1 GiB would be slow).
func TestParsePHCBounds(t *testing.T) {
	sized := func(n int) string { return b64.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name   string
		params string
		salt   int
		key    int
		want   Params
	}{
		{"smallest", "m=8,t=1,p=1", 8, 8, Params{Memory: 8, Time: 1, Threads: 1, SaltLen: 8, KeyLen: 8}},
		{"largest", "m=1048576,t=10,p=16", 64, 64, Params{Memory: 1 << 20, Time: 10, Threads: 16, SaltLen: 64, KeyLen: 64}},
		{"default", "m=19456,t=2,p=1", 16, 32, DefaultParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, salt, key, err := parsePHC(phcOf("argon2id", "v=19", tt.params, sized(tt.salt), sized(tt.key)))
			if err != nil {
				t.Fatalf("parsePHC: %v", err)
			}
			if got != tt.want || len(salt) != tt.salt || len(key) != tt.key {
				t.Errorf("parsePHC = %+v, %d-byte salt, %d-byte key; want %+v, %d, %d", got, len(salt), len(key), tt.want, tt.salt, tt.key)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	h := NewHasher(testParams, 0)
	with := func(f func(*Params)) Params {
		p := testParams
		f(&p)
		return p
	}
	tests := []struct {
		name string
		made Params
		want bool
	}{
		{"same parameters", testParams, false},
		{"other memory", with(func(p *Params) { p.Memory = 2048 }), true},
		{"other time", with(func(p *Params) { p.Time = 2 }), true},
		{"other threads", with(func(p *Params) { p.Threads = 2 }), true},
		{"other salt length", with(func(p *Params) { p.SaltLen = 32 }), true},
		{"other key length", with(func(p *Params) { p.KeyLen = 64 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phc := hashOrFatal(t, NewHasher(tt.made, 1), "correct horse battery staple")
			if got := h.NeedsRehash(phc); got != tt.want {
				t.Errorf("NeedsRehash(%q) = %v, want %v", phc, got, tt.want)
			}
			// An old hash must still verify, so login can rehash it.
			if ok, err := h.Verify(t.Context(), phc, "correct horse battery staple"); !ok || err != nil {
				t.Errorf("Verify = %v, %v; want true, nil", ok, err)
			}
		})
	}
}

// heapBytes is the memory held by heap objects, live or not yet swept.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestHasherBoundsConcurrency(t *testing.T) {
	const maxConcurrent, goroutines = 2, 20
	// Larger than testParams so the memory argon2 holds stands out from the
	// rest of the heap: unbounded, 20 hashes would hold 160 MiB.
	p := Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h := NewHasher(p, maxConcurrent)
	var (
		inFlight, peak atomic.Int64
		mu             sync.Mutex
		peakHeap       uint64
	)
	h.observe = func(delta int) {
		n := inFlight.Add(int64(delta))
		if delta > 0 {
			for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
			}
			// Hold the slot a moment so the other goroutines pile up on the bound.
			time.Sleep(5 * time.Millisecond)
			return
		}
		// Just after argon2 returns: this hash's memory and that of every
		// other running hash are still on the heap.
		mu.Lock()
		peakHeap = max(peakHeap, heapBytes())
		mu.Unlock()
	}
	runtime.GC()
	base := heapBytes()

	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			if _, err := h.Hash(t.Context(), "correct horse battery staple"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Hash: %v", err)
	}

	if got := peak.Load(); got != maxConcurrent {
		t.Errorf("peak hashes in flight = %d, want %d", got, maxConcurrent)
	}
	// Each running hash holds p.Memory KiB; allow for garbage from finished
	// hashes awaiting the next GC (GOGC=100 lets the heap reach twice what is
	// live) and the bookkeeping of waiting goroutines.
	limit := uint64(4 * maxConcurrent * p.Memory * 1024)
	if grew := peakHeap - min(base, peakHeap); grew > limit {
		t.Errorf("heap grew by %d MiB while hashing, want at most %d MiB", grew>>20, limit>>20)
	}
	t.Logf("peak in flight %d, heap growth %d MiB", peak.Load(), (peakHeap-min(base, peakHeap))>>20)
}

func TestNewHasherConcurrencyDefault(t *testing.T) {
	for _, n := range []int{0, -1} {
		if got := cap(NewHasher(testParams, n).slots); got != runtime.NumCPU() {
			t.Errorf("NewHasher(_, %d) allows %d hashes at once, want NumCPU = %d", n, got, runtime.NumCPU())
		}
	}
	if got := cap(NewHasher(testParams, 3).slots); got != 3 {
		t.Errorf("NewHasher(_, 3) allows %d hashes at once, want 3", got)
	}
}

// TestHasherGivesUpWaiting fills the only slot, then checks that each call
// waiting for it returns its context's error promptly.
func TestHasherGivesUpWaiting(t *testing.T) {
	h := NewHasher(testParams, 1)
	phc := hashOrFatal(t, h, "correct horse battery staple")

	entered, release := make(chan struct{}), make(chan struct{})
	var holding atomic.Bool
	h.observe = func(delta int) {
		if delta > 0 && holding.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
	}
	held := make(chan error, 1)
	go func() {
		_, err := h.Hash(context.Background(), "holds the only slot")
		held <- err
	}()
	<-entered

	cancelSoon := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		return ctx, cancel
	}
	deadlineSoon := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 20*time.Millisecond)
	}
	cancelled := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Hash", func(ctx context.Context) error {
			_, err := h.Hash(ctx, "correct horse battery staple")
			return err
		}},
		{"Verify", func(ctx context.Context) error {
			_, err := h.Verify(ctx, phc, "correct horse battery staple")
			return err
		}},
		{"VerifyDummy", func(ctx context.Context) error {
			h.VerifyDummy(ctx, "correct horse battery staple")
			return ctx.Err()
		}},
	}
	contexts := []struct {
		name     string
		ctx      func() (context.Context, context.CancelFunc)
		wantCode string
		wantIs   error
	}{
		{"cancelled while waiting", cancelSoon, nodus.EUNAVAILABLE, context.Canceled},
		{"deadline while waiting", deadlineSoon, nodus.ETIMEOUT, context.DeadlineExceeded},
		{"cancelled before", cancelled, nodus.EUNAVAILABLE, context.Canceled},
	}
	for _, c := range calls {
		for _, cc := range contexts {
			t.Run(c.name+"/"+cc.name, func(t *testing.T) {
				ctx, cancel := cc.ctx()
				defer cancel()
				start := time.Now()
				err := c.call(ctx)
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("returned after %v, want promptly", took)
				}
				if !errors.Is(err, cc.wantIs) {
					t.Errorf("err = %v, want %v in its chain", err, cc.wantIs)
				}
				if c.name != "VerifyDummy" && nodus.ErrorCode(err) != cc.wantCode {
					t.Errorf("code = %q, want %q", nodus.ErrorCode(err), cc.wantCode)
				}
			})
		}
	}

	close(release)
	if err := <-held; err != nil {
		t.Errorf("the Hash holding the slot: %v", err)
	}
	// The slot is free again.
	if ok, err := h.Verify(t.Context(), phc, "correct horse battery staple"); !ok || err != nil {
		t.Errorf("Verify after release = %v, %v; want true, nil", ok, err)
	}
	// A done context fails even with a slot free, every time, rather than
	// whenever select happens to pick the free slot.
	ctx, cancel := cancelled()
	defer cancel()
	for range 20 {
		if _, err := h.Hash(ctx, "correct horse battery staple"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Hash with a free slot and a cancelled context: err = %v, want context.Canceled", err)
		}
	}
}

func TestVerifyDummyHashes(t *testing.T) {
	h := NewHasher(testParams, 1)
	var hashed atomic.Int64
	h.observe = func(delta int) {
		if delta > 0 {
			hashed.Add(1)
		}
	}
	h.VerifyDummy(t.Context(), "correct horse battery staple")
	if n := hashed.Load(); n != 1 {
		t.Errorf("VerifyDummy ran argon2 %d times, want 1", n)
	}
	if h.NeedsRehash(h.dummy) {
		t.Error("the dummy hash does not use the Hasher's parameters, so it costs something else")
	}
}

// TestDefaultParams is the one test that pays for the real parameters.
func TestDefaultParams(t *testing.T) {
	if want := (Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}); DefaultParams != want {
		t.Fatalf("DefaultParams = %+v, want SECURITY.md's floor %+v", DefaultParams, want)
	}
	h := NewHasher(DefaultParams, 0)
	const password = "pässwörd-日本語-🔑"
	phc := hashOrFatal(t, h, password)

	t.Run("PHC string", func(t *testing.T) {
		const prefix = "$argon2id$v=19$m=19456,t=2,p=1$"
		if !strings.HasPrefix(phc, prefix) {
			t.Errorf("Hash = %q, want prefix %q", phc, prefix)
		}
		// 16-byte salt and 32-byte key in unpadded base64: 22 and 43 characters.
		if want := len(prefix) + 22 + 1 + 43; len(phc) != want {
			t.Errorf("len(Hash) = %d, want %d", len(phc), want)
		}
		if h.NeedsRehash(phc) {
			t.Error("NeedsRehash = true for a hash the Hasher just made")
		}
		if ok, err := h.Verify(t.Context(), phc, password); !ok || err != nil {
			t.Errorf("Verify = %v, %v; want true, nil", ok, err)
		}
	})

	t.Run("VerifyDummy costs a Verify", func(t *testing.T) {
		// Interleaved, so drift in machine load hits both alike.
		const runs = 5
		var real, dummy []time.Duration
		for range runs {
			start := time.Now()
			if ok, err := h.Verify(t.Context(), phc, "wrong password"); ok || err != nil {
				t.Fatalf("Verify = %v, %v; want false, nil", ok, err)
			}
			real = append(real, time.Since(start))
			start = time.Now()
			h.VerifyDummy(t.Context(), "wrong password")
			dummy = append(dummy, time.Since(start))
		}
		median := func(d []time.Duration) time.Duration {
			slices.Sort(d)
			return d[len(d)/2]
		}
		r, d := median(real), median(dummy)
		if diff := (d - r).Abs(); diff > r/2 {
			t.Errorf("median VerifyDummy %v, median Verify %v: differ by more than 50%%", d, r)
		}
		t.Logf("median Verify %v, VerifyDummy %v", r, d)
	})
}

func TestValidatePassword(t *testing.T) {
	tests := []struct {
		name       string
		password   string
		wantReason string // "" means valid
	}{
		{"ordinary", "correct horse battery staple", ""},
		{"exactly 8 bytes", "12345678", ""},
		{"exactly 1024 bytes", strings.Repeat("x", 1024), ""},
		{"1024 bytes of emoji", strings.Repeat("🔑", 256), ""},
		{"unicode", "pässwörd-日本語-🔑", ""},
		{"inner spaces", "a      b", ""},
		{"3 CJK characters are 9 bytes", "日本語", ""},
		{"empty", "", "must be at least 8 bytes"},
		{"7 bytes", "1234567", "must be at least 8 bytes"},
		{"9 bytes of ligatures normalise to 6", "\ufb01\ufb01\ufb01", "must be at least 8 bytes"},
		{"1025 bytes", strings.Repeat("x", 1025), "must be at most 1024 bytes"},
		{"120 bytes normalise to over 1024", strings.Repeat("\ufdfa", 40), "must be at most 1024 bytes"},
		{"spaces", "          ", "must not be only whitespace"},
		{"tabs and newlines", "\t\t\n\n\r\r  ", "must not be only whitespace"},
		{"ideographic spaces", strings.Repeat("\u3000", 8), "must not be only whitespace"},
		{"invalid UTF-8", "password\xff\xfe", "must be valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePassword(tt.password)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("ValidatePassword = %v, want nil", err)
				}
				return
			}
			var e *nodus.Error
			if !errors.As(err, &e) {
				t.Fatalf("ValidatePassword = %v, want a *nodus.Error", err)
			}
			if e.Code != nodus.EINVALID {
				t.Errorf("code = %q, want %q", e.Code, nodus.EINVALID)
			}
			if got := e.Fields["password"]; got != tt.wantReason {
				t.Errorf(`Fields["password"] = %q, want %q`, got, tt.wantReason)
			}
			if strings.TrimSpace(tt.password) != "" && strings.Contains(err.Error(), tt.password) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestNewHasherRejectsParams(t *testing.T) {
	with := func(f func(*Params)) Params {
		p := testParams
		f(&p)
		return p
	}
	tests := []struct {
		name   string
		params Params
	}{
		{"zero", Params{}},
		{"time 0", with(func(p *Params) { p.Time = 0 })},
		{"time 11", with(func(p *Params) { p.Time = 11 })},
		{"threads 0", with(func(p *Params) { p.Threads = 0 })},
		{"threads 17", with(func(p *Params) { p.Threads = 17 })},
		{"memory below 8p", with(func(p *Params) { p.Memory, p.Threads = 15, 2 })},
		{"memory over 1 GiB", with(func(p *Params) { p.Memory = 1<<20 + 1 })},
		{"salt 7 bytes", with(func(p *Params) { p.SaltLen = 7 })},
		{"key 65 bytes", with(func(p *Params) { p.KeyLen = 65 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.params.Validate() == nil {
				t.Errorf("Validate(%+v) = nil, want an error", tt.params)
			}
			defer func() {
				if recover() == nil {
					t.Errorf("NewHasher(%+v) did not panic", tt.params)
				}
			}()
			NewHasher(tt.params, 1)
		})
	}
	for _, p := range []Params{DefaultParams, testParams} {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", p, err)
		}
	}
}
