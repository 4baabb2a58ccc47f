package metrics

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContentType is the media type of the text exposition format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// appendFloat formats f the way Prometheus clients do, so that values read
// naturally and parse back exactly: +Inf, -Inf and NaN spelled out, integers
// written without an exponent while float64 still represents them exactly,
// and everything else in strconv's shortest 'g' form.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	case f == 0:
		// Also turns -0 into 0; a sign on zero only confuses readers.
		return append(b, '0')
	case f == math.Trunc(f) && math.Abs(f) < 1<<53:
		// 'g' would write 1e+06 for a million requests.
		return strconv.AppendInt(b, int64(f), 10)
	default:
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
}

// formatFloat is appendFloat for places that want a string, such as the
// precomputed le values of histogram buckets.
func formatFloat(f float64) string { return string(appendFloat(nil, f)) }

// appendLabelValue appends v escaped for use inside double quotes: backslash,
// double quote and newline are escaped, and invalid UTF-8 is replaced by
// U+FFFD because the format is defined as UTF-8.
func appendLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			switch c {
			case '\\':
				b = append(b, `\\`...)
			case '"':
				b = append(b, `\"`...)
			case '\n':
				b = append(b, `\n`...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, v[i:i+size]...)
		}
		i += size
	}
	return b
}

// escapeHelp escapes HELP text: only backslash and newline, as the format
// specifies (a double quote in HELP is literal).
func escapeHelp(s string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// appendLabelPairs appends name="value" pairs separated by commas, without
// the surrounding braces, so that a histogram can add le to the same set.
func appendLabelPairs(b []byte, names, values []string) []byte {
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, n...)
		b = append(b, `="`...)
		b = appendLabelValue(b, values[i])
		b = append(b, '"')
	}
	return b
}

// appendSample appends one sample line: name+suffix, the pre-rendered label
// pairs plus an optional le label, and the value. No timestamp is written;
// Prometheus uses the scrape time.
func appendSample(b []byte, name, suffix, labels, le string, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if labels != "" || le != "" {
		b = append(b, '{')
		b = append(b, labels...)
		if le != "" {
			if labels != "" {
				b = append(b, ',')
			}
			b = append(b, `le="`...)
			b = append(b, le...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// appendHeader appends the HELP (when there is help text) and TYPE lines.
func appendHeader(b []byte, name, escapedHelp, typ string) []byte {
	if escapedHelp != "" {
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, escapedHelp...)
		b = append(b, '\n')
	}
	b = append(b, "# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	return append(b, '\n')
}

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
			i > 0 && '0' <= c && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]* and does
// not start with "__", which Prometheus reserves for internal labels. Unlike
// metric names, label names may not contain colons.
func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
			i > 0 && '0' <= c && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}
