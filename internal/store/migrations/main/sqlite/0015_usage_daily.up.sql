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
    requests          INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros       INTEGER NOT NULL DEFAULT 0,
    chat_turns        INTEGER NOT NULL DEFAULT 0,
    conversations     INTEGER NOT NULL DEFAULT 0,
    documents         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, chatbot_id, user_id, model)
);
-- The rollup replaces a day for every tenant at once.
CREATE INDEX usage_daily_day ON usage_daily (day);

-- The rollup's reads of a day's activity.
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX conversations_created ON conversations (created_at);
CREATE INDEX documents_processed ON documents (processed_at);
