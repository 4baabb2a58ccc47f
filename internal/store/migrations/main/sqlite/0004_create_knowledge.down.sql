DROP TABLE kb_chunks;
DROP TABLE documents;
DROP TABLE knowledge_bases;
