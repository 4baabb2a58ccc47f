-- The audit log (internal/audit): append-only and hash-chained. changes is
-- the canonical JSON text the hash covers, kept byte for byte.
CREATE TABLE IF NOT EXISTS audit_log (
	id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL UNIQUE CHECK (seq > 0),
	created_at TEXT NOT NULL,
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

-- Append-only: rows are never updated or deleted. Retention would need an
-- explicit, audited procedure (see internal/audit/doc.go), not a DELETE.
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;
