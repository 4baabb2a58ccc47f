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

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON audit_log
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE tenant_egress_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_egress_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON tenant_egress_policies
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE egress_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE egress_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON egress_rules
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE secret_handles ENABLE ROW LEVEL SECURITY;
ALTER TABLE secret_handles FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON secret_handles
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE knowledge_bases ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_bases FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON knowledge_bases
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON documents
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE kb_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE kb_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON kb_chunks
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE kb_chunk_terms ENABLE ROW LEVEL SECURITY;
ALTER TABLE kb_chunk_terms FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON kb_chunk_terms
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE kb_chunk_vectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE kb_chunk_vectors FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON kb_chunk_vectors
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE agent_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON agent_sessions
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE agent_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_events FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON agent_events
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE agent_app_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_app_states FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON agent_app_states
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE agent_user_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_user_states FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON agent_user_states
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE chatbots ENABLE ROW LEVEL SECURITY;
ALTER TABLE chatbots FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON chatbots
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE chatbot_knowledge_bases ENABLE ROW LEVEL SECURITY;
ALTER TABLE chatbot_knowledge_bases FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON chatbot_knowledge_bases
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON conversations
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON messages
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE adk_conversation_memory ENABLE ROW LEVEL SECURITY;
ALTER TABLE adk_conversation_memory FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON adk_conversation_memory
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE adk_memory_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE adk_memory_history FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON adk_memory_history
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

-- Platform rows of egress_rules (tenant_id NULL) apply to every tenant, so a tenant
-- scope reads them; writing them stays with the all-tenants scope above.
CREATE POLICY nodus_platform_read ON egress_rules FOR SELECT
    USING (tenant_id IS NULL AND NULLIF(current_setting('nodus.tenant_id', true), '') IS NOT NULL);
