-- Monthly rollups: a month's day rows (trace_rollups) summed per grain,
-- so an aggregate over a year that does not group by day reads a dozen
-- months and the days at either end instead of 365 days of rows. Same
-- grains and figures as trace_rollups; month is the month's first day.
CREATE TABLE trace_rollup_months (
    tenant_id      TEXT NOT NULL CHECK (tenant_id <> ''),
    grain          TEXT NOT NULL,
    month          TEXT NOT NULL CHECK (length(month) = 10 AND substr(month, 9, 2) = '01'),
    model          TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    chatbot_id     TEXT NOT NULL,
    requests       INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    total_tokens   INTEGER NOT NULL,
    cost           REAL NOT NULL,
    latency_sum_ms REAL NOT NULL,
    latency_count  INTEGER NOT NULL,
    ttft_sum_ms    REAL NOT NULL,
    ttft_count     INTEGER NOT NULL,
    latency_hist   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, grain, month, model, user_id, chatbot_id)
) WITHOUT ROWID;

-- The months whose rows may not be the sum of their days: marked with a
-- new token whenever a day row is written or deleted (the triggers below,
-- so any writer marks, whatever its version), cleared by the job once it
-- has rebuilt the month from its days and seen the token unchanged, as
-- trace_rollup_dirty does for days. An aggregate reads a marked month
-- from its days, so month rows are used only while they agree with them.
CREATE TABLE trace_rollup_dirty_months (
    tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
    month     TEXT NOT NULL CHECK (length(month) = 10 AND substr(month, 9, 2) = '01'),
    token     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, month)
) WITHOUT ROWID;

CREATE TRIGGER trace_rollups_mark_month_insert AFTER INSERT ON trace_rollups
BEGIN
    INSERT INTO trace_rollup_dirty_months (tenant_id, month, token)
    VALUES (NEW.tenant_id, substr(NEW.day, 1, 8) || '01', lower(hex(randomblob(16))))
    ON CONFLICT (tenant_id, month) DO UPDATE SET token = excluded.token;
END;

CREATE TRIGGER trace_rollups_mark_month_delete AFTER DELETE ON trace_rollups
BEGIN
    INSERT INTO trace_rollup_dirty_months (tenant_id, month, token)
    VALUES (OLD.tenant_id, substr(OLD.day, 1, 8) || '01', lower(hex(randomblob(16))))
    ON CONFLICT (tenant_id, month) DO UPDATE SET token = excluded.token;
END;

CREATE TRIGGER trace_rollups_mark_month_update AFTER UPDATE ON trace_rollups
BEGIN
    INSERT INTO trace_rollup_dirty_months (tenant_id, month, token)
    VALUES (OLD.tenant_id, substr(OLD.day, 1, 8) || '01', lower(hex(randomblob(16))))
    ON CONFLICT (tenant_id, month) DO UPDATE SET token = excluded.token;
    INSERT INTO trace_rollup_dirty_months (tenant_id, month, token)
    VALUES (NEW.tenant_id, substr(NEW.day, 1, 8) || '01', lower(hex(randomblob(16))))
    ON CONFLICT (tenant_id, month) DO UPDATE SET token = excluded.token;
END;

-- Every month that already holds day rows is marked: until the job has
-- built it, aggregates read it from its days as before.
INSERT INTO trace_rollup_dirty_months (tenant_id, month, token)
SELECT DISTINCT tenant_id, substr(day, 1, 8) || '01', 'migration' FROM trace_rollups;
