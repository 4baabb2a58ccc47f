DROP TABLE tracing_keys;
DROP TABLE ingestion_events;
DROP TABLE scores;
DROP TABLE observations;
DROP TABLE traces;
