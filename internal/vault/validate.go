package vault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// The shapes of names below are checked byte by byte: as regular
// expressions their bounded repeats ({0,127}) compiled into about a
// megabyte of program, held for the life of the process.
var (
	lowerDigits  = newSet("a-z", "0-9")
	envChars     = newSet("a-z", "0-9", "-")
	keyFirst     = newSet("A-Z", "a-z", "_")
	keyChars     = newSet("A-Z", "a-z", "0-9", "_")
	segmentChars = newSet("A-Z", "a-z", "0-9", "._-")
	tagChars     = newSet("a-z", "0-9", "_.:/-")
	purposeFirst = newSet("a-z")
	purposeChars = newSet("a-z", "0-9", "_.-")
)

// byteSet is a set of bytes.
type byteSet [256]bool

// newSet is the set of the bytes in parts: a part "x-y" is the range from
// x to y, any other part its own bytes.
func newSet(parts ...string) *byteSet {
	var s byteSet
	for _, p := range parts {
		if len(p) == 3 && p[1] == '-' {
			for c := int(p[0]); c <= int(p[2]); c++ {
				s[c] = true
			}
			continue
		}
		for i := range len(p) {
			s[p[i]] = true
		}
	}
	return &s
}

// shaped reports whether s is a byte of first (when first is not nil),
// then between min and max bytes of rest.
func shaped(s string, first, rest *byteSet, min, max int) bool {
	if first != nil {
		if s == "" || !first[s[0]] {
			return false
		}
		s = s[1:]
	}
	if len(s) < min || len(s) > max {
		return false
	}
	for i := range len(s) {
		if !rest[s[i]] {
			return false
		}
	}
	return true
}

// validLabel reports whether s is a DNS label in lower case: 1 to 63 of
// a-z, 0-9 and -, not starting or ending with -.
func validLabel(s string) bool {
	return shaped(s, lowerDigits, envChars, 0, 62) && s[len(s)-1] != '-'
}

// fieldErrors collects validation messages by field; err returns them as
// one EINVALID error, or nil.
type fieldErrors map[string]string

func (f fieldErrors) add(field, msg string) {
	if _, ok := f[field]; !ok {
		f[field] = msg
	}
}

func (f fieldErrors) err(what string) error {
	if len(f) == 0 {
		return nil
	}
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + what, Fields: f}
}

// ValidEnvironment reports whether slug is an environment slug:
// [a-z0-9-]{1,32}.
func ValidEnvironment(slug string) bool { return shaped(slug, nil, envChars, 1, 32) }

// ValidKey reports whether key is a secret key: [A-Za-z_][A-Za-z0-9_]{0,127}.
func ValidKey(key string) bool { return shaped(key, keyFirst, keyChars, 0, 127) }

// ValidPath reports whether p is a folder path: "/" or "/a/b", at most
// MaxPathDepth folders of [A-Za-z0-9._-], none "." or "..", no empty
// folder and no trailing slash.
func ValidPath(p string) bool {
	if p == "/" {
		return true
	}
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	if len(segs) > MaxPathDepth {
		return false
	}
	for _, s := range segs {
		if s == "." || s == ".." || !shaped(s, nil, segmentChars, 1, 64) {
			return false
		}
	}
	return true
}

// validateLocation checks a location's three parts.
func validateLocation(loc Location, f fieldErrors) {
	if !ValidEnvironment(loc.Environment) {
		f.add("environment", "required: 1 to 32 of a-z, 0-9 and -")
	}
	if !ValidPath(loc.Path) {
		f.add("path", fmt.Sprintf(`"/" or "/a/b": at most %d folders of A-Z, a-z, 0-9, ".", "_" and "-", not "." or ".."`, MaxPathDepth))
	}
	if !ValidKey(loc.Key) {
		f.add("key", "required: a letter or _, then up to 127 letters, digits or _")
	}
}

// checkLocation is validateLocation as an error.
func checkLocation(loc Location) error {
	f := fieldErrors{}
	validateLocation(loc, f)
	return f.err("secret location")
}

// normalizeTags checks tags and returns them without duplicates, in their
// first order; nil becomes empty.
func normalizeTags(tags []string, f fieldErrors) []string {
	out := make([]string, 0, len(tags))
	seen := map[string]bool{}
	for _, t := range tags {
		if !validTag(t) {
			f.add("tags", "each tag: 1 to 64 of a-z, 0-9 and _ . : / -, starting with a letter or digit")
			continue
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) > MaxTags {
		f.add("tags", fmt.Sprintf("at most %d tags", MaxTags))
	}
	return out
}

// normalizeMetadata checks that m is a JSON object of at most
// MaxMetadataBytes and returns it compacted; empty becomes {}.
func normalizeMetadata(m json.RawMessage, f fieldErrors) json.RawMessage {
	if len(bytes.TrimSpace(m)) == 0 {
		return json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m, &obj); err != nil || obj == nil {
		f.add("metadata", "must be a JSON object")
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, m); err != nil {
		f.add("metadata", "must be a JSON object")
		return nil
	}
	if b.Len() > MaxMetadataBytes {
		f.add("metadata", fmt.Sprintf("at most %d bytes as JSON", MaxMetadataBytes))
		return nil
	}
	return json.RawMessage(b.Bytes())
}

// validText checks free text: valid UTF-8, no NUL, at most max bytes.
func validText(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// normalizeHosts checks host patterns and returns them lower-cased,
// without a trailing dot or duplicates.
func normalizeHosts(hosts []string, f fieldErrors) []string {
	out := make([]string, 0, len(hosts))
	seen := map[string]bool{}
	for _, h := range hosts {
		p, ok := normalizeHostPattern(h)
		if !ok {
			f.add("allowed_hosts", `each: a host name, an IP address, or "*.domain" (a wildcard covers the names below domain, not domain itself)`)
			continue
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) > MaxAllowedHosts {
		f.add("allowed_hosts", fmt.Sprintf("at most %d hosts", MaxAllowedHosts))
	}
	return out
}

func normalizeHostPattern(h string) (string, bool) {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil && a.Zone() == "" {
		return a.String(), true
	}
	name, wildcard := strings.CutPrefix(h, "*.")
	if !validHostName(name) || (wildcard && !strings.Contains(name, ".")) {
		return "", false
	}
	return h, true
}

// validHostName checks a DNS name: dot-separated labels of letters,
// digits and inner hyphens, at most 253 bytes, not all-numeric at the end
// (which would be an IP address in disguise).
func validHostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// HostAllowed reports whether host may receive a value whose allowed hosts
// are patterns: an exact match (names case-insensitively, a trailing dot
// ignored, IP addresses in canonical form), or a "*.domain" pattern and a
// host strictly below domain. api.example.com does not allow
// api.example.com.evil.test, evilapi.example.com or example.com.
func HostAllowed(patterns []string, host string) bool {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		h = a.String()
	} else if !validHostName(h) {
		return false
	}
	for _, p := range patterns {
		if domain, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(h, "."+domain) {
				return true
			}
			continue
		}
		if h == p {
			return true
		}
	}
	return false
}

// underPrefix reports whether path is prefix or a folder below it.
func underPrefix(path, prefix string) bool {
	return prefix == "/" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// validTag reports whether t is a tag: [a-z0-9][a-z0-9_.:/-]{0,63}.
func validTag(t string) bool { return shaped(t, lowerDigits, tagChars, 0, 63) }

// validPurpose reports whether p is a handle's purpose: [a-z][a-z0-9_.-]{0,63}.
func validPurpose(p string) bool { return shaped(p, purposeFirst, purposeChars, 0, 63) }
