-- Conditional Access: policies (each a JSON document, versioned), their history, named
-- locations and groups of accounts. Every change bumps the setting ca.version, so every
-- instance reloads what it caches.
CREATE TABLE ca_policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    document TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    updated_at INTEGER NOT NULL,
    updated_by TEXT
);

-- Every saved version of every policy; a deleted policy's last row has an empty document.
CREATE TABLE ca_policy_versions (
    policy_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    changed_by TEXT,
    PRIMARY KEY (policy_id, version)
);

CREATE TABLE named_locations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE user_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- What Conditional Access decided for each attempt: every policy evaluated and its result.
ALTER TABLE sign_in_log ADD COLUMN policies TEXT;
