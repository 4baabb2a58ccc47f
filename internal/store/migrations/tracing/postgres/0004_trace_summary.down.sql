DROP INDEX observations_model;
ALTER TABLE traces
    DROP COLUMN latency_ms,
    DROP COLUMN observation_count,
    DROP COLUMN level,
    DROP COLUMN total_cost;
