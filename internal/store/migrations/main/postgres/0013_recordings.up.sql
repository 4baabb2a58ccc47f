-- Recordings (internal/recordings): uploaded audio, its transcript with
-- timed segments, and its summary. The audio itself is a blob (blob_id).
-- Tenants and users live in the auth database, so tenant_id and user_id
-- have no foreign key; the store checks the scope and a tenant's deletion
-- purges these rows (DeleteRecordingsTenant). segments and key_points are
-- JSON arrays; segments are [{id, start, end, text, avg_logprob,
-- no_speech_prob}].
CREATE TABLE recordings (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
    user_id       TEXT NOT NULL CHECK (user_id <> ''),
    title         TEXT NOT NULL CHECK (title <> ''),
    filename      TEXT NOT NULL DEFAULT '',
    blob_id       TEXT NOT NULL,
    mime          TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL CHECK (size_bytes >= 0),
    duration_s    DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (duration_s >= 0),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'transcribing', 'summarising', 'completed', 'failed')),
    status_detail TEXT NOT NULL DEFAULT '',
    error         TEXT NOT NULL DEFAULT '',
    language      TEXT NOT NULL DEFAULT '',
    text          TEXT NOT NULL DEFAULT '',
    segments      TEXT NOT NULL DEFAULT '[]',
    summary       TEXT NOT NULL DEFAULT '',
    key_points    TEXT NOT NULL DEFAULT '[]',
    model         TEXT NOT NULL DEFAULT '',
    summary_model TEXT NOT NULL DEFAULT '',
    processing_ms BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
-- A tenant's list and a user's, newest first.
CREATE INDEX recordings_tenant ON recordings (tenant_id, created_at, id);
CREATE INDEX recordings_user ON recordings (tenant_id, user_id, created_at, id);
-- The sweep's work: recordings not finished.
CREATE INDEX recordings_unfinished ON recordings (updated_at) WHERE status NOT IN ('completed', 'failed');

-- Row-level security as in 0011: only the transaction's tenant's rows.
ALTER TABLE recordings ENABLE ROW LEVEL SECURITY;
ALTER TABLE recordings FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON recordings
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
