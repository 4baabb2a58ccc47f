-- Knowledge bases (internal/knowledge): collections of documents, and the
-- chunks search ranks. Tenants live in the auth database, so tenant_id has
-- no foreign key to tenants; the store checks the scope, and the tenant's
-- deletion purges these rows (DeleteKnowledgeTenant). Composite foreign
-- keys make a document's and a chunk's tenant and knowledge base their
-- parent's. JSON columns are TEXT, as elsewhere. Full-text and vector
-- indexes come with search.

CREATE TABLE knowledge_bases (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL CHECK (tenant_id <> ''),
    name            TEXT NOT NULL CHECK (name <> ''),
    description     TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL DEFAULT '',
    embedding_model TEXT NOT NULL DEFAULT '',
    retrieval_mode  TEXT NOT NULL CHECK (retrieval_mode IN ('fulltext', 'vector', 'hybrid')),
    top_k           INTEGER NOT NULL CHECK (top_k BETWEEN 1 AND 100),
    score_threshold REAL NOT NULL DEFAULT 0 CHECK (score_threshold >= 0),
    hybrid_weight   REAL NOT NULL CHECK (hybrid_weight BETWEEN 0 AND 1),
    chunk_size      INTEGER NOT NULL CHECK (chunk_size BETWEEN 50 AND 8192),
    chunk_overlap   INTEGER NOT NULL CHECK (chunk_overlap >= 0 AND chunk_overlap * 2 < chunk_size),
    header_aware    INTEGER NOT NULL CHECK (header_aware IN (0, 1)),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

-- content_hash is NULL until known (a URL not fetched yet), so the unique
-- constraint holds only between documents whose content is known.
CREATE TABLE documents (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    knowledge_base_id TEXT NOT NULL,
    filename          TEXT NOT NULL DEFAULT '',
    original_filename TEXT NOT NULL DEFAULT '',
    file_type         TEXT NOT NULL DEFAULT '',
    file_size         INTEGER NOT NULL DEFAULT 0 CHECK (file_size >= 0),
    content_hash      TEXT CHECK (length(content_hash) = 64),
    blob_id           TEXT NOT NULL DEFAULT '',
    source_url        TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    stage             TEXT NOT NULL DEFAULT '' CHECK (stage IN ('', 'extracting', 'chunking', 'embedding', 'indexing')),
    progress          INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    error             TEXT NOT NULL DEFAULT '',
    chunk_count       INTEGER NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    metadata          TEXT NOT NULL DEFAULT '{}',
    uploaded_by       TEXT NOT NULL DEFAULT '',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    processed_at      TEXT,
    UNIQUE (knowledge_base_id, content_hash),
    UNIQUE (knowledge_base_id, id),
    FOREIGN KEY (tenant_id, knowledge_base_id) REFERENCES knowledge_bases (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX documents_tenant ON documents (tenant_id, id);
CREATE INDEX documents_kb_status ON documents (knowledge_base_id, status, id);

CREATE TABLE kb_chunks (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    knowledge_base_id TEXT NOT NULL,
    document_id       TEXT NOT NULL,
    chunk_index       INTEGER NOT NULL CHECK (chunk_index >= 0),
    content           TEXT NOT NULL,
    prefix            TEXT NOT NULL DEFAULT '',
    headings          TEXT NOT NULL DEFAULT '[]',
    start_offset      INTEGER NOT NULL CHECK (start_offset >= 0),
    end_offset        INTEGER NOT NULL CHECK (end_offset >= start_offset),
    tokens            INTEGER NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    UNIQUE (document_id, chunk_index),
    FOREIGN KEY (knowledge_base_id, document_id) REFERENCES documents (knowledge_base_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, knowledge_base_id) REFERENCES knowledge_bases (tenant_id, id) ON DELETE CASCADE
);
-- Chunks by knowledge base; also serves the foreign key to documents.
CREATE INDEX kb_chunks_kb ON kb_chunks (knowledge_base_id, document_id);
CREATE INDEX kb_chunks_tenant ON kb_chunks (tenant_id);
