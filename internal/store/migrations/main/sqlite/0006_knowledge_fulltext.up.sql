-- Full-text search of knowledge bases (internal/fulltext). Each chunk's
-- analysed terms are stored as a vector (kb_chunk_terms.terms, "term freq
-- …"); BM25 scores candidates from it. FTS5 indexes the chunk's distinct
-- terms, after a token naming its knowledge base, only to find candidates
-- fast: it is contentless, its rowid is kb_chunk_terms.seq. The document
-- frequency of each term per knowledge base (with max_tf, the most times
-- one chunk held it: never lowered, so always a bound for search), and the knowledge base's
-- count and total length of indexed chunks, are kept up to date by the
-- writes that change chunks, in the same transaction.

ALTER TABLE knowledge_bases ADD COLUMN indexed_chunks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE knowledge_bases ADD COLUMN indexed_length INTEGER NOT NULL DEFAULT 0;

CREATE TABLE kb_chunk_terms (
    seq               INTEGER PRIMARY KEY,
    chunk_id          TEXT NOT NULL UNIQUE REFERENCES kb_chunks (id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    knowledge_base_id TEXT NOT NULL,
    document_id       TEXT NOT NULL,
    length            INTEGER NOT NULL CHECK (length > 0),
    terms             TEXT NOT NULL
);
CREATE INDEX kb_chunk_terms_document ON kb_chunk_terms (document_id);
CREATE INDEX kb_chunk_terms_kb ON kb_chunk_terms (knowledge_base_id);

CREATE TABLE kb_term_stats (
    knowledge_base_id TEXT NOT NULL,
    term              TEXT NOT NULL,
    df                INTEGER NOT NULL,
    max_tf            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (knowledge_base_id, term)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE kb_fts USING fts5 (words, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0');

-- Chunks written before this version have no terms: index them again.
UPDATE documents SET status = 'pending', stage = '', progress = 0 WHERE status = 'completed';
