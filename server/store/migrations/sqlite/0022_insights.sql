-- Usage and insights. Each sign-in log row gets a sequence number in the order rows are
-- committed (SQLite has one writer, so the insert takes MAX + 1), which the rollup job's
-- watermark follows: rows written after a run, whatever their time, are never missed.
ALTER TABLE sign_in_log ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE sign_in_log SET seq = rowid;
CREATE INDEX sign_in_log_seq ON sign_in_log (seq, id);

-- Counters of the sign-in log by span ('q' quarter hour, 'h' hour, 'd' day, in UTC),
-- bucket start (milliseconds), application, dimension (all, method, reason, os, browser,
-- country, policy), its value and the result.
CREATE TABLE insight_counts (
    span TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    application TEXT NOT NULL,
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    result TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (span, bucket, dim, application, value, result)
) WITHOUT ROWID;

-- How far each rollup has read its source: the (seq, id) of the last row folded in, how
-- many rows in all, and when it last moved.
CREATE TABLE insight_watermarks (
    name TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    rows_done INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
