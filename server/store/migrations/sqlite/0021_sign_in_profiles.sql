-- Each account's sign-in profile: what its successful sign-ins showed (networks, countries,
-- places, browsers, systems, devices, addresses with counts, the newest located one), as
-- JSON. The transaction that logs a successful sign-in brings it up to date (the version
-- guards against two instances writing it at once), so the history-based detections read
-- one row instead of the account's log.
CREATE TABLE sign_in_profiles (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    profile TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
