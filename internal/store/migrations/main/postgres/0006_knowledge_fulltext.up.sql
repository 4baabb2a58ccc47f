-- Full-text search of knowledge bases (internal/fulltext). Each chunk's
-- analysed terms are stored as a vector (kb_chunk_terms.terms, "term freq
-- …"). A tsvector of the chunk's distinct terms, after a token naming its
-- knowledge base, under a GIN index, finds the chunks holding a term
-- ('simple' configuration: the terms are already stemmed). Per knowledge
-- base the document frequency of each term, the count and total length of
-- its indexed chunks and a version bumped by each change are kept up to
-- date by the writes that change chunks, in the same transaction.

ALTER TABLE knowledge_bases ADD COLUMN indexed_chunks BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN indexed_length BIGINT NOT NULL DEFAULT 0,
    -- Bumped by every change to the index: a process's cached posting
    -- lists of the knowledge base are good while it holds, and catch up on
    -- a newer one from the rows written (kb_chunk_terms.version) and
    -- removed (kb_index_removed) since.
    ADD COLUMN index_version BIGINT NOT NULL DEFAULT 0,
    -- Versions up to index_floor have had their removals purged: a cache
    -- older than it cannot catch up and is dropped.
    ADD COLUMN index_floor BIGINT NOT NULL DEFAULT 0;

CREATE TABLE kb_chunk_terms (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chunk_id          TEXT NOT NULL UNIQUE REFERENCES kb_chunks (id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    knowledge_base_id TEXT NOT NULL,
    document_id       TEXT NOT NULL,
    version           BIGINT NOT NULL,
    length            INTEGER NOT NULL CHECK (length > 0),
    terms             TEXT NOT NULL,
    words             TSVECTOR NOT NULL
);
CREATE INDEX kb_chunk_terms_document ON kb_chunk_terms (document_id);
CREATE INDEX kb_chunk_terms_kb ON kb_chunk_terms (knowledge_base_id, version);
-- fastupdate off: a pending list of new entries makes the planner choose
-- a sequential scan until vacuum merges it (measured: 20 ms instead of
-- 0.1 ms for a rare term); inserting straight into the index costs little.
CREATE INDEX kb_chunk_terms_words ON kb_chunk_terms USING gin (words) WITH (fastupdate = off);

-- The chunks each version removed, for caches to catch up; purged as the
-- floor rises.
CREATE TABLE kb_index_removed (
    knowledge_base_id TEXT NOT NULL,
    version           BIGINT NOT NULL,
    seq               BIGINT NOT NULL,
    PRIMARY KEY (knowledge_base_id, version, seq)
);

CREATE TABLE kb_term_stats (
    knowledge_base_id TEXT NOT NULL,
    term              TEXT NOT NULL,
    df                BIGINT NOT NULL,
    PRIMARY KEY (knowledge_base_id, term)
);

-- Chunks written before this version have no terms: index them again.
UPDATE documents SET status = 'pending', stage = '', progress = 0 WHERE status = 'completed';
