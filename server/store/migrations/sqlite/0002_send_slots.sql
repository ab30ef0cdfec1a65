-- One row per (purpose, address): which flow's code went out last, and when. Identical sign-up
-- requests within the window join that flow instead of sending another email.
CREATE TABLE send_slots (
    slot TEXT PRIMARY KEY NOT NULL,
    flow_id TEXT NOT NULL,
    claimed_at INTEGER NOT NULL
);
