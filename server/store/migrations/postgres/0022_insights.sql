-- Usage and insights. Each sign-in log row carries the id of the transaction that wrote it;
-- the rollup job reads only rows of transactions older than every one still running
-- (pg_snapshot_xmin), so a row that commits late is never skipped by the watermark.
ALTER TABLE sign_in_log ADD COLUMN seq BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX sign_in_log_seq ON sign_in_log (seq, id);

-- Counters of the sign-in log by span ('q' quarter hour, 'h' hour, 'd' day, in UTC),
-- bucket start (milliseconds), application, dimension (all, method, reason, os, browser,
-- country, policy), its value and the result.
CREATE TABLE insight_counts (
    span TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    application TEXT NOT NULL,
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    result TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, dim, application, value, result)
);

-- How far each rollup has read its source: the (seq, id) of the last row folded in, how
-- many rows in all, and when it last moved.
CREATE TABLE insight_watermarks (
    name TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    rows_done BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
