DROP TABLE gateway_quota_claims;
