-- The applications that sign their users in through Gatehouse (OpenID Connect clients).
-- Lists are JSON arrays; a client secret is stored only as its SHA-256 hash.
CREATE TABLE oauth_clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    logo_url TEXT,
    confidential BIGINT NOT NULL,
    secret_hash TEXT,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    allowed_origins TEXT NOT NULL,
    first_party BIGINT NOT NULL,
    id_token_alg TEXT NOT NULL,
    backchannel_logout_uri TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Token signing keys. The private key is sealed with the server's secret key. A retired key no
-- longer signs but stays published until every token it signed has expired.
CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    sealed_private TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    unpublish_at BIGINT
);
CREATE INDEX signing_keys_alg ON signing_keys (alg, created_at);

-- Authorization requests waiting for the person to sign in or consent.
CREATE TABLE oauth_requests (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- One authorization: what a client may do for a user (or for itself), and the family of every
-- code and token issued under it. Revoking the grant revokes them all.
CREATE TABLE oauth_grants (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT,
    scope TEXT NOT NULL,
    credential_epoch BIGINT NOT NULL,
    offline BIGINT NOT NULL,
    auth_time BIGINT,
    amr TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oauth_grants_user ON oauth_grants (user_id, created_at);
CREATE INDEX oauth_grants_session ON oauth_grants (session_id);

-- Authorization codes (hashed), single use.
CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT,
    nonce TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);

-- Access tokens (by their jti) and refresh tokens (by hash). A used refresh token is kept so
-- that its replay can be recognised.
CREATE TABLE oauth_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);
CREATE INDEX oauth_tokens_expiry ON oauth_tokens (expires_at);

-- Consent a person gave to a third-party application, until revoked.
CREATE TABLE oauth_consents (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
