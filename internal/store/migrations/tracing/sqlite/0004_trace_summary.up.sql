-- What a trace's observations add up to, for trace lists to show and
-- filter on without reading them: kept by the ingestion transaction
-- (updateTraceSummaries), which recomputes the traces a batch adds
-- observations to. total_cost is Langfuse's: per observation its
-- cost_details "total" when sent, else the sum of its entries. level is
-- the most severe of its observations' (ERROR > WARNING > DEFAULT >
-- DEBUG), '' when it has none. latency_ms runs from the first start to
-- the last end, 0 when no observation has ended.
ALTER TABLE traces ADD COLUMN total_cost REAL NOT NULL DEFAULT 0;
ALTER TABLE traces ADD COLUMN level TEXT NOT NULL DEFAULT '';
ALTER TABLE traces ADD COLUMN observation_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE traces ADD COLUMN latency_ms INTEGER NOT NULL DEFAULT 0;

-- Traces filtered by model: each trace walked costs one seek here rather
-- than reading its observations (a model in 1 of 5,000 traces: 250 ms
-- to 50 ms at 200,000 observations on SQLite). Spans name no model, so
-- only the observations that do are indexed.
CREATE INDEX observations_model ON observations (tenant_id, model, trace_id) WHERE model <> '';

-- The traces already stored.
UPDATE traces SET total_cost = s.cost, level = s.level, observation_count = s.n, latency_ms = s.latency
FROM (SELECT o.tenant_id, o.trace_id, COUNT(*) AS n,
        TOTAL(CASE WHEN json_type(o.cost_details, '$.total') IN ('integer', 'real')
            THEN json_extract(o.cost_details, '$.total')
            ELSE (SELECT TOTAL(value) FROM json_each(o.cost_details)) END) AS cost,
        CASE MAX(CASE o.level WHEN 'ERROR' THEN 4 WHEN 'WARNING' THEN 3 WHEN 'DEFAULT' THEN 2 WHEN 'DEBUG' THEN 1 ELSE 0 END)
            WHEN 4 THEN 'ERROR' WHEN 3 THEN 'WARNING' WHEN 2 THEN 'DEFAULT' WHEN 1 THEN 'DEBUG' ELSE '' END AS level,
        COALESCE(MAX(0, CAST(ROUND((julianday(MAX(o.end_time)) - julianday(MIN(o.start_time))) * 86400000) AS INTEGER)), 0) AS latency
    FROM observations o GROUP BY o.tenant_id, o.trace_id) AS s
WHERE traces.tenant_id = s.tenant_id AND traces.id = s.trace_id;
