package egress

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Reason says why a destination was refused (or, in report mode, would
// have been). Reasons are a closed set: they label the metrics.
type Reason string

const (
	ReasonNotAllowed     Reason = "not_allowed"        // no rule matches
	ReasonScheme         Reason = "scheme"             // not http or https
	ReasonInvalidURL     Reason = "invalid_url"        // no host, or a host that is not a name or an IP
	ReasonIPSpelling     Reason = "ip_spelling"        // an IP written other than in its standard form
	ReasonLoopback       Reason = "loopback"           // 127/8, ::1
	ReasonPrivate        Reason = "private"            // RFC 1918, IPv6 ULA and site-local
	ReasonLinkLocal      Reason = "link_local"         // 169.254/16 (cloud metadata), fe80::/10
	ReasonCGNAT          Reason = "cgnat"              // 100.64/10
	ReasonUnspecified    Reason = "unspecified"        // 0.0.0.0/8, ::
	ReasonMulticast      Reason = "multicast"          // 224/4, ff00::/8
	ReasonBroadcast      Reason = "broadcast"          // 255.255.255.255
	ReasonReserved       Reason = "reserved"           // 240/4, documentation, benchmarking, unassigned IPv6
	ReasonNAT64          Reason = "nat64"              // 64:ff9b:1::/48, local-use NAT64
	ReasonCredentialHost Reason = "credential_host"    // a credential bound to other hosts
	ReasonRedirects      Reason = "too_many_redirects" // more hops than allowed
	ReasonTenant         Reason = "tenant_mismatch"    // a context scoped to another tenant
)

// reasons lists every Reason, for tests and documentation.
func reasons() []Reason {
	return []Reason{ReasonNotAllowed, ReasonScheme, ReasonInvalidURL, ReasonIPSpelling, ReasonLoopback, ReasonPrivate,
		ReasonLinkLocal, ReasonCGNAT, ReasonUnspecified, ReasonMulticast, ReasonBroadcast, ReasonReserved, ReasonNAT64,
		ReasonCredentialHost, ReasonRedirects, ReasonTenant}
}

type deniedPrefix struct {
	prefix netip.Prefix
	reason Reason
}

// deniedV4 are the IPv4 ranges no policy reaches. Broadcast comes before
// 240/4, which contains it.
var deniedV4 = []deniedPrefix{
	{netip.MustParsePrefix("0.0.0.0/8"), ReasonUnspecified},
	{netip.MustParsePrefix("10.0.0.0/8"), ReasonPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), ReasonCGNAT},
	{netip.MustParsePrefix("127.0.0.0/8"), ReasonLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), ReasonLinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), ReasonPrivate},
	{netip.MustParsePrefix("192.0.0.0/24"), ReasonReserved},   // IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), ReasonReserved},   // TEST-NET-1
	{netip.MustParsePrefix("192.88.99.0/24"), ReasonReserved}, // 6to4 relay anycast
	{netip.MustParsePrefix("192.168.0.0/16"), ReasonPrivate},
	{netip.MustParsePrefix("198.18.0.0/15"), ReasonReserved},       // benchmarking, also used inside networks
	{netip.MustParsePrefix("198.51.100.0/24"), ReasonReserved},     // TEST-NET-2
	{netip.MustParsePrefix("203.0.113.0/24"), ReasonReserved},      // TEST-NET-3
	{netip.MustParsePrefix("224.0.0.0/4"), ReasonMulticast},        //
	{netip.MustParsePrefix("255.255.255.255/32"), ReasonBroadcast}, //
	{netip.MustParsePrefix("240.0.0.0/4"), ReasonReserved},
}

var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")   // IPv4 in the last 32 bits
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48") // local-use: always denied
	sixToFour      = netip.MustParsePrefix("2002::/16")      // IPv4 in bits 16-47
	teredo         = netip.MustParsePrefix("2001::/32")      // server IPv4 in bits 32-63, client's inverted in 96-127
	globalUnicast  = netip.MustParsePrefix("2000::/3")

	deniedV6 = []deniedPrefix{
		{netip.MustParsePrefix("fc00::/7"), ReasonPrivate},    // ULA, fd00:ec2::254 among them
		{netip.MustParsePrefix("fec0::/10"), ReasonPrivate},   // site-local, deprecated
		{netip.MustParsePrefix("fe80::/10"), ReasonLinkLocal}, //
		{netip.MustParsePrefix("ff00::/8"), ReasonMulticast},
		{netip.MustParsePrefix("100::/64"), ReasonReserved},      // discard-only
		{netip.MustParsePrefix("2001:db8::/32"), ReasonReserved}, // documentation
		{netip.MustParsePrefix("3fff::/20"), ReasonReserved},     // documentation
	}
)

// classify returns why a is never dialed, or "" when it may be. IPv4-mapped
// addresses are judged by the IPv4 address they carry, and so are the
// NAT64, 6to4 and Teredo forms; IPv6 outside 2000::/3 is reserved (which
// covers the IPv4-compatible and IPv4-translated forms).
func classify(a netip.Addr) Reason {
	a = a.Unmap()
	if a.Is4() {
		for _, d := range deniedV4 {
			if d.prefix.Contains(a) {
				return d.reason
			}
		}
		return ""
	}
	b := a.As16()
	switch {
	case a == netip.IPv6Unspecified():
		return ReasonUnspecified
	case a == netip.IPv6Loopback():
		return ReasonLoopback
	case nat64WellKnown.Contains(a):
		// A DNS64 network answers public IPv4 hosts this way; only the
		// address it carries decides.
		return classify(netip.AddrFrom4([4]byte(b[12:16])))
	case nat64Local.Contains(a):
		return ReasonNAT64
	case sixToFour.Contains(a):
		if r := classify(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
			return r
		}
	case teredo.Contains(a):
		if r := classify(netip.AddrFrom4([4]byte(b[4:8]))); r != "" {
			return r
		}
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		if r := classify(netip.AddrFrom4(client)); r != "" {
			return r
		}
	}
	for _, d := range deniedV6 {
		if d.prefix.Contains(a) {
			return d.reason
		}
	}
	if !globalUnicast.Contains(a) {
		return ReasonReserved
	}
	return ""
}

var errHost = errors.New("not a host name or an IP address")

// parsedHost is a URL's host as the decisions see it.
type parsedHost struct {
	// name is the host in lower case without a trailing dot, or an IP's
	// standard text.
	name string
	// ip is set when the host is an IP literal, in any spelling.
	ip netip.Addr
	// canonical is false for an IP written other than in its standard form
	// (127.1, 2130706433, 0177.0.0.1, 0x7f.1): different parsers read
	// such spellings differently, so they are refused.
	canonical bool
}

// parseHost normalises a host from a URL or an address (IPv6 without its
// brackets). A host whose last label is a number is an IPv4 address, read
// the way inet_aton reads it (1 to 4 parts; decimal, 0-prefixed octal or
// 0x-prefixed hex; the last part fills the remaining bytes), since that is
// what a C resolver would connect to. Names must be ASCII (IDNs in their
// xn-- form) and made of letters, digits, hyphens and underscores.
func parseHost(h string) (parsedHost, error) {
	if h == "" || len(h) > 255 {
		return parsedHost{}, errHost
	}
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		if err != nil || a.Zone() != "" {
			return parsedHost{}, errHost
		}
		// An IPv4-mapped literal is another spelling of an IPv4 address.
		return parsedHost{name: a.String(), ip: a, canonical: !a.Is4In6()}, nil
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c >= 0x7f {
			return parsedHost{}, errHost
		}
	}
	name := strings.TrimSuffix(strings.ToLower(h), ".")
	if name == "" {
		return parsedHost{}, errHost
	}
	labels := strings.Split(name, ".")
	if numericLabel(labels[len(labels)-1]) {
		a, ok := parseIPv4(labels)
		if !ok {
			return parsedHost{}, errHost
		}
		std, err := netip.ParseAddr(name)
		return parsedHost{name: a.String(), ip: a, canonical: err == nil && std == a && !strings.HasSuffix(h, ".")}, nil
	}
	if len(name) > 253 {
		return parsedHost{}, errHost
	}
	for _, l := range labels {
		if !validLabel(l) {
			return parsedHost{}, errHost
		}
	}
	return parsedHost{name: name}, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// numericLabel reports whether l is a decimal number or 0x and hex digits:
// the labels that make a host an IPv4 address (as the URL standard and C
// resolvers treat them).
func numericLabel(l string) bool {
	if l == "" {
		return false
	}
	if strings.HasPrefix(l, "0x") {
		for i := 2; i < len(l); i++ {
			if !isHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// parseIPv4 reads 1 to 4 inet_aton parts.
func parseIPv4(parts []string) (netip.Addr, bool) {
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v |= n << (8 * (3 - i))
			continue
		}
		// The last part fills the bytes left.
		if n >= 1<<(8*(4-i)) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Part(p string) (uint64, bool) {
	base, digits := 10, p
	switch {
	case strings.HasPrefix(p, "0x"):
		base, digits = 16, p[2:]
		if digits == "" {
			// inet_aton reads a bare 0x as 0; refuse it instead of guessing.
			return 0, false
		}
	case len(p) > 1 && p[0] == '0':
		base, digits = 8, p[1:]
	}
	if digits == "" || len(digits) > 32 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, base, 64)
	if err != nil || n > 0xffffffff {
		return 0, false
	}
	return n, true
}
