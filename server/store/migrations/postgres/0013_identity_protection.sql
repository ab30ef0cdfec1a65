-- Identity Protection: each risk detection (its kind, level, evidence and state) and the
-- history of every change of state, with who made it. An account's user risk is the highest
-- level of its detections still open (at risk or confirmed compromised).
CREATE TABLE risk_detections (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sign_in_id TEXT,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    timing TEXT NOT NULL,
    detected_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    evidence TEXT NOT NULL,
    summary TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX risk_detections_user ON risk_detections (user_id, state);
CREATE INDEX risk_detections_time ON risk_detections (detected_at);

CREATE TABLE risk_state_changes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    detection_id TEXT NOT NULL,
    state TEXT NOT NULL,
    changed_by TEXT,
    changed_at BIGINT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX risk_state_changes_user ON risk_state_changes (user_id, changed_at);
