-- Replicas sharing budgets read back only what changed since their last
-- read (internal/gateway/service.go, reloadBudgets), not every budget every
-- 2 s. SQLite has one writer at a time, so a counter orders every change:
-- each write to a budget takes the next value of gateway_budget_clock, and
-- a deleted budget leaves a tombstone stamped the same way (triggers, so a
-- tenant purge leaves them too). A reader keeps the counter as it read it
-- and next reads every row stamped after it. Tombstones carry no tenant:
-- they name a budget by id alone, are read only by the gateway across
-- tenants, and are pruned after a day.
ALTER TABLE gateway_budgets ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX gateway_budgets_change ON gateway_budgets (change_seq);

CREATE TABLE gateway_budget_clock (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL
);
INSERT INTO gateway_budget_clock (one, seq) VALUES (1, 0);

CREATE TABLE gateway_budget_tombstones (
    id         TEXT PRIMARY KEY,
    change_seq INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL -- Unix seconds
);
CREATE INDEX gateway_budget_tombstones_change ON gateway_budget_tombstones (change_seq);

CREATE TRIGGER gateway_budgets_stamp_insert AFTER INSERT ON gateway_budgets
BEGIN
    UPDATE gateway_budget_clock SET seq = seq + 1;
    UPDATE gateway_budgets SET change_seq = (SELECT seq FROM gateway_budget_clock) WHERE id = NEW.id;
END;
-- Every column but change_seq, which the trigger itself sets.
CREATE TRIGGER gateway_budgets_stamp_update
AFTER UPDATE OF id, tenant_id, scope, subject_id, max_micros, period, reset_at, spend, updated_at, updated_by
ON gateway_budgets
BEGIN
    UPDATE gateway_budget_clock SET seq = seq + 1;
    UPDATE gateway_budgets SET change_seq = (SELECT seq FROM gateway_budget_clock) WHERE id = NEW.id;
END;
CREATE TRIGGER gateway_budgets_tombstone AFTER DELETE ON gateway_budgets
BEGIN
    UPDATE gateway_budget_clock SET seq = seq + 1;
    INSERT INTO gateway_budget_tombstones (id, change_seq, deleted_at)
        VALUES (OLD.id, (SELECT seq FROM gateway_budget_clock), CAST(strftime('%s', 'now') AS INTEGER))
        ON CONFLICT (id) DO UPDATE SET change_seq = excluded.change_seq, deleted_at = excluded.deleted_at;
END;
