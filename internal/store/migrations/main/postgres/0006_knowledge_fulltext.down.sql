DROP TABLE kb_index_removed;
DROP TABLE kb_term_stats;
DROP TABLE kb_chunk_terms;
ALTER TABLE knowledge_bases DROP COLUMN index_floor, DROP COLUMN index_version, DROP COLUMN indexed_length, DROP COLUMN indexed_chunks;
