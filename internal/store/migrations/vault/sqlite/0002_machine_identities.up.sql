-- Machine identities (internal/vault, machine.go): services that read
-- secrets without a user's login. A client id (public) and a client secret
-- (shown once; only its SHA-256 is kept) are exchanged at login for a
-- short-lived access token, of which only the SHA-256 is kept too.
CREATE TABLE vault_machines (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    client_id         TEXT NOT NULL UNIQUE,
    secret_hash       TEXT NOT NULL,
    token_ttl_seconds INTEGER NOT NULL CHECK (token_ttl_seconds BETWEEN 1 AND 86400),
    token_use_limit   INTEGER NOT NULL CHECK (token_use_limit >= 0),
    allowed_cidrs     TEXT NOT NULL DEFAULT '[]',
    is_active         INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at        TEXT NOT NULL,
    created_by        TEXT NOT NULL DEFAULT '',
    updated_at        TEXT NOT NULL,
    updated_by        TEXT NOT NULL DEFAULT '',
    last_used_at      TEXT
);
CREATE UNIQUE INDEX vault_machines_name ON vault_machines (tenant_id, name);

-- Access tokens: uses_left is NULL for a token without a use limit.
-- Expired and used-up tokens are deleted by DeleteExpiredMachineTokens.
CREATE TABLE vault_machine_tokens (
    token_hash TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES vault_machines (id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    uses_left  INTEGER CHECK (uses_left >= 0),
    created_at TEXT NOT NULL,
    address    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX vault_machine_tokens_machine ON vault_machine_tokens (machine_id);
CREATE INDEX vault_machine_tokens_expires ON vault_machine_tokens (expires_at);

-- Grants gain the subject type machine (subject = machine identity id).
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt.
CREATE TABLE vault_grants_new (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'role', 'machine')),
    subject      TEXT NOT NULL,
    environment  TEXT NOT NULL,
    path_prefix  TEXT NOT NULL,
    permission   TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL DEFAULT ''
);
INSERT INTO vault_grants_new (id, tenant_id, subject_type, subject, environment, path_prefix, permission, created_at, created_by)
    SELECT id, tenant_id, subject_type, subject, environment, path_prefix, permission, created_at, created_by FROM vault_grants;
DROP TABLE vault_grants;
ALTER TABLE vault_grants_new RENAME TO vault_grants;
CREATE UNIQUE INDEX vault_grants_rule ON vault_grants (tenant_id, subject_type, subject, environment, path_prefix, permission);
