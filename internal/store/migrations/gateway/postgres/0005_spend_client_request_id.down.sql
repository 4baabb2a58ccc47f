ALTER TABLE gateway_spend_logs DROP COLUMN client_request_id;
