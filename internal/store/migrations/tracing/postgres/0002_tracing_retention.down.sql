DROP INDEX ingestion_events_received;
DROP TABLE tracing_settings;
