package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// guard is a tenant's transport: it checks each request, every redirect
// hop included, before an inner transport sends it, and the inner
// transports dial only through the checking dialer.
//
// It has two pairs of them. The platform's address exceptions (a local
// Ollama on 127.0.0.1:11434) hold only for requests a rule allows: those
// go through the excepted pair, whose dialer honours them. What report
// mode lets through without a rule goes through the strict pair, whose
// dialer honours none, so a tenant in report mode reaches no excepted
// address, and a pooled connection never carries such a request to one.
type guard struct {
	s                *Service
	tenantID         string
	strict, excepted transports
}

// transports are the inner transports of one kind of request.
type transports struct {
	inner *http.Transport // TLS, and what h1 does not take
	h1    *h1             // plain HTTP/1.1
}

// The idle connections both transports of a tenant keep: per host, and
// for how long.
const (
	maxIdlePerHost = 1024
	idleTimeout    = 90 * time.Second
)

func (s *Service) transport(tenantID string) *guard {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.transports[tenantID]; ok {
		return g
	}
	g := &guard{s: s, tenantID: tenantID, strict: s.newTransports(tenantID, false), excepted: s.newTransports(tenantID, true)}
	s.transports[tenantID] = g
	return g
}

// newTransports makes a tenant's inner transports, dialing with the
// platform's address exceptions or without.
func (s *Service) newTransports(tenantID string, excepted bool) transports {
	var tlsConfig = s.opts.TLSConfig
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
	}
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		return s.dialChecked(ctx, tenantID, network, address, excepted)
	}
	return transports{inner: &http.Transport{
		// Never a proxy from the environment: the proxy, not this dialer,
		// would choose the address.
		Proxy:                 nil,
		DialContext:           dial,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   s.opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout: s.opts.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// An LLM provider is called by many requests at once: keep as
		// many connections to it as are busy (a thousand concurrent
		// streams are ordinary), or each call past the limit opens a new
		// one (and leaves a socket in TIME_WAIT). Idle ones close after
		// IdleConnTimeout.
		MaxIdleConns:           maxIdlePerHost,
		MaxIdleConnsPerHost:    maxIdlePerHost,
		IdleConnTimeout:        idleTimeout,
		MaxResponseHeaderBytes: 1 << 20,
		ForceAttemptHTTP2:      true,
	}, h1: &h1{dial: dial, headerTimeout: s.opts.ResponseHeaderTimeout, maxIdle: maxIdlePerHost, idleTimeout: idleTimeout}}
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	excepted, err := g.s.admit(req.Context(), g.tenantID, req.URL)
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, err
	}
	tr := g.strict
	if excepted {
		tr = g.excepted
	}
	if tr.h1.takes(req) {
		return tr.h1.RoundTrip(req)
	}
	return tr.inner.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// inner transports.
func (g *guard) CloseIdleConnections() {
	for _, tr := range []transports{g.strict, g.excepted} {
		tr.inner.CloseIdleConnections()
		tr.h1.closeIdle()
	}
}

// checkRedirect bounds the hops of one request. Each hop then goes through
// guard.RoundTrip like the first request.
func (s *Service) checkRedirect(tenantID string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > s.opts.MaxRedirects {
			return s.refuse(req.Context(), tenantID, "", describe(req.URL), ReasonRedirects,
				fmt.Sprintf("more than %d redirects", s.opts.MaxRedirects))
		}
		return nil
	}
}

// admit decides a request: its scheme and host, the credential hosts of
// its context, an IP literal's address, then the rules. excepted reports
// whether a rule allows it, so that the platform's address exceptions
// hold for it.
func (s *Service) admit(ctx context.Context, tenantID string, u *url.URL) (excepted bool, err error) {
	t, reason, err := parseTarget(u)
	if err != nil {
		return false, s.refuse(ctx, tenantID, "", describe(u), reason, err.Error())
	}
	return s.admitTarget(ctx, tenantID, t)
}

// describe names a URL that parseTarget refused, for logs and the audit
// log: its host and port when they parse, never more.
func describe(u *url.URL) string {
	h, err := parseHost(u.Hostname())
	if err != nil {
		return "invalid"
	}
	t := target{host: h, port: defaultPort(strings.ToLower(u.Scheme))}
	if n, err := strconv.Atoi(u.Port()); err == nil && n > 0 && n <= 65535 {
		t.port = n
	}
	if t.port == 0 {
		return t.host.name
	}
	return t.hostPort()
}

func (s *Service) admitTarget(ctx context.Context, tenantID string, t target) (excepted bool, err error) {
	to := t.hostPort()
	if id, all, ok := nodus.TenantScope(ctx); ok && !all && tenantID != "" && id != tenantID {
		return false, s.refuse(ctx, tenantID, "", to, ReasonTenant, "the request's context belongs to another tenant")
	}
	if sets, ok := ctx.Value(credentialKey{}).([][]string); ok && !credentialAllows(sets, t.host.name) {
		return false, s.refuse(ctx, tenantID, "", to, ReasonCredentialHost, "the request carries a credential bound to other hosts")
	}
	sn, err := s.snapshot(ctx, tenantID)
	if err != nil {
		return false, err
	}
	excepted = sn.allow(t) != nil
	if t.host.ip.IsValid() {
		if r := addrReason(sn, t, excepted); r != "" {
			return false, s.refuse(ctx, tenantID, sn.mode, to, r, addrMessage(r, t))
		}
	}
	if excepted {
		return true, nil
	}
	if sn.mode == ModeReport {
		s.pass(ctx, tenantID, to, ReasonNotAllowed)
		return false, nil
	}
	return false, s.refuse(ctx, tenantID, sn.mode, to, ReasonNotAllowed, "no platform or tenant rule allows this destination")
}

// Dial opens a TCP connection for tenantID to address (host:port) for a
// protocol other than HTTP, such as SMTP. A rule allows it only if it
// names the port (a port-0 rule means an HTTP scheme's default) and no
// path. Everything else is as for Client.
func (s *Service) Dial(ctx context.Context, tenantID, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, nodus.Errorf(nodus.EINVALID, "egress: %q is not host:port", address)
	}
	h, herr := parseHost(host)
	n, perr := strconv.Atoi(port)
	if herr != nil || perr != nil || n < 1 || n > 65535 {
		return nil, s.refuse(ctx, tenantID, "", "invalid", ReasonInvalidURL, "not a valid host and port")
	}
	excepted, err := s.admitTarget(ctx, tenantID, target{host: h, port: n, path: "/"})
	if err != nil {
		return nil, err
	}
	return s.dialChecked(ctx, tenantID, network, address, excepted)
}

// dialChecked resolves address's host once, refuses every address unless
// all of them pass the address checks (the platform's exceptions holding
// only when excepted), and connects to the checked addresses in turn.
// Nothing resolves the name again after the check.
func (s *Service) dialChecked(ctx context.Context, tenantID, network, address string, excepted bool) (net.Conn, error) {
	var family string
	switch network {
	case "tcp":
		family = "ip"
	case "tcp4":
		family = "ip4"
	case "tcp6":
		family = "ip6"
	default:
		return nil, fmt.Errorf("egress: network %q is not supported", network)
	}
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("egress: dial %q: %w", address, err)
	}
	port, err := strconv.Atoi(portText)
	h, herr := parseHost(host)
	if err != nil || herr != nil || port < 1 || port > 65535 {
		return nil, s.refuse(ctx, tenantID, "", "invalid", ReasonInvalidURL, "not a valid host and port")
	}
	t := target{host: h, port: port}
	to := t.hostPort()
	sn, err := s.snapshot(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if h.ip.IsValid() {
		if r := addrReason(sn, t, excepted); r != "" {
			return nil, s.refuse(ctx, tenantID, sn.mode, to, r, addrMessage(r, t))
		}
		addrs = []netip.Addr{h.ip.Unmap()}
	} else {
		rctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
		addrs, err = s.resolver.LookupNetIP(rctx, family, h.name)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("egress: resolve %s: %w", h.name, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("egress: %s has no address", h.name)
		}
		addrs = slices.Clone(addrs)
		for i, a := range addrs {
			addrs[i] = a.Unmap()
			if r := sn.checkAddr(addrs[i], port, excepted); r != "" {
				return nil, s.refuse(ctx, tenantID, sn.mode, to, r,
					fmt.Sprintf("the host resolves to a %s address, which is always denied", r))
			}
		}
	}
	var errs []error
	for _, a := range addrs {
		if family == "ip4" && !a.Is4() || family == "ip6" && !a.Is6() {
			continue
		}
		conn, err := s.connect(ctx, network, netip.AddrPortFrom(a, uint16(port)))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("egress: %s has no %s address", h.name, family)
	}
	return nil, errors.Join(errs...)
}

// connectTCP connects to an address that passed the checks. The socket's
// Control hook compares the address the kernel is asked to connect to
// with the checked one, so no later layer can swap it.
func (s *Service) connectTCP(ctx context.Context, network string, to netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{
		Timeout:   s.opts.ConnectTimeout,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			got, err := netip.ParseAddrPort(address)
			if err != nil || got.Addr().Unmap() != to.Addr() || got.Port() != to.Port() {
				return fmt.Errorf("egress: connecting to %s, not to the checked %s", address, to)
			}
			return nil
		},
	}
	return d.DialContext(ctx, network, to.String())
}

type credentialKey struct{}

// WithCredentialHosts returns ctx marked as carrying a credential that may
// be sent only to hosts: names or IP addresses, compared after the same
// normalisation as URLs, or "*.domain" for any name below domain (not
// domain itself), as secret handles write them. A client refuses a
// request, or a redirect hop, to any other host, whatever the policy and
// its mode. Nested calls narrow: a host must be allowed by every call.
// Hosts that do not parse allow nothing.
func WithCredentialHosts(ctx context.Context, hosts ...string) context.Context {
	names := make([]string, 0, len(hosts))
	for _, h := range hosts {
		domain, wild := strings.CutPrefix(h, "*.")
		p, err := parseHost(domain)
		switch {
		case err != nil || !p.canonical && p.ip.IsValid():
		case wild && !p.ip.IsValid():
			names = append(names, "*."+p.name)
		case !wild:
			names = append(names, p.name)
		}
	}
	prev, _ := ctx.Value(credentialKey{}).([][]string)
	return context.WithValue(ctx, credentialKey{}, append(slices.Clip(prev), names))
}

// credentialAllows reports whether host (normalised) is allowed by every
// set of credential hosts.
func credentialAllows(sets [][]string, host string) bool {
	for _, set := range sets {
		if !slices.ContainsFunc(set, func(p string) bool {
			if domain, ok := strings.CutPrefix(p, "*."); ok {
				return strings.HasSuffix(host, "."+domain)
			}
			return p == host
		}) {
			return false
		}
	}
	return true
}

// errTooLarge is what reading past a body's limit returns.
func errTooLarge(max int64) error {
	return nodus.Errorf(nodus.ETOOLARGE, "the response body is larger than %d bytes", max)
}

// LimitBody makes reading resp's body fail with ETOOLARGE once it has
// given max bytes and more remain, for callers that stream a response.
func LimitBody(resp *http.Response, max int64) {
	resp.Body = &limitedBody{rc: resp.Body, left: max, max: max}
}

// ReadBody reads and closes resp's body: all of it, or ETOOLARGE when it
// is longer than max bytes.
func ReadBody(resp *http.Response, max int64) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(&limitedBody{rc: resp.Body, left: max, max: max})
	if err != nil {
		return nil, err
	}
	return b, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
	max  int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge(b.max)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), -1
		return n, errTooLarge(b.max)
	}
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
