package vault

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
)

func TestParseReferences(t *testing.T) {
	at := Location{Environment: "prod", Path: "/app", Key: "URL"}
	for _, tc := range []struct {
		value string
		want  string // parts rendered: literal text as is, references as <env:/path/KEY>
	}{
		{"plain", "plain"},
		{"", ""},
		{"${KEY}", "<prod:/app/KEY>"},
		{"a${_K1}b", "a<prod:/app/_K1>b"},
		{"${dev:/KEY}", "<dev:/KEY>"},
		{"${dev:/db/main/KEY}", "<dev:/db/main/KEY>"},
		{"${dev:/v1.2/KEY}", "<dev:/v1.2/KEY>"},
		{"${dev.KEY}", "<dev:/KEY>"},
		{"${dev.db.main.KEY}", "<dev:/db/main/KEY>"},
		{"$${KEY}", "${KEY}"},
		{"$$${KEY}", "$${KEY}"}, // left to right: "$", then the escape "$${"
		{"$KEY {KEY} $ {", "$KEY {KEY} $ {"},
		{"x${A}${B}y", "x<prod:/app/A><prod:/app/B>y"},
		{"€${A}€", "€<prod:/app/A>€"},
	} {
		parts, err := parseReferences(tc.value, at)
		if err != nil {
			t.Errorf("%q: %v", tc.value, err)
			continue
		}
		var b strings.Builder
		for _, p := range parts {
			if p.ref != nil {
				fmt.Fprintf(&b, "<%s>", p.ref)
			} else {
				b.WriteString(p.text)
			}
		}
		if b.String() != tc.want {
			t.Errorf("%q parsed as %q, want %q", tc.value, b.String(), tc.want)
		}
	}
	for _, bad := range []string{
		"${", "abc ${KEY", "${}", "${1KEY}", "${KEY-X}", "${Prod.KEY}", "${dev:KEY}", "${dev:/}", "${dev:/a//KEY}",
		"${dev:/a/../KEY}", "${dev..KEY}", "${dev.a/b.KEY}", "${dev:/a b/KEY}", "${ secret-text }", "${dev.1.2.3.4.5.6.7.8.9.10.11.KEY}",
	} {
		_, err := parseReferences("prefix-"+bad, at)
		if nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("%q: %v, want invalid", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "secret-text") {
			t.Errorf("%q: the error quotes the value: %v", bad, err)
		}
	}
}

func TestExpandReferences(t *testing.T) {
	root := Location{Environment: "prod", Path: "/", Key: "ROOT"}
	at := func(s string) Location {
		l, ok := parseReference(s, root)
		if !ok {
			t.Fatalf("bad location %q", s)
		}
		return l
	}
	values := map[Location]string{
		at("A"):               "a-${B}-${dev:/x/C}",
		at("B"):               "b",
		at("dev:/x/C"):        "c${D}", // D relative to dev:/x
		at("dev:/x/D"):        "d",
		at("SELF"):            "${SELF}",
		at("P"):               "${Q}",
		at("Q"):               "${dev.R}",
		at("dev:/R"):          "${prod:/P}",
		at("L1"):              "${L2}",
		at("L2"):              "${L3}",
		at("L3"):              "${L4}",
		at("L4"):              "${L5}",
		at("L5"):              "${L6}",
		at("L6"):              "six",
		at("TWICE"):           "${B}${B}${B}",
		at("BOOM"):            strings.Repeat("${BIG}", 20),
		at("BIG"):             strings.Repeat("x", 64<<10),
		at("BROKEN"):          "${",
		at("MISSING_PARENT"):  "${NOPE}",
		at("DENIED_PARENT"):   "${dev:/secret/KEY}",
		at("dev:/secret/KEY"): "hidden",
	}
	for _, tc := range []struct {
		value string
		want  string
		code  string
		msg   string
		reads int
	}{
		{value: "${A}", want: "a-b-cd", reads: 4},
		{value: "${TWICE}", want: "bbb", reads: 2},
		{value: "${L1}", want: "", code: nodus.EINVALID, msg: "deep"},
		{value: "${L2}", want: "six", reads: 5},
		{value: "${SELF}", code: nodus.EINVALID, msg: "reference cycle: prod:/SELF → prod:/SELF"},
		{value: "${P}", code: nodus.EINVALID, msg: "reference cycle: prod:/P → prod:/Q → dev:/R → prod:/P"},
		{value: "${ROOT}", code: nodus.EINVALID, msg: "reference cycle: prod:/ROOT → prod:/ROOT"},
		{value: "${BOOM}", code: nodus.EINVALID, msg: "more than"},
		{value: "${BROKEN}", code: nodus.EINVALID, msg: "unterminated"},
		{value: "${MISSING_PARENT}", code: nodus.ENOTFOUND, msg: "prod:/NOPE"},
		{value: "${DENIED_PARENT}", code: nodus.EFORBIDDEN, msg: "dev:/secret/KEY"},
	} {
		reads := 0
		got, err := expandReferences(root, tc.value, func(l Location) (string, error) {
			reads++
			if l.Path == "/secret" {
				return "", referenceError(l, nodus.Errorf(nodus.EFORBIDDEN, "no read access"))
			}
			v, ok := values[l]
			if !ok {
				return "", referenceError(l, nodus.Errorf(nodus.ENOTFOUND, "not found"))
			}
			return v, nil
		})
		if tc.code != "" {
			if nodus.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) || got != "" {
				t.Errorf("%s: %q, %v; want %s error saying %q", tc.value, got, err, tc.code, tc.msg)
			}
			continue
		}
		if err != nil || got != tc.want || reads != tc.reads {
			t.Errorf("%s: %q, %v after %d reads; want %q after %d", tc.value, got, err, reads, tc.want, tc.reads)
		}
	}
	// A resolver's error keeps its cause.
	cause := errors.New("db down")
	_, err := expandReferences(root, "${X}", func(l Location) (string, error) { return "", referenceError(l, cause) })
	if !errors.Is(err, cause) {
		t.Errorf("cause lost: %v", err)
	}
}

func TestHostAllowed(t *testing.T) {
	f := fieldErrors{}
	patterns := normalizeHosts([]string{"API.example.com.", "*.Corp.Example", "127.0.0.1", "[::1]", "api.example.com"}, f)
	if len(f) != 0 || strings.Join(patterns, ",") != "api.example.com,*.corp.example,127.0.0.1,::1" {
		t.Fatalf("normalised %v, %v", patterns, f)
	}
	for host, want := range map[string]bool{
		"api.example.com":              true,
		"API.EXAMPLE.COM.":             true,
		"api.example.com.evil.test":    false,
		"evilapi.example.com":          false,
		"x.api.example.com":            false,
		"example.com":                  false,
		"a.corp.example":               true,
		"a.b.corp.example":             true,
		"corp.example":                 false,
		"evilcorp.example":             false,
		"corp.example.evil":            false,
		"127.0.0.1":                    true,
		"127.0.0.2":                    false,
		"::1":                          true,
		"[::1]":                        true,
		"0:0:0:0:0:0:0:1":              true,
		"2130706433":                   false,
		"":                             false,
		"api.example.com:443":          false,
		"*.corp.example":               false,
		"api.example.com\x00.evil.com": false,
	} {
		if got := HostAllowed(patterns, host); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	for _, bad := range []string{"", "*", "*.com", "a*.example.com", "api.example.com:443", "http://api.example.com", "-a.example.com",
		"a..example.com", "*.*.example.com", "exa mple.com", "10", "fe80::1%eth0", strings.Repeat("a", 64) + ".com"} {
		f := fieldErrors{}
		if out := normalizeHosts([]string{bad}, f); len(out) != 0 || len(f) == 0 {
			t.Errorf("pattern %q accepted as %v", bad, out)
		}
	}
	if HostAllowed(nil, "api.example.com") {
		t.Error("no patterns allowed a host")
	}
}
