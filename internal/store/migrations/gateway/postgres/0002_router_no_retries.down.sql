-- Back to CHECK (num_retries >= 0): "no retries" becomes the default.
UPDATE gateway_router_settings SET num_retries = 0 WHERE num_retries < 0;
ALTER TABLE gateway_router_settings DROP CONSTRAINT gateway_router_settings_num_retries_check;
ALTER TABLE gateway_router_settings ADD CONSTRAINT gateway_router_settings_num_retries_check CHECK (num_retries >= 0);
