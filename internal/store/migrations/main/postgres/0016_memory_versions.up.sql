-- A version per user of an app's memories, which every write to them moves
-- on (a trigger, so a bulk delete or a purge does too). The memory module
-- keeps users' memories analysed for search in process and checks this
-- one row before each search instead of reading them all again
-- (internal/memory/corpus.go). A user's row starts at a random version, so
-- one deleted with its tenant and made again never repeats a version a
-- process may still hold.
CREATE TABLE adk_memory_versions (
    tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
    app_name  TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, app_name, user_id)
);

ALTER TABLE adk_memory_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE adk_memory_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON adk_memory_versions
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

CREATE FUNCTION adk_memory_versions_bump(tenant TEXT, app TEXT, usr TEXT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO adk_memory_versions (tenant_id, app_name, user_id, version)
        VALUES (tenant, app, usr, floor(random() * 4611686018427387903)::bigint + 1)
        ON CONFLICT (tenant_id, app_name, user_id) DO UPDATE SET version = adk_memory_versions.version + 1;
$$;

CREATE FUNCTION adk_memory_versions_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM adk_memory_versions_bump(NEW.tenant_id, NEW.app_name, NEW.user_id);
    END IF;
    IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' AND (OLD.tenant_id, OLD.app_name, OLD.user_id) IS DISTINCT FROM (NEW.tenant_id, NEW.app_name, NEW.user_id) THEN
        PERFORM adk_memory_versions_bump(OLD.tenant_id, OLD.app_name, OLD.user_id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER adk_memory_versions_changed AFTER INSERT OR UPDATE OR DELETE ON adk_conversation_memory
    FOR EACH ROW EXECUTE FUNCTION adk_memory_versions_changed();
