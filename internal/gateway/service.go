package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Secrets resolves a deployment's key handle, in-process only. The vault
// implements it (through a small adapter in cmd/nodus).
type Secrets interface {
	// ResolveKey returns the value a handle of tenantID stands for and the
	// hosts it may be sent to.
	ResolveKey(ctx context.Context, tenantID, handleID string) (value string, hosts []string, err error)
}

// Clients gives the egress-checked HTTP client of a tenant; *egress.Service
// is one.
type Clients interface {
	Client(tenantID string) *http.Client
}

// Auditor records management changes; *audit.Service is one.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Config assembles a Service.
type Config struct {
	Store   Store
	Secrets Secrets
	Egress  Clients
	Audit   Auditor
	Logger  *slog.Logger
	Metrics *metrics.Registry
	Now     func() time.Time
	// ConfigTTL is how long a tenant's deployments, settings and prices,
	// and a virtual key, are served from memory. Changes made through this
	// process apply at once; another replica's changes within ConfigTTL.
	// Default 5s.
	ConfigTTL time.Duration
	// Spend tunes the spend-log writer.
	Spend SpendWriterOptions
	// Providers replaces the provider of a kind (tests); the defaults speak
	// OpenAI's, Azure's and Anthropic's APIs and the extractive model.
	Providers map[string]Provider
	// Router tunes routing (tests inject a clock, randomness and sleep).
	Router RouterOptions
	// DefaultMaxOutput is the completion size assumed when reserving the
	// worst-case cost of a request that sets no max_tokens. Default 4096.
	DefaultMaxOutput int64
	// Calls, when set, is told of every finished call (LLM tracing).
	Calls CallObserver
	// BudgetAlerts, when set, is told when a call's settled cost takes a
	// budget across 80% of its maximum or to its maximum: once per
	// threshold and period, however many calls follow (notifications).
	// It runs at the end of that call, so it must not block for long.
	BudgetAlerts func(ctx context.Context, a BudgetAlert)
	// Quotas, when set, shares every budget and every key's rate limits
	// with the other replicas on the same store (quota.go). Without it
	// they are this process's alone, which is right for one replica.
	Quotas QuotaStore
}

// Service is the gateway: it authenticates virtual keys, applies model
// access, rate limits and budgets, routes calls to providers and records
// their spend. It is safe for concurrent use.
type Service struct {
	store     Store
	secrets   Secrets
	egress    Clients
	audit     Auditor
	log       *slog.Logger
	now       func() time.Time
	ttl       time.Duration
	maxOutput int64
	providers map[string]Provider
	catalogue map[string]Price
	calls     CallObserver
	alerts    func(ctx context.Context, a BudgetAlert)

	router  *Router
	limiter *Limiter
	ledger  *Ledger
	quotas  *quotas // nil when budgets and limits are not shared
	// budgetsCursor and budgetsReadAt are where the last read of budget
	// changes left off and when it started (Start, then coordinate's
	// goroutine only).
	budgetsCursor int64
	budgetsReadAt time.Time
	started       atomic.Bool
	spend         *SpendWriter
	m             *gatewayMetrics

	mu       sync.Mutex
	tenants  map[string]*tenantEntry
	keys     map[string]*keyEntry // by string(hash)
	budgetID map[budgetRef]string // which budget applies to a scope and subject
	keyUse   map[string]time.Time // when each key's use was last noted, for last_used_at
	keyUsed  []string             // keys used since their last_used_at was last written
	closed   bool
}

type budgetRef struct{ tenant, scope, subject string }

// tenantEntry caches a tenant's routing configuration; load serialises
// the reload so a burst of requests after expiry reads the store once.
type tenantEntry struct {
	load   sync.Mutex
	mu     sync.RWMutex
	cfg    *tenantConfig
	expire time.Time
}

type keyEntry struct {
	key    Key
	expire time.Time
}

// tenantConfig is one tenant's routing configuration, read-only once built.
type tenantConfig struct {
	groups   map[string][]Deployment // active and inactive, by public model name
	byID     map[string]*Deployment
	settings RouterSettings
	prices   map[string]Price
	client   *http.Client // the tenant's egress client, made once per load
}

// NewService builds the gateway. Start its background work with Start.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Egress == nil {
		return nil, errors.New("gateway: a store and an egress client factory are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ConfigTTL <= 0 {
		cfg.ConfigTTL = 5 * time.Second
	}
	if cfg.DefaultMaxOutput <= 0 {
		cfg.DefaultMaxOutput = 4096
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewRegistry()
	}
	s := &Service{
		store: cfg.Store, secrets: cfg.Secrets, egress: cfg.Egress, audit: cfg.Audit,
		log: cfg.Logger, now: cfg.Now, ttl: cfg.ConfigTTL, maxOutput: cfg.DefaultMaxOutput,
		catalogue: Catalogue(), calls: cfg.Calls, alerts: cfg.BudgetAlerts,
		tenants:  map[string]*tenantEntry{},
		keys:     map[string]*keyEntry{},
		budgetID: map[budgetRef]string{},
		keyUse:   map[string]time.Time{},
	}
	s.providers = defaultProviders()
	for kind, p := range cfg.Providers {
		s.providers[kind] = p
	}
	if cfg.Router.Now == nil {
		cfg.Router.Now = cfg.Now
	}
	s.router = NewRouter(cfg.Router)
	s.limiter = NewLimiter()
	s.ledger = NewLedger(cfg.Now, s.resetBudget)
	s.m = newGatewayMetrics(cfg.Metrics, s)
	spendOpts := cfg.Spend
	if spendOpts.Logger == nil {
		spendOpts.Logger = cfg.Logger
	}
	s.m.hookSpend(&spendOpts)
	if cfg.Quotas != nil {
		s.quotas = newQuotas(cfg.Quotas, cfg.Now, cfg.Logger)
		s.quotas.observe = func(result string) { s.m.claims.With(result).Inc() }
		s.ledger.q, s.limiter.q = s.quotas, s.quotas
		spendOpts.OnBudgets, spendOpts.Guard = s.ledger.Written, &s.quotas.spendMu
	}
	s.spend = NewSpendWriter(cfg.Store, spendOpts)
	return s, nil
}

// Start loads every budget and starts the spend writer and the sweeper
// of idle rate-limit state. It returns once the budgets are loaded.
func (s *Service) Start(ctx context.Context) error {
	readAt := s.now()
	all, err := s.store.BudgetChanges(nodus.WithAllTenants(ctx), 0)
	if err != nil {
		return fmt.Errorf("gateway: load budgets: %w", err)
	}
	budgets := all.Budgets
	if err := s.ledger.Load(budgets); err != nil {
		return fmt.Errorf("gateway: load budgets: %w", err)
	}
	s.budgetsCursor, s.budgetsReadAt = all.Next, readAt
	s.mu.Lock()
	for _, b := range budgets {
		s.budgetID[budgetRef{b.TenantID, b.Scope, b.SubjectID}] = b.ID
	}
	s.mu.Unlock()
	s.spend.Start()
	s.started.Store(true)
	go s.sweep(ctx)
	if s.quotas != nil {
		go s.coordinate(ctx)
	}
	return nil
}

// budgetsEvery is how often replicas sharing budgets read back the budgets
// changed since their last read: a budget created, changed or removed
// through another replica applies here within that time.
const budgetsEvery = 2 * time.Second

// tombstonesKept is how long the store remembers a deleted budget for
// the replicas' reads of changes; a replica whose last read is older than
// half of it (the store unreachable that long) reads every budget again.
const tombstonesKept = 24 * time.Hour

// coordinate renews this replica's claims and hands back unused parts
// every claimEvery, and reads the budgets' changes every budgetsEvery.
func (s *Service) coordinate(ctx context.Context) {
	t := time.NewTicker(claimEvery)
	defer t.Stop()
	lastLoad := s.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.now().Sub(lastLoad) >= budgetsEvery {
			lastLoad = s.now()
			if err := s.reloadBudgets(ctx); err != nil {
				s.log.Warn("gateway: reload shared budgets", "err", err)
			}
		}
		s.quotas.sync(ctx, s.ledger, s.limiter)
	}
}

// reloadBudgets reads the budgets changed since the last read into the
// ledger and the scope index: written by another replica (its spend, an
// edit, a rollover), created, or deleted. Every budget is read again after
// a long gap, when the store may have forgotten deletions since.
func (s *Service) reloadBudgets(ctx context.Context) error {
	since := s.budgetsCursor
	if s.now().Sub(s.budgetsReadAt) >= tombstonesKept/2 {
		since = 0
	}
	// Under spendMu, so no spend is both in the store's figures and still
	// unwritten here.
	s.quotas.spendMu.Lock()
	readAt := s.now()
	ch, err := s.store.BudgetChanges(nodus.WithAllTenants(ctx), since)
	var removed []Budget
	kept := 0
	if err == nil {
		if since == 0 {
			kept, err = s.ledger.Refresh(ch.Budgets, readAt)
		} else {
			removed, kept, err = s.ledger.Apply(ch.Budgets, ch.Deleted, readAt)
		}
	}
	s.quotas.spendMu.Unlock()
	if err != nil {
		return err
	}
	s.budgetsReadAt = readAt
	s.budgetsCursor = ch.Next
	if kept > 0 {
		// A budget set here while the read ran was left as set; the next
		// read starts where this one did (from 0 after a full read), as
		// the store may hold a later write to it.
		s.budgetsCursor = since
	}
	if since == 0 {
		s.indexAllBudgets()
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range ch.Budgets {
		if s.ledger.Has(b.ID) {
			s.budgetID[budgetRef{b.TenantID, b.Scope, b.SubjectID}] = b.ID
		}
	}
	for _, b := range removed {
		ref := budgetRef{b.TenantID, b.Scope, b.SubjectID}
		if s.budgetID[ref] == b.ID {
			delete(s.budgetID, ref)
		}
	}
	return nil
}

// indexAllBudgets rebuilds the scope index from the whole ledger, after a
// read of every budget.
func (s *Service) indexAllBudgets() {
	ids := map[budgetRef]string{}
	for _, b := range s.ledger.Snapshot() {
		ids[budgetRef{b.TenantID, b.Scope, b.SubjectID}] = b.ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A budget created here after the snapshot is in the ledger and in
	// the old index only.
	for ref, id := range s.budgetID {
		if _, ok := ids[ref]; !ok && s.ledger.Has(id) {
			ids[ref] = id
		}
	}
	s.budgetID = ids
}

// sweep drops idle rate-limit windows and expired cache entries, and
// once an hour the tombstones of budgets deleted more than tombstonesKept
// ago.
func (s *Service) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		if now.Sub(pruned) >= time.Hour {
			pruned = now
			if _, err := s.store.PruneBudgetTombstones(nodus.WithAllTenants(ctx), now.Add(-tombstonesKept)); err != nil {
				s.log.Warn("gateway: prune deleted budgets' tombstones", "err", err)
			}
		}
		s.limiter.Sweep(now)
		s.mu.Lock()
		for h, e := range s.keys {
			if now.After(e.expire) {
				delete(s.keys, h)
			}
		}
		for id, at := range s.keyUse {
			if now.Sub(at) >= keyTouchEvery {
				delete(s.keyUse, id)
			}
		}
		s.mu.Unlock()
		s.writeKeyUse(ctx)
	}
}

// keyTouchEvery is how stale a key's last_used_at may be: a key's use is
// written at most once per interval, in one batch for every key.
const keyTouchEvery = time.Minute

// noteKeyUse marks a key used now, unless it was noted less than
// keyTouchEvery ago.
func (s *Service) noteKeyUse(id string, now time.Time) {
	s.mu.Lock()
	if last, ok := s.keyUse[id]; !ok || now.Sub(last) >= keyTouchEvery {
		s.keyUse[id] = now
		s.keyUsed = append(s.keyUsed, id)
	}
	s.mu.Unlock()
}

// writeKeyUse stores last_used_at for the keys noted since the last
// write. It is advisory: a failure is logged, not retried.
func (s *Service) writeKeyUse(ctx context.Context) {
	s.mu.Lock()
	ids := s.keyUsed
	s.keyUsed = nil
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := s.store.TouchKeys(context.WithoutCancel(ctx), s.now(), ids); err != nil {
		s.log.Warn("gateway: record key use", "keys", len(ids), "err", err)
	}
}

// Close stops accepting spend and writes what is buffered; call it after
// the HTTP server has drained its requests.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.writeKeyUse(ctx)
	err := s.spend.Close(ctx)
	if s.quotas != nil && s.started.Load() {
		// Spend is written: hand this replica's part of every budget and
		// limit back rather than leave it claimed until it expires, which
		// is what happens when this fails.
		if rerr := s.quotas.release(ctx, s.ledger, s.limiter); rerr != nil {
			s.log.Warn("gateway: hand back shared claims at shutdown; they expire within a minute", "err", rerr)
		}
	}
	return err
}

// FlushKeyUse writes the keys' last use noted so far (tests, shutdown).
func (s *Service) FlushKeyUse(ctx context.Context) { s.writeKeyUse(ctx) }

// FlushSpend writes every spend-log row recorded so far (tests, shutdown).
func (s *Service) FlushSpend(ctx context.Context) error { return s.spend.Flush(ctx) }

// resetBudget persists a budget's rollover to a new period.
func (s *Service) resetBudget(ctx context.Context, id string, prev, next time.Time) (bool, error) {
	return s.store.ResetBudget(nodus.WithAllTenants(ctx), id, prev, next)
}

// config returns a tenant's routing configuration, from memory when fresh.
func (s *Service) config(ctx context.Context, tenantID string) (*tenantConfig, error) {
	s.mu.Lock()
	e := s.tenants[tenantID]
	if e == nil {
		e = &tenantEntry{}
		s.tenants[tenantID] = e
	}
	s.mu.Unlock()
	now := s.now()
	e.mu.RLock()
	cfg, fresh := e.cfg, now.Before(e.expire)
	e.mu.RUnlock()
	if fresh {
		return cfg, nil
	}
	e.load.Lock()
	defer e.load.Unlock()
	e.mu.RLock()
	cfg, fresh = e.cfg, s.now().Before(e.expire)
	e.mu.RUnlock()
	if fresh {
		return cfg, nil
	}
	cfg, err := s.loadConfig(nodus.WithTenant(ctx, tenantID), tenantID)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.cfg, e.expire = cfg, s.now().Add(s.ttl)
	e.mu.Unlock()
	return cfg, nil
}

func (s *Service) loadConfig(ctx context.Context, tenantID string) (*tenantConfig, error) {
	deps, err := s.store.ListDeployments(ctx)
	if err != nil {
		return nil, fmt.Errorf("gateway: load deployments: %w", err)
	}
	settings, err := s.store.FindRouterSettings(ctx)
	if err != nil && nodus.ErrorCode(err) != nodus.ENOTFOUND {
		return nil, fmt.Errorf("gateway: load router settings: %w", err)
	}
	settings.TenantID = tenantID
	overrides, err := s.store.ListPriceOverrides(ctx)
	if err != nil {
		return nil, fmt.Errorf("gateway: load prices: %w", err)
	}
	cfg := &tenantConfig{groups: map[string][]Deployment{}, byID: map[string]*Deployment{}, settings: settings,
		prices: make(map[string]Price, len(overrides)), client: s.egress.Client(tenantID)}
	// The gateway bounds its calls itself: the deployment's timeout for an
	// answer and for every gap in a stream, the route's and the caller's
	// deadlines for the whole. The client's own whole-request timeout
	// would cut a long stream that is still flowing, and costs a timer and
	// a goroutine per call.
	cfg.client.Timeout = 0
	for _, d := range deps {
		cfg.groups[d.ModelName] = append(cfg.groups[d.ModelName], d)
	}
	for name := range cfg.groups {
		g := cfg.groups[name]
		for i := range g {
			cfg.byID[g[i].ID] = &g[i]
		}
	}
	for _, p := range overrides {
		cfg.prices[p.Model] = p.Price
	}
	return cfg, nil
}

// invalidate drops a tenant's cached configuration after a change.
func (s *Service) invalidate(tenantID string) {
	s.mu.Lock()
	delete(s.tenants, tenantID)
	s.mu.Unlock()
}

// group returns the deployments of a public model name. The built-in
// extractive model is every tenant's unless the tenant maps the name
// itself.
func (c *tenantConfig) group(model string) []Deployment {
	if g, ok := c.groups[model]; ok {
		return g
	}
	if model == ExtractiveModel {
		return []Deployment{extractiveDeployment}
	}
	return nil
}

// extractiveDeployment is the built-in deployment of nodus/extractive.
var extractiveDeployment = Deployment{
	ID: "builtin-extractive", ModelName: ExtractiveModel, Provider: ProviderExtractive,
	UpstreamModel: ExtractiveModel, Mode: ModeChat, Weight: 1, IsActive: true,
}

// models lists the public model names of a tenant with a mode, sorted.
func (c *tenantConfig) models() []string {
	names := make([]string, 0, len(c.groups)+1)
	seen := false
	for name, g := range c.groups {
		if anyActive(g) {
			names = append(names, name)
		}
		if name == ExtractiveModel {
			seen = true
		}
	}
	if !seen {
		names = append(names, ExtractiveModel)
	}
	return names
}

func anyActive(g []Deployment) bool {
	for _, d := range g {
		if d.IsActive {
			return true
		}
	}
	return false
}

// price returns the price of a deployment's upstream model, falling back
// to the public name, and whether one is known.
func (s *Service) price(cfg *tenantConfig, d *Deployment) (Price, bool) {
	if d.Provider == ProviderExtractive {
		return Price{}, true
	}
	if p, _, ok := LookupPrice(s.catalogue, cfg.prices, d.UpstreamModel); ok {
		return p, true
	}
	p, _, ok := LookupPrice(s.catalogue, cfg.prices, d.ModelName)
	return p, ok
}

// worstPrice is the highest price among the deployments a request could
// reach, fallbacks included, for the budget reservation.
func (s *Service) worstPrice(cfg *tenantConfig, model string) Price {
	var worst Price
	consider := func(g []Deployment) {
		for i := range g {
			p, _ := s.price(cfg, &g[i])
			worst.Input = max(worst.Input, p.Input)
			worst.CachedInput = max(worst.CachedInput, p.CachedInput)
			worst.Output = max(worst.Output, p.Output)
		}
	}
	consider(cfg.group(model))
	for _, fb := range cfg.settings.Fallbacks[model] {
		consider(cfg.group(fb))
	}
	return worst
}

// PurgeTenant removes every gateway record of a tenant (a TenantPurger).
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	if err := s.store.DeleteGatewayTenant(nodus.WithTenant(ctx, tenantID)); err != nil {
		return fmt.Errorf("gateway: purge tenant %s: %w", tenantID, err)
	}
	s.invalidate(tenantID)
	s.forgetKeys()
	s.mu.Lock()
	for ref, id := range s.budgetID {
		if ref.tenant == tenantID {
			delete(s.budgetID, ref)
			s.ledger.Remove(id)
		}
	}
	s.mu.Unlock()
	return nil
}

// pruneChunk is how many spend rows one retention statement deletes, so a
// large backlog never holds a long write lock.
const pruneChunk = 5000

// PruneSpend deletes every tenant's spend-log rows that started before
// before, in chunks, and returns how many it deleted. The daily rollups
// are kept: dashboards and budgets do not read the rows.
func (s *Service) PruneSpend(ctx context.Context, before time.Time) (int, error) {
	all := nodus.WithAllTenants(ctx)
	total := 0
	for {
		n, err := s.store.DeleteSpendBefore(all, before, pruneChunk)
		total += n
		if err != nil {
			return total, fmt.Errorf("gateway: prune spend: %w", err)
		}
		if n < pruneChunk {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
