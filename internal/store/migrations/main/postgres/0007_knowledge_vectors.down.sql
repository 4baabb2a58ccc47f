DROP TABLE kb_vector_removed;
DROP TABLE kb_chunk_vectors;
