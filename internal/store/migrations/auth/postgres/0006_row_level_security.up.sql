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

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON users
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON sessions
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON api_tokens
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE menu_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE menu_items FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON menu_items
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE settings FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON settings
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

-- Platform rows of menu_items (tenant_id NULL) apply to every tenant, so a tenant
-- scope reads them; writing them stays with the all-tenants scope above.
CREATE POLICY nodus_platform_read ON menu_items FOR SELECT
    USING (tenant_id IS NULL AND NULLIF(current_setting('nodus.tenant_id', true), '') IS NOT NULL);

-- Platform rows of settings (tenant_id NULL) apply to every tenant, so a tenant
-- scope reads them; writing them stays with the all-tenants scope above.
CREATE POLICY nodus_platform_read ON settings FOR SELECT
    USING (tenant_id IS NULL AND NULLIF(current_setting('nodus.tenant_id', true), '') IS NOT NULL);
