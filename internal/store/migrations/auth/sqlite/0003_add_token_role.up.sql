-- A token may act with less power than its owner: its role, when set, is
-- the most it can do (the owner's current role still caps it).
ALTER TABLE api_tokens ADD COLUMN role TEXT CHECK (role IN ('super_admin', 'org_admin', 'user', 'viewer'));
