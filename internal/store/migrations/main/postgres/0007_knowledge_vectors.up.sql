-- Vector search of knowledge bases (internal/vector). Each chunk embedded
-- by its knowledge base's embedding model has one row: the model that
-- made it, its dimension, a hash of the text embedded (so re-indexing
-- reuses the vectors of unchanged text rather than paying for them
-- again) and the vector itself, unit length, as little-endian float32.
-- seq and version work as kb_chunk_terms' do (migration 0006): a process
-- keeps a knowledge base's vectors in memory and catches up on the rows
-- written (version) and removed (kb_vector_removed) since its copy.

CREATE TABLE kb_chunk_vectors (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chunk_id          TEXT NOT NULL UNIQUE REFERENCES kb_chunks (id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    knowledge_base_id TEXT NOT NULL,
    document_id       TEXT NOT NULL,
    version           BIGINT NOT NULL,
    model             TEXT NOT NULL,
    dim               INTEGER NOT NULL CHECK (dim > 0),
    text_hash         TEXT NOT NULL,
    vector            BYTEA NOT NULL CHECK (octet_length(vector) = 4 * dim)
);
CREATE INDEX kb_chunk_vectors_document ON kb_chunk_vectors (document_id);
CREATE INDEX kb_chunk_vectors_kb ON kb_chunk_vectors (knowledge_base_id, model, dim, version);
CREATE INDEX kb_chunk_vectors_text ON kb_chunk_vectors (knowledge_base_id, model, text_hash);

-- The vectors each version removed, for in-memory copies to catch up;
-- purged with kb_index_removed as the floor rises.
CREATE TABLE kb_vector_removed (
    knowledge_base_id TEXT NOT NULL,
    version           BIGINT NOT NULL,
    seq               BIGINT NOT NULL,
    PRIMARY KEY (knowledge_base_id, version, seq)
);

-- Documents of a knowledge base with an embedding model were indexed for
-- full text only before this version: index them again, with vectors.
UPDATE documents SET status = 'pending', stage = '', progress = 0
WHERE status = 'completed' AND knowledge_base_id IN
    (SELECT id FROM knowledge_bases WHERE embedding_model <> '');
