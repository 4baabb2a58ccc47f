package egress

import (
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want Reason
	}{
		// Allowed: public unicast, and the forms that embed it.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.215.14", ""},
		{"2606:4700:4700::1111", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},          // NAT64 of 8.8.8.8 (DNS64 networks)
		{"2002:808:808::1", ""},           // 6to4 of 8.8.8.8
		{"2001:0:808:808::f7f7:f7f7", ""}, // Teredo: server 8.8.8.8, client 8.8.8.8

		{"127.0.0.1", ReasonLoopback},
		{"127.255.255.254", ReasonLoopback},
		{"::1", ReasonLoopback},
		{"10.0.0.1", ReasonPrivate},
		{"172.16.0.1", ReasonPrivate},
		{"172.31.255.255", ReasonPrivate},
		{"192.168.1.1", ReasonPrivate},
		{"fc00::1", ReasonPrivate},
		{"fd00:ec2::254", ReasonPrivate}, // AWS metadata over IPv6
		{"fec0::1", ReasonPrivate},
		{"169.254.169.254", ReasonLinkLocal}, // cloud metadata
		{"169.254.0.1", ReasonLinkLocal},
		{"fe80::1", ReasonLinkLocal},
		{"100.64.0.1", ReasonCGNAT},
		{"100.127.255.255", ReasonCGNAT},
		{"0.0.0.0", ReasonUnspecified},
		{"0.1.2.3", ReasonUnspecified},
		{"::", ReasonUnspecified},
		{"224.0.0.1", ReasonMulticast},
		{"239.255.255.250", ReasonMulticast},
		{"ff02::1", ReasonMulticast},
		{"255.255.255.255", ReasonBroadcast},
		{"240.0.0.1", ReasonReserved},
		{"198.18.0.1", ReasonReserved},
		{"192.0.2.1", ReasonReserved},
		{"2001:db8::1", ReasonReserved},
		{"100::1", ReasonReserved},
		{"::127.0.0.1", ReasonReserved}, // IPv4-compatible, deprecated
		{"::ffff:0:7f00:1", ReasonReserved},

		// IPv4 carried inside IPv6 is judged by the IPv4 address.
		{"::ffff:127.0.0.1", ReasonLoopback},
		{"::ffff:7f00:1", ReasonLoopback},
		{"::ffff:169.254.169.254", ReasonLinkLocal},
		{"::ffff:10.0.0.1", ReasonPrivate},
		{"64:ff9b::7f00:1", ReasonLoopback},
		{"64:ff9b::a9fe:a9fe", ReasonLinkLocal},
		{"64:ff9b::a00:1", ReasonPrivate},
		{"64:ff9b:1::808:808", ReasonNAT64}, // local-use NAT64: always
		{"2002:7f00:1::", ReasonLoopback},
		{"2002:a9fe:a9fe::1", ReasonLinkLocal},
		{"2001:0:808:808::80ff:fffe", ReasonLoopback}, // Teredo client 127.0.0.1 (inverted)
		{"2001:0:a00:1::f7f7:f7f7", ReasonPrivate},    // Teredo server 10.0.0.1
	}
	for _, tt := range tests {
		if got := classify(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("classify(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		host      string
		name      string // "" when invalid
		ip        bool
		canonical bool
	}{
		{"api.example.com", "api.example.com", false, false},
		{"API.Example.COM.", "api.example.com", false, false},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", false, false},
		{"_acme.example.com", "_acme.example.com", false, false},
		{"127.0.0.1", "127.0.0.1", true, true},
		{"8.8.8.8", "8.8.8.8", true, true},
		{"::1", "::1", true, true},
		{"0:0:0:0:0:0:0:1", "::1", true, true},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1", true, false},
		{"::ffff:8.8.8.8", "::ffff:8.8.8.8", true, false},

		// Every spelling inet_aton accepts, read as it reads them.
		{"2130706433", "127.0.0.1", true, false},
		{"127.1", "127.0.0.1", true, false},
		{"127.0.1", "127.0.0.1", true, false},
		{"0177.0.0.1", "127.0.0.1", true, false},
		{"0x7f.1", "127.0.0.1", true, false},
		{"0x7f000001", "127.0.0.1", true, false},
		{"017700000001", "127.0.0.1", true, false},
		{"0x7F.0.0.1", "127.0.0.1", true, false},
		{"127.0.0.1.", "127.0.0.1", true, false},
		{"0", "0.0.0.0", true, false},
		{"0251.0376.0251.0376", "169.254.169.254", true, false},
		{"2852039166", "169.254.169.254", true, false},
		{"10.1", "10.0.0.1", true, false},
		{"010.0.0.1", "8.0.0.1", true, false},

		// Not hosts at all.
		{"", "", false, false},
		{"256.0.0.1", "", false, false},
		{"1.2.3.4.5", "", false, false},
		{"127.0.0.0x", "", false, false},
		{"09.0.0.1", "", false, false},
		{"0x", "", false, false},
		{"4294967296", "", false, false},
		{"1.16777216", "", false, false},
		{"fe80::1%eth0", "", false, false},
		{"exa mple.com", "", false, false},
		{"bücher.example", "", false, false},
		{"a..b", "", false, false},
		{"-a.example", "", false, false},
		{"a*.example.com", "", false, false},
		{".", "", false, false},
	}
	for _, tt := range tests {
		p, err := parseHost(tt.host)
		if tt.name == "" {
			if err == nil {
				t.Errorf("parseHost(%q) = %+v, want an error", tt.host, p)
			}
			continue
		}
		if err != nil || p.name != tt.name || p.ip.IsValid() != tt.ip || (tt.ip && p.canonical != tt.canonical) {
			t.Errorf("parseHost(%q) = %+v, %v; want %s ip=%v canonical=%v", tt.host, p, err, tt.name, tt.ip, tt.canonical)
		}
	}
}
