package httpapi

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vault"
)

// SessionCookie is the name of the browser session cookie.
const SessionCookie = "nodus_session"

// caller is who made a request: a user (the principal, and the session
// or token that proved it) or a vault machine identity (its access
// token).
type caller struct {
	principal *identity.Principal // nil for machine identities
	session   *identity.Session   // nil for API tokens
	token     *identity.Token     // nil for sessions
	machine   *vault.Machine      // set for a machine identity's token only
}

// machineActions are the only actions a machine identity's access token
// is accepted for: reading names, revealing and writing values, each
// still subject to the identity's grants. On any other route the token
// is not a credential at all, so the answer is 401, not 403.
var machineActions = []identity.Action{identity.ActionReadVault, identity.ActionRevealVault, identity.ActionWriteVault}

var errMachineRoute = nodus.Errorf(nodus.EUNAUTHORIZED, "a machine token is accepted on the vault's secret routes only")

type callerKey struct{}

func callerFrom(ctx context.Context) *caller {
	c, _ := ctx.Value(callerKey{}).(*caller)
	return c
}

type clientAddrKey struct{}

// clientOf is where a request comes from: the address clientAddress found
// for it, and its user agent.
func clientOf(r *http.Request) identity.Client {
	addr, ok := r.Context().Value(clientAddrKey{}).(string)
	if !ok {
		addr = remoteHost(r)
	}
	return identity.Client{Address: addr, UserAgent: r.UserAgent()}
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientAddress is the address a request comes from, as throttling and the
// audit log see it. Without trusted proxies it is the peer's address. When
// the peer is a trusted proxy, X-Forwarded-For is read from the right:
// each proxy appends the address it received the request from, so the
// first address that is not a trusted proxy is the client (anything to its
// left was written by the client and proves nothing). A malformed entry
// stops the walk at the last address known to be real.
func (s *Server) clientAddress(r *http.Request) string {
	return ClientAddress(r, s.cfg.TrustedProxies)
}

// ClientAddress is clientAddress for a handler outside the API (the web
// UI), so throttling and the audit log see the same address whichever
// door a request came through.
func ClientAddress(r *http.Request, proxies []netip.Prefix) string {
	peer := remoteHost(r)
	if len(proxies) == 0 {
		return peer
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !trusted(proxies, addr) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap()
		if !trusted(proxies, addr) {
			break
		}
	}
	return addr.String()
}

func trusted(proxies []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

var errBadAuthHeader = nodus.Errorf(nodus.EUNAUTHORIZED, "Authorization must be: Bearer <token>")

// authenticate finds the caller from a bearer token or the session cookie.
// A request that sends a token is judged by it alone. A machine identity's
// token (vault.MachineTokenPrefix) is resolved by the vault, and only for
// the machineActions: it is refused before any lookup elsewhere, so a
// token with a use limit loses no use to a route it cannot call.
func (s *Server) authenticate(r *http.Request, action identity.Action) (*caller, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, secret, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, errBadAuthHeader
		}
		secret = strings.TrimSpace(secret)
		if strings.HasPrefix(secret, vault.MachineTokenPrefix) {
			if !slices.Contains(machineActions, action) || s.deps.Vault == nil {
				return nil, errMachineRoute
			}
			m, err := s.deps.Vault.ResolveMachineToken(r.Context(), secret, clientOf(r).Address)
			if err != nil {
				return nil, err
			}
			return &caller{machine: m}, nil
		}
		k, p, err := s.deps.Identity.ResolveToken(r.Context(), secret)
		if err != nil {
			return nil, err
		}
		return &caller{principal: p, token: k}, nil
	}
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, nodus.Errorf(nodus.EUNAUTHORIZED, "not signed in")
	}
	sess, p, err := s.deps.Identity.ResolveSession(r.Context(), ck.Value)
	if err != nil {
		return nil, err
	}
	return &caller{principal: p, session: sess}, nil
}

var errCSRF = nodus.Errorf(nodus.EFORBIDDEN, "missing or wrong X-CSRF-Token, or a cross-site request")

// checkCSRF refuses a cookie-authenticated state change unless it carries
// the session's CSRF token in X-CSRF-Token and, when the browser names an
// origin, that origin is this server. Bearer tokens are not sent by
// browsers on their own, so they need neither.
func checkCSRF(r *http.Request, c *caller) error {
	if c.session == nil {
		return nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return errCSRF
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errCSRF
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(c.session.CSRFToken)) != 1 {
		return errCSRF
	}
	return nil
}

// authorize runs before every non-public route: it authenticates the
// caller, checks CSRF and the route's action, and scopes the context to
// the caller's tenant (all tenants for a super_admin; a machine identity's
// own tenant).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, action identity.Action) (*http.Request, bool) {
	c, err := s.authenticate(r, action)
	if err != nil {
		s.writeError(w, r, err)
		return r, false
	}
	if c.machine != nil {
		// The permission table is about users; authenticate let the
		// machine through for machineActions only. Its grants decide the
		// rest, in its own tenant.
		ctx := context.WithValue(r.Context(), callerKey{}, c)
		return r.WithContext(nodus.WithTenant(ctx, c.machine.TenantID)), true
	}
	if err := checkCSRF(r, c); err != nil {
		s.writeError(w, r, err)
		return r, false
	}
	u := c.principal.User
	if !s.perms.Allows(u.Role, action) {
		_ = s.deps.Audit.Record(r.Context(), audit.Entry{Action: "authz.denied", ActorKind: actorKind(c), ActorID: u.ID,
			TenantID: u.TenantID, TargetType: "route", TargetID: string(action),
			Address: clientOf(r).Address, UserAgent: r.UserAgent()})
		s.writeError(w, r, nodus.Errorf(nodus.EFORBIDDEN, "your role may not do this"))
		return r, false
	}
	ctx := context.WithValue(r.Context(), callerKey{}, c)
	if u.Role == identity.RoleSuperAdmin {
		ctx = nodus.WithAllTenants(ctx)
	} else {
		ctx = nodus.WithTenant(ctx, u.TenantID)
	}
	return r.WithContext(ctx), true
}

func actorKind(c *caller) string {
	switch {
	case c.machine != nil:
		return audit.ActorMachine
	case c.token != nil:
		return audit.ActorToken
	}
	return audit.ActorUser
}
