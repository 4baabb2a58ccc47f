package egress

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// lintExempt are the directories, relative to the module root, whose
// non-test files may make their own clients and connections.
var lintExempt = map[string]string{
	// This package is the one place that does.
	"internal/egress": "the egress client factory itself",
	// `go run ./bench` is a load generator: it starts nodus on 127.0.0.1
	// and sends it requests from outside, as a user's client would. It is
	// not part of the nodus binary and sends nothing out of the machine on
	// Nodus's behalf.
	"bench": "a loopback load generator, not product egress",
	// The nodus command's client of a Nodus server the operator names
	// (`nodus kb import --server`): an API client, not product egress.
	"internal/apiclient": "the CLI's client of a Nodus server",
}

// forbiddenCalls, forbiddenLiterals and forbiddenRefs are what only
// internal/egress may use, by import path.
var (
	forbiddenCalls = map[string][]string{
		"net/http":   {"Get", "Post", "Head", "PostForm"},
		"net":        {"Dial", "DialTimeout", "DialTCP", "DialUDP", "DialIP", "DialUnix"},
		"crypto/tls": {"Dial", "DialWithDialer"},
	}
	forbiddenLiterals = map[string][]string{
		"net/http":   {"Client", "Transport"},
		"net":        {"Dialer"},
		"crypto/tls": {"Dialer"},
	}
	forbiddenRefs = map[string][]string{
		"net/http": {"DefaultClient", "DefaultTransport"},
	}
)

// forbiddenUses returns, as "file:line: what", each place in f that makes
// its own HTTP client or transport, uses the default ones, or dials.
func forbiddenUses(fset *token.FileSet, f *ast.File) []string {
	var out []string
	report := func(n ast.Node, what string) {
		out = append(out, fmt.Sprintf("%s: %s", fset.Position(n.Pos()), what))
	}
	local := map[string]string{} // the file's name for each watched import
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if _, watched := forbiddenCalls[p]; !watched {
			continue
		}
		name := path.Base(p)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		switch name {
		case ".":
			report(imp, "dot import of "+p)
		case "_":
		default:
			local[name] = p
		}
	}
	// ref names a selector pkg.Name whose pkg is a watched import.
	ref := func(e ast.Expr) (pkg, name string) {
		s, ok := e.(*ast.SelectorExpr)
		if !ok {
			return "", ""
		}
		id, ok := s.X.(*ast.Ident)
		if !ok {
			return "", ""
		}
		return local[id.Name], s.Sel.Name
	}
	in := func(table map[string][]string, pkg, name string) bool {
		for _, n := range table[pkg] {
			if n == name {
				return true
			}
		}
		return false
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if pkg, name := ref(n.Type); in(forbiddenLiterals, pkg, name) {
				report(n, path.Base(pkg)+"."+name+"{…}")
			}
		case *ast.CallExpr:
			if pkg, name := ref(n.Fun); in(forbiddenCalls, pkg, name) {
				report(n, path.Base(pkg)+"."+name+"(…)")
			}
			if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "new" && len(n.Args) == 1 {
				if pkg, name := ref(n.Args[0]); in(forbiddenLiterals, pkg, name) {
					report(n, "new("+path.Base(pkg)+"."+name+")")
				}
			}
		case *ast.SelectorExpr:
			if pkg, name := ref(n); in(forbiddenRefs, pkg, name) {
				report(n, path.Base(pkg)+"."+name)
			}
		}
		return true
	})
	return out
}

// TestNoOtherEgress parses every non-test Go file of the module outside
// lintExempt and fails on any client, transport or dial of its own:
// everything Nodus sends out goes through this package.
func TestNoOtherEgress(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/nodus-os/nodus") {
		t.Fatalf("no nodus go.mod at %s: %v", root, err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || name == "vendor" || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			if _, ok := lintExempt[rel]; ok {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("parse %s: %v", rel, err)
			return nil
		}
		files++
		for _, use := range forbiddenUses(fset, f) {
			t.Errorf("%s: only internal/egress may make HTTP clients and transports or dial; use egress.Service.Client or Dial", use)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("parsed only %d files under %s: is the walk broken?", files, root)
	}
}

// TestForbiddenUses checks the checker: each forbidden use is found, by
// any import name, and nothing else is.
func TestForbiddenUses(t *testing.T) {
	src := `package x

import (
	"crypto/tls"
	stdnet "net"
	h "net/http"
	"time"
)

var a = &h.Client{Timeout: time.Second}
var b = h.Client{}
var c = &h.Transport{}
var d = h.DefaultClient
var e = h.DefaultTransport.(*h.Transport)
var f = new(h.Client)
var g = stdnet.Dialer{}
var i = &tls.Dialer{}

func calls() {
	h.Get("http://x")
	h.Post("http://x", "", nil)
	h.Head("http://x")
	h.PostForm("http://x", nil)
	stdnet.Dial("tcp", "x:1")
	stdnet.DialTimeout("tcp", "x:1", time.Second)
	tls.Dial("tcp", "x:1", nil)
}
`
	clean := `package x

import (
	"net"
	"net/http"
)

var mux = http.NewServeMux()
var srv = &http.Server{Handler: mux}
var hdr = http.Header{}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

type other struct{ Client int }

func local() { var http other; _ = http.Client }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := forbiddenUses(fset, f)
	want := []string{"http.Client{…}", "http.Client{…}", "http.Transport{…}", "http.DefaultClient", "http.DefaultTransport",
		"new(http.Client)", "net.Dialer{…}", "tls.Dialer{…}", "http.Get(…)", "http.Post(…)", "http.Head(…)",
		"http.PostForm(…)", "net.Dial(…)", "net.DialTimeout(…)", "tls.Dial(…)"}
	if len(got) != len(want) {
		t.Fatalf("found %d uses, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasSuffix(got[i], ": "+want[i]) {
			t.Errorf("use %d = %s, want %s", i, got[i], want[i])
		}
	}
	f, err = parser.ParseFile(fset, "clean.go", clean, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := forbiddenUses(fset, f); len(got) != 0 {
		t.Errorf("clean file: %v", got)
	}
	f, err = parser.ParseFile(fset, "dot.go", "package x\nimport . \"net/http\"\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := forbiddenUses(fset, f); len(got) != 1 {
		t.Errorf("dot import: %v", got)
	}
}
