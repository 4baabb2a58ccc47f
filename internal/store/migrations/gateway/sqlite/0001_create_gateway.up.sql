-- The LLM gateway (internal/gateway), in its own database
-- (GATEWAY_DATABASE_URL). Tenants live in the auth database, so tenant_id
-- has no foreign key here; the store checks the scope instead. Money is
-- integer micro-dollars (64-bit INTEGER), durations integer milliseconds.

-- Deployments: one upstream serving a public model name; rows with the
-- same model_name form a load-balanced group. api_key_handle is a vault
-- secret handle id, never a key.
CREATE TABLE gateway_deployments (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL CHECK (tenant_id <> ''),
    model_name      TEXT NOT NULL CHECK (model_name <> ''),
    provider        TEXT NOT NULL,
    upstream_model  TEXT NOT NULL DEFAULT '',
    base_url        TEXT NOT NULL DEFAULT '',
    api_key_handle  TEXT NOT NULL DEFAULT '',
    api_version     TEXT NOT NULL DEFAULT '',
    mode            TEXT NOT NULL,
    weight          INTEGER NOT NULL CHECK (weight >= 1),
    rpm             INTEGER NOT NULL DEFAULT 0 CHECK (rpm >= 0),
    tpm             INTEGER NOT NULL DEFAULT 0 CHECK (tpm >= 0),
    max_concurrency INTEGER NOT NULL DEFAULT 0 CHECK (max_concurrency >= 0),
    timeout_ms      INTEGER NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),
    is_active       INTEGER NOT NULL CHECK (is_active IN (0, 1)),
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL DEFAULT '',
    updated_at      TEXT NOT NULL,
    updated_by      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX gateway_deployments_model ON gateway_deployments (tenant_id, model_name, id);

-- Routing rules, one row per tenant; a tenant without one has the
-- defaults. fallbacks is a JSON object: model → models to try in order.
CREATE TABLE gateway_router_settings (
    tenant_id      TEXT PRIMARY KEY CHECK (tenant_id <> ''),
    strategy       TEXT NOT NULL DEFAULT '',
    num_retries    INTEGER NOT NULL DEFAULT 0 CHECK (num_retries >= 0),
    allowed_fails  INTEGER NOT NULL DEFAULT 0 CHECK (allowed_fails >= 0),
    fail_window_ms INTEGER NOT NULL DEFAULT 0 CHECK (fail_window_ms >= 0),
    cooldown_ms    INTEGER NOT NULL DEFAULT 0 CHECK (cooldown_ms >= 0),
    fallbacks      TEXT NOT NULL DEFAULT '{}',
    updated_at     TEXT NOT NULL,
    updated_by     TEXT NOT NULL DEFAULT ''
);

-- Virtual keys. Only SHA-256 hashes of secrets are kept: hash is the
-- current secret's, previous_hash the one before the last rotation, valid
-- until previous_valid_until. Both are sign-in lookups, hence indexed.
-- models is a JSON array, metadata a JSON object.
CREATE TABLE gateway_keys (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL CHECK (tenant_id <> ''),
    name                 TEXT NOT NULL DEFAULT '',
    hash                 BLOB NOT NULL,
    prefix               TEXT NOT NULL DEFAULT '',
    user_id              TEXT NOT NULL DEFAULT '',
    models               TEXT NOT NULL DEFAULT '[]',
    rpm                  INTEGER NOT NULL DEFAULT 0 CHECK (rpm >= 0),
    tpm                  INTEGER NOT NULL DEFAULT 0 CHECK (tpm >= 0),
    max_parallel         INTEGER NOT NULL DEFAULT 0 CHECK (max_parallel >= 0),
    expires_at           TEXT,
    metadata             TEXT NOT NULL DEFAULT '{}',
    status               TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    previous_hash        BLOB,
    previous_valid_until TEXT,
    created_at           TEXT NOT NULL,
    created_by           TEXT NOT NULL DEFAULT '',
    updated_at           TEXT NOT NULL,
    updated_by           TEXT NOT NULL DEFAULT '',
    last_used_at         TEXT
);
CREATE UNIQUE INDEX gateway_keys_hash ON gateway_keys (hash);
CREATE INDEX gateway_keys_previous_hash ON gateway_keys (previous_hash);
CREATE INDEX gateway_keys_tenant ON gateway_keys (tenant_id, id);

-- Budgets: at most one per tenant, scope and subject ('' for the tenant
-- itself). spend is what the current period settled; it changes only
-- through WriteSpend (spend = spend + increment) and ResetBudget.
CREATE TABLE gateway_budgets (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    scope      TEXT NOT NULL CHECK (scope IN ('tenant', 'user', 'key')),
    subject_id TEXT NOT NULL DEFAULT '',
    max_micros INTEGER NOT NULL CHECK (max_micros >= 0),
    period     TEXT NOT NULL DEFAULT '',
    reset_at   TEXT,
    spend      INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX gateway_budgets_subject ON gateway_budgets (tenant_id, scope, subject_id);

-- A tenant's own prices, micro-dollars per million tokens.
CREATE TABLE gateway_prices (
    tenant_id    TEXT NOT NULL CHECK (tenant_id <> ''),
    model        TEXT NOT NULL CHECK (model <> ''),
    input        INTEGER NOT NULL CHECK (input >= 0),
    cached_input INTEGER NOT NULL CHECK (cached_input >= 0),
    output       INTEGER NOT NULL CHECK (output >= 0),
    updated_at   TEXT NOT NULL,
    updated_by   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, model)
);

-- One row per request, written in batches off the hot path. It has no
-- CHECK constraints on purpose: a row the database refused would stall
-- the batch it travels in. Payloads are never stored.
CREATE TABLE gateway_spend_logs (
    request_id        TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    key_id            TEXT NOT NULL DEFAULT '',
    user_id           TEXT NOT NULL DEFAULT '',
    end_user          TEXT NOT NULL DEFAULT '',
    call_type         TEXT NOT NULL DEFAULT '',
    model             TEXT NOT NULL DEFAULT '',
    deployment_id     TEXT NOT NULL DEFAULT '',
    provider          TEXT NOT NULL DEFAULT '',
    upstream_model    TEXT NOT NULL DEFAULT '',
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    usage_estimated   INTEGER NOT NULL,
    cost_micros       INTEGER NOT NULL DEFAULT 0,
    started_at        TEXT NOT NULL,
    ended_at          TEXT NOT NULL,
    ttft_ms           INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL DEFAULT '',
    status_code       INTEGER NOT NULL DEFAULT 0,
    error_class       TEXT NOT NULL DEFAULT '',
    trace_id          TEXT NOT NULL DEFAULT '',
    metadata          TEXT NOT NULL DEFAULT '{}'
);
-- request_id completes the time index so newest-first paging by
-- (started_at, request_id) reads it in order.
CREATE INDEX gateway_spend_logs_time ON gateway_spend_logs (tenant_id, started_at, request_id);
CREATE INDEX gateway_spend_logs_key ON gateway_spend_logs (tenant_id, key_id, started_at);
CREATE INDEX gateway_spend_logs_user ON gateway_spend_logs (tenant_id, user_id, started_at);

-- Daily rollups of the spend logs, added to in the transaction that
-- inserts the logs. '' stands for an absent key or user id. day is
-- YYYY-MM-DD in UTC. Retention deletes logs, never rollups.
CREATE TABLE gateway_daily_spend (
    tenant_id         TEXT NOT NULL,
    day               TEXT NOT NULL,
    key_id            TEXT NOT NULL DEFAULT '',
    user_id           TEXT NOT NULL DEFAULT '',
    model             TEXT NOT NULL DEFAULT '',
    provider          TEXT NOT NULL DEFAULT '',
    requests          INTEGER NOT NULL DEFAULT 0,
    successes         INTEGER NOT NULL DEFAULT 0,
    failures          INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    cost_micros       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, key_id, user_id, model, provider)
);
