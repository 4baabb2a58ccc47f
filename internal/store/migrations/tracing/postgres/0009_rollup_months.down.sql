DROP TRIGGER trace_rollups_mark_month_update ON trace_rollups;
DROP TRIGGER trace_rollups_mark_month_delete ON trace_rollups;
DROP TRIGGER trace_rollups_mark_month_insert ON trace_rollups;
DROP FUNCTION trace_rollups_mark_months();
DROP TABLE trace_rollup_dirty_months;
DROP TABLE trace_rollup_months;
