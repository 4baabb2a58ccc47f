-- The X-Request-Id a caller sent (or was given) is kept beside the spend
-- log's key. request_id is now always an id the gateway makes: a client
-- could send one id with many calls, and a row whose key is stored
-- already is skipped as a retried write, its cost with it.
ALTER TABLE gateway_spend_logs ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';
