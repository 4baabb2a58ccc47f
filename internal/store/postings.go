package store

import (
	"maps"
	"sync"

	"github.com/nodus-os/nodus/internal/fulltext"
)

// DefaultSearchCache is how many postings search keeps in memory by
// default: 8 Mi of 16 bytes, 128 MiB, the lists of the terms searched in
// knowledge bases of a few hundred thousand chunks.
const DefaultSearchCache = 8 << 20

// postingCache keeps the posting lists that searches read, per knowledge
// base and term, so a search reads from the database only the figures of
// its terms and the chunks it returns. A knowledge base's lists are good
// for one index_version: any change to its chunks bumps the version, and
// the next search finds the lists stale and drops them. Since a seq is
// never reused and a list is loaded in the same snapshot as the version
// it is filed under, a list is never wrong, only stale. When the cache is
// full the knowledge bases least recently searched go first. Safe for
// concurrent use; a list handed out is never changed.
//
// A knowledge base's lists at an older version catch up rather than start
// again when the rows changed since are few (catchUp in
// knowledge_search.go): a knowledge base that keeps taking documents keeps
// its warm lists.
type postingCache struct {
	mu    sync.Mutex
	limit int // postings
	size  int
	clock uint64
	kbs   map[string]*kbPostings
}

type kbPostings struct {
	version int64
	terms   map[string][]fulltext.Posting
	size    int
	used    uint64
}

func newPostingCache(limit int) *postingCache {
	if limit == 0 {
		limit = DefaultSearchCache
	}
	return &postingCache{limit: max(limit, 0), kbs: make(map[string]*kbPostings)}
}

// get returns the cached list of term in a knowledge base at version.
func (c *postingCache) get(kbID string, version int64, term string) ([]fulltext.Posting, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kb := c.kbs[kbID]
	if kb == nil || kb.version != version {
		return nil, false
	}
	list, ok := kb.terms[term]
	if ok {
		c.clock++
		kb.used = c.clock
	}
	return list, ok
}

// put files the list of term in a knowledge base at version, replacing the
// knowledge base's lists of any other version, and evicts what the limit
// requires. A list larger than the whole cache is not kept.
func (c *postingCache) put(kbID string, version int64, term string, list []fulltext.Posting) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(list) > c.limit {
		return
	}
	kb := c.kbs[kbID]
	if kb != nil && kb.version > version {
		return // a newer search already moved on
	}
	if kb == nil || kb.version != version {
		if kb != nil {
			c.size -= kb.size
		}
		kb = &kbPostings{version: version, terms: make(map[string][]fulltext.Posting)}
		c.kbs[kbID] = kb
	}
	if old, ok := kb.terms[term]; ok {
		kb.size -= len(old)
		c.size -= len(old)
	}
	kb.terms[term] = list
	kb.size += len(list)
	c.size += len(list)
	c.clock++
	kb.used = c.clock
	for c.size > c.limit && c.evictOldest(kbID, term) {
	}
}

// evictOldest drops the least recently used knowledge base other than
// keep, or else one of keep's lists other than keepTerm's, and reports
// whether it dropped anything.
func (c *postingCache) evictOldest(keep, keepTerm string) bool {
	var oldest string
	for id, kb := range c.kbs {
		if id != keep && (oldest == "" || kb.used < c.kbs[oldest].used) {
			oldest = id
		}
	}
	if oldest != "" {
		c.size -= c.kbs[oldest].size
		delete(c.kbs, oldest)
		return true
	}
	kb := c.kbs[keep]
	for term, list := range kb.terms {
		if term == keepTerm {
			continue
		}
		delete(kb.terms, term)
		kb.size -= len(list)
		c.size -= len(list)
		return true
	}
	return false
}

// snapshot returns the version a knowledge base's lists are at and a copy
// of its map of them (the lists themselves are shared, never changed).
func (c *postingCache) snapshot(kbID string) (int64, map[string][]fulltext.Posting, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kb := c.kbs[kbID]
	if kb == nil {
		return 0, nil, false
	}
	return kb.version, maps.Clone(kb.terms), true
}

// advance replaces a knowledge base's lists at version from with lists at
// version to, unless another search has moved them meanwhile.
func (c *postingCache) advance(kbID string, from, to int64, lists map[string][]fulltext.Posting) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kb := c.kbs[kbID]
	if kb == nil || kb.version != from {
		return
	}
	size := 0
	for _, l := range lists {
		size += len(l)
	}
	c.size += size - kb.size
	kb.version, kb.terms, kb.size = to, lists, size
	c.clock++
	kb.used = c.clock
	for c.size > c.limit && c.evictOldest(kbID, "") {
	}
}

// full reports whether the cache holds more than fraction of its limit
// (or keeps nothing).
func (c *postingCache) full(fraction float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit == 0 || float64(c.size) > fraction*float64(c.limit)
}
