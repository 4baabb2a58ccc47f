DROP TRIGGER adk_memory_versions_delete;
DROP TRIGGER adk_memory_versions_move;
DROP TRIGGER adk_memory_versions_update;
DROP TRIGGER adk_memory_versions_insert;
DROP TABLE adk_memory_versions;
