-- Usage and insights: users. Each account's first and last successful sign-in per
-- application ('*' for any), kept by the rollup job: a user is new in the bucket of the
-- first, and inactive once the last is old enough. Removed with the account.
CREATE TABLE insight_user_apps (
    user_id TEXT NOT NULL,
    application TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, application)
);
CREATE INDEX insight_user_apps_last ON insight_user_apps (application, last_at);

-- Distinct-user sketches (HyperLogLog) of the users active in each bucket, by span ('q', 'h',
-- 'd' as for the counters), kind ('active': a successful sign-in) and application ('*': any).
-- A sketch holds hashes of user ids in registers; no id can be read back from it.
CREATE TABLE insight_sketches (
    span TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    kind TEXT NOT NULL,
    application TEXT NOT NULL,
    sketch BYTEA NOT NULL,
    PRIMARY KEY (span, kind, application, bucket)
);

-- Events that are not sign-in attempts but are counted like them (a text message sent,
-- refused by a cap or failed). Each carries the id of the transaction that wrote it, read
-- by their own rollup as the sign-in log's is.
CREATE TABLE insight_events (
    id TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    occurred_at BIGINT NOT NULL,
    application TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX insight_events_seq ON insight_events (seq, id);
CREATE INDEX insight_events_time ON insight_events (occurred_at);

-- Counters gain a fourth span, 'b': sixteen days from a multiple of sixteen days since 1970,
-- so a long range reads a few blocks instead of every day. The blocks of what was counted
-- before are the sums of its days. (Users, their sketches and text events are kept from the
-- first rollup run on this schema; rows counted before it show in the other dashboards.)
INSERT INTO insight_counts (span, bucket, application, dim, value, result, n)
SELECT 'b', bucket - (bucket % 1382400000), application, dim, value, result, SUM(n)
FROM insight_counts WHERE span = 'd'
GROUP BY bucket - (bucket % 1382400000), application, dim, value, result;
