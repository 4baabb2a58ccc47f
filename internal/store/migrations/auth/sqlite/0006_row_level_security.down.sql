-- No-op: see the up migration.
SELECT 1;
