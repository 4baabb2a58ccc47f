-- The ingestion sweep looks for documents left pending or processing:
-- only those are indexed, by age.
CREATE INDEX documents_unfinished ON documents (updated_at, id) WHERE status IN ('pending', 'processing');
