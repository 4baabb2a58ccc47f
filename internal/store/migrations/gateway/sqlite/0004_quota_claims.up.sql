-- Replicas sharing budgets and rate limits (internal/gateway/quota.go):
-- each replica claims a part of every budget and limit it admits calls
-- against. quota is "budget:<budget id>", "rpm:<key id>", "tpm:<key id>"
-- or "par:<key id>"; a claim that is not renewed by expires_at no longer
-- counts. No tenant_id: the rows are the replicas' bookkeeping, read and
-- written only by the gateway across tenants, and they name budgets and
-- keys by id alone.
CREATE TABLE gateway_quota_claims (
    quota      TEXT NOT NULL,
    replica    TEXT NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    expires_at TEXT NOT NULL,
    PRIMARY KEY (quota, replica)
);
CREATE INDEX gateway_quota_claims_replica ON gateway_quota_claims (replica);
