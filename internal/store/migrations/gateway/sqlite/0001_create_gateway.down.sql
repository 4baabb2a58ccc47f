DROP TABLE gateway_daily_spend;
DROP TABLE gateway_spend_logs;
DROP TABLE gateway_prices;
DROP TABLE gateway_budgets;
DROP TABLE gateway_keys;
DROP TABLE gateway_router_settings;
DROP TABLE gateway_deployments;
