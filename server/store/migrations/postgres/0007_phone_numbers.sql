-- Phone numbers for text-message codes (E.164). A number is usable once a code sent to it came
-- back (verified_at); unverified rows are removed after a day.
CREATE TABLE phone_numbers (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    verified_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX phone_numbers_user ON phone_numbers (user_id);
