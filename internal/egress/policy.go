package egress

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Mode is what a tenant's policy does with a destination no rule allows.
type Mode string

const (
	ModeEnforce Mode = "enforce" // refuse it
	ModeReport  Mode = "report"  // let it through, and log, count and audit it
)

// Valid reports whether m is one of the modes.
func (m Mode) Valid() bool { return m == ModeEnforce || m == ModeReport }

// Limits on what a policy holds, so that one stays cheap to match and its
// audit entry small.
const (
	MaxTenantRules   = 100
	MaxPlatformRules = 200
	MaxExceptions    = 50
	maxPathPrefix    = 200
	maxComment       = 200
)

// Rule allows one destination: a host, a port and, optionally, a path.
type Rule struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id,omitempty"` // "" for a platform rule
	// Host is a name ("api.example.com"), "*." and a domain for any name
	// below that domain but not the domain itself, or an IP address in its
	// standard form.
	Host string `json:"host"`
	// Port is the destination port; 0 means the scheme's default (443 for
	// https, 80 for http), and a 0 rule matches no other protocol.
	Port int `json:"port"`
	// PathPrefix limits the rule to a path and what lies below it, matched
	// on whole segments of the cleaned path; "" allows any path.
	PathPrefix string    `json:"path_prefix"`
	Comment    string    `json:"comment"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by,omitempty"`
}

// key is what makes two rules the same rule.
func (r Rule) key() string { return r.Host + " " + strconv.Itoa(r.Port) + " " + r.PathPrefix }

// String is the rule as the audit log shows it.
func (r Rule) String() string {
	s := r.Host
	if r.Port != 0 {
		s = net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	}
	s += r.PathPrefix
	if r.Comment != "" {
		s += " (" + r.Comment + ")"
	}
	return s
}

// Policy is a tenant's mode and its own rules.
type Policy struct {
	TenantID  string    `json:"tenant_id"`
	Mode      Mode      `json:"mode"`
	Rules     []Rule    `json:"rules"`
	UpdatedAt time.Time `json:"updated_at,omitzero"` // zero (and left out) while the tenant has never set one
	UpdatedBy string    `json:"updated_by,omitempty"`
}

// SameAs reports whether p and q hold the same mode and rules, ignoring
// ids, times and authors.
func (p *Policy) SameAs(q *Policy) bool {
	return p.Mode == q.Mode && sameRules(p.Rules, q.Rules)
}

// AddressException lets one IP address and port through the address
// checks: a service on the machine or the private network that Nodus is
// meant to reach, such as a local Ollama on 127.0.0.1:11434. It holds only
// for requests a rule allows, the platform's or the tenant's: what report
// mode lets through without a rule never reaches an excepted address.
type AddressException struct {
	ID        string    `json:"id"`
	IP        string    `json:"ip"` // standard form
	Port      int       `json:"port"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

func (e AddressException) key() string { return e.IP + " " + strconv.Itoa(e.Port) }

// String is the exception as the audit log shows it.
func (e AddressException) String() string {
	s := net.JoinHostPort(e.IP, strconv.Itoa(e.Port))
	if e.Comment != "" {
		s += " (" + e.Comment + ")"
	}
	return s
}

// Platform is what the super_admin sets for every tenant: rules that
// apply to all of them, and the address exceptions.
type Platform struct {
	Rules []Rule `json:"rules"`
	// Exceptions is nil when read on a tenant scope, which may not see them.
	Exceptions []AddressException `json:"address_exceptions"`
}

// SameAs reports whether p and q hold the same rules and exceptions.
func (p *Platform) SameAs(q *Platform) bool {
	if !sameRules(p.Rules, q.Rules) || len(p.Exceptions) != len(q.Exceptions) {
		return false
	}
	for i := range p.Exceptions {
		if p.Exceptions[i].key() != q.Exceptions[i].key() || p.Exceptions[i].Comment != q.Exceptions[i].Comment {
			return false
		}
	}
	return true
}

// SortRules puts rules in their canonical order, by host, port and path:
// the order of a policy's rules carries no meaning, so two policies with
// the same rules compare equal.
func SortRules(rules []Rule) {
	slices.SortFunc(rules, func(x, y Rule) int {
		return cmp.Or(strings.Compare(x.Host, y.Host), cmp.Compare(x.Port, y.Port), strings.Compare(x.PathPrefix, y.PathPrefix))
	})
}

// SortExceptions puts exceptions in their canonical order, by IP and port.
func SortExceptions(ex []AddressException) {
	slices.SortFunc(ex, func(x, y AddressException) int {
		return cmp.Or(strings.Compare(x.IP, y.IP), cmp.Compare(x.Port, y.Port))
	})
}

func sameRules(a, b []Rule) bool {
	return slices.EqualFunc(a, b, func(x, y Rule) bool { return x.key() == y.key() && x.Comment == y.Comment })
}

// RuleInput is a rule as a client sends it.
type RuleInput struct {
	Host       string `json:"host"`
	Port       int    `json:"port"`
	PathPrefix string `json:"path_prefix"`
	Comment    string `json:"comment"`
}

// ExceptionInput is an address exception as a client sends it.
type ExceptionInput struct {
	IP      string `json:"ip"`
	Port    int    `json:"port"`
	Comment string `json:"comment"`
}

// validateRules checks and normalises rules; field names start with
// prefix ("rules"). A tenant's rules may not name an address in a denied
// range: only the platform pairs such rules with address exceptions.
func validateRules(in []RuleInput, platform bool, fields map[string]string) []Rule {
	max := MaxTenantRules
	if platform {
		max = MaxPlatformRules
	}
	if len(in) > max {
		fields["rules"] = fmt.Sprintf("at most %d rules", max)
		return nil
	}
	out := make([]Rule, 0, len(in))
	seen := map[string]int{}
	for i, r := range in {
		name := fmt.Sprintf("rules[%d]", i)
		host, err := normaliseRuleHost(r.Host, platform)
		if err != nil {
			fields[name+".host"] = err.Error()
		}
		if r.Port < 0 || r.Port > 65535 {
			fields[name+".port"] = "must be 0 (the scheme's default) to 65535"
		}
		prefix, err := normalisePathPrefix(r.PathPrefix)
		if err != nil {
			fields[name+".path_prefix"] = err.Error()
		}
		if msg := checkComment(r.Comment); msg != "" {
			fields[name+".comment"] = msg
		}
		rule := Rule{Host: host, Port: r.Port, PathPrefix: prefix, Comment: r.Comment}
		if j, dup := seen[rule.key()]; dup && host != "" {
			fields[name] = fmt.Sprintf("the same host, port and path as rules[%d]", j)
		}
		seen[rule.key()] = i
		out = append(out, rule)
	}
	return out
}

func validateExceptions(in []ExceptionInput, fields map[string]string) []AddressException {
	if len(in) > MaxExceptions {
		fields["address_exceptions"] = fmt.Sprintf("at most %d address exceptions", MaxExceptions)
		return nil
	}
	out := make([]AddressException, 0, len(in))
	seen := map[string]int{}
	for i, e := range in {
		name := fmt.Sprintf("address_exceptions[%d]", i)
		a, err := netip.ParseAddr(e.IP)
		switch {
		case err != nil || a.Zone() != "" || a.String() != e.IP:
			fields[name+".ip"] = "must be an IPv4 or IPv6 address in its standard form, such as 127.0.0.1 or ::1"
		case a.Is4In6():
			fields[name+".ip"] = "write an IPv4 address as IPv4"
		case classify(a) == "":
			fields[name+".ip"] = "needs no exception: the address is not in a denied range"
		case slices.Contains([]Reason{ReasonUnspecified, ReasonMulticast, ReasonBroadcast}, classify(a)):
			fields[name+".ip"] = "an unspecified, multicast or broadcast address cannot be an exception"
		}
		if e.Port < 1 || e.Port > 65535 {
			fields[name+".port"] = "must be 1 to 65535"
		}
		if msg := checkComment(e.Comment); msg != "" {
			fields[name+".comment"] = msg
		}
		x := AddressException{IP: e.IP, Port: e.Port, Comment: e.Comment}
		if j, dup := seen[x.key()]; dup {
			fields[name] = fmt.Sprintf("the same address and port as address_exceptions[%d]", j)
		}
		seen[x.key()] = i
		out = append(out, x)
	}
	return out
}

func checkComment(c string) string {
	if len(c) > maxComment || strings.ContainsFunc(c, func(r rune) bool { return r < ' ' || r == 0x7f }) || !validUTF8(c) {
		return fmt.Sprintf("at most %d bytes of text without control characters", maxComment)
	}
	return ""
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func normaliseRuleHost(h string, platform bool) (string, error) {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		p, err := parseHost(rest)
		if err != nil || p.ip.IsValid() {
			return "", fmt.Errorf("*. must be followed by a domain name")
		}
		if !strings.Contains(p.name, ".") {
			return "", fmt.Errorf("a wildcard needs a domain of two labels or more, such as *.example.com")
		}
		return "*." + p.name, nil
	}
	p, err := parseHost(h)
	if err != nil || strings.Contains(h, "*") {
		return "", fmt.Errorf("must be a host name, *.domain, or an IP address")
	}
	if p.ip.IsValid() {
		if !p.canonical || p.ip.Is4In6() || p.ip.String() != h {
			return "", fmt.Errorf("write the IP address in its standard form, such as 192.0.2.1 or 2001:db8::1")
		}
		if r := classify(p.ip); r != "" && !platform {
			return "", fmt.Errorf("%s addresses are always denied; only the platform can allow one, with an address exception", r)
		}
	}
	return p.name, nil
}

func normalisePathPrefix(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	bad := len(p) > maxPathPrefix || p[0] != '/' || strings.ContainsAny(p, "?#%\\") ||
		strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f })
	if bad {
		return "", fmt.Errorf("must start with / and hold at most %d printable ASCII characters, without ?, #, %% or \\", maxPathPrefix)
	}
	clean := strings.TrimSuffix(p, "/")
	if path.Clean(clean) != clean {
		return "", fmt.Errorf("must be a clean path: no //, . or .. segments")
	}
	return clean, nil
}

// target is a destination as the rules see it.
type target struct {
	scheme string // "http", "https", or "" for Dial
	host   parsedHost
	port   int
	path   string // cleaned; "/" at least
}

// hostPort is the destination as logs and the audit log show it: never a
// path, query or user info, which may carry keys.
func (t target) hostPort() string {
	if t.host.ip.Is6() {
		return "[" + t.host.name + "]:" + strconv.Itoa(t.port)
	}
	return t.host.name + ":" + strconv.Itoa(t.port)
}

func defaultPort(scheme string) int {
	switch scheme {
	case "https":
		return 443
	case "http":
		return 80
	}
	return 0
}

// parseTarget reads a request URL. It fails with the reason to refuse it.
func parseTarget(u *url.URL) (target, Reason, error) {
	t := target{scheme: strings.ToLower(u.Scheme)}
	if t.scheme != "http" && t.scheme != "https" {
		return t, ReasonScheme, fmt.Errorf("only http and https URLs may be fetched")
	}
	if u.Opaque != "" || u.Host == "" {
		return t, ReasonInvalidURL, fmt.Errorf("the URL has no host")
	}
	h, err := parseHost(u.Hostname())
	if err != nil {
		return t, ReasonInvalidURL, fmt.Errorf("the URL's host is not a valid host name or IP address")
	}
	t.host = h
	t.port = defaultPort(t.scheme)
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return t, ReasonInvalidURL, fmt.Errorf("the URL's port is not 1 to 65535")
		}
		t.port = n
	}
	t.path = cleanPath(u.Path)
	return t, "", nil
}

// cleanPath is the path a rule's prefix is matched against: p with each
// segment's ;parameters dropped, then cleaned. Servers such as Tomcat read
// "/v1/..;/admin" as "/admin", so it must not match "/v1".
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	if strings.Contains(p, ";") {
		segs := strings.Split(p, "/")
		for i, seg := range segs {
			segs[i], _, _ = strings.Cut(seg, ";")
		}
		p = strings.Join(segs, "/")
	}
	return path.Clean(p)
}

// matches reports whether r allows t.
func (r *Rule) matches(t target) bool {
	if !r.matchesHost(t.host.name) {
		return false
	}
	want := r.Port
	if want == 0 {
		want = defaultPort(t.scheme)
	}
	if want == 0 || want != t.port {
		return false
	}
	if r.PathPrefix == "" {
		return true
	}
	if t.scheme == "" {
		return false // no path outside HTTP
	}
	return t.path == r.PathPrefix || strings.HasPrefix(t.path, r.PathPrefix+"/")
}

func (r *Rule) matchesHost(name string) bool {
	if domain, ok := strings.CutPrefix(r.Host, "*."); ok {
		return len(name) > len(domain)+1 && strings.HasSuffix(name, "."+domain)
	}
	return name == r.Host
}

// snapshot is what the decisions for one tenant read: a copy, so a change
// made meanwhile never shows half-applied.
type snapshot struct {
	tenantID      string
	mode          Mode
	tenantRules   []Rule
	platformRules []Rule
	exceptions    map[netip.AddrPort]bool
}

// allow returns the rule that allows t, platform rules first, or nil.
func (s *snapshot) allow(t target) *Rule {
	for _, rules := range [][]Rule{s.platformRules, s.tenantRules} {
		for i := range rules {
			if rules[i].matches(t) {
				return &rules[i]
			}
		}
	}
	return nil
}

// checkAddr returns why a may not be dialed on port, or "" when it may:
// its range is not denied, or, for a request a rule allows (excepted), a
// platform exception names it and the port.
func (s *snapshot) checkAddr(a netip.Addr, port int, excepted bool) Reason {
	a = a.Unmap()
	r := classify(a)
	if r == "" || excepted && s.exceptions[netip.AddrPortFrom(a, uint16(port))] {
		return ""
	}
	return r
}

// denied builds the error a refused request returns: a forbidden
// nodus.Error whose cause is the *DeniedError.
func denied(d *DeniedError) error {
	return nodus.WrapError(d, nodus.EFORBIDDEN, d.Error())
}

// DeniedError tells why egress refused a destination.
type DeniedError struct {
	Reason Reason
	// Target is host:port, never a path or query.
	Target string
	Detail string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("egress to %s denied (%s): %s", e.Target, e.Reason, e.Detail)
}
