-- Authenticator-app credentials. The secret is sealed (XChaCha20-Poly1305) by the identity core;
-- last_used_step only ever grows, so a code is never accepted twice.
CREATE TABLE totp_credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_used_step BIGINT NOT NULL DEFAULT -1,
    last_used_at BIGINT
);
CREATE INDEX totp_credentials_user ON totp_credentials (user_id);
