-- Egress policies (internal/egress). Tenants live in the auth database, so
-- tenant_id has no foreign key here; the store checks the scope instead.

-- A tenant's mode; a tenant without a row enforces an empty allow-list.
CREATE TABLE IF NOT EXISTS tenant_egress_policies (
    tenant_id  TEXT PRIMARY KEY CHECK (tenant_id <> ''),
    mode       TEXT NOT NULL CHECK (mode IN ('enforce', 'report')),
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

-- Allowed destinations: a tenant's (tenant_id set) or the platform's,
-- which apply to every tenant (tenant_id NULL). port 0 means the scheme's
-- default; path_prefix '' means any path.
CREATE TABLE IF NOT EXISTS egress_rules (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT CHECK (tenant_id <> ''),
    host        TEXT NOT NULL CHECK (host <> ''),
    port        INTEGER NOT NULL DEFAULT 0 CHECK (port BETWEEN 0 AND 65535),
    path_prefix TEXT NOT NULL DEFAULT '',
    comment     TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS egress_rules_owner_dest ON egress_rules (COALESCE(tenant_id, ''), host, port, path_prefix);
CREATE INDEX IF NOT EXISTS egress_rules_tenant ON egress_rules (tenant_id, id);

-- Platform exceptions to the denied address ranges: one IP and one port
-- each (a local Ollama on 127.0.0.1:11434).
CREATE TABLE IF NOT EXISTS egress_address_exceptions (
    id         TEXT PRIMARY KEY,
    ip         TEXT NOT NULL CHECK (ip <> ''),
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    comment    TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    UNIQUE (ip, port)
);
