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

// SaveVectorGraph saves data as the graph of a knowledge base's vectors
// by model of dim, as a tenant, at version, as a built graph is saved.
func SaveVectorGraph(db *DB, tenant, kbID, model string, dim int, version int64, data []byte) error {
	return db.saveVectorGraph(savedGraph{key: vectorKey{kb: kbID, model: model, dim: dim}, tenant: tenant,
		version: version, nodes: 1, data: data})
}
