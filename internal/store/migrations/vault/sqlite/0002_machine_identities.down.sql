CREATE TABLE vault_grants_old (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'role')),
    subject      TEXT NOT NULL,
    environment  TEXT NOT NULL,
    path_prefix  TEXT NOT NULL,
    permission   TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL DEFAULT ''
);
INSERT INTO vault_grants_old (id, tenant_id, subject_type, subject, environment, path_prefix, permission, created_at, created_by)
    SELECT id, tenant_id, subject_type, subject, environment, path_prefix, permission, created_at, created_by FROM vault_grants
    WHERE subject_type <> 'machine';
DROP TABLE vault_grants;
ALTER TABLE vault_grants_old RENAME TO vault_grants;
CREATE UNIQUE INDEX vault_grants_rule ON vault_grants (tenant_id, subject_type, subject, environment, path_prefix, permission);

DROP TABLE vault_machine_tokens;
DROP TABLE vault_machines;
