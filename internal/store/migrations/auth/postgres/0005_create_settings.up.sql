-- Platform settings (tenant_id NULL) and per-tenant overrides, one row per
-- field. value is the field's JSON; a secret field holds its sealed bytes
-- (base64, see internal/keyring), never plaintext.
CREATE TABLE settings (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX settings_owner_key ON settings (COALESCE(tenant_id, ''), key);
CREATE INDEX settings_tenant ON settings (tenant_id, key);
