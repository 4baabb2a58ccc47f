-- The navigation menu: platform items (tenant_id NULL, managed by
-- super_admins) and each tenant's own items (managed by its org_admins),
-- nested at most three deep, and the roles that see each item. A menu is
-- navigation, not permission: every route still checks its own action.
CREATE TABLE menu_items (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    -- No ON DELETE action: an item with children cannot be deleted.
    parent_id  TEXT REFERENCES menu_items (id),
    key        TEXT NOT NULL,
    label      TEXT NOT NULL,
    path       TEXT NOT NULL,
    icon       TEXT NOT NULL DEFAULT '',
    position   INTEGER NOT NULL DEFAULT 0,
    is_active  INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (parent_id <> id)
);
-- A key is unique per owner: the platform, or one tenant.
CREATE UNIQUE INDEX menu_items_key ON menu_items (COALESCE(tenant_id, ''), key);
CREATE INDEX menu_items_tenant ON menu_items (tenant_id, id);
CREATE INDEX menu_items_parent ON menu_items (parent_id);

CREATE TABLE menu_roles (
    menu_id TEXT NOT NULL REFERENCES menu_items (id) ON DELETE CASCADE,
    role    TEXT NOT NULL CHECK (role IN ('super_admin', 'org_admin', 'user', 'viewer')),
    PRIMARY KEY (menu_id, role)
);

-- The default platform menu, one item per module, with fixed ids so every
-- installation (and every replica) has the same ones.
INSERT INTO menu_items (id, parent_id, key, label, path, icon, position, is_active, created_at, updated_at) VALUES
    ('01940000-0000-7000-8000-000000000001', NULL, 'dashboard', 'Dashboard', '/', 'home', 10, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000002', NULL, 'chat', 'Chat', '/chat', 'message-circle', 20, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000003', NULL, 'chatbots', 'Chatbots', '/chatbots', 'bot', 30, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000004', NULL, 'knowledge', 'Knowledge bases', '/knowledge', 'book-open', 40, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000005', NULL, 'agents', 'Agents & memory', '/agents', 'brain', 50, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000006', NULL, 'recordings', 'Recordings', '/recordings', 'mic', 60, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000007', NULL, 'notebooks', 'Notebooks', '/notebooks', 'notebook', 70, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000008', NULL, 'gateway', 'Gateway', '/gateway', 'network', 80, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000009', '01940000-0000-7000-8000-000000000008', 'gateway.models', 'Models', '/gateway/models', 'cpu', 10, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-00000000000a', '01940000-0000-7000-8000-000000000008', 'gateway.keys', 'Keys', '/gateway/keys', 'key', 20, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-00000000000b', '01940000-0000-7000-8000-000000000008', 'gateway.spend', 'Spend', '/gateway/spend', 'coins', 30, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-00000000000c', NULL, 'traces', 'Traces', '/traces', 'activity', 90, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-00000000000d', NULL, 'vault', 'Vault', '/vault', 'lock', 100, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-00000000000e', NULL, 'egress', 'Egress', '/egress', 'globe', 110, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-00000000000f', NULL, 'admin', 'Administration', '/admin', 'shield', 120, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000010', '01940000-0000-7000-8000-00000000000f', 'admin.tenants', 'Tenants', '/admin/tenants', 'building', 10, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000011', '01940000-0000-7000-8000-00000000000f', 'admin.users', 'Users', '/admin/users', 'users', 20, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000012', '01940000-0000-7000-8000-00000000000f', 'admin.menus', 'Menus', '/admin/menus', 'menu', 30, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000013', '01940000-0000-7000-8000-00000000000f', 'admin.settings', 'Settings', '/admin/settings', 'settings', 40, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z'),
    ('01940000-0000-7000-8000-000000000014', '01940000-0000-7000-8000-00000000000f', 'admin.audit', 'Audit log', '/admin/audit', 'scroll', 50, 1, '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z');

-- Who sees each default item: the least powerful role that may, and every
-- role above it. Viewers (read only) get no chat, traces, vault, gateway
-- keys or spend; users get no egress policy or administration; tenants
-- are the super_admin's alone.
INSERT INTO menu_roles (menu_id, role)
SELECT m.id, r.role
FROM menu_items m
JOIN (SELECT 'super_admin' AS role, 4 AS rank
      UNION ALL SELECT 'org_admin', 3
      UNION ALL SELECT 'user', 2
      UNION ALL SELECT 'viewer', 1) r
  ON r.rank >= CASE
        WHEN m.key IN ('dashboard', 'chatbots', 'knowledge', 'agents', 'recordings', 'notebooks',
                       'gateway', 'gateway.models') THEN 1
        WHEN m.key IN ('chat', 'gateway.keys', 'gateway.spend', 'traces', 'vault') THEN 2
        WHEN m.key IN ('egress', 'admin', 'admin.users', 'admin.menus', 'admin.settings', 'admin.audit') THEN 3
        ELSE 4
    END
WHERE m.tenant_id IS NULL;
