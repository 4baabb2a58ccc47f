DELETE FROM vault_grants WHERE subject_type = 'machine';
ALTER TABLE vault_grants DROP CONSTRAINT vault_grants_subject_type_check;
ALTER TABLE vault_grants ADD CONSTRAINT vault_grants_subject_type_check
    CHECK (subject_type IN ('user', 'role'));

DROP TABLE vault_machine_tokens;
DROP TABLE vault_machines;
