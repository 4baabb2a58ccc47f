-- Monthly rollups: a month's day rows (trace_rollups) summed per grain,
-- so an aggregate over a year that does not group by day reads a dozen
-- months and the days at either end instead of 365 days of rows. Same
-- grains and figures as trace_rollups; month is the month's first day.
SELECT set_config('nodus.all_tenants', 'on', true);

CREATE TABLE trace_rollup_months (
    tenant_id      TEXT NOT NULL CHECK (tenant_id <> ''),
    grain          TEXT NOT NULL,
    month          TEXT NOT NULL CHECK (length(month) = 10 AND substr(month, 9, 2) = '01'),
    model          TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    chatbot_id     TEXT NOT NULL,
    requests       BIGINT NOT NULL,
    errors         BIGINT NOT NULL,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    total_tokens   BIGINT NOT NULL,
    cost           DOUBLE PRECISION NOT NULL,
    latency_sum_ms DOUBLE PRECISION NOT NULL,
    latency_count  BIGINT NOT NULL,
    ttft_sum_ms    DOUBLE PRECISION NOT NULL,
    ttft_count     BIGINT NOT NULL,
    latency_hist   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, grain, month, model, user_id, chatbot_id)
);

-- The months whose rows may not be the sum of their days: marked with a
-- new token whenever a day row is written or deleted (the triggers below,
-- once per statement, so any writer marks, whatever its version), cleared
-- by the job once it has rebuilt the month from its days and seen the
-- token unchanged, as trace_rollup_dirty does for days. An aggregate reads
-- a marked month from its days, so month rows are used only while they
-- agree with them.
CREATE TABLE trace_rollup_dirty_months (
    tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
    month     TEXT NOT NULL CHECK (length(month) = 10 AND substr(month, 9, 2) = '01'),
    token     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, month)
);

ALTER TABLE trace_rollup_months ENABLE ROW LEVEL SECURITY;
ALTER TABLE trace_rollup_months FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON trace_rollup_months
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

ALTER TABLE trace_rollup_dirty_months ENABLE ROW LEVEL SECURITY;
ALTER TABLE trace_rollup_dirty_months FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON trace_rollup_dirty_months
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');

-- The transition tables hold the statement's rows: "changed" is the new
-- rows of an insert or update, the old ones of a delete or update. The
-- months are made distinct before each gets its token, so the upsert
-- touches each mark once.
CREATE FUNCTION trace_rollups_mark_months() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO trace_rollup_dirty_months (tenant_id, month, token)
        SELECT tenant_id, month, gen_random_uuid()::text
        FROM (SELECT DISTINCT tenant_id, substr(day, 1, 8) || '01' AS month FROM changed_new) m
        ON CONFLICT (tenant_id, month) DO UPDATE SET token = excluded.token;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO trace_rollup_dirty_months (tenant_id, month, token)
        SELECT tenant_id, month, gen_random_uuid()::text
        FROM (SELECT DISTINCT tenant_id, substr(day, 1, 8) || '01' AS month FROM changed_old) m
        ON CONFLICT (tenant_id, month) DO UPDATE SET token = excluded.token;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trace_rollups_mark_month_insert AFTER INSERT ON trace_rollups
    REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION trace_rollups_mark_months();
CREATE TRIGGER trace_rollups_mark_month_delete AFTER DELETE ON trace_rollups
    REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION trace_rollups_mark_months();
CREATE TRIGGER trace_rollups_mark_month_update AFTER UPDATE ON trace_rollups
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION trace_rollups_mark_months();

-- Every month that already holds day rows is marked: until the job has
-- built it, aggregates read it from its days as before.
INSERT INTO trace_rollup_dirty_months (tenant_id, month, token)
SELECT DISTINCT tenant_id, substr(day, 1, 8) || '01', 'migration' FROM trace_rollups;
