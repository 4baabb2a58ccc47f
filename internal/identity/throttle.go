package identity

import (
	"strings"
	"sync"
	"time"
)

// Throttle limits failed sign-ins per (account, address) pair and per
// account, in fixed windows. A throttled pair answers "retry later" until
// its window ends: there is no permanent lockout, so an attacker cannot
// lock a user out for good, and a user on another address is not affected
// by the pair limit.
//
// Counts live in this process: with several replicas behind a load
// balancer the effective limit is multiplied by the replica count.
type Throttle struct {
	mu         sync.Mutex
	windows    map[string]*window
	pairLimit  int           // failures per (account, address) per window
	accountLim int           // failures per account, all addresses, per window
	period     time.Duration // window length
	maxKeys    int           // bound on memory
}

type window struct {
	start    time.Time
	failures int
}

// NewThrottle returns a throttle allowing pairLimit failures per account
// and address, and accountLimit per account, every period.
func NewThrottle(pairLimit, accountLimit int, period time.Duration) *Throttle {
	return &Throttle{windows: map[string]*window{}, pairLimit: pairLimit, accountLim: accountLimit,
		period: period, maxKeys: 100_000}
}

func pairKey(login, address string) string {
	return "p\x00" + strings.ToLower(login) + "\x00" + address
}
func accountKey(login string) string { return "a\x00" + strings.ToLower(login) }

// Check reports how long the caller must wait before trying login from
// address again; 0 means go ahead.
func (t *Throttle) Check(login, address string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	wait := t.blocked(pairKey(login, address), t.pairLimit, now)
	return max(wait, t.blocked(accountKey(login), t.accountLim, now))
}

func (t *Throttle) blocked(key string, limit int, now time.Time) time.Duration {
	w := t.windows[key]
	if w == nil || now.Sub(w.start) >= t.period || w.failures < limit {
		return 0
	}
	return w.start.Add(t.period).Sub(now)
}

// Fail counts a failed sign-in.
func (t *Throttle) Fail(login, address string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count(pairKey(login, address), now)
	t.count(accountKey(login), now)
}

func (t *Throttle) count(key string, now time.Time) {
	w := t.windows[key]
	if w == nil || now.Sub(w.start) >= t.period {
		if w == nil && len(t.windows) >= t.maxKeys {
			t.prune(now)
		}
		w = &window{start: now}
		t.windows[key] = w
	}
	w.failures++
}

// prune drops ended windows, and if that is not enough, arbitrary ones:
// memory stays bounded whatever an attacker sends.
func (t *Throttle) prune(now time.Time) {
	for k, w := range t.windows {
		if now.Sub(w.start) >= t.period {
			delete(t.windows, k)
		}
	}
	for k := range t.windows {
		if len(t.windows) < t.maxKeys {
			break
		}
		delete(t.windows, k)
	}
}

// Succeed clears the pair's failures after a successful sign-in. The
// account's count stays: a success from one address does not reset what
// other addresses tried.
func (t *Throttle) Succeed(login, address string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.windows, pairKey(login, address))
}
