-- Notifications (internal/notify): events that happened in a tenant, the
-- in-app notifications they made for its users, each user's email opt-ins
-- per kind, the tenant's webhooks and the log of their deliveries.
-- Tenants and users live in the auth database, so tenant_id and user_id
-- have no foreign key; the store checks the scope and a tenant's deletion
-- purges these rows (DeleteNotifyTenant).

-- One row per event published. dedupe_key makes a producer that reports
-- the same happening twice (a budget crossing seen by two replicas)
-- publish it once; '' is never deduplicated. data is the event's JSON
-- payload, sent to webhooks as it is.
CREATE TABLE notify_events (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    kind       TEXT NOT NULL CHECK (kind <> ''),
    dedupe_key TEXT NOT NULL DEFAULT '',
    title      TEXT NOT NULL,
    body       TEXT NOT NULL DEFAULT '',
    link       TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX notify_events_dedupe ON notify_events (tenant_id, dedupe_key) WHERE dedupe_key <> '';

CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    user_id    TEXT NOT NULL CHECK (user_id <> ''),
    event_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL DEFAULT '',
    link       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    read_at    TIMESTAMPTZ
);
-- A user's page, newest first (ids are UUIDv7), and the unread count.
CREATE INDEX notifications_user ON notifications (tenant_id, user_id, id);
CREATE INDEX notifications_unread ON notifications (tenant_id, user_id) WHERE read_at IS NULL;

-- A row is an opt-in decision; a kind without one is not emailed.
CREATE TABLE notification_prefs (
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    user_id    TEXT NOT NULL CHECK (user_id <> ''),
    kind       TEXT NOT NULL CHECK (kind <> ''),
    email      BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, user_id, kind)
);

-- secret is the signing secret sealed by the keyring (purpose "notify"),
-- bound to the tenant and the webhook; kinds is a JSON array.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL CHECK (tenant_id <> ''),
    url        TEXT NOT NULL,
    secret     BYTEA NOT NULL,
    kinds      TEXT NOT NULL DEFAULT '[]',
    active     BOOLEAN NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

-- One row per attempt; the store keeps the newest few hundred per webhook.
CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL CHECK (tenant_id <> ''),
    webhook_id    TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    response_code INTEGER NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    duration_ms   BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (tenant_id, webhook_id, id);

-- Row-level security as in 0011: only the transaction's tenant's rows.
ALTER TABLE notify_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE notify_events FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notify_events
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notifications
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE notification_prefs ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_prefs FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON notification_prefs
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooks FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON webhooks
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY nodus_tenant_scope ON webhook_deliveries
    USING (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('nodus.tenant_id', true), '')
           OR current_setting('nodus.all_tenants', true) = 'on');
