-- Sessions and users as views (internal/store/tracing_sessions.go): one
-- small row per session id and per user id a tenant's traces carry, kept
-- by the ingestion transaction (first and last seen as the min and max of
-- the trace timestamps it saw) and by retention, which drops a row once
-- no trace is left. Listing them reads these rows, never the traces; the
-- counts of a page come from traces_session and traces_user.
CREATE TABLE trace_sessions (
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    session_id TEXT NOT NULL CHECK (session_id <> ''),
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);
-- Nodus's list, newest activity first (keyset), and Langfuse's, by
-- creation (first trace) with its time filters.
CREATE INDEX trace_sessions_last ON trace_sessions (tenant_id, last_seen DESC, session_id DESC);
CREATE INDEX trace_sessions_first ON trace_sessions (tenant_id, first_seen DESC, session_id DESC);

CREATE TABLE trace_users (
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    user_id    TEXT NOT NULL CHECK (user_id <> ''),
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX trace_users_last ON trace_users (tenant_id, last_seen DESC, user_id DESC);

-- Langfuse's observation list, newest first, without sorting all of a
-- tenant's observations (the only other index on them is by trace).
CREATE INDEX observations_start ON observations (tenant_id, start_time DESC, id DESC);
-- And its score list likewise.
CREATE INDEX scores_time ON scores (tenant_id, timestamp DESC, id DESC);
-- A trace's observations and scores are read in time order: with the
-- indexes by trace alone the planner could prefer the two above and walk
-- the whole tenant (SQLite did: 70 to 100 ms per trace read at a million
-- observations).
DROP INDEX observations_trace;
CREATE INDEX observations_trace ON observations (tenant_id, trace_id, start_time, id);
DROP INDEX scores_trace;
CREATE INDEX scores_trace ON scores (tenant_id, trace_id, timestamp, id);

-- The sessions and users of the traces already stored.
INSERT INTO trace_sessions (tenant_id, session_id, first_seen, last_seen)
    SELECT tenant_id, session_id, MIN(timestamp), MAX(timestamp) FROM traces WHERE session_id <> ''
    GROUP BY tenant_id, session_id;
INSERT INTO trace_users (tenant_id, user_id, first_seen, last_seen)
    SELECT tenant_id, user_id, MIN(timestamp), MAX(timestamp) FROM traces WHERE user_id <> ''
    GROUP BY tenant_id, user_id;
