DROP TABLE adk_memory_history;
DROP TABLE adk_conversation_memory;
