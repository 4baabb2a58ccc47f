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

ALTER TABLE gateway_deployments ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_deployments FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON gateway_deployments
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE gateway_router_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_router_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON gateway_router_settings
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE gateway_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON gateway_keys
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE gateway_budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_budgets FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON gateway_budgets
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE gateway_prices ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_prices FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON gateway_prices
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE gateway_spend_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_spend_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON gateway_spend_logs
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE gateway_daily_spend ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_daily_spend FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON gateway_daily_spend
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
