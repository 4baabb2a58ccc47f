-- LLM tracing (internal/tracing), Langfuse's data model: traces, the tree
-- of observations under each, and scores, all keyed by (tenant_id, id)
-- because the ids are chosen by the client (the SDKs), so two tenants may
-- use the same one. tenant_id has no foreign key (tenants live in the auth
-- database): the store checks the scope and DeleteTracingTenant purges.
--
-- input, output, metadata, model_parameters, usage_details and
-- cost_details are JSON kept as sent (TEXT, not JSONB: verbatim, and the
-- same on both engines), NULL when never sent. tags is a JSON list.

CREATE TABLE traces (
    tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
    id          TEXT NOT NULL CHECK (id <> ''),
    name        TEXT NOT NULL DEFAULT '',
    user_id     TEXT NOT NULL DEFAULT '',
    session_id  TEXT NOT NULL DEFAULT '',
    release     TEXT NOT NULL DEFAULT '',
    version     TEXT NOT NULL DEFAULT '',
    environment TEXT NOT NULL DEFAULT 'default',
    tags        TEXT NOT NULL DEFAULT '[]',
    public      BOOLEAN NOT NULL DEFAULT FALSE,
    input       TEXT,
    output      TEXT,
    metadata    TEXT,
    timestamp   TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Listed newest first: the index matches the keyset order.
CREATE INDEX traces_timestamp ON traces (tenant_id, timestamp DESC, id DESC);

CREATE TABLE observations (
    tenant_id             TEXT NOT NULL CHECK (tenant_id <> ''),
    id                    TEXT NOT NULL CHECK (id <> ''),
    trace_id              TEXT NOT NULL CHECK (trace_id <> ''),
    parent_observation_id TEXT NOT NULL DEFAULT '',
    type                  TEXT NOT NULL,
    name                  TEXT NOT NULL DEFAULT '',
    start_time            TIMESTAMPTZ NOT NULL,
    end_time              TIMESTAMPTZ,
    completion_start_time TIMESTAMPTZ,
    input                 TEXT,
    output                TEXT,
    metadata              TEXT,
    level                 TEXT NOT NULL DEFAULT 'DEFAULT',
    status_message        TEXT NOT NULL DEFAULT '',
    version               TEXT NOT NULL DEFAULT '',
    environment           TEXT NOT NULL DEFAULT 'default',
    model                 TEXT NOT NULL DEFAULT '',
    model_parameters      TEXT,
    usage_details         TEXT NOT NULL DEFAULT '{}',
    cost_details          TEXT NOT NULL DEFAULT '{}',
    prompt_name           TEXT NOT NULL DEFAULT '',
    prompt_version        INTEGER NOT NULL DEFAULT 0,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX observations_trace ON observations (tenant_id, trace_id);

CREATE TABLE scores (
    tenant_id      TEXT NOT NULL CHECK (tenant_id <> ''),
    id             TEXT NOT NULL CHECK (id <> ''),
    trace_id       TEXT NOT NULL CHECK (trace_id <> ''),
    observation_id TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL DEFAULT '',
    value          DOUBLE PRECISION,
    string_value   TEXT NOT NULL DEFAULT '',
    data_type      TEXT NOT NULL DEFAULT 'NUMERIC',
    comment        TEXT NOT NULL DEFAULT '',
    source         TEXT NOT NULL DEFAULT 'API',
    timestamp      TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX scores_trace ON scores (tenant_id, trace_id);

-- The envelope ids already applied: a retried envelope is a no-op.
CREATE TABLE ingestion_events (
    tenant_id   TEXT NOT NULL CHECK (tenant_id <> ''),
    event_id    TEXT NOT NULL CHECK (event_id <> ''),
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

-- Langfuse key pairs: the public key names the pair, only a SHA-256 of
-- the secret is kept.
CREATE TABLE tracing_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL CHECK (tenant_id <> ''),
    public_key   TEXT NOT NULL UNIQUE,
    secret_hash  BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
    name         TEXT NOT NULL DEFAULT '',
    created_by   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX tracing_keys_tenant ON tracing_keys (tenant_id, created_at);
