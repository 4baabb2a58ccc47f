-- Retention of a tenant's traces, in days (0 keeps them): the periodic
-- nodus_tracing_retention job deletes older traces with their
-- observations and scores. It also forgets envelope ids older than the
-- deduplication window, which needs them by age.
CREATE TABLE tracing_settings (
    tenant_id      TEXT PRIMARY KEY CHECK (tenant_id <> ''),
    retention_days INTEGER NOT NULL CHECK (retention_days >= 0),
    updated_at     TEXT NOT NULL
);
CREATE INDEX ingestion_events_received ON ingestion_events (received_at);
