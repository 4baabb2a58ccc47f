-- Notebooks (internal/notebook, the seeds' "Llibreta"): a user's notebooks,
-- who they are shared with, their sources (a knowledge-base document, a
-- recording, pasted text or a URL, each with its text captured when it was
-- added and a summary made in the background), their cards and their chat
-- sessions and messages. Tenants and users live in the auth database, so
-- tenant_id, owner_id and user_id have no foreign key; a tenant's deletion
-- purges these rows (DeleteNotebookTenant).

CREATE TABLE notebooks (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
    owner_id    TEXT NOT NULL CHECK (owner_id <> ''),
    name        TEXT NOT NULL CHECK (name <> ''),
    description TEXT NOT NULL DEFAULT '',
    model       TEXT NOT NULL DEFAULT '',
    archived    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
-- An owner's list, newest change first.
CREATE INDEX notebooks_owner ON notebooks (tenant_id, owner_id, updated_at, id);

CREATE TABLE notebook_shares (
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
    user_id     TEXT NOT NULL CHECK (user_id <> ''),
    permission  TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (notebook_id, user_id)
);
CREATE INDEX notebook_shares_user ON notebook_shares (tenant_id, user_id);

-- ref names what the source came from: a document or recording id, a URL,
-- '' for pasted text. full_text is what chat reads at the full level,
-- summary at the summary level; summary_method says who wrote it: 'model'
-- (the notebook's chat model) or 'extract' (its opening, without one).
CREATE TABLE notebook_sources (
    id             TEXT PRIMARY KEY,
    notebook_id    TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    tenant_id      TEXT NOT NULL CHECK (tenant_id <> ''),
    kind           TEXT NOT NULL CHECK (kind IN ('document', 'recording', 'text', 'url')),
    ref            TEXT NOT NULL DEFAULT '',
    title          TEXT NOT NULL CHECK (title <> ''),
    context_level  TEXT NOT NULL CHECK (context_level IN ('excluded', 'summary', 'full')),
    status         TEXT NOT NULL CHECK (status IN ('summarising', 'ready')),
    full_text      TEXT NOT NULL,
    summary        TEXT NOT NULL DEFAULT '',
    summary_method TEXT NOT NULL DEFAULT '',
    summary_note   TEXT NOT NULL DEFAULT '',
    created_by     TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX notebook_sources_notebook ON notebook_sources (tenant_id, notebook_id, id);

-- citations is a JSON array of {source_id, title, quote}.
CREATE TABLE notebook_cards (
    id          TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
    title       TEXT NOT NULL CHECK (title <> ''),
    content     TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL CHECK (kind IN ('human', 'ai')),
    position    INTEGER NOT NULL,
    pinned      BOOLEAN NOT NULL DEFAULT FALSE,
    citations   TEXT NOT NULL DEFAULT '[]',
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notebook_cards_notebook ON notebook_cards (tenant_id, notebook_id, position);

-- A chat session is one user's: others with access to the notebook do
-- not see it.
CREATE TABLE notebook_chats (
    id          TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
    user_id     TEXT NOT NULL CHECK (user_id <> ''),
    title       TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notebook_chats_user ON notebook_chats (tenant_id, notebook_id, user_id, updated_at, id);

-- metadata is the answer's JSON: model, citations, error.
CREATE TABLE notebook_messages (
    id         TEXT PRIMARY KEY,
    chat_id    TEXT NOT NULL REFERENCES notebook_chats (id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content    TEXT NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notebook_messages_chat ON notebook_messages (tenant_id, chat_id, id);

-- Row-level security as in 0011: only the transaction's tenant's rows.
ALTER TABLE notebooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE notebooks FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notebooks
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE notebook_shares ENABLE ROW LEVEL SECURITY;
ALTER TABLE notebook_shares FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notebook_shares
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE notebook_sources ENABLE ROW LEVEL SECURITY;
ALTER TABLE notebook_sources FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notebook_sources
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE notebook_cards ENABLE ROW LEVEL SECURITY;
ALTER TABLE notebook_cards FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notebook_cards
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE notebook_chats ENABLE ROW LEVEL SECURITY;
ALTER TABLE notebook_chats FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notebook_chats
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE notebook_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE notebook_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notebook_messages
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
