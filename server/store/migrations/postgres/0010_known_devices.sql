-- Browsers an account has signed in from (by a hash of the device cookie), so that a sign-in
-- from a new one can be told to the account's owner.
CREATE TABLE known_devices (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_hash TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_hash)
);
