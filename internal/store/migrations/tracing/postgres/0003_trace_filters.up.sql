-- Trace lists filtered by user or session, newest first: without these a
-- user's traces were found by walking the tenant's whole list (10 ms at
-- 20,000 observations, and linear in the tenant's traces).
CREATE INDEX traces_user ON traces (tenant_id, user_id, timestamp DESC, id DESC);
CREATE INDEX traces_session ON traces (tenant_id, session_id, timestamp DESC, id DESC);
