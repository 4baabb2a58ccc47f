package store

import (
	"container/heap"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vector"
)

// This file holds the vectors of knowledge bases' chunks (migration 0007):
// written with the chunks, in their transaction, and searched through the
// in-memory sets of vectorCache (vectors.go), which follow the knowledge
// base's index_version as the posting lists do.

// vectorBatchRows bounds the rows of one INSERT into kb_chunk_vectors.
const vectorBatchRows = 128

// insertChunkVectors stores the vectors of the chunks that have one.
func insertChunkVectors(ctx context.Context, tx *Tx, d knowledge.Document, ids []string, chunks []knowledge.Chunk, version int64) error {
	var rows [][]any
	for i, c := range chunks {
		e := c.Embedding
		if e == nil {
			continue
		}
		if len(e.Vector) == 0 || e.Model == "" || e.TextHash == "" {
			return fmt.Errorf("store: chunk %d: an embedding needs a model, a text hash and a vector", i)
		}
		rows = append(rows, []any{ids[i], d.TenantID, d.KnowledgeBaseID, d.ID, version, e.Model, len(e.Vector),
			e.TextHash, vector.Encode(e.Vector)})
	}
	for _, size := range chunkSizes(len(rows), vectorBatchRows) {
		vals := make([]any, 0, size*9)
		for _, r := range rows[:size] {
			vals = append(vals, r...)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO kb_chunk_vectors (chunk_id, tenant_id, knowledge_base_id, document_id,
			version, model, dim, text_hash, vector) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", size), ", "), vals...); err != nil {
			return err
		}
		rows = rows[size:]
	}
	return nil
}

// dropDocumentVectors removes a document's vectors, recording them as
// removed at version for in-memory sets to catch up.
func dropDocumentVectors(ctx context.Context, tx *Tx, documentID string, version int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO kb_vector_removed (knowledge_base_id, version, seq)
		SELECT knowledge_base_id, ?, seq FROM kb_chunk_vectors WHERE document_id = ?`, version, documentID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM kb_chunk_vectors WHERE document_id = ?`, documentID)
	return err
}

// ReusableVectors returns the vectors a knowledge base in scope holds by
// model for the texts of hashes, by hash.
func (db *DB) ReusableVectors(ctx context.Context, kbID, model string, hashes []string) (map[string][]float32, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]float32)
	err = db.Read(ctx, func(tx *Tx) error {
		for rest := hashes; len(rest) > 0; {
			n := min(len(rest), 500)
			vals := append([]any{kbID, model}, args...)
			for _, h := range rest[:n] {
				vals = append(vals, h)
			}
			rows, err := tx.Query(ctx, `SELECT text_hash, vector FROM kb_chunk_vectors
				WHERE knowledge_base_id = ? AND model = ? AND `+cond+` AND text_hash IN (`+placeholders(n)+`)`, vals...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var h string
				var b []byte
				if err := rows.Scan(&h, &b); err != nil {
					rows.Close()
					return err
				}
				v, err := vector.Decode(b)
				if err != nil {
					rows.Close()
					return fmt.Errorf("store: a stored vector: %w", err)
				}
				out[h] = v
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	return out, err
}

// Retrieve runs search over every index of a knowledge base in scope, in
// one read snapshot, and returns the chunks it chose in its order.
func (db *DB) Retrieve(ctx context.Context, kbID string, search func(knowledge.KnowledgeBase, knowledge.Indexes) ([]knowledge.Ranked, error)) ([]knowledge.ChunkHit, error) {
	cond, args, err := scopeCond(ctx, "v.tenant_id")
	if err != nil {
		return nil, err
	}
	var out []knowledge.ChunkHit
	err = db.searchSnapshot(ctx, kbID, func(tx *Tx, kb knowledge.KnowledgeBase, ix *fullTextIndex) error {
		vx := &vectorIndex{tx: tx, kbID: kbID, tenant: kb.TenantID, cond: cond, args: args, version: ix.version,
			floor: ix.floor, cache: db.vectors}
		ranked, err := search(kb, knowledge.Indexes{FullText: ix, Vectors: vx})
		if err != nil {
			return err
		}
		out, err = rankedChunks(ctx, tx, kbID, ranked)
		return err
	})
	return out, err
}

// vectorIndex is a knowledge base's vectors within one read snapshot.
type vectorIndex struct {
	tx             *Tx
	kbID, tenant   string
	cond           string // the tenant scope, on v.tenant_id
	args           []any
	version, floor int64
	cache          *vectorCache
}

var _ knowledge.VectorIndex = (*vectorIndex)(nil)

// maxVectorCatchUp bounds the rows a set reads to catch up; past it, it
// is loaded again.
const maxVectorCatchUp = 5000

// Search finds the k chunks closest to q among the knowledge base's
// vectors by model of q's dimension, from its in-memory set, which it
// loads or brings up to this snapshot's version first. A set already
// newer than the snapshot is used as it is: hits this snapshot does not
// see are left out when their chunks are read.
func (vx *vectorIndex) Search(ctx context.Context, model string, q []float32, k int) ([]knowledge.VectorHit, error) {
	if k <= 0 || len(q) == 0 {
		return nil, nil
	}
	key := vectorKey{kb: vx.kbID, model: model, dim: len(q)}
	s := vx.cache.set(key)
	s.mu.RLock()
	current := s.loaded && s.version >= vx.version
	s.mu.RUnlock()
	if !current {
		fits, err := vx.refresh(ctx, key, s)
		if err != nil {
			return nil, err
		}
		if !fits {
			return vx.scan(ctx, model, q, k)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	res := s.index.Search(q, k)
	out := make([]knowledge.VectorHit, 0, len(res))
	for _, r := range res {
		if id, ok := s.chunks[r.Key]; ok { // always, unless the index and the chunks disagree
			out = append(out, knowledge.VectorHit{ChunkID: id, Score: float64(r.Score)})
		}
	}
	return out, nil
}

// refresh loads the set, or brings it up to the snapshot's version, and
// reports false (dropping it) when the knowledge base's vectors are too
// many for the cache.
func (vx *vectorIndex) refresh(ctx context.Context, key vectorKey, s *vectorSet) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded && s.version >= vx.version {
		return true, nil // another search did it
	}
	if s.loaded && s.version >= vx.floor {
		ok, err := vx.catchUp(ctx, key, s)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	var n int64
	if err := vx.tx.QueryRow(ctx, `SELECT count(*) FROM kb_chunk_vectors v WHERE v.knowledge_base_id = ?
		AND v.model = ? AND v.dim = ? AND `+vx.cond, append([]any{vx.kbID, key.model, key.dim}, vx.args...)...).
		Scan(&n); err != nil {
		return false, err
	}
	if !vx.cache.fits(n, key.dim) {
		vx.cache.drop(key, s)
		return false, nil
	}
	keys := make([]int64, 0, n)
	slab := make([]float32, 0, n*int64(key.dim))
	chunks := make(map[int64]string, n)
	err := vx.rows(ctx, key, 0, -1, func(seq int64, chunkID string, v []float32) {
		keys, slab = append(keys, seq), append(slab, v...)
		chunks[seq] = chunkID
	})
	if err != nil {
		return false, err
	}
	var index vector.Index
	changes := 0
	if len(keys) > vx.cache.exactMax && vx.cache.read != nil {
		h, taken, err := vx.loadGraph(ctx, key, keys, slab)
		switch {
		case err != nil:
			vx.cache.graphUnusable.Add(1)
			vx.cache.log.Warn("store: a knowledge base's saved vector graph is not used; building one",
				"knowledge_base", vx.kbID, "model", key.model, "error", err)
		case h != nil:
			vx.cache.graphLoaded.Add(1)
			index, changes = h, taken
		}
	}
	if index == nil {
		index = vector.NewFlatFrom(key.dim, keys, slab)
	}
	s.index, s.chunks, s.version, s.loaded, s.tenant = index, chunks, vx.version, true, vx.tenant
	s.gen, s.building, s.pending, s.changes, s.unsaved = s.gen+1, false, nil, changes, false
	_, s.fromSaved = index.(*vector.HNSW)
	vx.cache.maybeBuild(key, s)
	vx.cache.maybeSave(key, s)
	vx.cache.account(s, index.Bytes())
	return true, nil
}

// loadGraph reads the knowledge base's saved HNSW graph and brings it up
// to the rows just read (keys, their vectors in slab): a node whose row
// is gone becomes a tombstone, a row the graph lacks is added. It returns
// nil without an error when there is no graph, or when it is too far
// behind to be worth it (more rows to add than a catch-up takes, or a
// quarter of it dead, which a new build would drop anyway), and the
// number of changes it took in.
//
// The graph is read in a transaction of its own, not the search's: on
// PostgreSQL a failed read (the table not migrated yet) would abort the
// search's. Any graph will do, older or newer than the search's snapshot,
// since it is brought to the rows by key, not by version.
func (vx *vectorIndex) loadGraph(ctx context.Context, key vectorKey, keys []int64, slab []float32) (*vector.HNSW, int, error) {
	data, err := vx.cache.read(ctx, vx.kbID, key)
	if err != nil {
		return nil, 0, err
	}
	if data == nil {
		vx.cache.graphNone.Add(1)
		return nil, 0, nil
	}
	at := make(map[int64]int, len(keys))
	for i, k := range keys {
		at[k] = i
	}
	h, dead, err := vector.LoadGraph(key.dim, data, func(k int64) []float32 {
		i, ok := at[k]
		if !ok {
			return nil
		}
		return slab[i*key.dim : (i+1)*key.dim]
	}, maxGraphDead)
	if errors.Is(err, vector.ErrGraphStale) {
		vx.cache.graphStale.Add(1)
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var missing []int
	for i, k := range keys {
		if !h.Has(k) {
			missing = append(missing, i)
		}
	}
	if len(missing) > maxVectorCatchUp { // LoadGraph already refused a graph a quarter dead
		vx.cache.graphStale.Add(1)
		return nil, 0, nil
	}
	for _, i := range missing {
		h.Add(keys[i], slab[i*key.dim:(i+1)*key.dim])
	}
	return h, len(missing) + dead, nil
}

// maxGraphDead is the fraction of a saved graph's nodes that may be dead
// for it to be loaded: past a quarter a graph is built again anyway.
const maxGraphDead = 0.25

// catchUp applies to a loaded set the vectors removed and written since
// its version, and reports false when they are too many to be worth it.
func (vx *vectorIndex) catchUp(ctx context.Context, key vectorKey, s *vectorSet) (bool, error) {
	var removed []int64
	rows, err := vx.tx.Query(ctx, `SELECT seq FROM kb_vector_removed WHERE knowledge_base_id = ? AND version > ?
		LIMIT ?`, vx.kbID, s.version, maxVectorCatchUp+1)
	if err != nil {
		return false, err
	}
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return false, err
		}
		removed = append(removed, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(removed) > maxVectorCatchUp {
		return false, err
	}
	var added []vectorChange
	ids := make(map[int64]string)
	err = vx.rows(ctx, key, s.version, maxVectorCatchUp+1, func(seq int64, chunkID string, v []float32) {
		added = append(added, vectorChange{key: seq, vec: v})
		ids[seq] = chunkID
	})
	if err != nil || len(added) > maxVectorCatchUp {
		return false, err
	}
	vx.cache.apply(s, removed, added, ids)
	s.version = vx.version
	if h, ok := s.index.(*vector.HNSW); ok && h.Tombstones()*4 > h.Nodes() {
		// A graph a quarter dead searches worse and slower: start again
		// from the live vectors, exactly until a new graph is built.
		return false, nil
	}
	vx.cache.maybeBuild(key, s)
	vx.cache.maybeSave(key, s)
	vx.cache.account(s, s.index.Bytes())
	return true, nil
}

// rows reads the set's vectors written after version (limit < 0 for all).
func (vx *vectorIndex) rows(ctx context.Context, key vectorKey, after int64, limit int, fn func(seq int64, chunkID string, v []float32)) error {
	q := `SELECT v.seq, v.chunk_id, v.vector FROM kb_chunk_vectors v WHERE v.knowledge_base_id = ? AND v.model = ?
		AND v.dim = ? AND v.version > ? AND ` + vx.cond
	args := append([]any{vx.kbID, key.model, key.dim, after}, vx.args...)
	if limit >= 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := vx.tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var chunkID string
		var b []byte
		if err := rows.Scan(&seq, &chunkID, &b); err != nil {
			return err
		}
		v := make([]float32, key.dim)
		if err := vector.DecodeInto(v, b); err != nil {
			return fmt.Errorf("store: the vector of chunk %s: %w", chunkID, err)
		}
		fn(seq, chunkID, v)
	}
	return rows.Err()
}

// scan searches the knowledge base's vectors straight from the database,
// exactly, for a knowledge base too big for the cache.
func (vx *vectorIndex) scan(ctx context.Context, model string, q []float32, k int) ([]knowledge.VectorHit, error) {
	best := make(hitHeap, 0, k+1)
	err := vx.rows(ctx, vectorKey{kb: vx.kbID, model: model, dim: len(q)}, 0, -1,
		func(_ int64, chunkID string, v []float32) {
			h := knowledge.VectorHit{ChunkID: chunkID, Score: float64(vector.Dot(q, v))}
			if len(best) < k {
				heap.Push(&best, h)
			} else if worse(best[0], h) {
				best[0] = h
				heap.Fix(&best, 0)
			}
		})
	if err != nil {
		return nil, err
	}
	out := make([]knowledge.VectorHit, len(best))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&best).(knowledge.VectorHit)
	}
	return out, nil
}

// worse orders hits by score, then by chunk id, the worst first.
func worse(a, b knowledge.VectorHit) bool {
	if a.Score != b.Score {
		return a.Score < b.Score
	}
	return a.ChunkID > b.ChunkID
}

// hitHeap is a min-heap of hits, the worst on top.
type hitHeap []knowledge.VectorHit

func (h hitHeap) Len() int           { return len(h) }
func (h hitHeap) Less(i, j int) bool { return worse(h[i], h[j]) }
func (h hitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *hitHeap) Push(x any)        { *h = append(*h, x.(knowledge.VectorHit)) }
func (h *hitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// rankedChunks loads the chunks of ranked, in order: those named by
// full-text key through kb_chunk_terms, the others by id. A full-text key
// must have its chunk (it was read in this snapshot); a chunk id from a
// vector set newer than the snapshot may not, and is left out.
func rankedChunks(ctx context.Context, tx *Tx, kbID string, ranked []knowledge.Ranked) ([]knowledge.ChunkHit, error) {
	if len(ranked) == 0 {
		return nil, nil
	}
	byKey := make(map[int64]int)
	byID := make(map[string]int)
	var keys, ids []any
	for i, r := range ranked {
		if r.ChunkID == "" {
			byKey[r.FullTextKey] = i
			keys = append(keys, r.FullTextKey)
		} else {
			byID[r.ChunkID] = i
			ids = append(ids, r.ChunkID)
		}
	}
	out := make([]knowledge.ChunkHit, len(ranked))
	found := make([]bool, len(ranked))
	const cols = `c.id, c.tenant_id, c.knowledge_base_id, c.document_id, c.chunk_index, c.content, c.prefix,
		c.headings, c.start_offset, c.end_offset, c.tokens, d.original_filename`
	read := func(q string, args []any, at func(rows interface{ Scan(...any) error }, h *knowledge.ChunkHit) (int, error)) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h knowledge.ChunkHit
			i, err := at(rows, &h)
			if err != nil {
				return err
			}
			if h.KnowledgeBaseID != kbID {
				return errors.New("store: a search hit is another knowledge base's chunk")
			}
			r := ranked[i]
			h.Score, h.FullTextScore, h.VectorScore = r.Score, r.FullTextScore, r.VectorScore
			out[i], found[i] = h, true
		}
		return rows.Err()
	}
	if len(keys) > 0 {
		// By seq alone, the knowledge base checked in Go: with it in the
		// WHERE clause SQLite's planner walked the knowledge base's index
		// (7 ms at 30,000 chunks) instead of looking the seqs up.
		err := read(`SELECT t.seq, `+cols+` FROM kb_chunk_terms t JOIN kb_chunks c ON c.id = t.chunk_id
			JOIN documents d ON d.id = c.document_id WHERE t.seq IN (`+placeholders(len(keys))+`)`, keys,
			func(rows interface{ Scan(...any) error }, h *knowledge.ChunkHit) (int, error) {
				var seq int64
				err := scanChunkHit(rows, h, &seq)
				return byKey[seq], err
			})
		if err != nil {
			return nil, err
		}
	}
	if len(ids) > 0 {
		err := read(`SELECT `+cols+` FROM kb_chunks c JOIN documents d ON d.id = c.document_id
			WHERE c.id IN (`+placeholders(len(ids))+`)`, ids,
			func(rows interface{ Scan(...any) error }, h *knowledge.ChunkHit) (int, error) {
				err := scanChunkHit(rows, h, nil)
				return byID[h.ID], err
			})
		if err != nil {
			return nil, err
		}
	}
	hits := out[:0]
	for i, r := range ranked {
		switch {
		case found[i]:
			hits = append(hits, out[i])
		case r.ChunkID == "":
			return nil, errors.New("store: a full-text hit has no chunk")
		}
	}
	return hits, nil
}

// scanChunkHit scans a row of rankedChunks' columns, after the seq when
// seq is not nil.
func scanChunkHit(row interface{ Scan(...any) error }, h *knowledge.ChunkHit, seq *int64) error {
	var headings string
	dest := []any{&h.ID, &h.TenantID, &h.KnowledgeBaseID, &h.DocumentID, &h.Index, &h.Text, &h.Prefix, &headings,
		&h.Start, &h.End, &h.Tokens, &h.DocumentName}
	if seq != nil {
		dest = append([]any{seq}, dest...)
	}
	if err := row.Scan(dest...); err != nil {
		return err
	}
	return decodeJSON("chunk headings", headings, &h.Headings)
}

// ChunkIDs returns the chunk ids of full-text keys, in their order.
func (ix *fullTextIndex) ChunkIDs(ctx context.Context, keys []int64) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	at := make(map[int64]int, len(keys))
	args := make([]any, len(keys))
	for i, k := range keys {
		at[k] = i
		args[i] = k
	}
	rows, err := ix.tx.Query(ctx, `SELECT seq, chunk_id FROM kb_chunk_terms WHERE seq IN (`+
		placeholders(len(keys))+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]string, len(keys))
	for rows.Next() {
		var seq int64
		var id string
		if err := rows.Scan(&seq, &id); err != nil {
			return nil, err
		}
		out[at[seq]] = id
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, id := range out {
		if id == "" {
			return nil, errors.New("store: a full-text hit has no chunk")
		}
	}
	return out, nil
}

// WarmVectors loads into memory the vectors of every knowledge base with
// an embedding model, knowledge bases most recently changed first, until
// the vector cache is nine-tenths full or ctx ends: the first vector
// search of a large knowledge base otherwise pays for the load (about two
// seconds at 100,000 vectors of 384 dimensions). A server runs it after
// it starts, in the background. It reads every tenant (it needs the
// all-tenants scope) and returns how many vectors it loaded.
func (db *DB) WarmVectors(ctx context.Context) (int, error) {
	if err := requireAllTenants(ctx); err != nil {
		return 0, err
	}
	kbs, err := db.recentKnowledgeBases(ctx, `embedding_model <> ''`)
	if err != nil {
		return 0, err
	}
	loaded := 0
	for _, kb := range kbs {
		if db.vectors.full(0.9) || ctx.Err() != nil {
			break
		}
		tctx := nodus.WithTenant(ctx, kb.tenant)
		cond, args, err := scopeCond(tctx, "v.tenant_id")
		if err != nil {
			return loaded, err
		}
		err = db.readSnapshot(tctx, func(tx *Tx) error {
			vx := &vectorIndex{tx: tx, kbID: kb.id, tenant: kb.tenant, cond: cond, args: args, cache: db.vectors}
			err := tx.QueryRow(ctx, `SELECT index_version, index_floor FROM knowledge_bases WHERE id = ?`, kb.id).
				Scan(&vx.version, &vx.floor)
			if errors.Is(err, sql.ErrNoRows) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			var dim int
			err = tx.QueryRow(ctx, `SELECT v.dim FROM kb_chunk_vectors v WHERE v.knowledge_base_id = ? AND v.model = ?
				LIMIT 1`, kb.id, kb.model).Scan(&dim)
			if errors.Is(err, sql.ErrNoRows) {
				return nil // nothing embedded yet
			}
			if err != nil {
				return err
			}
			key := vectorKey{kb: kb.id, model: kb.model, dim: dim}
			s := db.vectors.set(key)
			fits, err := vx.refresh(ctx, key, s)
			if err != nil || !fits {
				return err
			}
			s.mu.RLock()
			loaded += s.index.Len()
			s.mu.RUnlock()
			return nil
		})
		if err != nil {
			return loaded, err
		}
	}
	return loaded, nil
}
