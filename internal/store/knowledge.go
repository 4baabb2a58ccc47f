package store

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of knowledge bases, their documents and chunks,
// in the main database.
//
// A knowledge base's DocumentCount is counted on every read rather than
// kept in a column, so it can never drift from the rows. A document's
// content_hash is NULL while unknown, so the (knowledge_base_id,
// content_hash) unique constraint only compares known contents.

// The store implements the knowledge database.
var _ knowledge.Store = (*DB)(nil)

// Knowledge bases.

const kbColumns = `kb.id, kb.tenant_id, kb.name, kb.description, kb.created_by, kb.embedding_model, kb.retrieval_mode,
	kb.top_k, kb.score_threshold, kb.hybrid_weight, kb.chunk_size, kb.chunk_overlap, kb.header_aware, kb.created_at,
	kb.updated_at, ` + kbDocumentCount

const kbDocumentCount = `(SELECT count(*) FROM documents d WHERE d.knowledge_base_id = kb.id)`

func scanKnowledgeBase(row interface{ Scan(...any) error }, kb *knowledge.KnowledgeBase) error {
	return row.Scan(kbScanDest(kb)...)
}

// kbScanDest is where kbColumns scan to.
func kbScanDest(kb *knowledge.KnowledgeBase) []any {
	return []any{&kb.ID, &kb.TenantID, &kb.Name, &kb.Description, &kb.CreatedBy, &kb.EmbeddingModel,
		&kb.Retrieval.Mode, &kb.Retrieval.TopK, &kb.Retrieval.ScoreThreshold, &kb.Retrieval.HybridWeight,
		&kb.Chunking.Size, &kb.Chunking.Overlap, &kb.Chunking.HeaderAware, &kb.CreatedAt, &kb.UpdatedAt,
		&kb.DocumentCount}
}

func errKnowledgeBaseNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "knowledge base %s not found", id)
}

// kbNameTaken turns the unique violation of (tenant_id, name) into a
// field error; other errors pass through.
func kbNameTaken(err error) error {
	if nodus.ErrorCode(err) == nodus.ECONFLICT && errors.Unwrap(err) != nil {
		return &nodus.Error{Code: nodus.ECONFLICT, Message: "a knowledge base with this name exists",
			Fields: map[string]string{"name": "already taken"}, Err: err}
	}
	return err
}

// CreateKnowledgeBase stores a knowledge base of the scoped tenant;
// ECONFLICT when the tenant has one of the same name.
func (db *DB) CreateKnowledgeBase(ctx context.Context, kb knowledge.KnowledgeBase) error {
	tenantID, err := createTenant(ctx, kb.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("knowledge base", kb.ID); err != nil {
		return err
	}
	if err := kb.Validate(); err != nil {
		return err
	}
	err = db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO knowledge_bases (id, tenant_id, name, description, created_by,
			embedding_model, retrieval_mode, top_k, score_threshold, hybrid_weight, chunk_size, chunk_overlap,
			header_aware, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			kb.ID, tenantID, kb.Name, kb.Description, kb.CreatedBy, kb.EmbeddingModel, kb.Retrieval.Mode,
			kb.Retrieval.TopK, kb.Retrieval.ScoreThreshold, kb.Retrieval.HybridWeight, kb.Chunking.Size,
			kb.Chunking.Overlap, kb.Chunking.HeaderAware, kb.CreatedAt, kb.UpdatedAt)
		return err
	})
	return kbNameTaken(err)
}

// findKnowledgeBase reads a knowledge base in scope within tx, locking it
// for the rest of a write transaction when lock is set.
func findKnowledgeBase(ctx context.Context, tx *Tx, id, cond string, args []any, lock bool) (knowledge.KnowledgeBase, error) {
	var kb knowledge.KnowledgeBase
	q := `SELECT ` + kbColumns + ` FROM knowledge_bases kb WHERE kb.id = ? AND ` + cond
	if lock {
		q += tx.Dialect().ForUpdate()
	}
	err := scanKnowledgeBase(tx.QueryRow(ctx, q, append([]any{id}, args...)...), &kb)
	if errors.Is(err, sql.ErrNoRows) {
		return kb, errKnowledgeBaseNotFound(id)
	}
	return kb, err
}

// requireKnowledgeBase fails with ENOTFOUND unless the knowledge base id is
// in scope.
func requireKnowledgeBase(ctx context.Context, tx *Tx, id, cond string, args []any) error {
	var found string
	err := tx.QueryRow(ctx, `SELECT id FROM knowledge_bases WHERE id = ? AND `+cond, append([]any{id}, args...)...).
		Scan(&found)
	if errors.Is(err, sql.ErrNoRows) {
		return errKnowledgeBaseNotFound(id)
	}
	return err
}

// FindKnowledgeBase returns a knowledge base in scope, or ENOTFOUND.
func (db *DB) FindKnowledgeBase(ctx context.Context, id string) (knowledge.KnowledgeBase, error) {
	cond, args, err := scopeCond(ctx, "kb.tenant_id")
	if err != nil {
		return knowledge.KnowledgeBase{}, err
	}
	var kb knowledge.KnowledgeBase
	err = db.Read(ctx, func(tx *Tx) error {
		kb, err = findKnowledgeBase(ctx, tx, id, cond, args, false)
		return err
	})
	return kb, err
}

// LookupKnowledgeBase is FindKnowledgeBase without the DocumentCount, which
// costs a count of the documents: for ingestion and uploads.
func (db *DB) LookupKnowledgeBase(ctx context.Context, id string) (knowledge.KnowledgeBase, error) {
	cond, args, err := scopeCond(ctx, "kb.tenant_id")
	if err != nil {
		return knowledge.KnowledgeBase{}, err
	}
	var kb knowledge.KnowledgeBase
	err = db.Read(ctx, func(tx *Tx) error {
		err := tx.QueryRow(ctx, `SELECT `+strings.Replace(kbColumns, kbDocumentCount, "0", 1)+
			` FROM knowledge_bases kb WHERE kb.id = ? AND `+cond, append([]any{id}, args...)...).Scan(kbScanDest(&kb)...)
		if errors.Is(err, sql.ErrNoRows) {
			return errKnowledgeBaseNotFound(id)
		}
		return err
	})
	return kb, err
}

// ListKnowledgeBases returns a page of the knowledge bases in scope, by id.
func (db *DB) ListKnowledgeBases(ctx context.Context, cursor string, limit int) ([]knowledge.KnowledgeBase, string, error) {
	cond, args, err := scopeCond(ctx, "kb.tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	return listPage(ctx, db, `SELECT `+kbColumns+` FROM knowledge_bases kb WHERE kb.id > ? AND `+cond+
		` ORDER BY kb.id LIMIT ?`, append([]any{after}, args...), pageSize(limit), scanKnowledgeBase,
		func(kb knowledge.KnowledgeBase) string { return kb.ID })
}

// UpdateKnowledgeBase reads a knowledge base in scope under a lock, applies
// change and writes back every field but its id, tenant, creator and
// creation time, in one transaction. The result is validated before it is
// written.
func (db *DB) UpdateKnowledgeBase(ctx context.Context, id string, change func(*knowledge.KnowledgeBase) error) (knowledge.KnowledgeBase, error) {
	cond, args, err := scopeCond(ctx, "kb.tenant_id")
	if err != nil {
		return knowledge.KnowledgeBase{}, err
	}
	var kb knowledge.KnowledgeBase
	err = db.Write(ctx, func(tx *Tx) error {
		old, err := findKnowledgeBase(ctx, tx, id, cond, args, true)
		if err != nil {
			return err
		}
		kb = old
		if err := change(&kb); err != nil {
			return err
		}
		kb.ID, kb.TenantID, kb.CreatedBy, kb.CreatedAt, kb.DocumentCount = old.ID, old.TenantID, old.CreatedBy,
			old.CreatedAt, old.DocumentCount
		if err := kb.Validate(); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE knowledge_bases SET name = ?, description = ?, embedding_model = ?,
			retrieval_mode = ?, top_k = ?, score_threshold = ?, hybrid_weight = ?, chunk_size = ?, chunk_overlap = ?,
			header_aware = ?, updated_at = ? WHERE id = ?`,
			kb.Name, kb.Description, kb.EmbeddingModel, kb.Retrieval.Mode, kb.Retrieval.TopK,
			kb.Retrieval.ScoreThreshold, kb.Retrieval.HybridWeight, kb.Chunking.Size, kb.Chunking.Overlap,
			kb.Chunking.HeaderAware, kb.UpdatedAt, id)
		if err != nil || kb.EmbeddingModel == old.EmbeddingModel {
			return err
		}
		// The documents are embedded again by the new model, which
		// replaces the old one's vectors: its saved graph is of no use.
		_, err = tx.Exec(ctx, `DELETE FROM kb_vector_graphs WHERE knowledge_base_id = ? AND model <> ?`,
			id, kb.EmbeddingModel)
		return err
	})
	if err != nil {
		return knowledge.KnowledgeBase{}, kbNameTaken(err)
	}
	return kb, nil
}

// DeleteKnowledgeBase removes a knowledge base in scope with its documents
// and chunks, in one transaction, and returns the documents' blob ids.
func (db *DB) DeleteKnowledgeBase(ctx context.Context, id string) ([]string, error) {
	cond, args, err := scopeCond(ctx, "kb.tenant_id")
	if err != nil {
		return nil, err
	}
	var blobs []string
	err = db.Write(ctx, func(tx *Tx) error {
		// The lock makes a concurrent CreateDocument wait (its foreign key
		// check) and then fail, or commit first and be deleted here.
		if _, err := findKnowledgeBase(ctx, tx, id, cond, args, true); err != nil {
			return err
		}
		blobs, err = deleteKnowledgeRows(ctx, tx, `knowledge_base_id = ?`, `id = ?`, []any{id})
		return err
	})
	return blobs, err
}

// deleteKnowledgeRows deletes the chunks and documents childCond selects,
// then the knowledge bases kbCond selects (both take args), and returns the
// documents' blob ids. The foreign keys would cascade; deleting children
// first keeps each statement on its own index.
func deleteKnowledgeRows(ctx context.Context, tx *Tx, childCond, kbCond string, args []any) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT blob_id FROM documents WHERE `+childCond+` AND blob_id <> '' ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	var blobs []string
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		blobs = append(blobs, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := dropKnowledgeTerms(ctx, tx, kbCond, args); err != nil {
		return nil, err
	}
	for _, q := range []string{`DELETE FROM kb_chunks WHERE ` + childCond, `DELETE FROM documents WHERE ` + childCond,
		`DELETE FROM knowledge_bases WHERE ` + kbCond} {
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return nil, err
		}
	}
	return blobs, nil
}

// Documents.

const documentColumns = `id, tenant_id, knowledge_base_id, filename, original_filename, file_type, file_size,
	content_hash, blob_id, source_url, status, stage, progress, error, chunk_count, metadata, uploaded_by, created_at,
	updated_at, processed_at`

func scanDocument(row interface{ Scan(...any) error }, d *knowledge.Document) error {
	var hash sql.NullString
	var meta string
	if err := row.Scan(&d.ID, &d.TenantID, &d.KnowledgeBaseID, &d.Filename, &d.OriginalFilename, &d.FileType,
		&d.FileSize, &hash, &d.BlobID, &d.SourceURL, &d.Status, &d.Stage, &d.Progress, &d.Error, &d.ChunkCount,
		&meta, &d.UploadedBy, &d.CreatedAt, &d.UpdatedAt, &d.ProcessedAt); err != nil {
		return err
	}
	d.ContentHash = hash.String
	return decodeJSON("document metadata", meta, &d.Metadata)
}

func errDocumentNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "document %s not found", id)
}

// duplicateDocument returns the ECONFLICT for content the knowledge base
// already holds in document id.
func duplicateDocument(id string) error {
	return &nodus.Error{Code: nodus.ECONFLICT,
		Message: "document " + id + " in this knowledge base has the same content",
		Fields:  map[string]string{"content_hash": "same as document " + id},
		Err:     &knowledge.DuplicateError{DocumentID: id}}
}

// findDuplicate returns the id of another document of the knowledge base
// with the same content hash, or "".
func findDuplicate(ctx context.Context, tx *Tx, kbID, hash, exceptID string) (string, error) {
	if hash == "" {
		return "", nil
	}
	var id string
	err := tx.QueryRow(ctx, `SELECT id FROM documents WHERE knowledge_base_id = ? AND content_hash = ? AND id <> ?`,
		kbID, hash, exceptID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// CreateDocument stores a document in a knowledge base of the scoped
// tenant: ENOTFOUND when the knowledge base is not in scope, and ECONFLICT
// naming the existing document (a *knowledge.DuplicateError) when the
// knowledge base already holds the same content. ChunkCount starts at 0.
func (db *DB) CreateDocument(ctx context.Context, d knowledge.Document) error {
	tenantID, err := createTenant(ctx, d.TenantID)
	if err != nil {
		return err
	}
	if err := requireID("document", d.ID); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return err
	}
	meta, err := encodeJSON(d.Metadata, "{}", len(d.Metadata) == 0)
	if err != nil {
		return err
	}
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return err
	}
	err = db.Write(ctx, func(tx *Tx) error {
		if err := requireKnowledgeBase(ctx, tx, d.KnowledgeBaseID, cond, args); err != nil {
			return err
		}
		if dup, err := findDuplicate(ctx, tx, d.KnowledgeBaseID, d.ContentHash, d.ID); err != nil || dup != "" {
			if err == nil {
				err = duplicateDocument(dup)
			}
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO documents (`+documentColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)`,
			d.ID, tenantID, d.KnowledgeBaseID, d.Filename, d.OriginalFilename, d.FileType, d.FileSize,
			nullable(d.ContentHash), d.BlobID, d.SourceURL, d.Status, d.Stage, d.Progress, d.Error, meta, d.UploadedBy,
			d.CreatedAt, d.UpdatedAt, d.ProcessedAt)
		return err
	})
	return db.nameDuplicate(ctx, err, d)
}

// nameDuplicate turns the unique violation of a concurrent upload of the
// same content (PostgreSQL: both passed the check before either inserted)
// into the error naming the document that won.
func (db *DB) nameDuplicate(ctx context.Context, err error, d knowledge.Document) error {
	// Only a driver's unique violation (a wrapped cause), not a callback's
	// own ECONFLICT.
	var ne *nodus.Error
	if !errors.As(err, &ne) || ne.Code != nodus.ECONFLICT || ne.Err == nil || d.ContentHash == "" {
		return err
	}
	if _, ok := knowledge.DuplicateOf(err); ok {
		return err
	}
	var dup string
	if rerr := db.Read(ctx, func(tx *Tx) error {
		var ferr error
		dup, ferr = findDuplicate(ctx, tx, d.KnowledgeBaseID, d.ContentHash, d.ID)
		return ferr
	}); rerr != nil || dup == "" {
		return err
	}
	return duplicateDocument(dup)
}

// FindDocument returns a document in scope, or ENOTFOUND.
func (db *DB) FindDocument(ctx context.Context, id string) (knowledge.Document, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return knowledge.Document{}, err
	}
	var d knowledge.Document
	err = db.Read(ctx, func(tx *Tx) error {
		d, err = findDocument(ctx, tx, id, cond, args, false)
		return err
	})
	return d, err
}

func findDocument(ctx context.Context, tx *Tx, id, cond string, args []any, lock bool) (knowledge.Document, error) {
	var d knowledge.Document
	q := `SELECT ` + documentColumns + ` FROM documents WHERE id = ? AND ` + cond
	if lock {
		q += tx.Dialect().ForUpdate()
	}
	err := scanDocument(tx.QueryRow(ctx, q, append([]any{id}, args...)...), &d)
	if errors.Is(err, sql.ErrNoRows) {
		return d, errDocumentNotFound(id)
	}
	return d, err
}

// ListDocuments returns a page of the documents of a knowledge base in
// scope, by id; only those with the given status unless status is "".
// ENOTFOUND when the knowledge base is not in scope.
func (db *DB) ListDocuments(ctx context.Context, kbID, status, cursor string, limit int) ([]knowledge.Document, string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + documentColumns + ` FROM documents WHERE knowledge_base_id = ? AND id > ? AND ` + cond
	qargs := append([]any{kbID, after}, args...)
	if status != "" {
		if !knowledge.ValidStatus(status) {
			return nil, "", nodus.Errorf(nodus.EINVALID, "unknown document status %q", status)
		}
		q += ` AND status = ?`
		qargs = append(qargs, status)
	}
	n := pageSize(limit)
	var page []knowledge.Document
	err = db.Read(ctx, func(tx *Tx) error {
		if err := requireKnowledgeBase(ctx, tx, kbID, cond, args); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, q+` ORDER BY id LIMIT ?`, append(qargs, n+1)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d knowledge.Document
			if err := scanDocument(rows, &d); err != nil {
				return err
			}
			page = append(page, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	if len(page) <= n {
		return page, "", nil
	}
	page = page[:n]
	return page, encodeCursor(page[n-1].ID), nil
}

// UpdateDocumentState reads a document in scope under a lock (FOR UPDATE;
// SQLite's single writer), applies change and writes back its file and
// state fields; the id, tenant, knowledge base, chunk count, uploader and
// creation time stay as they were. An error from change, or a result that
// fails validation, leaves the row unchanged. A content hash that another
// document of the knowledge base has is ECONFLICT naming it.
func (db *DB) UpdateDocumentState(ctx context.Context, id string, change func(*knowledge.Document) error) (knowledge.Document, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return knowledge.Document{}, err
	}
	var d knowledge.Document
	err = db.Write(ctx, func(tx *Tx) error {
		d, err = updateDocument(ctx, tx, id, cond, args, change)
		return err
	})
	if err != nil {
		return knowledge.Document{}, db.nameDuplicate(ctx, err, d)
	}
	return d, nil
}

// updateDocument is UpdateDocumentState within tx; it returns the document
// as written, or as far as change got when it fails.
func updateDocument(ctx context.Context, tx *Tx, id, cond string, args []any, change func(*knowledge.Document) error) (knowledge.Document, error) {
	old, err := findDocument(ctx, tx, id, cond, args, true)
	if err != nil {
		return old, err
	}
	d := old
	d.Metadata = maps.Clone(old.Metadata) // a failed change leaves old intact
	if err := change(&d); err != nil {
		return d, err
	}
	d.ID, d.TenantID, d.KnowledgeBaseID, d.ChunkCount, d.UploadedBy, d.CreatedAt = old.ID, old.TenantID,
		old.KnowledgeBaseID, old.ChunkCount, old.UploadedBy, old.CreatedAt
	if err := d.Validate(); err != nil {
		return d, err
	}
	meta, err := encodeJSON(d.Metadata, "{}", len(d.Metadata) == 0)
	if err != nil {
		return d, err
	}
	if d.ContentHash != old.ContentHash {
		if dup, err := findDuplicate(ctx, tx, d.KnowledgeBaseID, d.ContentHash, d.ID); err != nil || dup != "" {
			if err == nil {
				err = duplicateDocument(dup)
			}
			return d, err
		}
	}
	_, err = tx.Exec(ctx, `UPDATE documents SET filename = ?, original_filename = ?, file_type = ?, file_size = ?,
		content_hash = ?, blob_id = ?, source_url = ?, status = ?, stage = ?, progress = ?, error = ?, metadata = ?,
		updated_at = ?, processed_at = ? WHERE id = ?`,
		d.Filename, d.OriginalFilename, d.FileType, d.FileSize, nullable(d.ContentHash), d.BlobID, d.SourceURL,
		d.Status, d.Stage, d.Progress, d.Error, meta, d.UpdatedAt, d.ProcessedAt, id)
	return d, err
}

// DeleteDocument removes a document in scope and its chunks, and returns
// its blob id.
func (db *DB) DeleteDocument(ctx context.Context, id string) (string, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return "", err
	}
	var blob string
	err = db.Write(ctx, func(tx *Tx) error {
		d, err := findDocument(ctx, tx, id, cond, args, true)
		if err != nil {
			return err
		}
		blob = d.BlobID
		delta, err := beginIndexChange(ctx, tx, d.KnowledgeBaseID)
		if err != nil {
			return err
		}
		if err := dropDocumentTerms(ctx, tx, id, &delta); err != nil {
			return err
		}
		if err := applyTermDelta(ctx, tx, d.KnowledgeBaseID, &delta); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM kb_chunks WHERE document_id = ?`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM documents WHERE id = ?`, id)
		return err
	})
	return blob, err
}

// CountUnfinishedDocuments counts a knowledge base's pending and
// processing documents. The statuses come first in the condition so the
// partial index of unfinished documents (migration 0005) answers: there
// are few of them, however large the knowledge base.
func (db *DB) CountUnfinishedDocuments(ctx context.Context, kbID string) (int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	var n int
	err = db.Read(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM documents WHERE status IN ('pending', 'processing')
			AND knowledge_base_id = ? AND `+cond, append([]any{kbID}, args...)...).Scan(&n)
	})
	return n, err
}

// Chunks.

// chunkBatchRows bounds the rows of one INSERT: 11 arguments a row stays
// far below both engines' limits on bound parameters.
const chunkBatchRows = 256

// ReplaceChunks replaces the chunks of a document in scope with chunks and
// sets its chunk count, in one transaction that first locks the document:
// concurrent or retried replacements run one after the other, and each
// leaves exactly its own set. Chunks take their tenant, knowledge base and
// document from the document; an empty chunk id is generated.
func (db *DB) ReplaceChunks(ctx context.Context, documentID string, chunks []knowledge.Chunk) error {
	_, err := db.IndexChunks(ctx, documentID, chunks, nil)
	return err
}

// IndexChunks is ReplaceChunks, and also applies change (unless nil) to
// the document in the same transaction, as UpdateDocumentState does: an
// ingestion stores its chunks and completes the document in one write.
// It returns the document as written.
func (db *DB) IndexChunks(ctx context.Context, documentID string, chunks []knowledge.Chunk, change func(*knowledge.Document) error) (knowledge.Document, error) {
	var d knowledge.Document
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return d, err
	}
	rows := make([][]any, len(chunks))
	ids := make([]string, len(chunks))
	for i, c := range chunks {
		if c.Index < 0 || c.Start < 0 || c.End < c.Start || c.Tokens < 0 {
			return d, nodus.Errorf(nodus.EINVALID, "chunk %d: invalid index, offsets or token count", i)
		}
		headings, err := encodeJSON(c.Headings, "[]", len(c.Headings) == 0)
		if err != nil {
			return d, err
		}
		id := c.ID
		if id == "" {
			id = nodus.NewID()
		}
		ids[i] = id
		rows[i] = []any{id, c.Index, c.Text, c.Prefix, headings, c.Start, c.End, c.Tokens}
	}
	err = db.Write(ctx, func(tx *Tx) error {
		if change != nil {
			d, err = updateDocument(ctx, tx, documentID, cond, args, change)
		} else {
			d, err = findDocument(ctx, tx, documentID, cond, args, true)
		}
		if err != nil {
			return err
		}
		delta, err := beginIndexChange(ctx, tx, d.KnowledgeBaseID)
		if err != nil {
			return err
		}
		if err := dropDocumentTerms(ctx, tx, documentID, &delta); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM kb_chunks WHERE document_id = ?`, documentID); err != nil {
			return err
		}
		rest := rows
		for _, size := range chunkSizes(len(rows), chunkBatchRows) {
			marks := strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", size)
			vals := make([]any, 0, size*11)
			for _, r := range rest[:size] {
				vals = append(vals, r[0], d.TenantID, d.KnowledgeBaseID, documentID)
				vals = append(vals, r[1:]...)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO kb_chunks (id, tenant_id, knowledge_base_id, document_id,
				chunk_index, content, prefix, headings, start_offset, end_offset, tokens) VALUES `+
				strings.TrimSuffix(marks, ", "), vals...); err != nil {
				return err
			}
			rest = rest[size:]
		}
		if err := insertChunkTerms(ctx, tx, d, ids, chunks, &delta); err != nil {
			return err
		}
		if err := insertChunkVectors(ctx, tx, d, ids, chunks, delta.version); err != nil {
			return err
		}
		if err := applyTermDelta(ctx, tx, d.KnowledgeBaseID, &delta); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE documents SET chunk_count = ? WHERE id = ?`, len(rows), documentID)
		d.ChunkCount = len(rows)
		return err
	})
	if err != nil {
		return knowledge.Document{}, err
	}
	return d, nil
}

const chunkColumns = `id, tenant_id, knowledge_base_id, document_id, chunk_index, content, prefix, headings, start_offset,
	end_offset, tokens`

func scanChunk(row interface{ Scan(...any) error }, c *knowledge.Chunk) error {
	var headings string
	if err := row.Scan(&c.ID, &c.TenantID, &c.KnowledgeBaseID, &c.DocumentID, &c.Index, &c.Text, &c.Prefix,
		&headings, &c.Start, &c.End, &c.Tokens); err != nil {
		return err
	}
	return decodeJSON("chunk headings", headings, &c.Headings)
}

// ListChunks returns the chunks of a document in scope by index, or
// ENOTFOUND for a document not in scope.
func (db *DB) ListChunks(ctx context.Context, documentID string) ([]knowledge.Chunk, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []knowledge.Chunk
	err = db.Read(ctx, func(tx *Tx) error {
		if _, err := findDocument(ctx, tx, documentID, cond, args, false); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+chunkColumns+` FROM kb_chunks WHERE document_id = ? AND `+cond+
			` ORDER BY chunk_index`, append([]any{documentID}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c knowledge.Chunk
			if err := scanChunk(rows, &c); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// CountChunks returns how many chunks a knowledge base in scope holds, or
// ENOTFOUND for a knowledge base not in scope.
func (db *DB) CountChunks(ctx context.Context, kbID string) (int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	var n int
	err = db.Read(ctx, func(tx *Tx) error {
		if err := requireKnowledgeBase(ctx, tx, kbID, cond, args); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM kb_chunks WHERE knowledge_base_id = ? AND `+cond,
			append([]any{kbID}, args...)...).Scan(&n)
	})
	return n, err
}

// DeleteKnowledgeTenant removes every knowledge base, document and chunk of
// the scoped tenant in one transaction and returns the documents' blob
// ids. Running it again is a no-op.
func (db *DB) DeleteKnowledgeTenant(ctx context.Context) ([]string, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return nil, err
	}
	var blobs []string
	err = db.Write(ctx, func(tx *Tx) error {
		blobs, err = deleteKnowledgeRows(ctx, tx, `tenant_id = ?`, `tenant_id = ?`, []any{tenantID})
		return err
	})
	return blobs, err
}

// MarkQueued sets the update time of the pending documents among refs to
// at: their ingestion was just queued, so the sweep of stalled documents
// leaves them alone for its grace period. It needs the all-tenants scope.
func (db *DB) MarkQueued(ctx context.Context, refs []knowledge.DocumentRef, at time.Time) error {
	if err := requireAllTenants(ctx); err != nil || len(refs) == 0 {
		return err
	}
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return db.Write(ctx, func(tx *Tx) error {
		for len(ids) > 0 {
			n := min(len(ids), maxChunkRows)
			if _, err := tx.Exec(ctx, `UPDATE documents SET updated_at = ? WHERE status = 'pending' AND id IN (`+
				placeholders(n)+`)`, append([]any{at.UTC()}, stringArgs(ids[:n])...)...); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
}

// ReindexDocuments moves the completed documents of a knowledge base in
// scope back to pending, as of at, for ingestion to index them again, and
// returns how many it moved. Their chunks stay searchable until each is
// replaced.
func (db *DB) ReindexDocuments(ctx context.Context, kbID string, at time.Time) (int, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Write(ctx, func(tx *Tx) error {
		if err := requireKnowledgeBase(ctx, tx, kbID, cond, args); err != nil {
			return err
		}
		n, err = tx.Exec(ctx, `UPDATE documents SET status = 'pending', stage = '', progress = 0, error = '',
			updated_at = ? WHERE knowledge_base_id = ? AND status = 'completed' AND `+cond,
			append([]any{at.UTC(), kbID}, args...)...)
		return err
	})
	return int(n), err
}

// ListStalledDocuments returns documents whose ingestion should be queued
// again: pending since before pendingBefore, or processing with no update
// since processingBefore. It reads every tenant, so it needs the
// all-tenants scope.
func (db *DB) ListStalledDocuments(ctx context.Context, pendingBefore, processingBefore time.Time, limit int) ([]knowledge.DocumentRef, error) {
	if err := requireAllTenants(ctx); err != nil {
		return nil, err
	}
	n := pageSize(limit)
	var out []knowledge.DocumentRef
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT tenant_id, id FROM documents
			WHERE status IN ('pending', 'processing')
			AND (status = 'pending' AND updated_at < ? OR status = 'processing' AND updated_at < ?)
			ORDER BY updated_at, id LIMIT ?`, pendingBefore.UTC(), processingBefore.UTC(), n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r knowledge.DocumentRef
			if err := rows.Scan(&r.TenantID, &r.ID); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}
