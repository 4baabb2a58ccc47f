-- The audit log (internal/audit): append-only and hash-chained. changes is
-- TEXT, not JSONB: the hash covers its canonical JSON text, and JSONB would
-- rewrite it (number literals, key order, duplicate keys). Query it ad hoc
-- with changes::jsonb.
CREATE TABLE IF NOT EXISTS audit_log (
	id TEXT PRIMARY KEY,
	seq BIGINT NOT NULL UNIQUE CHECK (seq > 0),
	created_at TIMESTAMPTZ NOT NULL,
	tenant_id TEXT CHECK (tenant_id <> ''),
	actor_id TEXT NOT NULL DEFAULT '',
	actor_kind TEXT NOT NULL,
	action TEXT NOT NULL,
	target_type TEXT NOT NULL DEFAULT '',
	target_id TEXT NOT NULL DEFAULT '',
	address TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT '',
	changes TEXT NOT NULL DEFAULT '{}',
	prev_hash TEXT NOT NULL,
	hash TEXT NOT NULL
);

-- Each filter of the list ends in seq so the index also serves the
-- newest-first order and the cursor.
CREATE INDEX IF NOT EXISTS audit_log_tenant_seq ON audit_log (tenant_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_action_seq ON audit_log (action, seq);
CREATE INDEX IF NOT EXISTS audit_log_actor_seq ON audit_log (actor_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_target_seq ON audit_log (target_type, target_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_created_at ON audit_log (created_at);

-- Append-only: rows are never updated, deleted or truncated (TRUNCATE
-- skips row triggers, hence its own). Retention would need an explicit,
-- audited procedure (see internal/audit/doc.go), not a DELETE.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$;
DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
DROP TRIGGER IF EXISTS audit_log_no_delete ON audit_log;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
