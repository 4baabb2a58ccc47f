-- Secret handles (internal/vault): opaque ids other modules store instead
-- of a secret's value. A handle names a secret of its tenant in the vault
-- database (environment, path, key; version 0 = the newest) and the hosts
-- the value may be sent to. No value is ever stored here.
CREATE TABLE secret_handles (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    environment   TEXT NOT NULL,
    path          TEXT NOT NULL,
    key           TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0),
    allowed_hosts TEXT NOT NULL DEFAULT '[]',
    purpose       TEXT NOT NULL DEFAULT '',
    label         TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    created_by    TEXT NOT NULL DEFAULT '',
    updated_at    TIMESTAMPTZ NOT NULL,
    updated_by    TEXT NOT NULL DEFAULT '',
    last_used_at  TIMESTAMPTZ,
    last_used_by  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX secret_handles_tenant ON secret_handles (tenant_id, id);
