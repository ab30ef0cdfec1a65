-- Passkeys (WebAuthn credentials). `passkey` is the credential record of the WebAuthn library
-- (public key, signature counter, backup flags), rewritten after each use; credential ids are
-- unique across all accounts.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- Security events that are not sign-in attempts: methods added and removed, codes regenerated,
-- settings changed. Kept like the sign-in log.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    occurred_at BIGINT NOT NULL,
    actor_user_id TEXT,
    subject_user_id TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    client_ip TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject_user_id, occurred_at);
CREATE INDEX audit_log_time ON audit_log (occurred_at);
