package egress

import (
	"net/url"
	"strings"
	"testing"
)

// TestRuleMatching is SECURITY.md check 21 at the level of one rule: a
// name matches itself only, a wildcard only names below its domain, ports
// default by scheme, and path prefixes match whole segments of the
// cleaned path.
func TestRuleMatching(t *testing.T) {
	tests := []struct {
		rule RuleInput
		url  string
		want bool
	}{
		{RuleInput{Host: "api.example.com"}, "https://api.example.com/v1/chat", true},
		{RuleInput{Host: "api.example.com"}, "https://API.EXAMPLE.COM./v1", true},
		{RuleInput{Host: "api.example.com"}, "http://api.example.com/", true},
		{RuleInput{Host: "api.example.com"}, "https://api.example.com.evil.test/", false},
		{RuleInput{Host: "api.example.com"}, "https://evilapi.example.com/", false},
		{RuleInput{Host: "api.example.com"}, "https://x.api.example.com/", false},
		{RuleInput{Host: "api.example.com"}, "https://example.com/", false},
		{RuleInput{Host: "api.example.com"}, "https://api.example.com@evil.test/", false},
		{RuleInput{Host: "api.example.com"}, "https://evil.test/?api.example.com", false},
		{RuleInput{Host: "api.example.com"}, "https://evil.test/#@api.example.com", false},
		{RuleInput{Host: "api.example.com"}, "https://api.example.com:8443/", false},
		{RuleInput{Host: "api.example.com"}, "http://api.example.com:443/", false},
		{RuleInput{Host: "api.example.com", Port: 8443}, "https://api.example.com:8443/", true},
		{RuleInput{Host: "api.example.com", Port: 8443}, "https://api.example.com/", false},
		{RuleInput{Host: "api.example.com", Port: 443}, "https://api.example.com/", true},

		{RuleInput{Host: "*.example.com"}, "https://a.example.com/", true},
		{RuleInput{Host: "*.example.com"}, "https://a.b.example.com/", true},
		{RuleInput{Host: "*.example.com"}, "https://example.com/", false},
		{RuleInput{Host: "*.example.com"}, "https://evilexample.com/", false},
		{RuleInput{Host: "*.example.com"}, "https://a.example.com.evil.test/", false},
		{RuleInput{Host: "*.example.com"}, "https://.example.com/", false},

		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1", true},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1/", true},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1/"}, "https://api.example.com/v1/chat?x=1", true},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1x", false},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v2/chat", false},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1/../admin", false},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1/%2e%2e/admin", false},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1%2f..%2fadmin", false},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com//v1/x", true},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1/..;/admin", false},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1/..;x=1/admin", false},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v1;x=1/chat", true},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/v2;/../v1/chat", true},
		{RuleInput{Host: "api.example.com", PathPrefix: "/v1"}, "https://api.example.com/", false},

		{RuleInput{Host: "8.8.8.8"}, "https://8.8.8.8/", true},
		{RuleInput{Host: "8.8.8.8"}, "https://[::ffff:8.8.8.8]/", false},
		{RuleInput{Host: "2606:4700::1111"}, "https://[2606:4700:0::1111]/", true},
	}
	for _, tt := range tests {
		fields := map[string]string{}
		rules := validateRules([]RuleInput{tt.rule}, false, fields)
		if len(fields) > 0 {
			t.Fatalf("rule %+v: %v", tt.rule, fields)
		}
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		tg, _, err := parseTarget(u)
		if err != nil {
			if tt.want {
				t.Errorf("%s: %v", tt.url, err)
			}
			continue
		}
		if got := rules[0].matches(tg); got != tt.want {
			t.Errorf("rule %+v on %s = %v, want %v", tt.rule, tt.url, got, tt.want)
		}
	}
}

func TestParseTargetRefuses(t *testing.T) {
	for _, raw := range []string{"ftp://api.example.com/", "file:///etc/passwd", "gopher://x:70/", "javascript:alert(1)",
		"mailto:a@example.com", "//api.example.com/", "/relative", "http:///nohost", "http://exa mple.com/",
		"http://api.example.com:0/", "http://api.example.com:99999/", "http://[fe80::1%25eth0]/", "http://256.1.1.1/"} {
		u, err := url.Parse(raw)
		if err != nil {
			continue // refused earlier still
		}
		if _, reason, err := parseTarget(u); err == nil || reason == "" {
			t.Errorf("parseTarget(%q) accepted", raw)
		}
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name     string
		rules    []RuleInput
		platform bool
		field    string // "" when valid
	}{
		{"name", []RuleInput{{Host: "api.example.com"}}, false, ""},
		{"wildcard", []RuleInput{{Host: "*.example.com"}}, false, ""},
		{"public ip", []RuleInput{{Host: "8.8.8.8", Port: 53}}, false, ""},
		{"loopback for the platform", []RuleInput{{Host: "127.0.0.1", Port: 11434}}, true, ""},
		{"loopback for a tenant", []RuleInput{{Host: "127.0.0.1", Port: 11434}}, false, "rules[0].host"},
		{"metadata for a tenant", []RuleInput{{Host: "169.254.169.254"}}, false, "rules[0].host"},
		{"short ip", []RuleInput{{Host: "8.8.2056"}}, true, "rules[0].host"},
		{"mapped ip", []RuleInput{{Host: "::ffff:8.8.8.8"}}, true, "rules[0].host"},
		{"bare wildcard", []RuleInput{{Host: "*"}}, false, "rules[0].host"},
		{"tld wildcard", []RuleInput{{Host: "*.com"}}, false, "rules[0].host"},
		{"inner wildcard", []RuleInput{{Host: "api.*.com"}}, false, "rules[0].host"},
		{"wildcard ip", []RuleInput{{Host: "*.10.0.0.1"}}, true, "rules[0].host"},
		{"url as host", []RuleInput{{Host: "https://api.example.com"}}, false, "rules[0].host"},
		{"empty host", []RuleInput{{Host: ""}}, false, "rules[0].host"},
		{"port", []RuleInput{{Host: "a.example", Port: 70000}}, false, "rules[0].port"},
		{"negative port", []RuleInput{{Host: "a.example", Port: -1}}, false, "rules[0].port"},
		{"relative path", []RuleInput{{Host: "a.example", PathPrefix: "v1"}}, false, "rules[0].path_prefix"},
		{"dot dot path", []RuleInput{{Host: "a.example", PathPrefix: "/v1/../admin"}}, false, "rules[0].path_prefix"},
		{"query path", []RuleInput{{Host: "a.example", PathPrefix: "/v1?x"}}, false, "rules[0].path_prefix"},
		{"encoded path", []RuleInput{{Host: "a.example", PathPrefix: "/v1%2f"}}, false, "rules[0].path_prefix"},
		{"duplicate", []RuleInput{{Host: "A.example"}, {Host: "a.example."}}, false, "rules[1]"},
		{"comment", []RuleInput{{Host: "a.example", Comment: "line\nbreak"}}, false, "rules[0].comment"},
		{"long comment", []RuleInput{{Host: "a.example", Comment: strings.Repeat("x", 201)}}, false, "rules[0].comment"},
		{"too many", make([]RuleInput, MaxTenantRules+1), false, "rules"},
	}
	for _, tt := range tests {
		fields := map[string]string{}
		validateRules(tt.rules, tt.platform, fields)
		switch {
		case tt.field == "" && len(fields) > 0:
			t.Errorf("%s: %v, want valid", tt.name, fields)
		case tt.field != "" && fields[tt.field] == "":
			t.Errorf("%s: %v, want an error on %s", tt.name, fields, tt.field)
		}
	}
}

func TestValidateExceptions(t *testing.T) {
	tests := []struct {
		in    ExceptionInput
		field string
	}{
		{ExceptionInput{IP: "127.0.0.1", Port: 11434}, ""},
		{ExceptionInput{IP: "10.0.0.5", Port: 8080}, ""},
		{ExceptionInput{IP: "fd00::5", Port: 443}, ""},
		{ExceptionInput{IP: "127.0.0.1", Port: 0}, "address_exceptions[0].port"},
		{ExceptionInput{IP: "8.8.8.8", Port: 53}, "address_exceptions[0].ip"},
		{ExceptionInput{IP: "127.1", Port: 80}, "address_exceptions[0].ip"},
		{ExceptionInput{IP: "::ffff:127.0.0.1", Port: 80}, "address_exceptions[0].ip"},
		{ExceptionInput{IP: "0.0.0.0", Port: 80}, "address_exceptions[0].ip"},
		{ExceptionInput{IP: "224.0.0.1", Port: 80}, "address_exceptions[0].ip"},
		{ExceptionInput{IP: "localhost", Port: 80}, "address_exceptions[0].ip"},
		{ExceptionInput{IP: "10.0.0.0/8", Port: 80}, "address_exceptions[0].ip"},
	}
	for _, tt := range tests {
		fields := map[string]string{}
		validateExceptions([]ExceptionInput{tt.in}, fields)
		switch {
		case tt.field == "" && len(fields) > 0:
			t.Errorf("%+v: %v, want valid", tt.in, fields)
		case tt.field != "" && fields[tt.field] == "":
			t.Errorf("%+v: %v, want an error on %s", tt.in, fields, tt.field)
		}
	}
}
