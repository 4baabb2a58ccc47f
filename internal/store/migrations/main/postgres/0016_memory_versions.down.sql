DROP TRIGGER adk_memory_versions_changed ON adk_conversation_memory;
DROP FUNCTION adk_memory_versions_changed();
DROP FUNCTION adk_memory_versions_bump(TEXT, TEXT, TEXT);
DROP TABLE adk_memory_versions;
