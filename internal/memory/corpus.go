package memory

import (
	"container/list"
	"context"
	"slices"
	"sync"

	"github.com/nodus-os/nodus/internal/fulltext"
)

// This file keeps users' memories analysed for search in process. Reading
// a user's 5,000 memories and analysing their words took about 115 ms, on
// every search and on every Add; the store keeps a version per user that
// every write to their memories moves on (a trigger), so a search reads
// that one row and reuses what it analysed while the version holds. Writes
// this process makes are applied to the cached memories when the version
// moved by exactly that write; any other write, from another replica or
// another goroutine, makes the next search load again.

// corpusCacheBytes bounds the memories kept analysed, all users together;
// the users searched least recently go first.
const corpusCacheBytes = 64 << 20

// corpusKey names one user's memories of an app.
type corpusKey struct{ tenant, app, user string }

// corpus is a user's newest searchCorpus memories, newest first, with
// their words analysed and indexed, as of one version in the store. It is
// never changed once built: a change makes a new one.
type corpus struct {
	version int64
	mems    []Memory
	terms   []fulltext.Vector // terms[i] is mems[i]'s text, analysed
	text    *textIndex
	size    int64 // bytes held, roughly
}

// newCorpus analyses mems (newest first).
func newCorpus(version int64, mems []Memory) *corpus {
	terms := make([]fulltext.Vector, len(mems))
	for i, m := range mems {
		terms[i] = fulltext.Analyze(m.Text)
	}
	return buildCorpus(version, mems, terms)
}

func buildCorpus(version int64, mems []Memory, terms []fulltext.Vector) *corpus {
	c := &corpus{version: version, mems: mems, terms: terms, text: newTextIndex(terms)}
	for i, m := range mems {
		c.size += 256 + int64(len(m.ID)+len(m.Text)+len(m.Hash)+len(m.SessionID)+len(m.EmbeddingModel)) +
			4*int64(len(m.Embedding)) + 48*int64(len(terms[i].Terms))
		for _, s := range m.Categories {
			c.size += 16 + int64(len(s))
		}
		for _, s := range m.SourceMessageIDs {
			c.size += 16 + int64(len(s))
		}
	}
	return c
}

// put returns c with m in place of the memory with its id, if any, at
// its place in the store's order (newest update first, then the larger
// id), and without the oldest past searchCorpus. Writes may commit in
// another order than their update times, so m is not always first.
func (c *corpus) put(m Memory) *corpus {
	mems := make([]Memory, 0, min(len(c.mems)+1, searchCorpus))
	terms := make([]fulltext.Vector, 0, cap(mems))
	placed := false
	for i, old := range c.mems {
		if old.ID == m.ID {
			continue
		}
		if !placed && storedBefore(m, old) {
			mems, terms = append(mems, m), append(terms, fulltext.Analyze(m.Text))
			placed = true
		}
		mems, terms = append(mems, old), append(terms, c.terms[i])
	}
	if !placed {
		mems, terms = append(mems, m), append(terms, fulltext.Analyze(m.Text))
	}
	if len(mems) > searchCorpus {
		mems, terms = mems[:searchCorpus], terms[:searchCorpus]
	}
	return buildCorpus(c.version, mems, terms)
}

// storedBefore reports whether a comes before b in LoadMemoryCorpus's
// order: updated_at DESC, id DESC.
func storedBefore(a, b Memory) bool {
	if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
		return c > 0
	}
	return a.ID > b.ID
}

// remove returns c without memory id.
func (c *corpus) remove(id string) *corpus {
	i := slices.IndexFunc(c.mems, func(m Memory) bool { return m.ID == id })
	if i < 0 {
		cp := *c
		return &cp
	}
	return buildCorpus(c.version, slices.Delete(slices.Clone(c.mems), i, i+1), slices.Delete(slices.Clone(c.terms), i, i+1))
}

// corpusCache holds corpora up to a total size, least recently used out
// first. It is safe for concurrent use.
type corpusCache struct {
	max int64

	mu    sync.Mutex
	used  int64
	byKey map[corpusKey]*list.Element // of *cached
	lru   list.List                   // front: used last
}

type cached struct {
	key corpusKey
	c   *corpus
}

func newCorpusCache(max int64) *corpusCache {
	return &corpusCache{max: max, byKey: map[corpusKey]*list.Element{}}
}

func (cc *corpusCache) get(k corpusKey) *corpus {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e := cc.byKey[k]
	if e == nil {
		return nil
	}
	cc.lru.MoveToFront(e)
	return e.Value.(*cached).c
}

// put caches c for k, in place of what k held.
func (cc *corpusCache) put(k corpusKey, c *corpus) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.set(k, c)
}

// replace caches next for k if k still holds prev, and forgets k
// otherwise: another change came between.
func (cc *corpusCache) replace(k corpusKey, prev, next *corpus) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if e := cc.byKey[k]; e == nil || e.Value.(*cached).c != prev {
		cc.drop(k)
		return
	}
	cc.set(k, next)
}

// forget drops k.
func (cc *corpusCache) forget(k corpusKey) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.drop(k)
}

// forgetTenant drops every corpus of tenant.
func (cc *corpusCache) forgetTenant(tenant string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for k := range cc.byKey {
		if k.tenant == tenant {
			cc.drop(k)
		}
	}
}

// set stores c for k and evicts from the back until the cache fits; a
// corpus larger than the whole cache is not kept. cc.mu must be held.
func (cc *corpusCache) set(k corpusKey, c *corpus) {
	cc.drop(k)
	if c.size > cc.max {
		return
	}
	cc.byKey[k] = cc.lru.PushFront(&cached{key: k, c: c})
	cc.used += c.size
	for cc.used > cc.max {
		cc.drop(cc.lru.Back().Value.(*cached).key)
	}
}

// drop forgets k. cc.mu must be held.
func (cc *corpusCache) drop(k corpusKey) {
	e := cc.byKey[k]
	if e == nil {
		return
	}
	cc.used -= e.Value.(*cached).c.size
	cc.lru.Remove(e)
	delete(cc.byKey, k)
}

// corpus returns the memories of the user of the app in ctx's tenant,
// analysed for search: from the cache when the store's version of them
// is the one cached, else loaded (and cached).
func (s *Service) corpus(ctx context.Context, k corpusKey) (*corpus, error) {
	if c := s.corpora.get(k); c != nil {
		v, err := s.store.MemoryVersion(ctx, k.app, k.user)
		if err != nil {
			return nil, err
		}
		if v == c.version {
			return c, nil
		}
	}
	v, mems, err := s.store.LoadMemoryCorpus(ctx, k.app, k.user, searchCorpus)
	if err != nil {
		return nil, err
	}
	c := newCorpus(v, mems)
	s.corpora.put(k, c)
	return c, nil
}

// wrote follows one write this process made to k's memories: memory id
// created or updated, or deleted. When the store's version moved on from
// prev's by exactly one, the write was the only one since: the written
// memory is read back as the store holds it and the corpus with it, at
// that version, replaces prev in the cache and is returned. Otherwise the
// cache forgets k, so that the next search loads it, and wrote returns
// nil. prev may be nil (nothing cached).
func (s *Service) wrote(ctx context.Context, k corpusKey, prev *corpus, id string, deleted bool) *corpus {
	if prev == nil {
		s.corpora.forget(k)
		return nil
	}
	v, err := s.store.MemoryVersion(ctx, k.app, k.user)
	if err != nil || v != prev.version+1 {
		s.corpora.forget(k)
		return nil
	}
	var next *corpus
	if deleted {
		next = prev.remove(id)
	} else {
		m, err := s.store.FindMemory(ctx, id)
		if err != nil {
			s.corpora.forget(k)
			return nil
		}
		next = prev.put(m)
	}
	next.version = v
	s.corpora.replace(k, prev, next)
	return next
}

// wroteMemory follows a write of m (created, updated or deleted) made
// outside an Add's corpus.
func (s *Service) wroteMemory(ctx context.Context, m Memory, deleted bool) {
	k := corpusKey{m.TenantID, m.AppName, m.UserID}
	if prev := s.corpora.get(k); prev != nil {
		s.wrote(ctx, k, prev, m.ID, deleted)
	}
}
