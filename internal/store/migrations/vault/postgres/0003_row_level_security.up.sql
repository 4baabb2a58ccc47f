-- Row-level security: a second wall behind the store's tenant filter. Every
-- table with a tenant_id admits only the rows of the tenant the transaction
-- is scoped to, which the store sets per transaction with
-- set_config('nodus.tenant_id', …, true); the all-tenants scope sets
-- nodus.all_tenants to 'on' and sees every row. A transaction with neither
-- (a store bug, or hand-written SQL as the application role) sees no tenant
-- row and cannot write one. FORCE applies the policies to the tables' owner
-- too, the role Nodus connects as; only superusers and BYPASSRLS roles pass.
-- NULLIF: once set in a session a setting reads '' after its transaction,
-- and no row's tenant_id may match that.
-- A migration that backfills or reads tenant rows must first run
-- SELECT set_config('nodus.all_tenants', 'on', true); (see ../../README.md).

ALTER TABLE vault_tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON vault_tenants
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE vault_data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON vault_data_keys
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE vault_environments ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_environments FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON vault_environments
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE vault_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON vault_secrets
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE vault_secret_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_secret_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON vault_secret_versions
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE vault_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON vault_grants
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE vault_machines ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_machines FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON vault_machines
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE vault_machine_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_machine_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON vault_machine_tokens
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
