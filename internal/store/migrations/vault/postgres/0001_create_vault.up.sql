-- The vault (internal/vault), in its own database. Values are AES-256-GCM
-- ciphertext under per-tenant data keys; data keys are sealed with the
-- master key (internal/keyring). No column holds plaintext.

-- vault_meta holds platform-wide values; "check" is a known plaintext
-- sealed with the master key, which tells at start whether the loaded
-- master key is the vault's (else the vault stays sealed).
CREATE TABLE vault_meta (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Per-tenant settings; a tenant without a row has the defaults.
CREATE TABLE vault_tenants (
    tenant_id    TEXT PRIMARY KEY,
    max_versions INTEGER NOT NULL CHECK (max_versions BETWEEN 1 AND 100),
    updated_at   TIMESTAMPTZ NOT NULL,
    updated_by   TEXT NOT NULL DEFAULT ''
);

-- Data keys: 32 random bytes per tenant and version, wrapped (sealed) by
-- the master key named by master_key_id. The newest version seals new
-- values; older ones still open what they sealed.
CREATE TABLE vault_data_keys (
    tenant_id     TEXT NOT NULL,
    version       INTEGER NOT NULL CHECK (version > 0),
    wrapped       BYTEA NOT NULL,
    master_key_id INTEGER NOT NULL CHECK (master_key_id BETWEEN 1 AND 255),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
CREATE INDEX vault_data_keys_master_key ON vault_data_keys (master_key_id);

-- Custom environments; dev, staging and prod exist for every tenant
-- without a row.
CREATE TABLE vault_environments (
    tenant_id  TEXT NOT NULL,
    slug       TEXT NOT NULL CHECK (length(slug) BETWEEN 1 AND 32),
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, slug)
);

-- One row per secret (tenant, environment, folder path, key). version is
-- the newest version written; deleted_at marks a soft delete.
CREATE TABLE vault_secrets (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    environment TEXT NOT NULL,
    path        TEXT NOT NULL,
    key         TEXT NOT NULL,
    comment     TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '[]',
    metadata    TEXT NOT NULL DEFAULT '{}',
    version     INTEGER NOT NULL CHECK (version >= 0),
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL DEFAULT '',
    updated_at  TIMESTAMPTZ NOT NULL,
    updated_by  TEXT NOT NULL DEFAULT '',
    deleted_at  TIMESTAMPTZ,
    deleted_by  TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX vault_secrets_name ON vault_secrets (tenant_id, environment, path, key);
CREATE INDEX vault_secrets_tenant_id ON vault_secrets (tenant_id, id);

-- Every version of every secret. ciphertext is NULL once the version is
-- destroyed. The primary key makes a version number unique per secret,
-- which is one of the guards of check-and-set.
CREATE TABLE vault_secret_versions (
    secret_id        TEXT NOT NULL REFERENCES vault_secrets (id) ON DELETE CASCADE,
    version          INTEGER NOT NULL CHECK (version > 0),
    tenant_id        TEXT NOT NULL,
    ciphertext       BYTEA,
    data_key_version INTEGER NOT NULL CHECK (data_key_version > 0),
    created_at       TIMESTAMPTZ NOT NULL,
    created_by       TEXT NOT NULL DEFAULT '',
    destroyed_at     TIMESTAMPTZ,
    PRIMARY KEY (secret_id, version)
);
CREATE INDEX vault_secret_versions_data_key ON vault_secret_versions (tenant_id, data_key_version);

-- Who may read or write values below a path, beside the roles that may
-- always (org_admin, super_admin). subject_type is user (subject = user
-- id) or role (subject = role name); environment '*' is every one.
CREATE TABLE vault_grants (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'role')),
    subject      TEXT NOT NULL,
    environment  TEXT NOT NULL,
    path_prefix  TEXT NOT NULL,
    permission   TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    created_at   TIMESTAMPTZ NOT NULL,
    created_by   TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX vault_grants_rule ON vault_grants (tenant_id, subject_type, subject, environment, path_prefix, permission);
