-- Chat (internal/chat): a tenant's chatbots, the knowledge bases each
-- answers from, its users' conversations and their messages. As with
-- knowledge bases, tenant_id has no foreign key (tenants live in the auth
-- database): the store checks the scope and DeleteChatTenant purges the
-- tenant's rows. Composite foreign keys keep every child in its parent's
-- tenant. JSON columns are TEXT, as elsewhere.

CREATE TABLE chatbots (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL CHECK (tenant_id <> ''),
    name            TEXT NOT NULL CHECK (name <> ''),
    description     TEXT NOT NULL DEFAULT '',
    system_prompt   TEXT NOT NULL DEFAULT '',
    model_name      TEXT NOT NULL DEFAULT '',
    -- NULL for the model's default.
    temperature     DOUBLE PRECISION CHECK (temperature >= 0),
    -- 0 for chat.DefaultMaxTokens.
    max_tokens      INTEGER NOT NULL DEFAULT 0 CHECK (max_tokens >= 0),
    -- The model's context window in tokens, the budget a turn's prompt
    -- and answer fit in; 0 for the server's default.
    context_tokens  INTEGER NOT NULL DEFAULT 0 CHECK (context_tokens >= 0),
    -- chat.RetrievalOverrides; '{}' keeps the knowledge bases' settings.
    retrieval       TEXT NOT NULL DEFAULT '{}',
    memory_enabled  BOOLEAN NOT NULL,
    welcome_message TEXT NOT NULL DEFAULT '',
    is_active       BOOLEAN NOT NULL,
    created_by      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

-- A chatbot's knowledge bases, in position order. Deleting a knowledge
-- base (DeleteKnowledgeBase, DeleteKnowledgeTenant) cascades here, so no
-- chatbot keeps a link to one that is gone.
CREATE TABLE chatbot_knowledge_bases (
    chatbot_id        TEXT NOT NULL,
    knowledge_base_id TEXT NOT NULL,
    tenant_id         TEXT NOT NULL CHECK (tenant_id <> ''),
    position          INTEGER NOT NULL CHECK (position >= 0),
    PRIMARY KEY (chatbot_id, knowledge_base_id),
    FOREIGN KEY (tenant_id, chatbot_id) REFERENCES chatbots (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, knowledge_base_id) REFERENCES knowledge_bases (tenant_id, id) ON DELETE CASCADE
);
-- Serves the cascade from knowledge_bases.
CREATE INDEX chatbot_knowledge_bases_kb ON chatbot_knowledge_bases (knowledge_base_id);

-- Listed newest first, per user and per chatbot: the indexes match the
-- keyset order (updated_at DESC, id DESC); the chatbot one also serves
-- the cascade from chatbots.
CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    chatbot_id TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    title      TEXT NOT NULL DEFAULT '',
    archived   BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, chatbot_id) REFERENCES chatbots (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX conversations_user ON conversations (tenant_id, user_id, updated_at DESC, id DESC);
CREATE INDEX conversations_chatbot ON conversations (tenant_id, chatbot_id, updated_at DESC, id DESC);

-- seq orders a conversation's messages: AddMessage assigns max + 1 under
-- the conversation's lock, so equal timestamps still have one order.
-- Feedback is on assistant messages only (the store checks); a rating and
-- its time are set and cleared together.
CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL CHECK (tenant_id <> ''),
    conversation_id  TEXT NOT NULL,
    seq              BIGINT NOT NULL CHECK (seq > 0),
    role             TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content          TEXT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}',
    feedback_rating  TEXT CHECK (feedback_rating IN ('like', 'dislike')),
    feedback_comment TEXT NOT NULL DEFAULT '',
    feedback_at      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (conversation_id, seq),
    CHECK ((feedback_rating IS NULL) = (feedback_at IS NULL)),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX messages_tenant ON messages (tenant_id);
