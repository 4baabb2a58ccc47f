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

// VectorIndexKind names the index a knowledge base's cached vectors by
// model and dimension are searched with: "flat", "hnsw", "saved hnsw"
// (loaded from the saved graph), or "" when none is cached.
func VectorIndexKind(db *DB, kbID, model string, dim int) string {
	for _, s := range db.VectorCacheStats() {
		if s.KnowledgeBaseID == kbID && s.Model == model && s.Dim == dim {
			switch {
			case s.SavedGraph:
				return "saved hnsw"
			case s.Approximate:
				return "hnsw"
			}
			return "flat"
		}
	}
	return ""
}
