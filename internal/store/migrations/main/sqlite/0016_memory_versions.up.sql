-- A version per user of an app's memories, which every write to them moves
-- on (triggers, so a bulk delete or a purge does too). The memory module
-- keeps users' memories analysed for search in process and checks this
-- one row before each search instead of reading them all again
-- (internal/memory/corpus.go). A user's row starts at a random version, so
-- one deleted with its tenant and made again never repeats a version a
-- process may still hold.
CREATE TABLE adk_memory_versions (
    tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
    app_name  TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, app_name, user_id)
) WITHOUT ROWID;

CREATE TRIGGER adk_memory_versions_insert AFTER INSERT ON adk_conversation_memory
BEGIN
    INSERT INTO adk_memory_versions (tenant_id, app_name, user_id, version)
        VALUES (NEW.tenant_id, NEW.app_name, NEW.user_id, (random() & 4611686018427387903) + 1)
        ON CONFLICT (tenant_id, app_name, user_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER adk_memory_versions_update AFTER UPDATE ON adk_conversation_memory
BEGIN
    INSERT INTO adk_memory_versions (tenant_id, app_name, user_id, version)
        VALUES (NEW.tenant_id, NEW.app_name, NEW.user_id, (random() & 4611686018427387903) + 1)
        ON CONFLICT (tenant_id, app_name, user_id) DO UPDATE SET version = version + 1;
END;
-- A memory moved to another user or app (the store never does) moves
-- the old one's version too.
CREATE TRIGGER adk_memory_versions_move AFTER UPDATE ON adk_conversation_memory
WHEN OLD.tenant_id <> NEW.tenant_id OR OLD.app_name <> NEW.app_name OR OLD.user_id <> NEW.user_id
BEGIN
    INSERT INTO adk_memory_versions (tenant_id, app_name, user_id, version)
        VALUES (OLD.tenant_id, OLD.app_name, OLD.user_id, (random() & 4611686018427387903) + 1)
        ON CONFLICT (tenant_id, app_name, user_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER adk_memory_versions_delete AFTER DELETE ON adk_conversation_memory
BEGIN
    INSERT INTO adk_memory_versions (tenant_id, app_name, user_id, version)
        VALUES (OLD.tenant_id, OLD.app_name, OLD.user_id, (random() & 4611686018427387903) + 1)
        ON CONFLICT (tenant_id, app_name, user_id) DO UPDATE SET version = version + 1;
END;
