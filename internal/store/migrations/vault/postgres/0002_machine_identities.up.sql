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
    is_active         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at        TIMESTAMPTZ NOT NULL,
    created_by        TEXT NOT NULL DEFAULT '',
    updated_at        TIMESTAMPTZ NOT NULL,
    updated_by        TEXT NOT NULL DEFAULT '',
    last_used_at      TIMESTAMPTZ
);
CREATE UNIQUE INDEX vault_machines_name ON vault_machines (tenant_id, name);

-- Access tokens: uses_left is NULL for a token without a use limit.
-- Expired and used-up tokens are deleted by DeleteExpiredMachineTokens.
CREATE TABLE vault_machine_tokens (
    token_hash TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES vault_machines (id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    uses_left  INTEGER CHECK (uses_left >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    address    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX vault_machine_tokens_machine ON vault_machine_tokens (machine_id);
CREATE INDEX vault_machine_tokens_expires ON vault_machine_tokens (expires_at);

-- Grants gain the subject type machine (subject = machine identity id).
ALTER TABLE vault_grants DROP CONSTRAINT vault_grants_subject_type_check;
ALTER TABLE vault_grants ADD CONSTRAINT vault_grants_subject_type_check
    CHECK (subject_type IN ('user', 'role', 'machine'));
