-- Usage metrics per day, tenant, chatbot, user and model (the seed's
-- "metrics"), rebuilt by the usage rollup job from the product's own
-- records: a day's rows are replaced whole, never added to, so a rebuild
-- is idempotent. '' stands for no chatbot, user or model: gateway calls
-- made outside a chat are on chatbot '', documents and conversations on
-- model ''. day is YYYY-MM-DD in UTC.
CREATE TABLE usage_daily (
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    day               TEXT NOT NULL,
    chatbot_id        TEXT NOT NULL DEFAULT '',
    user_id           TEXT NOT NULL DEFAULT '',
    model             TEXT NOT NULL DEFAULT '',
    requests          BIGINT NOT NULL DEFAULT 0,
    errors            BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros       BIGINT NOT NULL DEFAULT 0,
    chat_turns        BIGINT NOT NULL DEFAULT 0,
    conversations     BIGINT NOT NULL DEFAULT 0,
    documents         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, chatbot_id, user_id, model)
);
-- The rollup replaces a day for every tenant at once.
CREATE INDEX usage_daily_day ON usage_daily (day);

-- The rollup's reads of a day's activity.
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX conversations_created ON conversations (created_at);
CREATE INDEX documents_processed ON documents (processed_at);

ALTER TABLE usage_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON usage_daily
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
