-- Full-text search of knowledge bases (internal/fulltext). Each chunk's
-- analysed terms are stored as a vector (kb_chunk_terms.terms, "term freq
-- …"). FTS5 indexes the chunk's distinct terms, after a token naming its
-- knowledge base, to find the chunks holding a term: it is contentless,
-- its rowid is kb_chunk_terms.seq (AUTOINCREMENT: a seq is never reused,
-- so a cached posting never names another chunk). Per knowledge base the
-- document frequency of each term, the count and total length of its
-- indexed chunks and a version bumped by each change are kept up to date
-- by the writes that change chunks, in the same transaction.

ALTER TABLE knowledge_bases ADD COLUMN indexed_chunks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE knowledge_bases ADD COLUMN indexed_length INTEGER NOT NULL DEFAULT 0;
-- Bumped by every change to the index: a process's cached posting lists
-- of the knowledge base are good while it holds, and catch up on a newer
-- one from the rows written (kb_chunk_terms.version) and removed
-- (kb_index_removed) since.
ALTER TABLE knowledge_bases ADD COLUMN index_version INTEGER NOT NULL DEFAULT 0;
-- Versions up to index_floor have had their removals purged: a cache
-- older than it cannot catch up and is dropped.
ALTER TABLE knowledge_bases ADD COLUMN index_floor INTEGER NOT NULL DEFAULT 0;

CREATE TABLE kb_chunk_terms (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id          TEXT NOT NULL UNIQUE REFERENCES kb_chunks (id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    knowledge_base_id TEXT NOT NULL,
    document_id       TEXT NOT NULL,
    version           INTEGER NOT NULL,
    length            INTEGER NOT NULL CHECK (length > 0),
    terms             TEXT NOT NULL
);
CREATE INDEX kb_chunk_terms_document ON kb_chunk_terms (document_id);
CREATE INDEX kb_chunk_terms_kb ON kb_chunk_terms (knowledge_base_id, version);

-- The chunks each version removed, for caches to catch up; purged as the
-- floor rises.
CREATE TABLE kb_index_removed (
    knowledge_base_id TEXT NOT NULL,
    version           INTEGER NOT NULL,
    seq               INTEGER NOT NULL,
    PRIMARY KEY (knowledge_base_id, version, seq)
) WITHOUT ROWID;

CREATE TABLE kb_term_stats (
    knowledge_base_id TEXT NOT NULL,
    term              TEXT NOT NULL,
    df                INTEGER NOT NULL,
    PRIMARY KEY (knowledge_base_id, term)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE kb_fts USING fts5 (words, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0');

-- Chunks written before this version have no terms: index them again.
UPDATE documents SET status = 'pending', stage = '', progress = 0 WHERE status = 'completed';
