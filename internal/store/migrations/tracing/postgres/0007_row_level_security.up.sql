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

ALTER TABLE traces ENABLE ROW LEVEL SECURITY;
ALTER TABLE traces FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON traces
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE observations ENABLE ROW LEVEL SECURITY;
ALTER TABLE observations FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON observations
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE scores ENABLE ROW LEVEL SECURITY;
ALTER TABLE scores FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON scores
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE ingestion_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingestion_events FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON ingestion_events
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE tracing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tracing_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON tracing_keys
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE tracing_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tracing_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON tracing_settings
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE trace_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE trace_rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON trace_rollups
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE trace_rollup_dirty ENABLE ROW LEVEL SECURITY;
ALTER TABLE trace_rollup_dirty FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON trace_rollup_dirty
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE trace_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE trace_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON trace_sessions
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE trace_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE trace_users FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON trace_users
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
