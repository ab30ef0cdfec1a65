-- The tenant's terms of use, one row a published version (a new text is a new version), and
-- who accepted which version when, from where. Conditional Access grants may require them.
CREATE TABLE terms_of_use (
    version INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    published_by TEXT
);

CREATE TABLE terms_acceptances (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    client_ip TEXT NOT NULL,
    PRIMARY KEY (user_id, version)
);
