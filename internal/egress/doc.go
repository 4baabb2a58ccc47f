// Package egress owns every connection Nodus opens to another machine: the
// per-tenant egress policies (an allow-list of destinations, enforced or
// only reported), the platform's rules and address exceptions, and the one
// HTTP client factory (Service.Client) and dialer (Service.Dial) through
// which LLM providers, URL imports, webhooks and mail go out.
//
// Invariants:
//   - Nothing else in Nodus builds an http.Client or http.Transport, uses
//     http.DefaultClient, or dials: a test (lint_test.go) parses the tree and
//     fails on any of them outside this package.
//   - A destination is allowed when a rule matches its scheme's host, port
//     and path: one of the platform's rules (which apply to every tenant) or
//     one of the tenant's own. A tenant's rules never apply to another
//     tenant: a client is built for one tenant and reads that tenant's
//     policy only. A tenant with no policy enforces an empty list, so only
//     the platform's rules apply. In report mode a destination no rule
//     matches is let through and recorded as egress.reported.
//   - Whatever the policy or mode, an address in a denied range (loopback,
//     private, link-local and cloud metadata, CGNAT, unspecified, multicast,
//     broadcast, reserved, documentation; IPv6 ULA and link-local; IPv4
//     embedded in IPv4-mapped, NAT64, 6to4 and Teredo addresses) is never
//     dialed. The only way through is a platform address exception for one
//     IP and one port. Hosts are parsed the way the C library would before
//     any decision: 2130706433, 127.1, 0177.0.0.1 and 0x7f.1 are 127.0.0.1,
//     and an IP written in anything but its standard form is refused.
//   - A host name is resolved once per connection, every address it
//     resolves to is checked (one bad address refuses them all), and the
//     connection goes to a checked address: the name is never resolved a
//     second time, which defeats DNS rebinding. The socket's own connect
//     address is compared with the checked one before the connection opens.
//   - Every redirect hop is a new request, checked like the first; only
//     http and https are spoken, and a request follows at most
//     Options.MaxRedirects redirects. Environment proxies are ignored.
//   - A request whose context carries credential hosts (WithCredentialHosts)
//     goes only to those hosts, on every hop, in every mode.
//   - Every refusal is logged (host and port only: never a scheme, path,
//     query or user info, which may hold keys), counted in
//     nodus_egress_denied_total by reason, and audited as egress.denied
//     with target url host:port; report-mode passes are egress.reported.
//   - Policies are read through a small per-tenant cache that a write on
//     this process clears at once and that expires after Options.CacheTTL,
//     so other replicas follow within that time.
//   - Only the all-tenants scope (super_admin) reads the address exceptions
//     or changes platform rules; a tenant scope reads and writes only its
//     own policy and reads the platform's rules. Every change is audited as
//     egress.update with the mode and rules before and after.
package egress
