-- Row-level security is PostgreSQL's (see ../postgres/): SQLite has none,
-- and one process owns the file, so the store's tenant filter is the only
-- wall. This no-op keeps the set's version sequence the same on both
-- dialects.
SELECT 1;
