package store

import (
	"testing"

	"github.com/nodus-os/nodus/internal/fulltext"
)

func list(n int) []fulltext.Posting {
	out := make([]fulltext.Posting, n)
	for i := range out {
		out[i] = fulltext.Posting{Key: int64(i), Freq: 1, Length: 1}
	}
	return out
}

func TestPostingCache(t *testing.T) {
	c := newPostingCache(100)
	c.put("kb1", 1, "cat", list(10))
	if got, ok := c.get("kb1", 1, "cat"); !ok || len(got) != 10 {
		t.Fatalf("get = %d, %v", len(got), ok)
	}
	// Another version of the knowledge base is a miss, and a newer
	// version's lists replace the older ones.
	if _, ok := c.get("kb1", 2, "cat"); ok {
		t.Fatal("a list served for another version")
	}
	c.put("kb1", 2, "dog", list(5))
	if _, ok := c.get("kb1", 1, "cat"); ok {
		t.Fatal("an old version's list outlived a newer one")
	}
	// A search still at the old version does not undo the new one.
	c.put("kb1", 1, "cat", list(10))
	if _, ok := c.get("kb1", 2, "dog"); !ok || c.size != 5 {
		t.Fatalf("older put replaced the newer version; size %d", c.size)
	}

	// Over the limit, the knowledge base searched longest ago goes first.
	c.put("kb2", 1, "a", list(40))
	c.put("kb3", 1, "a", list(40))
	c.get("kb1", 2, "dog")
	c.put("kb4", 1, "a", list(40))
	if _, ok := c.get("kb2", 1, "a"); ok {
		t.Error("kb2, the least recently used, was kept")
	}
	for _, kb := range []string{"kb1", "kb3", "kb4"} {
		if len(c.kbs[kb].terms) == 0 {
			t.Errorf("%s was evicted", kb)
		}
	}
	if c.size > c.limit {
		t.Errorf("size %d over limit %d", c.size, c.limit)
	}
	// One knowledge base alone over the limit keeps its newest list; a
	// list larger than the cache is not kept at all.
	c.put("kb5", 1, "x", list(90))
	c.put("kb5", 1, "y", list(90))
	if _, ok := c.get("kb5", 1, "y"); !ok || c.size != 90 {
		t.Errorf("newest list not kept; size %d", c.size)
	}
	c.put("kb6", 1, "huge", list(101))
	if _, ok := c.get("kb6", 1, "huge"); ok {
		t.Error("a list larger than the cache was kept")
	}
	// A negative limit keeps nothing.
	none := newPostingCache(-1)
	none.put("kb", 1, "a", list(1))
	if _, ok := none.get("kb", 1, "a"); ok {
		t.Error("a disabled cache kept a list")
	}
}
