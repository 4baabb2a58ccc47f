package vector

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Normalize scales v in place to unit length, so that the dot product of
// two normalised vectors is their cosine similarity. It reports false for a
// vector that has no direction (all zeros) or holds a NaN or an infinity;
// v's contents are then unspecified and it must not be indexed or searched.
//
// The norm is summed in float64: a float32 sum over 4,096 components loses
// enough precision to leave the result visibly off unit length.
func Normalize(v []float32) bool {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	// !(sum > 0) also catches NaN; a float32 squared cannot overflow a
	// float64, so an infinite sum means an infinite component.
	if !(sum > 0) || math.IsInf(sum, 0) {
		return false
	}
	scale := 1 / math.Sqrt(sum)
	for i, x := range v {
		v[i] = float32(float64(x) * scale)
	}
	return true
}

// Dot returns the dot product of a and b, the similarity every search
// computes millions of times. b must be at least as long as a (it panics
// otherwise); only the first len(a) components of b are used.
//
// The loop is unrolled eight ways into four independent sums: a single sum
// makes every addition wait for the one before it, while four let the CPU
// overlap them (at 384 dimensions, 110 ns against 290 ns for the plain
// loop; eight sums measured slower, 150 ns). Re-slicing b to len(a) up
// front lets the compiler drop the bounds checks inside the loop.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		x := a[i : i+8 : i+8]
		y := b[i : i+8 : i+8]
		s0 += x[0]*y[0] + x[4]*y[4]
		s1 += x[1]*y[1] + x[5]*y[5]
		s2 += x[2]*y[2] + x[6]*y[6]
		s3 += x[3]*y[3] + x[7]*y[7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Encode returns v as little-endian float32s, the form vectors are stored
// in: four bytes a component, no header, so the length gives the dimension.
func Encode(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// Decode is the inverse of Encode. It rejects input whose length is not a
// whole number of float32s and any NaN or infinity, so that a corrupt row
// fails where it is read rather than poisoning every similarity it enters.
func Decode(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("vector: decode: %d bytes is not a whole number of float32s", len(b))
	}
	v := make([]float32, len(b)/4)
	if err := DecodeInto(v, b); err != nil {
		return nil, err
	}
	return v, nil
}

// DecodeInto decodes b into dst, which must have exactly len(b)/4
// components, with the checks of Decode. It lets the caller fill a slab of
// many vectors without an allocation per vector. On error dst's contents
// are unspecified.
func DecodeInto(dst []float32, b []byte) error {
	if len(b)%4 != 0 {
		return fmt.Errorf("vector: decode: %d bytes is not a whole number of float32s", len(b))
	}
	if len(b)/4 != len(dst) {
		return fmt.Errorf("vector: decode: %d bytes into %d components, want %d bytes", len(b), len(dst), 4*len(dst))
	}
	for i := range dst {
		x := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("vector: decode: component %d is %v", i, x)
		}
		dst[i] = x
	}
	return nil
}
