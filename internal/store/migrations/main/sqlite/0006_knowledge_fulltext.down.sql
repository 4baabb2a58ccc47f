DROP TABLE kb_fts;
DROP TABLE kb_index_removed;
DROP TABLE kb_term_stats;
DROP TABLE kb_chunk_terms;
ALTER TABLE knowledge_bases DROP COLUMN index_floor;
ALTER TABLE knowledge_bases DROP COLUMN index_version;
ALTER TABLE knowledge_bases DROP COLUMN indexed_length;
ALTER TABLE knowledge_bases DROP COLUMN indexed_chunks;
