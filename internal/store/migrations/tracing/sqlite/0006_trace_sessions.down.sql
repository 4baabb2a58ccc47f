DROP INDEX scores_trace;
CREATE INDEX scores_trace ON scores (tenant_id, trace_id);
DROP INDEX observations_trace;
CREATE INDEX observations_trace ON observations (tenant_id, trace_id);
DROP INDEX scores_time;
DROP INDEX observations_start;
DROP TABLE trace_users;
DROP TABLE trace_sessions;
