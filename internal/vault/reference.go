package vault

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
)

// References inside a value, expanded on read when asked (ReadOptions.
// Expand):
//
//	${KEY}                 KEY in the same environment and folder
//	${env:/KEY}            KEY at the root of environment env
//	${env:/a/b/KEY}        KEY in folder /a/b of env: any folder path
//	${env.KEY}             Infisical's form: KEY at the root of env
//	${env.a.b.KEY}         Infisical's form: KEY in folder /a/b of env;
//	                       it cannot name folders whose names hold a dot
//	$${                    a literal "${", not a reference
//
// Every other "${" is an error when expanding, so a typo never passes
// through as text. Expansion stays inside the reader's tenant, checks the
// reader's read permission on every secret it reaches, follows references
// inside referenced values (relative to where each lives) at most
// MaxReferenceDepth deep, and stops at a cycle with an error naming it.

// part is a literal run of a value or a reference in it.
type part struct {
	text string    // literal text
	ref  *Location // a reference, already made absolute
}

// parseReferences splits value into literal text and references, each
// resolved against at (for ${KEY}). Malformed references are EINVALID
// errors that give their offset only: the text around them is part of a
// secret value.
func parseReferences(value string, at Location) ([]part, error) {
	var parts []part
	var lit strings.Builder
	for i := 0; i < len(value); {
		switch {
		case strings.HasPrefix(value[i:], "$${"):
			lit.WriteString("${")
			i += 3
		case strings.HasPrefix(value[i:], "${"):
			end := strings.IndexByte(value[i+2:], '}')
			if end < 0 {
				return nil, nodus.Errorf(nodus.EINVALID, "unterminated reference at byte %d of %s (write $${ for a literal ${)", i, at)
			}
			loc, ok := parseReference(value[i+2:i+2+end], at)
			if !ok {
				return nil, nodus.Errorf(nodus.EINVALID, "invalid reference at byte %d of %s: use ${KEY}, ${env:/path/KEY} or ${env.path.KEY} (write $${ for a literal ${)", i, at)
			}
			if lit.Len() > 0 {
				parts = append(parts, part{text: lit.String()})
				lit.Reset()
			}
			parts = append(parts, part{ref: &loc})
			i += 2 + end + 1
		default:
			lit.WriteByte(value[i])
			i++
		}
	}
	if lit.Len() > 0 {
		parts = append(parts, part{text: lit.String()})
	}
	return parts, nil
}

// parseReference reads the inside of "${…}".
func parseReference(s string, at Location) (Location, bool) {
	var loc Location
	switch {
	case strings.Contains(s, ":"):
		env, rest, _ := strings.Cut(s, ":")
		i := strings.LastIndexByte(rest, '/')
		if !strings.HasPrefix(rest, "/") || i < 0 {
			return loc, false
		}
		loc = Location{Environment: env, Path: rest[:i], Key: rest[i+1:]}
		if loc.Path == "" {
			loc.Path = "/"
		}
	case strings.Contains(s, "."):
		segs := strings.Split(s, ".")
		for _, seg := range segs[1 : len(segs)-1] {
			if seg == "" || strings.Contains(seg, "/") {
				return loc, false
			}
		}
		loc = Location{Environment: segs[0], Path: "/" + strings.Join(segs[1:len(segs)-1], "/"), Key: segs[len(segs)-1]}
	default:
		loc = Location{Environment: at.Environment, Path: at.Path, Key: s}
	}
	return loc, ValidEnvironment(loc.Environment) && ValidPath(loc.Path) && ValidKey(loc.Key)
}

// expandReferences expands the references in value, which lives at root.
// resolve returns the raw value of a referenced secret (checking
// permission and auditing the read); each secret is resolved once per
// expansion.
func expandReferences(root Location, value string, resolve func(Location) (string, error)) (string, error) {
	memo := map[Location]string{}
	var walk func(at Location, value string, chain []Location) (string, error)
	walk = func(at Location, value string, chain []Location) (string, error) {
		parts, err := parseReferences(value, at)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, p := range parts {
			if p.ref == nil {
				b.WriteString(p.text)
				continue
			}
			target := *p.ref
			if i := slices.Index(chain, target); i >= 0 {
				return "", nodus.Errorf(nodus.EINVALID, "reference cycle: %s", chainString(append(chain[i:], target)))
			}
			if len(chain) > MaxReferenceDepth {
				return "", nodus.Errorf(nodus.EINVALID, "references nest more than %d deep: %s", MaxReferenceDepth, chainString(append(chain, target)))
			}
			expanded, ok := memo[target]
			if !ok {
				raw, err := resolve(target)
				if err != nil {
					return "", err
				}
				next := append(slices.Clip(chain), target)
				if expanded, err = walk(target, raw, next); err != nil {
					return "", err
				}
				memo[target] = expanded
			}
			if b.Len()+len(expanded) > MaxExpandedBytes {
				return "", nodus.Errorf(nodus.EINVALID, "%s expands to more than %d bytes", root, MaxExpandedBytes)
			}
			b.WriteString(expanded)
		}
		return b.String(), nil
	}
	return walk(root, value, []Location{root})
}

func chainString(chain []Location) string {
	s := make([]string, len(chain))
	for i, l := range chain {
		s[i] = l.String()
	}
	return strings.Join(s, " → ")
}

// referenceError wraps a failure to resolve a referenced secret, naming it
// (names are not secret) and keeping the code.
func referenceError(target Location, err error) error {
	return &nodus.Error{Code: nodus.ErrorCode(err), Message: fmt.Sprintf("reference to %s: %s", target, nodus.ErrorMessage(err)), Err: err}
}
