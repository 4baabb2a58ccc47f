DROP INDEX observations_generation_start;
CREATE INDEX observations_generation_start ON observations (tenant_id, start_time) WHERE type = 'GENERATION';
