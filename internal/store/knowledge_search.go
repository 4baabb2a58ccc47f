package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the full-text index of knowledge bases (migration
// 0006): each chunk's term vector in kb_chunk_terms, the engine's index of
// its distinct terms (FTS5's kb_fts on SQLite, a GIN-indexed tsvector on
// PostgreSQL) to find candidates, and per knowledge base the document
// frequency of every term (kb_term_stats) and the count and total length
// of its indexed chunks (knowledge_bases.indexed_chunks, indexed_length).
// Every write that changes a document's chunks changes all of these in
// its transaction, so search always reads figures that match the chunks.
// Ranking itself is internal/fulltext's, the same on both engines.

// kbToken is the term that marks a knowledge base's chunks in the engine's
// index, so a candidate lookup reads that knowledge base's entries only.
// Search still filters on knowledge_base_id: a document could contain the
// token as a word.
func kbToken(kbID string) string {
	return "kb" + strings.ReplaceAll(kbID, "-", "")
}

// termDelta is how a write changes a knowledge base's figures, at the
// index version it brings.
type termDelta struct {
	version        int64
	df             map[string]int64
	chunks, length int64
}

// removedKept is how many versions of removals a knowledge base keeps for
// caches to catch up on; a cache further behind starts again.
const removedKept = 4096

// beginIndexChange bumps a knowledge base's index version, first in a
// write that changes its chunks: the row's lock orders the writes of one
// knowledge base, so versions follow commit order.
func beginIndexChange(ctx context.Context, tx *Tx, kbID string) (termDelta, error) {
	d := termDelta{df: make(map[string]int64)}
	err := tx.QueryRow(ctx, `UPDATE knowledge_bases SET index_version = index_version + 1 WHERE id = ?
		RETURNING index_version`, kbID).Scan(&d.version)
	if errors.Is(err, sql.ErrNoRows) {
		return d, errKnowledgeBaseNotFound(kbID)
	}
	return d, err
}

func (d *termDelta) add(v fulltext.Vector, sign int64) {
	for _, t := range v.Terms {
		d.df[t.Term] += sign
	}
	d.chunks += sign
	d.length += sign * int64(v.Length)
}

// dropDocumentTerms removes the index entries of a document's chunks (and
// their vectors) and subtracts them in delta.
func dropDocumentTerms(ctx context.Context, tx *Tx, documentID string, delta *termDelta) error {
	rows, err := tx.Query(ctx, `SELECT length, terms FROM kb_chunk_terms WHERE document_id = ?`, documentID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var length int
		var terms string
		if err := rows.Scan(&length, &terms); err != nil {
			rows.Close()
			return err
		}
		delta.add(fulltext.Decode(terms, length), -1)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO kb_index_removed (knowledge_base_id, version, seq)
		SELECT knowledge_base_id, ?, seq FROM kb_chunk_terms WHERE document_id = ?`, delta.version, documentID); err != nil {
		return err
	}
	if tx.Dialect() == SQLite {
		if _, err := tx.Exec(ctx, `DELETE FROM kb_fts WHERE rowid IN
			(SELECT seq FROM kb_chunk_terms WHERE document_id = ?)`, documentID); err != nil {
			return err
		}
	}
	if _, err = tx.Exec(ctx, `DELETE FROM kb_chunk_terms WHERE document_id = ?`, documentID); err != nil {
		return err
	}
	return dropDocumentVectors(ctx, tx, documentID, delta.version)
}

// termsBatchRows bounds the rows of one INSERT into kb_chunk_terms.
const termsBatchRows = 256

// insertChunkTerms indexes chunks of document d (ids set) and adds them
// in delta. A chunk without terms is not indexed: no search can find it.
func insertChunkTerms(ctx context.Context, tx *Tx, d knowledge.Document, ids []string, chunks []knowledge.Chunk, delta *termDelta) error {
	token := kbToken(d.KnowledgeBaseID)
	var rows [][]any
	for i, c := range chunks {
		if c.Terms.Length == 0 {
			continue
		}
		delta.add(c.Terms, 1)
		rows = append(rows, []any{ids[i], d.TenantID, d.KnowledgeBaseID, d.ID, delta.version, c.Terms.Length,
			c.Terms.Encode(), token + " " + c.Terms.Words()})
	}
	if tx.Dialect() == SQLite {
		// FTS5's rowid is the row's seq, known once it is inserted.
		for _, r := range rows {
			var seq int64
			if err := tx.QueryRow(ctx, `INSERT INTO kb_chunk_terms (chunk_id, tenant_id, knowledge_base_id,
				document_id, version, length, terms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq`, r[:7]...).Scan(&seq); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO kb_fts (rowid, words) VALUES (?, ?)`, seq, r[7]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, size := range chunkSizes(len(rows), termsBatchRows) {
		marks := strings.Repeat("(?, ?, ?, ?, ?, ?, ?, to_tsvector('simple', ?)), ", size)
		vals := make([]any, 0, size*8)
		for _, r := range rows[:size] {
			vals = append(vals, r...)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO kb_chunk_terms (chunk_id, tenant_id, knowledge_base_id, document_id,
			version, length, terms, words) VALUES `+strings.TrimSuffix(marks, ", "), vals...); err != nil {
			return err
		}
		rows = rows[size:]
	}
	return nil
}

// statsBatchRows bounds the rows of one statement on kb_term_stats.
const statsBatchRows = 256

// applyTermDelta adds delta to a knowledge base's figures. Terms are
// written in order, so two transactions on one knowledge base lock their
// common terms in the same order and never deadlock.
func applyTermDelta(ctx context.Context, tx *Tx, kbID string, delta *termDelta) error {
	terms := slices.Sorted(maps.Keys(delta.df))
	terms = slices.DeleteFunc(terms, func(t string) bool { return delta.df[t] == 0 })
	var dropped []any
	for rest := terms; len(rest) > 0; {
		n := min(len(rest), statsBatchRows)
		vals := make([]any, 0, n*3)
		for _, t := range rest[:n] {
			vals = append(vals, kbID, t, delta.df[t])
			if delta.df[t] < 0 {
				dropped = append(dropped, t)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO kb_term_stats (knowledge_base_id, term, df) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", n), ", ")+
			` ON CONFLICT (knowledge_base_id, term) DO UPDATE SET df = kb_term_stats.df + excluded.df`,
			vals...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	// Terms no chunk holds any more go.
	for len(dropped) > 0 {
		n := min(len(dropped), statsBatchRows)
		if _, err := tx.Exec(ctx, `DELETE FROM kb_term_stats WHERE knowledge_base_id = ? AND df <= 0 AND term IN (`+
			placeholders(n)+`)`, append([]any{kbID}, dropped[:n]...)...); err != nil {
			return err
		}
		dropped = dropped[n:]
	}
	if delta.chunks != 0 || delta.length != 0 {
		if _, err := tx.Exec(ctx, `UPDATE knowledge_bases SET indexed_chunks = indexed_chunks + ?,
			indexed_length = indexed_length + ? WHERE id = ?`, delta.chunks, delta.length, kbID); err != nil {
			return err
		}
	}
	// Now and then, the removals no cache will catch up on go.
	if floor := delta.version - removedKept; floor > 0 && delta.version%256 == 0 {
		for _, table := range []string{"kb_index_removed", "kb_vector_removed"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE knowledge_base_id = ? AND version <= ?`,
				kbID, floor); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE knowledge_bases SET index_floor = ? WHERE id = ?`, floor, kbID); err != nil {
			return err
		}
	}
	return nil
}

// dropKnowledgeTerms removes the whole index of the knowledge bases kbCond
// selects (with args), before they are deleted.
func dropKnowledgeTerms(ctx context.Context, tx *Tx, kbCond string, args []any) error {
	kbs := `SELECT id FROM knowledge_bases WHERE ` + kbCond
	if tx.Dialect() == SQLite {
		if _, err := tx.Exec(ctx, `DELETE FROM kb_fts WHERE rowid IN
			(SELECT seq FROM kb_chunk_terms WHERE knowledge_base_id IN (`+kbs+`))`, args...); err != nil {
			return err
		}
	}
	for _, q := range []string{`DELETE FROM kb_chunk_terms WHERE knowledge_base_id IN (` + kbs + `)`,
		`DELETE FROM kb_term_stats WHERE knowledge_base_id IN (` + kbs + `)`,
		`DELETE FROM kb_index_removed WHERE knowledge_base_id IN (` + kbs + `)`,
		`DELETE FROM kb_chunk_vectors WHERE knowledge_base_id IN (` + kbs + `)`,
		`DELETE FROM kb_vector_removed WHERE knowledge_base_id IN (` + kbs + `)`} {
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// SearchChunks runs search over the full-text index of a knowledge base
// in scope, in one read transaction, and returns its hits' chunks in its
// order, with their documents' names.
func (db *DB) SearchChunks(ctx context.Context, kbID string, search func(knowledge.KnowledgeBase, fulltext.Index) ([]fulltext.Hit, error)) ([]knowledge.ChunkHit, error) {
	var out []knowledge.ChunkHit
	err := db.searchSnapshot(ctx, kbID, func(tx *Tx, kb knowledge.KnowledgeBase, ix *fullTextIndex) error {
		hits, err := search(kb, ix)
		if err != nil {
			return err
		}
		ranked := make([]knowledge.Ranked, len(hits))
		for i, h := range hits {
			ranked[i] = knowledge.Ranked{FullTextKey: h.Key, Score: h.Score}
		}
		out, err = rankedChunks(ctx, tx, kbID, ranked)
		return err
	})
	return out, err
}

// searchSnapshot runs fn in one read snapshot with a knowledge base in
// scope and its full-text index: the version the cached lists are filed
// under must be the one they were read at.
func (db *DB) searchSnapshot(ctx context.Context, kbID string, fn func(*Tx, knowledge.KnowledgeBase, *fullTextIndex) error) error {
	kbCond, args, err := scopeCond(ctx, "kb.tenant_id")
	if err != nil {
		return err
	}
	cond, _, _ := scopeCond(ctx, "t.tenant_id")
	return db.readSnapshot(ctx, func(tx *Tx) error {
		// The knowledge base without its document count, which would
		// cost a count per search.
		ix := &fullTextIndex{tx: tx, kbID: kbID, cond: cond, args: args, cache: db.postings}
		var kb knowledge.KnowledgeBase
		err := tx.QueryRow(ctx, `SELECT `+strings.Replace(kbColumns, kbDocumentCount, "0", 1)+
			`, kb.indexed_chunks, kb.indexed_length, kb.index_version, kb.index_floor FROM knowledge_bases kb
			WHERE kb.id = ? AND `+kbCond, append([]any{kbID}, args...)...).
			Scan(append(kbScanDest(&kb), &ix.texts, &ix.length, &ix.version, &ix.floor)...)
		if errors.Is(err, sql.ErrNoRows) {
			return errKnowledgeBaseNotFound(kbID)
		}
		if err != nil {
			return err
		}
		return fn(tx, kb, ix)
	})
}

// fullTextIndex is a knowledge base's index within one read transaction.
type fullTextIndex struct {
	tx            *Tx
	kbID          string
	cond          string // the tenant scope, on t.tenant_id
	args          []any
	texts, length int64 // the knowledge base's indexed chunks and their length
	version       int64 // its index_version
	floor         int64 // its index_floor
	cache         *postingCache
	caughtUp      bool // catchUp ran
}

var _ fulltext.Index = (*fullTextIndex)(nil)

func (ix *fullTextIndex) Stats(ctx context.Context, terms []string) (fulltext.Stats, error) {
	st := fulltext.Stats{Texts: ix.texts, Length: ix.length, DF: make(map[string]int64, len(terms))}
	if len(terms) == 0 {
		return st, nil
	}
	args := []any{ix.kbID}
	for _, t := range terms {
		args = append(args, t)
	}
	rows, err := ix.tx.Query(ctx, `SELECT term, df FROM kb_term_stats WHERE knowledge_base_id = ? AND term IN (`+
		placeholders(len(terms))+`)`, args...)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var term string
		var df int64
		if err := rows.Scan(&term, &df); err != nil {
			return st, err
		}
		st.DF[term] = df
	}
	return st, rows.Err()
}

// Postings returns the chunks holding term, from the cache when it has
// them at this version, else from the engine's index and the chunks'
// vectors, which it then caches.
func (ix *fullTextIndex) Postings(ctx context.Context, term string) ([]fulltext.Posting, error) {
	if !ix.caughtUp {
		ix.caughtUp = true
		if err := ix.catchUp(ctx); err != nil {
			return nil, err
		}
	}
	if list, ok := ix.cache.get(ix.kbID, ix.version, term); ok {
		return list, nil
	}
	var q, match string
	if ix.tx.Dialect() == SQLite {
		// The term is a quoted phrase: should FTS5 split a term
		// differently from Go, the phrase still matches where it occurs.
		// CROSS JOIN keeps FTS5 the outer loop whatever the planner's
		// statistics say: walking the knowledge base's rows instead would
		// cost its whole size per term.
		match = `"` + kbToken(ix.kbID) + `" AND "` + term + `"`
		q = `SELECT t.seq, t.length, t.terms FROM kb_fts CROSS JOIN kb_chunk_terms t ON t.seq = kb_fts.rowid
			WHERE kb_fts MATCH ? AND t.knowledge_base_id = ? AND ` + ix.cond
	} else {
		// Terms hold only letters, digits and marks: no tsquery operator.
		match = kbToken(ix.kbID) + ` & ` + term
		q = `SELECT t.seq, t.length, t.terms FROM kb_chunk_terms t
			WHERE t.words @@ to_tsquery('simple', ?) AND t.knowledge_base_id = ? AND ` + ix.cond
	}
	rows, err := ix.tx.Query(ctx, q, append([]any{match, ix.kbID}, ix.args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []fulltext.Posting
	for rows.Next() {
		var seq int64
		var length int32
		var terms string
		if err := rows.Scan(&seq, &length, &terms); err != nil {
			return nil, err
		}
		// The engine may match where the vector does not hold the term
		// (its tokenizer differs from Go's): such a chunk is not a posting.
		if f := fulltext.FreqIn(terms, term); f > 0 {
			list = append(list, fulltext.Posting{Key: seq, Freq: int32(f), Length: length})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Sorted here: an ORDER BY would make PostgreSQL walk the primary key
	// rather than the GIN index.
	slices.SortFunc(list, func(a, b fulltext.Posting) int { return cmp.Compare(a.Key, b.Key) })
	ix.cache.put(ix.kbID, ix.version, term, list)
	return list, nil
}

// maxCatchUp bounds the rows a cache reads to catch up: past it, reading
// the lists again costs about as much.
const maxCatchUp = 2000

// catchUp brings the knowledge base's cached lists from an older version
// to this one: the chunks removed since leave every list, the chunks
// written since join the lists of the terms they hold. Lists too far
// behind (removals purged, or too many changes) are left to be replaced.
func (ix *fullTextIndex) catchUp(ctx context.Context) error {
	from, lists, ok := ix.cache.snapshot(ix.kbID)
	if !ok || from >= ix.version || from < ix.floor {
		return nil
	}
	removed := make(map[int64]bool)
	rows, err := ix.tx.Query(ctx, `SELECT seq FROM kb_index_removed WHERE knowledge_base_id = ? AND version > ?
		LIMIT ?`, ix.kbID, from, maxCatchUp+1)
	if err != nil {
		return err
	}
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return err
		}
		removed[seq] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(removed) > maxCatchUp {
		return err
	}
	added := make(map[string][]fulltext.Posting)
	n := 0
	rows, err = ix.tx.Query(ctx, `SELECT t.seq, t.length, t.terms FROM kb_chunk_terms t
		WHERE t.knowledge_base_id = ? AND t.version > ? AND `+ix.cond+` LIMIT ?`,
		append(append([]any{ix.kbID, from}, ix.args...), maxCatchUp+1)...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var seq int64
		var length int32
		var terms string
		if err := rows.Scan(&seq, &length, &terms); err != nil {
			rows.Close()
			return err
		}
		if n++; n > maxCatchUp {
			rows.Close()
			return rows.Err()
		}
		fulltext.ScanVector(terms, func(term string, freq int) {
			if _, cached := lists[term]; cached {
				added[term] = append(added[term], fulltext.Posting{Key: seq, Freq: int32(freq), Length: length})
			}
		})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for term, list := range lists {
		more := added[term]
		if len(more) == 0 && len(removed) == 0 {
			continue
		}
		slices.SortFunc(more, func(a, b fulltext.Posting) int { return cmp.Compare(a.Key, b.Key) })
		lists[term] = mergePostings(list, more, removed)
	}
	ix.cache.advance(ix.kbID, from, ix.version, lists)
	return nil
}

// mergePostings returns a new list: list and more (both by key) merged,
// without the keys in removed.
func mergePostings(list, more []fulltext.Posting, removed map[int64]bool) []fulltext.Posting {
	out := make([]fulltext.Posting, 0, len(list)+len(more))
	i, j := 0, 0
	for i < len(list) || j < len(more) {
		var p fulltext.Posting
		if j == len(more) || i < len(list) && list[i].Key < more[j].Key {
			p, i = list[i], i+1
		} else {
			p, j = more[j], j+1
		}
		if !removed[p.Key] {
			out = append(out, p)
		}
	}
	return out
}

// kbRef is a knowledge base named across tenants.
type kbRef struct{ id, tenant, model string }

// recentKnowledgeBases lists up to 1,000 knowledge bases of every tenant
// that match cond, most recently changed first, for the warm-ups.
func (db *DB) recentKnowledgeBases(ctx context.Context, cond string) ([]kbRef, error) {
	var kbs []kbRef
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, tenant_id, embedding_model FROM knowledge_bases WHERE `+cond+`
			ORDER BY updated_at DESC, id LIMIT 1000`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r kbRef
			if err := rows.Scan(&r.id, &r.tenant, &r.model); err != nil {
				return err
			}
			kbs = append(kbs, r)
		}
		return rows.Err()
	})
	return kbs, err
}

// WarmSearchCache reads into the search cache the posting lists of each
// knowledge base's most frequent terms, termsPerKB of them, knowledge
// bases most recently changed first, until the cache is nine-tenths full
// or ctx ends. Those lists are the costly ones to read cold (a common term
// of a large knowledge base takes up to a second), so a server warms them
// after it starts, in the background. It reads every tenant (it needs the
// all-tenants scope) and returns how many lists it read.
func (db *DB) WarmSearchCache(ctx context.Context, termsPerKB int) (int, error) {
	if err := requireAllTenants(ctx); err != nil {
		return 0, err
	}
	kbs, err := db.recentKnowledgeBases(ctx, `indexed_chunks > 0`)
	if err != nil {
		return 0, err
	}
	read := 0
	for _, kb := range kbs {
		if db.postings.full(0.9) {
			break
		}
		tctx := nodus.WithTenant(ctx, kb.tenant)
		cond, args, err := scopeCond(tctx, "t.tenant_id")
		if err != nil {
			return read, err
		}
		err = db.readSnapshot(tctx, func(tx *Tx) error {
			ix := &fullTextIndex{tx: tx, kbID: kb.id, cond: cond, args: args, cache: db.postings}
			err := tx.QueryRow(ctx, `SELECT index_version, index_floor FROM knowledge_bases WHERE id = ?`, kb.id).
				Scan(&ix.version, &ix.floor)
			if errors.Is(err, sql.ErrNoRows) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT term FROM kb_term_stats WHERE knowledge_base_id = ?
				ORDER BY df DESC, term LIMIT ?`, kb.id, termsPerKB)
			if err != nil {
				return err
			}
			var terms []string
			for rows.Next() {
				var term string
				if err := rows.Scan(&term); err != nil {
					rows.Close()
					return err
				}
				terms = append(terms, term)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, term := range terms {
				if db.postings.full(0.9) {
					return nil
				}
				if _, err := ix.Postings(ctx, term); err != nil {
					return err
				}
				read++
			}
			return nil
		})
		if err != nil {
			return read, err
		}
	}
	return read, nil
}
