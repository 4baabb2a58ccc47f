package egress

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Store keeps the policies, scoped by nodus.TenantScope(ctx).
type Store interface {
	// FindEgressPolicy returns a tenant's mode and rules: ModeEnforce and
	// no rules, with a zero UpdatedAt, for a tenant that never set any. A
	// tenant outside the scope is ENOTFOUND.
	FindEgressPolicy(ctx context.Context, tenantID string) (*Policy, error)
	// FindEgressPlatform returns the platform's rules to any scope, and its
	// address exceptions only to the all-tenants scope (nil otherwise).
	FindEgressPlatform(ctx context.Context) (*Platform, error)
	// UpdateEgressPolicy reads a tenant's policy, lets change edit it and
	// writes it back (unless it is the SameAs before), in one transaction
	// serialised with other egress writes. It returns the policy before
	// and after. A tenant outside the scope is ENOTFOUND.
	UpdateEgressPolicy(ctx context.Context, tenantID string, change func(*Policy) error) (before, after *Policy, err error)
	// DeleteEgressTenant removes a tenant's policy and rules.
	DeleteEgressTenant(ctx context.Context, tenantID string) (int64, error)
	// UpdateEgressPlatform does the same for the platform's rules and
	// exceptions; it needs the all-tenants scope.
	UpdateEgressPlatform(ctx context.Context, change func(*Platform) error) (before, after *Platform, err error)
}

// Auditor records audit entries; *audit.Service is one.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Resolver turns host names into addresses; *net.Resolver is one. Tests
// give their own, to answer without a network and to change answers
// between calls as a rebinding DNS server would.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Service. Zero values take the defaults noted.
type Options struct {
	Logger   *slog.Logger      // nil: discard
	Metrics  *metrics.Registry // nil: a private registry
	Audit    Auditor           // required
	Clock    nodus.Clock       // nil: the system clock
	Resolver Resolver          // nil: the system resolver
	// TLSConfig is cloned into every transport, for private CAs; nil uses
	// the system's roots.
	TLSConfig *tls.Config

	ConnectTimeout        time.Duration // name resolution and TCP connect, per address: 10s
	TLSHandshakeTimeout   time.Duration // 10s
	ResponseHeaderTimeout time.Duration // from the request written to the response's headers: 2m
	Timeout               time.Duration // a whole request, body included (http.Client.Timeout): 10m
	MaxRedirects          int           // redirects one request follows: 5
	CacheTTL              time.Duration // how long another replica's change may take to apply here: 30s

	// Denied, when set, hears of every refusal of a tenant's request (not
	// the platform's own), after it is audited. It runs on the request's
	// goroutine: it must be quick, and rate-limit what it does with a
	// loop of refusals (notifywire.EgressDenials does).
	Denied func(ctx context.Context, d Denial)
}

// Denial is a refused outbound request, as Options.Denied hears of it.
type Denial struct {
	TenantID string
	Target   string // host:port, never a path or query
	Reason   Reason
	Detail   string
	Mode     Mode
}

// Service decides, and enforces, where Nodus may connect.
type Service struct {
	store    Store
	audit    Auditor
	log      *slog.Logger
	clock    nodus.Clock
	resolver Resolver
	opts     Options

	denied   *metrics.CounterVec
	reported *metrics.CounterVec

	// connect opens a TCP connection to an address already checked; tests
	// replace it to see what is dialed without dialing it.
	connect func(ctx context.Context, network string, to netip.AddrPort) (net.Conn, error)

	mu         sync.Mutex
	gen        uint64 // bumped by every invalidation, so a load begun before one is not cached
	platform   *cachedPlatform
	tenants    map[string]cachedPolicy
	transports map[string]*guard
}

type cachedPlatform struct {
	rules      []Rule
	exceptions map[netip.AddrPort]bool
	expires    time.Time
}

type cachedPolicy struct {
	policy  *Policy
	expires time.Time
}

// maxCachedTenants bounds the policy cache; past it the cache starts over.
const maxCachedTenants = 10000

// NewService returns a Service over store.
func NewService(store Store, opts Options) (*Service, error) {
	if store == nil || opts.Audit == nil {
		return nil, fmt.Errorf("egress: a store and an auditor are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewRegistry()
	}
	if opts.Clock == nil {
		opts.Clock = nodus.SystemClock{}
	}
	if opts.Resolver == nil {
		opts.Resolver = &net.Resolver{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.ConnectTimeout, 10*time.Second)
	def(&opts.TLSHandshakeTimeout, 10*time.Second)
	def(&opts.ResponseHeaderTimeout, 2*time.Minute)
	def(&opts.Timeout, 10*time.Minute)
	def(&opts.CacheTTL, 30*time.Second)
	if opts.MaxRedirects <= 0 {
		opts.MaxRedirects = 5
	}
	s := &Service{
		store: store, audit: opts.Audit, log: opts.Logger, clock: opts.Clock, resolver: opts.Resolver, opts: opts,
		denied: opts.Metrics.Counter("nodus_egress_denied_total",
			"Outbound connections and requests refused, by reason.", "reason"),
		reported: opts.Metrics.Counter("nodus_egress_reported_total",
			"Outbound requests a report-mode policy let through that enforcing would refuse, by reason.", "reason"),
		tenants:    map[string]cachedPolicy{},
		transports: map[string]*guard{},
	}
	s.connect = s.connectTCP
	return s, nil
}

// View is a tenant's policy as its administrators see it, with the
// platform's rules, which apply to it too.
type View struct {
	Policy
	PlatformRules []Rule `json:"platform_rules"`
}

func errNoTenant() error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "name the tenant whose egress policy this is",
		Fields: map[string]string{"tenant_id": "required"}}
}

// inScope fails unless ctx's scope covers tenantID.
func inScope(ctx context.Context, tenantID string) error {
	id, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return nodus.ErrNoScope
	case tenantID == "":
		return errNoTenant()
	case !all && id != tenantID:
		return nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", tenantID)
	}
	return nil
}

func requirePlatform(ctx context.Context) error {
	_, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return nodus.ErrNoScope
	case !all:
		return nodus.Errorf(nodus.EFORBIDDEN, "only a super_admin sees and changes the platform's egress rules")
	}
	return nil
}

// Policy returns a tenant's policy and the platform's rules.
func (s *Service) Policy(ctx context.Context, tenantID string) (*View, error) {
	if err := inScope(ctx, tenantID); err != nil {
		return nil, err
	}
	p, err := s.store.FindEgressPolicy(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("egress: find policy: %w", err)
	}
	pl, err := s.store.FindEgressPlatform(ctx)
	if err != nil {
		return nil, fmt.Errorf("egress: find platform rules: %w", err)
	}
	return view(p, pl.Rules), nil
}

func view(p *Policy, platform []Rule) *View {
	v := &View{Policy: *p, PlatformRules: platform}
	if v.Rules == nil {
		v.Rules = []Rule{}
	}
	if v.PlatformRules == nil {
		v.PlatformRules = []Rule{}
	}
	return v
}

// UpdatePolicy replaces a tenant's mode and rules. A rule that was already
// there (same host, port and path) keeps its id and creation; the rest are
// new. A change is audited as egress.update with what was before and after.
func (s *Service) UpdatePolicy(ctx context.Context, tenantID string, mode Mode, rules []RuleInput, actor audit.Entry) (*View, error) {
	if err := inScope(ctx, tenantID); err != nil {
		return nil, err
	}
	fields := map[string]string{}
	if !mode.Valid() {
		fields["mode"] = "must be enforce or report"
	}
	valid := validateRules(rules, false, fields)
	if len(fields) > 0 {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid egress policy", Fields: fields}
	}
	now := s.clock.Now()
	before, after, err := s.store.UpdateEgressPolicy(ctx, tenantID, func(p *Policy) error {
		p.Mode = mode
		p.Rules = mergeRules(p.Rules, valid, tenantID, now, actor.ActorID)
		p.UpdatedAt, p.UpdatedBy = now, actor.ActorID
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("egress: update policy: %w", err)
	}
	if !before.SameAs(after) {
		s.invalidate(tenantID)
		changes := map[string]audit.Change{}
		if before.Mode != after.Mode {
			changes["mode"] = audit.Change{Before: string(before.Mode), After: string(after.Mode)}
		}
		if !sameRules(before.Rules, after.Rules) {
			changes["rules"] = ruleChange(before.Rules, after.Rules)
		}
		if err := s.audit.Record(ctx, actor.About(tenantID, "egress.update", "egress_policy", tenantID, fitChanges(changes))); err != nil {
			return nil, err
		}
	}
	pl, err := s.store.FindEgressPlatform(ctx)
	if err != nil {
		return nil, fmt.Errorf("egress: find platform rules: %w", err)
	}
	return view(after, pl.Rules), nil
}

// Platform returns the platform's rules and address exceptions. Only the
// all-tenants scope may read them.
func (s *Service) Platform(ctx context.Context) (*Platform, error) {
	if err := requirePlatform(ctx); err != nil {
		return nil, err
	}
	p, err := s.store.FindEgressPlatform(ctx)
	if err != nil {
		return nil, fmt.Errorf("egress: find platform rules: %w", err)
	}
	return platformView(p), nil
}

func platformView(p *Platform) *Platform {
	out := *p
	if out.Rules == nil {
		out.Rules = []Rule{}
	}
	if out.Exceptions == nil {
		out.Exceptions = []AddressException{}
	}
	return &out
}

// UpdatePlatform replaces the platform's rules and address exceptions.
// Only the all-tenants scope may; a change is audited as egress.update.
func (s *Service) UpdatePlatform(ctx context.Context, rules []RuleInput, exceptions []ExceptionInput, actor audit.Entry) (*Platform, error) {
	if err := requirePlatform(ctx); err != nil {
		return nil, err
	}
	fields := map[string]string{}
	valid := validateRules(rules, true, fields)
	validEx := validateExceptions(exceptions, fields)
	if len(fields) > 0 {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid platform egress rules", Fields: fields}
	}
	now := s.clock.Now()
	before, after, err := s.store.UpdateEgressPlatform(ctx, func(p *Platform) error {
		p.Rules = mergeRules(p.Rules, valid, "", now, actor.ActorID)
		p.Exceptions = mergeExceptions(p.Exceptions, validEx, now, actor.ActorID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("egress: update platform rules: %w", err)
	}
	if !before.SameAs(after) {
		s.invalidate("")
		changes := map[string]audit.Change{}
		if !sameRules(before.Rules, after.Rules) {
			changes["rules"] = ruleChange(before.Rules, after.Rules)
		}
		if !(&Platform{Exceptions: before.Exceptions}).SameAs(&Platform{Exceptions: after.Exceptions}) {
			changes["address_exceptions"] = audit.Change{Before: strs(before.Exceptions), After: strs(after.Exceptions)}
		}
		if err := s.audit.Record(ctx, actor.About("", "egress.update", "egress_platform", "platform", fitChanges(changes))); err != nil {
			return nil, err
		}
	}
	return platformView(after), nil
}

// mergeRules gives each rule of next the id and creation of the rule of
// prev that it repeats, and new ones to the rest.
func mergeRules(prev, next []Rule, tenantID string, now time.Time, by string) []Rule {
	old := map[string]Rule{}
	for _, r := range prev {
		old[r.key()] = r
	}
	out := make([]Rule, 0, len(next))
	for _, r := range next {
		if o, ok := old[r.key()]; ok {
			r.ID, r.CreatedAt, r.CreatedBy = o.ID, o.CreatedAt, o.CreatedBy
		} else {
			r.ID, r.CreatedAt, r.CreatedBy = nodus.NewID(), now, by
		}
		r.TenantID = tenantID
		out = append(out, r)
	}
	SortRules(out)
	return out
}

func mergeExceptions(prev, next []AddressException, now time.Time, by string) []AddressException {
	old := map[string]AddressException{}
	for _, e := range prev {
		old[e.key()] = e
	}
	out := make([]AddressException, 0, len(next))
	for _, e := range next {
		if o, ok := old[e.key()]; ok {
			e.ID, e.CreatedAt, e.CreatedBy = o.ID, o.CreatedAt, o.CreatedBy
		} else {
			e.ID, e.CreatedAt, e.CreatedBy = nodus.NewID(), now, by
		}
		out = append(out, e)
	}
	SortExceptions(out)
	return out
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

func ruleChange(before, after []Rule) audit.Change {
	return audit.Change{Before: strs(before), After: strs(after)}
}

// maxAuditChanges keeps an egress.update entry well inside the audit
// log's limit on changes.
const maxAuditChanges = 32 << 10

// fitChanges replaces lists too long for the audit log with their length
// and a digest, which still tells whether two entries recorded the same.
func fitChanges(changes map[string]audit.Change) map[string]audit.Change {
	if b, err := audit.MarshalChanges(changes); err == nil && len(b) <= maxAuditChanges {
		return changes
	}
	summary := func(v any) any {
		list, _ := v.([]string)
		sum := sha256.Sum256([]byte(strings.Join(list, "\n")))
		return fmt.Sprintf("%d entries, sha256 %s", len(list), hex.EncodeToString(sum[:]))
	}
	out := map[string]audit.Change{}
	for k, c := range changes {
		if _, ok := c.Before.([]string); ok {
			c = audit.Change{Before: summary(c.Before), After: summary(c.After)}
		}
		out[k] = c
	}
	return out
}

// invalidate drops what the cache holds for tenantID, or for the platform
// when it is "" (which every tenant's decisions read).
func (s *Service) invalidate(tenantID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if tenantID == "" {
		s.platform = nil
		return
	}
	delete(s.tenants, tenantID)
}

// snapshot returns what decisions for tenantID read, from the cache or
// the store. The loads use a scope of their own, narrowed to tenantID:
// the client a caller holds was built for that tenant, and the store
// still refuses any other.
func (s *Service) snapshot(ctx context.Context, tenantID string) (*snapshot, error) {
	now := s.clock.Now()
	s.mu.Lock()
	pl, gen := s.platform, s.gen
	tp, ok := s.tenants[tenantID]
	s.mu.Unlock()

	if pl == nil || !now.Before(pl.expires) {
		p, err := s.store.FindEgressPlatform(nodus.WithAllTenants(ctx))
		if err != nil {
			return nil, fmt.Errorf("egress: load platform rules: %w", err)
		}
		pl = &cachedPlatform{rules: p.Rules, exceptions: map[netip.AddrPort]bool{}, expires: now.Add(s.opts.CacheTTL)}
		for _, e := range p.Exceptions {
			if a, err := netip.ParseAddr(e.IP); err == nil {
				pl.exceptions[netip.AddrPortFrom(a.Unmap(), uint16(e.Port))] = true
			}
		}
		s.mu.Lock()
		if s.gen == gen {
			s.platform = pl
		}
		s.mu.Unlock()
	}
	sn := &snapshot{tenantID: tenantID, mode: ModeEnforce, platformRules: pl.rules, exceptions: pl.exceptions}
	if tenantID == "" {
		return sn, nil
	}
	if !ok || !now.Before(tp.expires) {
		p, err := s.store.FindEgressPolicy(nodus.WithTenant(ctx, tenantID), tenantID)
		if err != nil {
			return nil, fmt.Errorf("egress: load the policy of tenant %s: %w", tenantID, err)
		}
		tp = cachedPolicy{policy: p, expires: now.Add(s.opts.CacheTTL)}
		s.mu.Lock()
		if s.gen == gen {
			if len(s.tenants) >= maxCachedTenants {
				s.tenants = map[string]cachedPolicy{}
			}
			s.tenants[tenantID] = tp
		}
		s.mu.Unlock()
	}
	sn.mode, sn.tenantRules = tp.policy.Mode, tp.policy.Rules
	if !sn.mode.Valid() {
		sn.mode = ModeEnforce
	}
	return sn, nil
}

// Decision is the answer of a dry run: would a request to a URL go out?
type Decision struct {
	Allowed bool `json:"allowed"`
	// Reported is set when report mode lets through what enforcing would
	// refuse; Reason says why it would.
	Reported bool   `json:"reported,omitempty"`
	Reason   Reason `json:"reason,omitempty"`
	Message  string `json:"message"`
	Mode     Mode   `json:"mode"`
	Target   string `json:"target,omitempty"` // host:port
	Rule     *Rule  `json:"rule,omitempty"`   // the rule that allows it
	// AddressesChecked says whether the host's addresses were checked:
	// false when it did not resolve, or when a rule already refused it.
	AddressesChecked bool `json:"addresses_checked"`
}

// maxURL bounds the URL a dry run takes.
const maxURL = 4096

// checkResolveTimeout bounds a dry run's name resolution.
const checkResolveTimeout = 3 * time.Second

// Check tells whether tenantID's clients would send a request to rawURL,
// and why not, without sending it or recording anything. It resolves the
// host, once the rules let it through, to check its addresses; it never
// returns them.
func (s *Service) Check(ctx context.Context, tenantID, rawURL string) (*Decision, error) {
	if err := inScope(ctx, tenantID); err != nil {
		return nil, err
	}
	if rawURL == "" || len(rawURL) > maxURL {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid URL",
			Fields: map[string]string{"url": fmt.Sprintf("required, at most %d bytes", maxURL)}}
	}
	sn, err := s.snapshot(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	d := &Decision{Mode: sn.mode}
	deny := func(r Reason, msg string) (*Decision, error) {
		d.Reason, d.Message = r, msg
		return d, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return deny(ReasonInvalidURL, "the URL cannot be parsed")
	}
	t, reason, err := parseTarget(u)
	if err != nil {
		return deny(reason, err.Error())
	}
	d.Target = t.hostPort()
	d.Rule = sn.allow(t)
	excepted := d.Rule != nil
	if t.host.ip.IsValid() {
		d.AddressesChecked = true
		if r := addrReason(sn, t, excepted); r != "" {
			d.Rule = nil
			return deny(r, addrMessage(r, t))
		}
	}
	if d.Rule == nil {
		if sn.mode == ModeEnforce {
			return deny(ReasonNotAllowed, "no platform or tenant rule allows this host, port and path")
		}
		d.Reported, d.Reason = true, ReasonNotAllowed
	}
	if !t.host.ip.IsValid() {
		rctx, cancel := context.WithTimeout(ctx, checkResolveTimeout)
		addrs, err := s.resolver.LookupNetIP(rctx, "ip", t.host.name)
		cancel()
		if err == nil && len(addrs) > 0 {
			d.AddressesChecked = true
			for _, a := range addrs {
				if r := sn.checkAddr(a, t.port, excepted); r != "" {
					d.Reported = false
					return deny(r, fmt.Sprintf("%s resolves to a %s address, which is always denied", t.host.name, r))
				}
			}
		}
	}
	d.Allowed = true
	switch {
	case d.Reported:
		d.Message = "no rule allows this destination; report mode lets it through and records it"
	case d.Rule.TenantID == "":
		d.Message = "allowed by a platform rule"
	default:
		d.Message = "allowed by a rule of the tenant"
	}
	if !d.AddressesChecked {
		d.Message += "; the host did not resolve, so its addresses were not checked"
	}
	return d, nil
}

// addrReason checks an IP-literal target: its spelling, then its range
// (the platform's exceptions holding when excepted).
func addrReason(sn *snapshot, t target, excepted bool) Reason {
	if !t.host.canonical {
		if r := classify(t.host.ip); r != "" {
			return r
		}
		return ReasonIPSpelling
	}
	return sn.checkAddr(t.host.ip, t.port, excepted)
}

func addrMessage(r Reason, t target) string {
	if !t.host.canonical {
		return "an IP address must be written in its standard form"
	}
	return fmt.Sprintf("%s addresses are always denied (unless the platform makes an exception for the address and port)", r)
}

// refuse counts, logs and audits a refusal and returns its error.
func (s *Service) refuse(ctx context.Context, tenantID string, mode Mode, to string, r Reason, detail string) error {
	s.denied.With(string(r)).Inc()
	s.log.LogAttrs(ctx, slog.LevelWarn, "egress denied", slog.String("tenant_id", tenantID),
		slog.String("target", to), slog.String("reason", string(r)), slog.String("mode", string(mode)),
		slog.String("detail", detail))
	s.record(ctx, "egress.denied", tenantID, to, r, mode)
	if s.opts.Denied != nil && tenantID != "" {
		s.opts.Denied(ctx, Denial{TenantID: tenantID, Target: to, Reason: r, Detail: detail, Mode: mode})
	}
	return denied(&DeniedError{Reason: r, Target: to, Detail: detail})
}

// pass counts, logs and audits what report mode lets through.
func (s *Service) pass(ctx context.Context, tenantID, to string, r Reason) {
	s.reported.With(string(r)).Inc()
	s.log.LogAttrs(ctx, slog.LevelInfo, "egress reported", slog.String("tenant_id", tenantID),
		slog.String("target", to), slog.String("reason", string(r)), slog.String("mode", string(ModeReport)))
	s.record(ctx, "egress.reported", tenantID, to, r, ModeReport)
}

// auditTimeout bounds an audit write on the request path; a request
// already cancelled still gets its refusal recorded.
const auditTimeout = 5 * time.Second

func (s *Service) record(ctx context.Context, action, tenantID, to string, r Reason, mode Mode) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	err := s.audit.Record(actx, audit.Entry{Action: action, ActorKind: audit.ActorSystem, TenantID: tenantID,
		TargetType: "url", TargetID: to, Changes: map[string]audit.Change{
			"reason": {After: string(r)}, "mode": {After: string(mode)},
		}})
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "egress: audit failed", slog.String("action", action),
			slog.String("tenant_id", tenantID), slog.String("target", to), slog.Any("err", err))
	}
}

// Client returns an HTTP client for tenantID's outbound requests ("" for
// the platform's own, under the platform rules alone). Clients of one
// tenant share a transport and its connections; the caller may change the
// returned client's Timeout, and nothing else.
func (s *Service) Client(tenantID string) *http.Client {
	return &http.Client{
		Transport:     s.transport(tenantID),
		CheckRedirect: s.checkRedirect(tenantID),
		Timeout:       s.opts.Timeout,
	}
}

// PurgeTenant removes a deleted tenant's policy and rules and forgets
// them in the cache. It is idempotent.
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	if err := inScope(ctx, tenantID); err != nil {
		return err
	}
	if _, err := s.store.DeleteEgressTenant(ctx, tenantID); err != nil {
		return fmt.Errorf("egress: purge tenant %s: %w", tenantID, err)
	}
	s.invalidate(tenantID)
	return nil
}
