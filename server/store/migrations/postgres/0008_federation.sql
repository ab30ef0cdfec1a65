-- Sign-in providers (OpenID Connect and OAuth 2.0). The client secret (or Apple's signing key)
-- is sealed with the server's secret key; everything else is plain JSON settings.
CREATE TABLE identity_providers (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    display_name TEXT NOT NULL,
    settings TEXT NOT NULL,
    sealed_secret TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    position BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Accounts at a provider linked to a Gatehouse account, keyed by (issuer, subject) and never by
-- email: one external account belongs to at most one Gatehouse account.
CREATE TABLE external_identities (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    UNIQUE (issuer, subject)
);
CREATE INDEX external_identities_user ON external_identities (user_id);
