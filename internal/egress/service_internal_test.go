package egress

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
)

// The tests of the Service itself run over the real store, in package
// egress_test; this file tests helpers that need none.

func TestFitChanges(t *testing.T) {
	long := make([]string, 400)
	for i := range long {
		long[i] = strings.Repeat("a", 200)
	}
	got := fitChanges(map[string]audit.Change{"rules": {Before: []string{}, After: long}, "mode": {Before: "enforce", After: "report"}})
	b, err := audit.MarshalChanges(got)
	if err != nil || len(b) > maxAuditChanges {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	if s, _ := got["rules"].After.(string); !strings.HasPrefix(s, "400 entries, sha256 ") || got["mode"].After != "report" {
		t.Errorf("fitted: %+v", got)
	}
}

// TestReasons: reasons() lists every Reason the package declares, once
// each, and each is a short snake_case word, fit for a metric label and
// the audit log.
func TestReasons(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var declared []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			if id, ok := spec.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				return true
			}
			for _, v := range spec.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Errorf("%s: a Reason that is not a string literal", fset.Position(v.Pos()))
					continue
				}
				s, _ := strconv.Unquote(lit.Value)
				declared = append(declared, s)
			}
			return true
		})
	}
	if len(declared) < 10 {
		t.Fatalf("found only %d Reason constants: is the parse broken?", len(declared))
	}
	var listed []string
	word := regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	for _, r := range reasons() {
		if !word.MatchString(string(r)) {
			t.Errorf("reason %q is not a short snake_case word", r)
		}
		listed = append(listed, string(r))
	}
	slices.Sort(declared)
	slices.Sort(listed)
	if !slices.Equal(declared, listed) {
		t.Errorf("reasons() = %v, the package declares %v", listed, declared)
	}
	if len(slices.Compact(slices.Clone(listed))) != len(listed) {
		t.Errorf("reasons() repeats one: %v", listed)
	}
}
