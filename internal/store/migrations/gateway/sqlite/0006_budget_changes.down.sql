DROP TRIGGER gateway_budgets_tombstone;
DROP TRIGGER gateway_budgets_stamp_update;
DROP TRIGGER gateway_budgets_stamp_insert;
DROP TABLE gateway_budget_tombstones;
DROP TABLE gateway_budget_clock;
DROP INDEX gateway_budgets_change;
ALTER TABLE gateway_budgets DROP COLUMN change_seq;
