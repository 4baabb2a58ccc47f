-- Agent sessions (internal/agent), in the shape of Google ADK's
-- DatabaseSessionService (v1 schema) with a tenant in front of every key:
-- sessions, their events, and the state shared by every session of an app
-- (app: keys) or of one user of an app (user: keys). app_name is the
-- agent or chatbot within the tenant; user_id is free text to the store.
-- Tenants live in the auth database, so tenant_id has no foreign key; the
-- store checks the scope and the tenant's deletion purges these rows
-- (DeleteAgentTenant). State columns are JSON objects as TEXT, as
-- elsewhere; app and user state are stored without their prefix.

-- event_sequence counts the events appended: it is the session's version
-- for optimistic concurrency (an append names the sequence it read) and
-- the seq of its newest event.
CREATE TABLE agent_sessions (
    tenant_id      TEXT NOT NULL CHECK (tenant_id <> ''),
    app_name       TEXT NOT NULL CHECK (app_name <> ''),
    user_id        TEXT NOT NULL CHECK (user_id <> ''),
    id             TEXT NOT NULL CHECK (id <> ''),
    state          TEXT NOT NULL DEFAULT '{}',
    event_sequence INTEGER NOT NULL DEFAULT 0 CHECK (event_sequence >= 0),
    display_name   TEXT NOT NULL DEFAULT '',
    create_time    TEXT NOT NULL,
    update_time    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, app_name, user_id, id)
);

-- Events are append-only; event_data is the whole event as JSON, the
-- columns beside it are what queries filter and order on. There is no
-- foreign key to the session: SQLite enforces none without the pragma, so
-- the store deletes a session's events itself, in the session's
-- transaction. UNIQUE (…, seq) keeps one event per place in the order
-- should two appends ever race past the session's lock.
CREATE TABLE agent_events (
    tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
    app_name      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    id            TEXT NOT NULL CHECK (id <> ''),
    seq           INTEGER NOT NULL CHECK (seq > 0),
    invocation_id TEXT NOT NULL DEFAULT '',
    author        TEXT NOT NULL DEFAULT '',
    timestamp     TEXT NOT NULL,
    event_data    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, app_name, user_id, session_id, id),
    UNIQUE (tenant_id, app_name, user_id, session_id, seq)
);
-- Reads after a time (GetRequest.After), as ADK's idx_events_app_user_session_ts.
CREATE INDEX agent_events_time ON agent_events (tenant_id, app_name, user_id, session_id, timestamp);

CREATE TABLE agent_app_states (
    tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
    app_name    TEXT NOT NULL CHECK (app_name <> ''),
    state       TEXT NOT NULL DEFAULT '{}',
    update_time TEXT NOT NULL,
    PRIMARY KEY (tenant_id, app_name)
);

CREATE TABLE agent_user_states (
    tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
    app_name    TEXT NOT NULL CHECK (app_name <> ''),
    user_id     TEXT NOT NULL CHECK (user_id <> ''),
    state       TEXT NOT NULL DEFAULT '{}',
    update_time TEXT NOT NULL,
    PRIMARY KEY (tenant_id, app_name, user_id)
);
