-- Periodic jobs that any instance may run (the offline risk detections, and later the
-- insights rollups): a job runs only on the instance holding its lease, and a lease whose
-- holder stopped runs out so another instance takes over.
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- When the job last ran to its end (milliseconds), 0 before that.
    finished_at BIGINT NOT NULL DEFAULT 0
);
