package vault

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"
)

// Handle cache defaults.
const (
	DefaultHandleCacheTTL = 30 * time.Second
	handleCacheSize       = 4096     // resolved handles kept at most
	handleCacheBytes      = 16 << 20 // and at most this much plaintext
)

// handleCache keeps resolved handles for a short TTL, so a caller that
// resolves the same handle for the same user on every request (the
// gateway, once per model call) pays one audited read per TTL rather than
// one per call. A fill is the audited read; a hit touches no database and
// writes no audit entry. Every write in this process that could change
// what a handle resolves to forgets the entries it might affect (forget,
// forgetAll), in-flight fills included; other replicas' writes show after
// at most the TTL.
//
// Entries are ordered oldest first; the TTL is the same for all, so the
// oldest is also the first to expire, and a full cache drops from the
// front. The cached plaintext is zeroed when an entry goes.
type handleCache struct {
	ttl      time.Duration // <= 0: nothing is kept, every call fills
	max      int           // entries
	maxBytes int           // plaintext bytes of all entries
	bytes    int

	mu      sync.Mutex
	entries map[handleKey]*list.Element // of *resolvedEntry
	order   *list.List                  // oldest first
	fills   map[handleKey]*handleFill   // fills running, one per key
}

// handleKey is what a cached value is for: the audit entry of its fill
// names this tenant, handle and user, so it serves no one else.
type handleKey struct {
	tenantID, handleID, user string
}

// resolvedEntry is a resolved handle as the cache keeps it: the answer
// without its value, and the plaintext apart.
type resolvedEntry struct {
	key     handleKey
	r       Resolved // Value unset
	plain   []byte
	expires time.Time
}

// resolved returns a copy the caller owns: its own value and hosts, which
// it may drop or clear without touching the cache or another caller's.
func (e *resolvedEntry) resolved() *Resolved {
	r := e.r
	r.AllowedHosts = slices.Clone(e.r.AllowedHosts)
	r.Value = NewValue(string(e.plain))
	return &r
}

// handleFill is one fill in flight, which the callers that arrive meanwhile
// for the same key wait for instead of reading, and auditing, again.
type handleFill struct {
	done chan struct{}
	// stale is set when a write forgot the key while the fill ran: its
	// answer is not kept, and later callers start their own fill.
	stale bool
	// Set before done closes. e is the fill's own copy, never zeroed;
	// retry says the filler's context ended, which is no answer for the
	// callers waiting.
	e     *resolvedEntry
	err   error
	retry bool
}

func newHandleCache(ttl time.Duration, max, maxBytes int) *handleCache {
	return &handleCache{ttl: ttl, max: max, maxBytes: maxBytes, entries: map[handleKey]*list.Element{}, order: list.New(),
		fills: map[handleKey]*handleFill{}}
}

// resolve returns the live cached answer for key, or joins the fill in
// flight for it, or runs fill and keeps its answer until now + TTL.
func (c *handleCache) resolve(ctx context.Context, key handleKey, now time.Time, fill func() (*resolvedEntry, error)) (*Resolved, error) {
	if c.ttl <= 0 {
		e, err := fill()
		if err != nil {
			return nil, err
		}
		defer clear(e.plain)
		return e.resolved(), nil
	}
	for {
		c.mu.Lock()
		if el, ok := c.entries[key]; ok {
			e := el.Value.(*resolvedEntry)
			if now.Before(e.expires) {
				r := e.resolved()
				c.mu.Unlock()
				return r, nil
			}
			c.remove(el)
		}
		if f, ok := c.fills[key]; ok && !f.stale {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.retry {
				continue
			}
			if f.err != nil {
				return nil, f.err
			}
			return f.e.resolved(), nil
		}
		f := &handleFill{done: make(chan struct{})}
		c.fills[key] = f
		c.mu.Unlock()
		return c.fill(ctx, key, now, f, fill)
	}
}

// fill runs fill for key as f and keeps its answer unless f went stale.
// Whatever happens, even a panic, f ends and its waiters wake.
func (c *handleCache) fill(ctx context.Context, key handleKey, now time.Time, f *handleFill, fill func() (*resolvedEntry, error)) (*Resolved, error) {
	var e *resolvedEntry
	var err error
	defer func() {
		c.mu.Lock()
		if c.fills[key] == f {
			delete(c.fills, key)
		}
		if e != nil && err == nil && !f.stale {
			c.put(&resolvedEntry{key: key, r: e.r, plain: slices.Clone(e.plain), expires: now.Add(c.ttl)}, now)
		}
		// No answer (a panic), or the filler gave up: the waiters try
		// again themselves.
		f.e, f.err, f.retry = e, err, (e == nil && err == nil) || (err != nil && ctx.Err() != nil)
		c.mu.Unlock()
		close(f.done)
	}()
	e, err = fill()
	if err != nil {
		return nil, err
	}
	return e.resolved(), nil
}

// put adds e, first dropping expired entries and, while the entries or
// their bytes would pass the bounds, the oldest. A value larger than the
// whole budget is not kept. It is called with c.mu held.
func (c *handleCache) put(e *resolvedEntry, now time.Time) {
	if el, ok := c.entries[e.key]; ok {
		c.remove(el)
	}
	if len(e.plain) > c.maxBytes {
		clear(e.plain)
		return
	}
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		if c.order.Len() < c.max && c.bytes+len(e.plain) <= c.maxBytes && now.Before(front.Value.(*resolvedEntry).expires) {
			break
		}
		c.remove(front)
	}
	c.entries[e.key] = c.order.PushBack(e)
	c.bytes += len(e.plain)
}

// remove drops an entry and zeroes its plaintext. It is called with c.mu
// held.
func (c *handleCache) remove(el *list.Element) {
	e := c.order.Remove(el).(*resolvedEntry)
	delete(c.entries, e.key)
	c.bytes -= len(e.plain)
	clear(e.plain)
}

// forget drops every entry of a tenant and marks its fills in flight
// stale, so the next call reads the databases again.
func (c *handleCache) forget(tenantID string) {
	c.drop(func(k handleKey) bool { return k.tenantID == tenantID })
}

// forgetAll drops every entry of every tenant (a master key rotation, the
// vault sealed or opened).
func (c *handleCache) forgetAll() { c.drop(func(handleKey) bool { return true }) }

func (c *handleCache) drop(match func(handleKey) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, el := range c.entries {
		if match(k) {
			c.remove(el)
		}
	}
	for k, f := range c.fills {
		if match(k) {
			f.stale = true
		}
	}
}

func (c *handleCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
