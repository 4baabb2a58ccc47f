package egress

import (
	"context"
	"net"
	"net/netip"
	"net/url"
)

// This file lends the external tests (package egress_test, which runs the
// service over the real store and so cannot live in this package: the
// store imports it) the few internals they check. It is compiled only
// into this package's tests.

// DialChecked is the dialer under every client's transport: it resolves
// the host once, checks every address and connects, without the request
// checks that come before it. It is the strict transports' dialer, which
// honours no address exception.
func (s *Service) DialChecked(ctx context.Context, tenantID, network, address string) (net.Conn, error) {
	return s.dialChecked(ctx, tenantID, network, address, false)
}

// SetConnect replaces how the service opens a TCP connection to an
// address already checked, so a test sees what is dialed. Call it before
// the service is used.
func (s *Service) SetConnect(connect func(ctx context.Context, network string, to netip.AddrPort) (net.Conn, error)) {
	s.connect = connect
}

// Admit is the check a client's transport makes before it sends a request
// or a redirect hop.
func (s *Service) Admit(ctx context.Context, tenantID string, u *url.URL) error {
	_, err := s.admit(ctx, tenantID, u)
	return err
}

// MaxRedirects is Options.MaxRedirects once the defaults are applied.
func (s *Service) MaxRedirects() int { return s.opts.MaxRedirects }
