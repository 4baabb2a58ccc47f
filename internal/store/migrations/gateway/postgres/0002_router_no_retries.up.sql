-- num_retries = -1 stores "no retries" (LiteLLM's num_retries: 0); 0 stays
-- "the default".
ALTER TABLE gateway_router_settings DROP CONSTRAINT gateway_router_settings_num_retries_check;
ALTER TABLE gateway_router_settings ADD CONSTRAINT gateway_router_settings_num_retries_check CHECK (num_retries >= -1);
