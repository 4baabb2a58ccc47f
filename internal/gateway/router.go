package gateway

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the router: it picks a deployment of a model's group,
// calls the caller's attempt on it, and on failure retries, waits out rate
// limits and falls back to other models (reference gateway.md §2.4,
// SECURITY.md check 29). It keeps per-deployment health: in-flight calls,
// requests and tokens in the current minute, and a cooldown after repeated
// failures that ends with a single probe (a circuit breaker's half-open
// state), so a broken upstream is neither hammered nor forgotten.

// Routing strategies (RouterSettings.Strategy).
const (
	StrategyWeighted  = "weighted"   // weighted random by Deployment.Weight
	StrategyLeastBusy = "least-busy" // fewest in-flight calls; ties weighted random
)

// Defaults for zero RouterSettings fields.
const (
	defaultNumRetries   = 2
	defaultAllowedFails = 3
	defaultFailWindow   = time.Minute
	defaultCooldown     = 30 * time.Second
	defaultBaseBackoff  = 200 * time.Millisecond
	defaultMaxBackoff   = 10 * time.Second
)

// Attempt makes one call on d. committed is true once the first byte has
// reached the client; from then on the router never retries, whatever the
// error. A failure the router may retry is an *UpstreamError whose
// Retryable is true.
type Attempt func(ctx context.Context, d *Deployment) (committed bool, err error)

// NoDeploymentError is a call the router could not place anywhere: the
// model has no active deployment (Unknown, a 404), or every deployment of
// it and of its fallbacks is cooled down or saturated (a 503).
type NoDeploymentError struct {
	Model   string
	Unknown bool
	// RetryAfter is the earliest known moment a deployment frees (a cooldown
	// ending, a minute's requests expiring); 0 when only in-flight calls
	// block and nobody knows when they end.
	RetryAfter time.Duration
}

func (e *NoDeploymentError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("model %s not found", e.Model)
	}
	return fmt.Sprintf("no deployment of model %s available", e.Model)
}

// Unwrap gives the HTTP layer and in-process callers the usual Nodus code.
func (e *NoDeploymentError) Unwrap() error {
	if e.Unknown {
		return nodus.Errorf(nodus.ENOTFOUND, "model %s not found", e.Model)
	}
	return &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "no deployment of model " + e.Model + " available", RetryAfter: e.RetryAfter}
}

// DeploymentHealth is one deployment's routing state, for an admin view.
type DeploymentHealth struct {
	ID       string
	InFlight int
	// CooledDownUntil is when the cooldown ends; zero when healthy. Once it
	// has passed the deployment is half-open until a probe succeeds.
	CooledDownUntil time.Time
	// RateLimitedUntil is when the upstream's last Retry-After ends.
	RateLimitedUntil time.Time
	RecentFailures   int // retryable failures inside the fail window
}

// RouterOptions are the router's dependencies; zero fields take defaults.
type RouterOptions struct {
	Now   func() time.Time                                 // default time.Now
	IntN  func(n int) int                                  // a random int in [0, n); default math/rand/v2's IntN
	Sleep func(ctx context.Context, d time.Duration) error // waits d or until ctx is done; default a timer
	// BaseBackoff and MaxBackoff bound the exponential backoff with full
	// jitter before a deployment is retried: attempt k waits a random time
	// in [0, min(Max, Base·2^k)). Defaults 200ms and 10s. A Retry-After
	// above MaxBackoff is not slept: the call moves on to a fallback.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
}

// Router routes calls across deployments. It is safe for concurrent use.
// Its state is keyed by deployment id and lives until Forget.
type Router struct {
	now         func() time.Time
	intN        func(n int) int
	sleep       func(ctx context.Context, d time.Duration) error
	baseBackoff time.Duration
	maxBackoff  time.Duration

	states sync.Map // deployment id → *deploymentState
}

// NewRouter returns a router with no deployment state.
func NewRouter(opts RouterOptions) *Router {
	r := &Router{
		now:         opts.Now,
		intN:        opts.IntN,
		sleep:       opts.Sleep,
		baseBackoff: cmp.Or(opts.BaseBackoff, defaultBaseBackoff),
		maxBackoff:  cmp.Or(opts.MaxBackoff, defaultMaxBackoff),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.intN == nil {
		r.intN = rand.IntN
	}
	if r.sleep == nil {
		r.sleep = sleepContext
	}
	return r
}

// sleepContext waits d, or less if ctx is done first.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// routePolicy is the part of RouterSettings one route applies, with the
// defaults filled in. It is kept by value: a pointer to a copy of the
// settings would make every route allocate.
type routePolicy struct {
	numRetries   int
	leastBusy    bool
	allowedFails int
	failWindow   time.Duration
	cooldown     time.Duration
}

// policyOf fills zero settings with defaults. A negative NumRetries means
// none, since zero already means the default.
func policyOf(s RouterSettings) routePolicy {
	p := routePolicy{
		numRetries:   s.NumRetries,
		leastBusy:    s.Strategy == StrategyLeastBusy,
		allowedFails: cmp.Or(max(s.AllowedFails, 0), defaultAllowedFails),
		failWindow:   cmp.Or(max(s.FailWindow, 0), defaultFailWindow),
		cooldown:     cmp.Or(max(s.CooldownTime, 0), defaultCooldown),
	}
	switch {
	case p.numRetries == 0:
		p.numRetries = defaultNumRetries
	case p.numRetries < 0:
		p.numRetries = 0
	}
	return p
}

// Route places one call for model. group returns a model's deployments; it
// is called for the model and then for each fallback as needed. Each group
// gets 1 + NumRetries attempts: a retryable failure moves to another
// eligible deployment of the group at once, or, when there is none, waits a
// backoff (at least the Retry-After of a 429) and tries the same one again;
// then the fallbacks of settings.Fallbacks[model] are tried in order, under
// the same rules. A call that committed, a non-retryable error and a done
// ctx end the route at once.
//
// The deployment returned points into the slice group returned. On error it
// is the last deployment tried, nil when none was; the error is the last
// attempt's, wrapped, or a *NoDeploymentError when no attempt was possible.
func (r *Router) Route(ctx context.Context, settings RouterSettings, model string, group func(model string) []Deployment, try Attempt) (*Deployment, error) {
	ds := group(model)
	if !slices.ContainsFunc(ds, func(d Deployment) bool { return d.IsActive }) {
		return nil, &NoDeploymentError{Model: model, Unknown: true}
	}
	rt := routing{r: r, p: policyOf(settings), try: try, soonest: math.MaxInt64}
	if d, err, final := rt.routeGroup(ctx, ds); final {
		return d, err
	}
	for _, fb := range settings.Fallbacks[model] {
		if fb == model {
			continue
		}
		if d, err, final := rt.routeGroup(ctx, group(fb)); final {
			return d, err
		}
	}
	if rt.lastErr != nil {
		return rt.last, fmt.Errorf("route %s: all deployments failed, last %s: %w", model, rt.last.ID, rt.lastErr)
	}
	ra := rt.soonest
	if ra == math.MaxInt64 {
		ra = 0
	}
	return nil, &NoDeploymentError{Model: model, RetryAfter: ra}
}

// routing is the state of one Route call.
type routing struct {
	r       *Router
	p       routePolicy
	try     Attempt
	last    *Deployment   // the last deployment tried
	lastErr error         // its retryable error
	soonest time.Duration // earliest known wait among ineligible deployments
}

// routeGroup makes up to 1 + NumRetries attempts on one group. final is
// true when the route is over: success, or an error not to retry.
func (rt *routing) routeGroup(ctx context.Context, ds []Deployment) (d *Deployment, err error, final bool) {
	var triedBuf [8]int
	tried := triedBuf[:0]
	for attempt := 0; attempt <= rt.p.numRetries; attempt++ {
		if err := ctx.Err(); err != nil {
			return rt.last, fmt.Errorf("route: %w", err), true
		}
		i, st, probe := rt.r.pick(ds, tried, rt.p.leastBusy, &rt.soonest)
		if i < 0 {
			return nil, nil, false
		}
		d := &ds[i]
		tried = append(tried, i)
		rt.last = d
		committed, err := rt.try(ctx, d)
		ue, retryable := retryableError(ctx, err)
		st.finish(rt.r.now(), probe, err == nil, ue, rt.p)
		switch {
		case err == nil:
			return d, nil, true
		case committed || !retryable:
			return d, fmt.Errorf("route: deployment %s: %w", d.ID, err), true
		}
		rt.lastErr = err
		if attempt == rt.p.numRetries || rt.r.othersEligible(ds, i) {
			continue
		}
		// Only d is left: wait before trying it again, unless the wait is
		// too long to hold the caller or d stays cooled down past it; then
		// fall back.
		wait := rt.r.backoff(attempt)
		if ue.Class == ErrClassRateLimit {
			if ue.RetryAfter > rt.r.maxBackoff {
				return nil, nil, false
			}
			wait = max(wait, ue.RetryAfter)
		}
		if st.cooledBeyond(rt.r.now().Add(wait)) {
			return nil, nil, false
		}
		if err := rt.r.sleep(ctx, wait); err != nil {
			return d, fmt.Errorf("route: backoff: %w", err), true
		}
	}
	return nil, nil, false
}

// retryableError returns err's *UpstreamError and whether the call may be
// retried elsewhere. Nothing is retryable once our own caller has gone: the
// upstream's error is then only a consequence.
func retryableError(ctx context.Context, err error) (*UpstreamError, bool) {
	if err == nil || ctx.Err() != nil {
		return nil, false
	}
	ue, ok := AsUpstreamError(err)
	if !ok || !ue.Retryable() {
		return nil, false
	}
	return ue, true
}

// backoff is the full-jitter wait before retry number attempt.
func (r *Router) backoff(attempt int) time.Duration {
	ceiling := r.baseBackoff
	for range attempt {
		if ceiling >= r.maxBackoff/2 {
			ceiling = r.maxBackoff
			break
		}
		ceiling *= 2
	}
	ceiling = min(ceiling, r.maxBackoff)
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(r.intN(int(ceiling)))
}

// candidate is an eligible deployment during one pick.
type candidate struct {
	i        int // index in the group
	st       *deploymentState
	weight   int
	inFlight int
	tried    bool // already tried by this route
}

// pick chooses an eligible deployment of ds, preferring those this route
// has not tried, and takes a slot on it: in-flight, the minute's request
// count and, when half-open, the probe. probe reports the last. It returns
// -1 when nothing is eligible, lowering *soonest to the earliest known
// moment a deployment frees. It allocates nothing for groups of up to 16.
func (r *Router) pick(ds []Deployment, tried []int, leastBusy bool, soonest *time.Duration) (i int, st *deploymentState, probe bool) {
	now := r.now()
	var buf [16]candidate
	cands := buf[:0]
	untried := 0
	for i := range ds {
		d := &ds[i]
		if !d.IsActive {
			continue
		}
		st := r.state(d.ID)
		inFlight, wait, ok := st.check(d, now)
		if !ok {
			if wait > 0 && wait < *soonest {
				*soonest = wait
			}
			continue
		}
		c := candidate{i: i, st: st, weight: max(d.Weight, 1), inFlight: inFlight, tried: slices.Contains(tried, i)}
		if !c.tried {
			untried++
		}
		cands = append(cands, c)
	}
	if untried > 0 {
		cands = slices.DeleteFunc(cands, func(c candidate) bool { return c.tried })
	}
	// Another call may take the last slot between check and acquire; then
	// drop that candidate and choose again.
	for len(cands) > 0 {
		k := r.choose(cands, leastBusy)
		c := cands[k]
		if probe, ok := c.st.acquire(&ds[c.i], now); ok {
			return c.i, c.st, probe
		}
		cands = slices.Delete(cands, k, k+1)
	}
	return -1, nil, false
}

// choose returns a candidate's index: weighted random among all, or, for
// least-busy, among those with the fewest calls in flight.
func (r *Router) choose(cands []candidate, leastBusy bool) int {
	least := math.MaxInt
	if leastBusy {
		for _, c := range cands {
			least = min(least, c.inFlight)
		}
	}
	total := 0
	for _, c := range cands {
		if c.inFlight <= least {
			total += c.weight
		}
	}
	x := r.intN(total)
	for k, c := range cands {
		if c.inFlight > least {
			continue
		}
		if x -= c.weight; x < 0 {
			return k
		}
	}
	return len(cands) - 1 // unreachable while intN returns [0, total)
}

// othersEligible reports whether a deployment of ds other than ds[skip]
// could take a call now.
func (r *Router) othersEligible(ds []Deployment, skip int) bool {
	now := r.now()
	for i := range ds {
		if i == skip || !ds[i].IsActive {
			continue
		}
		if _, _, ok := r.state(ds[i].ID).check(&ds[i], now); ok {
			return true
		}
	}
	return false
}

func (r *Router) state(id string) *deploymentState {
	if v, ok := r.states.Load(id); ok {
		return v.(*deploymentState)
	}
	v, _ := r.states.LoadOrStore(id, &deploymentState{})
	return v.(*deploymentState)
}

// AddTokens counts n tokens a call on the deployment used, so the next
// selections skip it while its minute is over its TPM. A deployment the
// router has never routed to, or has forgotten, is ignored: a call that
// ends after its deployment was deleted must not bring its state back.
func (r *Router) AddTokens(deploymentID string, n int64) {
	v, ok := r.states.Load(deploymentID)
	if !ok {
		return
	}
	st := v.(*deploymentState)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tpm == nil {
		// The limit is the deployment's TPM, set at each selection.
		st.tpm = NewTokenWindow(0, limitSpan, tokenBuckets)
	}
	st.tpm.Add(r.now(), n)
}

// Forget drops a deleted deployment's state.
func (r *Router) Forget(deploymentID string) { r.states.Delete(deploymentID) }

// Health returns every known deployment's state, sorted by id.
func (r *Router) Health() []DeploymentHealth {
	now := r.now()
	var out []DeploymentHealth
	r.states.Range(func(k, v any) bool {
		out = append(out, v.(*deploymentState).health(k.(string), now))
		return true
	})
	slices.SortFunc(out, func(a, b DeploymentHealth) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// deploymentState is one deployment's routing state. A deployment is
// healthy while cooledUntil is zero, cooling down before cooledUntil, and
// half-open after it: one probe at a time goes through until one succeeds
// (healthy again) or fails (cooled down again).
type deploymentState struct {
	mu           sync.Mutex
	inFlight     int
	fails        []time.Time   // retryable failures inside the fail window, oldest first
	failWindow   time.Duration // the window fails was last kept for
	cooledUntil  time.Time
	probing      bool      // a half-open probe is in flight
	blockedUntil time.Time // the upstream's Retry-After
	rpm          *Window
	tpm          *TokenWindow
}

// check reports whether d may take a call at now, and its in-flight count.
// When it may not, wait is how long until it may, 0 when unknown.
func (st *deploymentState) check(d *Deployment, now time.Time) (inFlight int, wait time.Duration, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	wait, ok = st.eligible(d, now)
	return st.inFlight, wait, ok
}

// acquire takes a slot on d if it is still eligible; probe reports that the
// call is the half-open probe.
func (st *deploymentState) acquire(d *Deployment, now time.Time) (probe, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.eligible(d, now); !ok {
		return false, false
	}
	st.inFlight++
	if d.RPM > 0 {
		st.rpm.record(now, 1)
	}
	// Eligible while cooledUntil is set means half-open with no probe out.
	if probe = !st.cooledUntil.IsZero(); probe {
		st.probing = true
	}
	return probe, true
}

// eligible is check's logic; st.mu is held. The deployment's limits are
// read on every call, so an edited deployment takes effect at once.
func (st *deploymentState) eligible(d *Deployment, now time.Time) (time.Duration, bool) {
	if now.Before(st.blockedUntil) {
		return st.blockedUntil.Sub(now), false
	}
	if !st.cooledUntil.IsZero() {
		if now.Before(st.cooledUntil) {
			return st.cooledUntil.Sub(now), false
		}
		if st.probing {
			return 0, false
		}
	}
	if d.MaxConcurrency > 0 && st.inFlight >= d.MaxConcurrency {
		return 0, false
	}
	if d.RPM > 0 {
		if st.rpm == nil {
			st.rpm = NewWindow(d.RPM, limitSpan)
		}
		st.rpm.SetLimit(d.RPM)
		if w := st.rpm.wait(now, 1); w > 0 {
			return w, false
		}
	}
	if d.TPM > 0 && st.tpm != nil {
		st.tpm.SetLimit(d.TPM)
		if w := st.tpm.wait(now, 1); w > 0 { // skipped once at or over its TPM
			return w, false
		}
	}
	return 0, true
}

// cooledBeyond reports whether the deployment is still cooling down at t.
func (st *deploymentState) cooledBeyond(t time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return t.Before(st.cooledUntil)
}

// finish ends a call: it frees the slot and records the outcome. ue is set
// for a retryable failure, the deployment's fault; any other error (a bad
// request, our caller leaving) says nothing about the deployment.
func (st *deploymentState) finish(now time.Time, probe, success bool, ue *UpstreamError, p routePolicy) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.inFlight--
	if probe {
		st.probing = false
	}
	switch {
	case success && probe:
		st.cooledUntil = time.Time{}
		st.fails = st.fails[:0]
	case ue != nil:
		if ue.RetryAfter > 0 {
			// Capped so one odd header cannot take a deployment out for hours.
			until := now.Add(min(ue.RetryAfter, p.cooldown))
			if until.After(st.blockedUntil) {
				st.blockedUntil = until
			}
		}
		if probe {
			st.cooledUntil = now.Add(p.cooldown)
			return
		}
		st.recordFailure(now, p)
	}
}

// recordFailure counts a failure and cools the deployment down when
// AllowedFails of them fall inside FailWindow. Failures of calls that
// started before a cooldown do not extend it: only a probe decides.
func (st *deploymentState) recordFailure(now time.Time, p routePolicy) {
	st.failWindow = p.failWindow
	st.pruneFails(now)
	st.fails = append(st.fails, now)
	if len(st.fails) >= p.allowedFails && st.cooledUntil.IsZero() {
		st.cooledUntil = now.Add(p.cooldown)
		st.fails = st.fails[:0]
	}
}

// pruneFails drops failures at or before now-failWindow.
func (st *deploymentState) pruneFails(now time.Time) {
	edge := now.Add(-st.failWindow)
	k := 0
	for k < len(st.fails) && !st.fails[k].After(edge) {
		k++
	}
	st.fails = append(st.fails[:0], st.fails[k:]...)
}

func (st *deploymentState) health(id string, now time.Time) DeploymentHealth {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pruneFails(now)
	h := DeploymentHealth{ID: id, InFlight: st.inFlight, CooledDownUntil: st.cooledUntil, RecentFailures: len(st.fails)}
	if now.Before(st.blockedUntil) {
		h.RateLimitedUntil = st.blockedUntil
	}
	return h
}
