-- Back to CHECK (num_retries >= 0): "no retries" becomes the default.
CREATE TABLE gateway_router_settings_old (
    tenant_id      TEXT PRIMARY KEY CHECK (tenant_id <> ''),
    strategy       TEXT NOT NULL DEFAULT '',
    num_retries    INTEGER NOT NULL DEFAULT 0 CHECK (num_retries >= 0),
    allowed_fails  INTEGER NOT NULL DEFAULT 0 CHECK (allowed_fails >= 0),
    fail_window_ms INTEGER NOT NULL DEFAULT 0 CHECK (fail_window_ms >= 0),
    cooldown_ms    INTEGER NOT NULL DEFAULT 0 CHECK (cooldown_ms >= 0),
    fallbacks      TEXT NOT NULL DEFAULT '{}',
    updated_at     TEXT NOT NULL,
    updated_by     TEXT NOT NULL DEFAULT ''
);
INSERT INTO gateway_router_settings_old SELECT tenant_id, strategy, max(num_retries, 0), allowed_fails, fail_window_ms,
    cooldown_ms, fallbacks, updated_at, updated_by FROM gateway_router_settings;
DROP TABLE gateway_router_settings;
ALTER TABLE gateway_router_settings_old RENAME TO gateway_router_settings;
