DROP TABLE kb_vector_graphs;
