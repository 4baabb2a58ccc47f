-- A knowledge base's HNSW graph, kept so that a start loads it instead of
-- building it again (about a minute at 100,000 vectors, during which
-- searches are exact and slow). The graph holds no vectors of its live
-- nodes: those are kb_chunk_vectors' rows, matched by seq. version is the
-- knowledge base's index_version the graph had taken in; a load takes in
-- what changed since by comparing the graph's keys with the rows.
CREATE TABLE kb_vector_graphs (
    knowledge_base_id TEXT NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    model             TEXT NOT NULL,
    dim               INTEGER NOT NULL CHECK (dim > 0),
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    version           INTEGER NOT NULL,
    nodes             INTEGER NOT NULL,
    graph             BLOB NOT NULL,
    saved_at          TEXT NOT NULL,
    PRIMARY KEY (knowledge_base_id, model, dim)
);
