-- Webhook endpoints an admin registers for Identity Protection's events, and the outbox of
-- their deliveries. A delivery row is written in the same transaction as the event it tells
-- of (a detection, a change of its state, a risky sign-in), so no event is lost between the
-- write and the send; a worker under a lease sends the due rows and retries failures.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- The event types it receives, separated by spaces.
    event_types TEXT NOT NULL,
    -- The signing secret, sealed with the instance key; the previous one stays valid for
    -- signatures until previous_secret_until after a rotation.
    secret_sealed TEXT NOT NULL,
    previous_secret_sealed TEXT,
    previous_secret_until INTEGER,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    -- The event's id, sent as webhook-id: the same on every attempt, so receivers can drop
    -- repeats. A detection's events are named by their risk_state_changes row, a risky
    -- sign-in's by its sign_in_log row.
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER,
    given_up_at INTEGER,
    last_status INTEGER,
    last_error TEXT,
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);
