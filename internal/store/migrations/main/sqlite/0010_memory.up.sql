-- Long-term memory (internal/memory): the facts a tenant's apps (ADK's
-- app_name; a chatbot's id) keep about each of their users, and the log of
-- every change to them. tenant_id has no foreign key (tenants live in the
-- auth database): the store checks the scope and DeleteMemoryTenant purges
-- the tenant's rows.
--
-- A memory is deleted outright, so every row is live: hash (sha256 hex of
-- the normalised text) is unique per (tenant, app, user). The history
-- keeps a deleted memory's rows, as mem0's does, until the tenant is
-- purged. categories and source_message_ids are JSON lists; embedding is a
-- unit vector of little-endian float32s made by embedding_model, or NULL
-- with embedding_model '' when there is none.

CREATE TABLE adk_conversation_memory (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL CHECK (tenant_id <> ''),
    app_name           TEXT NOT NULL CHECK (app_name <> ''),
    user_id            TEXT NOT NULL CHECK (user_id <> ''),
    memory             TEXT NOT NULL CHECK (memory <> ''),
    hash               TEXT NOT NULL CHECK (length(hash) = 64),
    categories         TEXT NOT NULL DEFAULT '[]',
    session_id         TEXT NOT NULL DEFAULT '',
    source_message_ids TEXT NOT NULL DEFAULT '[]',
    embedding_model    TEXT NOT NULL DEFAULT '',
    embedding          BLOB,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CHECK ((embedding IS NULL) = (embedding_model = '')),
    CHECK (embedding IS NULL OR (length(embedding) > 0 AND length(embedding) % 4 = 0)),
    UNIQUE (tenant_id, app_name, user_id, hash)
);
-- Listed newest first per user of an app: the index matches the keyset
-- order (updated_at DESC, id DESC).
CREATE INDEX adk_conversation_memory_user
    ON adk_conversation_memory (tenant_id, app_name, user_id, updated_at DESC, id DESC);

CREATE TABLE adk_memory_history (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    memory_id  TEXT NOT NULL,
    event      TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_memory TEXT NOT NULL DEFAULT '',
    new_memory TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX adk_memory_history_memory ON adk_memory_history (memory_id, created_at);
-- Serves the tenant purge.
CREATE INDEX adk_memory_history_tenant ON adk_memory_history (tenant_id);
