package vector

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

func TestNormalize(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name string
		v    []float32
		ok   bool
	}{
		{"unit", []float32{1, 0}, true},
		{"3-4-5", []float32{3, 4}, true},
		{"negative", []float32{-2, 0, 0}, true},
		{"tiny", []float32{1e-30, 1e-30}, true},
		{"huge", []float32{3e38, 3e38}, true},
		{"zero", []float32{0, 0, 0}, false},
		{"empty", nil, false},
		{"NaN", []float32{1, nan}, false},
		{"+Inf", []float32{inf, 1}, false},
		{"-Inf", []float32{1, -inf}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Normalize(tt.v); got != tt.ok {
				t.Fatalf("Normalize = %v, want %v", got, tt.ok)
			}
			if !tt.ok {
				return
			}
			if n := Dot(tt.v, tt.v); math.Abs(float64(n)-1) > 1e-6 {
				t.Errorf("squared norm after Normalize = %v", n)
			}
		})
	}
	v := []float32{3, 4}
	Normalize(v)
	if v[0] != 0.6 || v[1] != 0.8 {
		t.Errorf("Normalize(3, 4) = %v, want [0.6 0.8]", v)
	}
}

// TestDot compares Dot with a float64 loop at every length around the
// unrolled block, so the tail loop is covered too.
func TestDot(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for n := range 40 {
		a, b := make([]float32, n), make([]float32, n+3) // b may be longer
		for i := range a {
			a[i] = float32(r.NormFloat64())
		}
		for i := range b {
			b[i] = float32(r.NormFloat64())
		}
		var want float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		if got := Dot(a, b); math.Abs(float64(got)-want) > 1e-5 {
			t.Errorf("n %d: Dot = %v, want %v", n, got, want)
		}
	}
	mustPanic(t, "Dot with a shorter b", func() { Dot([]float32{1, 2}, []float32{1}) })
}

func TestEncodeDecode(t *testing.T) {
	v := []float32{0, 1, -1, 0.5, math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Copysign(0, -1))}
	b := Encode(v)
	if want := []byte{0, 0, 0, 0, 0, 0, 0x80, 0x3f}; !bytes.Equal(b[:8], want) {
		t.Errorf("Encode(0, 1) = % x, want % x (little-endian)", b[:8], want)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if math.Float32bits(got[i]) != math.Float32bits(v[i]) {
			t.Errorf("component %d: %v, want %v", i, got[i], v[i])
		}
	}
	if got, err := Decode(nil); err != nil || len(got) != 0 {
		t.Errorf("Decode(nil) = %v, %v", got, err)
	}

	dst := make([]float32, len(v))
	if err := DecodeInto(dst, b); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(10, func() { _ = DecodeInto(dst, b) }); allocs != 0 {
		t.Errorf("DecodeInto allocates %v times", allocs)
	}
}

func TestDecodeRejects(t *testing.T) {
	bits := func(u uint32) []byte { return Encode([]float32{1, math.Float32frombits(u)}) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"odd length", []byte{0, 0, 0x80, 0x3f, 0}},
		{"three bytes", []byte{1, 2, 3}},
		{"NaN", bits(0x7fc00000)},
		{"signalling NaN", bits(0x7f800001)},
		{"+Inf", bits(0x7f800000)},
		{"-Inf", bits(0xff800000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := Decode(tt.b); err == nil {
				t.Errorf("Decode(% x) = %v, want an error", tt.b, v)
			}
			if err := DecodeInto(make([]float32, len(tt.b)/4), tt.b); err == nil {
				t.Errorf("DecodeInto(% x) succeeded", tt.b)
			}
		})
	}
	if err := DecodeInto(make([]float32, 3), Encode([]float32{1, 2})); err == nil {
		t.Error("DecodeInto into a longer dst succeeded")
	}
}

// FuzzDecode: Decode never panics, accepts exactly the whole-float32,
// finite inputs, and what it accepts re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(Encode([]float32{0.6, 0.8}))
	f.Add([]byte{0, 0, 0x80})
	f.Add([]byte{0, 0, 0xc0, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			if len(b)%4 == 0 && allFinite(b) {
				t.Fatalf("Decode(% x) rejected finite input: %v", b, err)
			}
			return
		}
		if !bytes.Equal(Encode(v), b) {
			t.Fatalf("Encode(Decode(% x)) = % x", b, Encode(v))
		}
		if len(b)%4 != 0 || !allFinite(b) {
			t.Fatalf("Decode(% x) accepted bad input", b)
		}
	})
}

// allFinite reports whether every whole float32 in b has an exponent
// other than all ones (which encodes NaN and the infinities).
func allFinite(b []byte) bool {
	for i := 0; i+4 <= len(b); i += 4 {
		u := uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
		if u>>23&0xff == 0xff {
			return false
		}
	}
	return true
}
