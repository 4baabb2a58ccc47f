DROP INDEX observations_model;
ALTER TABLE traces DROP COLUMN latency_ms;
ALTER TABLE traces DROP COLUMN observation_count;
ALTER TABLE traces DROP COLUMN level;
ALTER TABLE traces DROP COLUMN total_cost;
