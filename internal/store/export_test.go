package store

import (
	"maps"
	"slices"
)

// CachedTerms returns the version a knowledge base's posting lists are
// cached at, and their terms.
func CachedTerms(db *DB, kbID string) (int64, []string) {
	v, lists, _ := db.postings.snapshot(kbID)
	return v, slices.Sorted(maps.Keys(lists))
}
