-- Replicas sharing budgets read back only what changed since their last
-- read (internal/gateway/service.go, reloadBudgets), not every budget every
-- 2 s. Every write to a budget stamps it with its transaction's id, and a
-- deleted budget leaves a tombstone stamped the same way (a trigger, so a
-- tenant purge leaves them too). A reader keeps the oldest transaction id
-- still running when it read (pg_snapshot_xmin) and next reads every row
-- stamped at or after it: a write that had not committed then is read once
-- it has. Tombstones carry no tenant: they name a budget by id alone, are
-- read only by the gateway across tenants, and are pruned after a day.
ALTER TABLE gateway_budgets ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX gateway_budgets_change ON gateway_budgets (change_xid);

CREATE TABLE gateway_budget_tombstones (
    id         TEXT PRIMARY KEY,
    change_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    deleted_at BIGINT NOT NULL DEFAULT extract(epoch FROM now())::bigint -- Unix seconds
);
CREATE INDEX gateway_budget_tombstones_change ON gateway_budget_tombstones (change_xid);

CREATE FUNCTION gateway_budgets_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END;
$$;
CREATE TRIGGER gateway_budgets_stamp BEFORE INSERT OR UPDATE ON gateway_budgets
    FOR EACH ROW EXECUTE FUNCTION gateway_budgets_stamp();

CREATE FUNCTION gateway_budgets_tombstone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO gateway_budget_tombstones (id) VALUES (OLD.id)
        ON CONFLICT (id) DO UPDATE SET change_xid = EXCLUDED.change_xid, deleted_at = EXCLUDED.deleted_at;
    RETURN OLD;
END;
$$;
CREATE TRIGGER gateway_budgets_tombstone AFTER DELETE ON gateway_budgets
    FOR EACH ROW EXECUTE FUNCTION gateway_budgets_tombstone();
