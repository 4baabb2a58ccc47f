package store

import (
	"math"
	"slices"
	"strconv"
)

// The tracing columns a recorded gateway call writes (usage and cost
// details, tags) are small maps and string lists; encoding/json walks a
// map by reflection, allocating for every key and value. appendFast
// encodes these shapes byte for byte as encoding/json does, and reports
// false for any value it would have to escape or cannot encode, which then
// goes through encoding/json.

// appendFast appends v's JSON to b when v is a shape it knows.
func appendFast(b []byte, v any) ([]byte, bool) {
	switch m := v.(type) {
	case map[string]int64:
		return appendMap(b, m, func(b []byte, n int64) ([]byte, bool) { return strconv.AppendInt(b, n, 10), true })
	case map[string]float64:
		return appendMap(b, m, appendFloat)
	case []string:
		b = append(b, '[')
		for i, s := range m {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendPlainString(b, s); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false
}

// appendMap encodes m with its keys sorted, as encoding/json does.
func appendMap[V any](b []byte, m map[string]V, value func([]byte, V) ([]byte, bool)) ([]byte, bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendPlainString(b, k); !ok {
			return b, false
		}
		b = append(b, ':')
		if b, ok = value(b, m[k]); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendPlainString quotes s if no byte of it needs an escape in
// encoding/json's output (which also escapes <, > and &).
func appendPlainString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// appendFloat formats f as encoding/json does: the shortest form, in
// exponent notation below 1e-6 and from 1e21, with a one-digit negative
// exponent written without its leading zero.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}
