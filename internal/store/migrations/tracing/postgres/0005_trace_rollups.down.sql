DROP INDEX observations_generation_start;
DROP TABLE trace_rollup_dirty;
DROP TABLE trace_rollups;
