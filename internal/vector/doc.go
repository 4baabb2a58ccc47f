// Package vector owns the in-memory similarity search over chunk
// embeddings: one Index per knowledge base, kept up to date as documents
// are added and removed, and searched concurrently with those updates.
//
// Two indexes implement Index. Flat scans every vector and is exact; it is
// the right choice for small knowledge bases and the reference the
// approximate index is measured against. HNSW is the hierarchical
// navigable small world graph of Malkov and Yashunin (2016): sub-linear
// search at a recall the caller tunes with Params.EfSearch, worth its build
// cost once a knowledge base holds more than about 20,000 vectors.
//
// Invariants:
//   - vectors are unit length: callers Normalize before Add and before
//     Search, so a dot product is the cosine similarity and Result.Score is
//     that cosine;
//   - every vector of an index has the index's dimension; Add and Search
//     panic on any other, because a mismatch is a caller bug that would
//     otherwise silently rank garbage;
//   - results are best first, ties broken by the smaller key, at most k of
//     them, and never a deleted key;
//   - a key is present at most once: adding a key again replaces its vector;
//   - every Index is safe for concurrent use: searches share a read lock,
//     Add and Delete take the write lock.
//
// Encode and Decode are the storage form of a vector (little-endian
// float32), shared with the store so that a vector read back from the
// database is checked once, where it enters memory.
package vector
