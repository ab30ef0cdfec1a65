-- Users exist only once their email is verified; pending sign-ups live in one_time_codes.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    credential_epoch INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Email one-time codes and the short-lived grants they lead to (sign-up, sign-in, reset).
CREATE TABLE one_time_codes (
    id TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    email TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    payload TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    sends INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    last_sent_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    consumed_at INTEGER
);
CREATE INDEX one_time_codes_email ON one_time_codes (email, purpose, created_at);
CREATE INDEX one_time_codes_expiry ON one_time_codes (expires_at);

-- Failure counters for throttling, per account identifier and per client IP.
CREATE TABLE auth_throttle (
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_failure_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, subject)
);

-- Server-side sessions. Only a hash of the cookie secret is stored.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_epoch INTEGER NOT NULL,
    amr TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    client_ip TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- One row per sign-in attempt, whatever its method and result.
CREATE TABLE sign_in_log (
    id TEXT PRIMARY KEY NOT NULL,
    occurred_at INTEGER NOT NULL,
    user_id TEXT,
    email TEXT NOT NULL,
    application TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    method TEXT NOT NULL,
    result TEXT NOT NULL,
    failure_reason TEXT,
    session_id TEXT
);
CREATE INDEX sign_in_log_time ON sign_in_log (occurred_at);
CREATE INDEX sign_in_log_user ON sign_in_log (user_id, occurred_at);
CREATE INDEX sign_in_log_email ON sign_in_log (email, occurred_at);
CREATE INDEX sign_in_log_ip ON sign_in_log (client_ip, occurred_at);
CREATE INDEX sign_in_log_app ON sign_in_log (application, occurred_at);
CREATE INDEX sign_in_log_result ON sign_in_log (result, occurred_at);

-- Messages to send (email now, SMS later). Kept as the development outbox when no gateway is set.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER,
    last_error TEXT
);
CREATE INDEX outbox_recipient ON outbox (recipient, created_at);

-- Tenant-wide settings as JSON documents (branding, ...).
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
