DROP TRIGGER gateway_budgets_tombstone ON gateway_budgets;
DROP FUNCTION gateway_budgets_tombstone();
DROP TRIGGER gateway_budgets_stamp ON gateway_budgets;
DROP FUNCTION gateway_budgets_stamp();
DROP TABLE gateway_budget_tombstones;
DROP INDEX gateway_budgets_change;
ALTER TABLE gateway_budgets DROP COLUMN change_xid;
