-- Rollups count EMBEDDING observations too: an embedding call has usage
-- and cost like a generation (Langfuse counts both), and the gateway
-- records its embedding calls as EMBEDDING. The partial index the rebuild
-- reads by takes both types, and the days that hold embeddings are marked
-- for the rollup job to rebuild.
DROP INDEX observations_generation_start;
CREATE INDEX observations_generation_start ON observations (tenant_id, start_time) WHERE type IN ('GENERATION', 'EMBEDDING');

INSERT INTO trace_rollup_dirty (tenant_id, day, token)
SELECT DISTINCT tenant_id, substr(start_time, 1, 10), 'migration' FROM observations WHERE type = 'EMBEDDING'
ON CONFLICT (tenant_id, day) DO NOTHING;
