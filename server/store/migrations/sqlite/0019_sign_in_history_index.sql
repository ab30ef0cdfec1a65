-- Each account's successful sign-ins newest first, read at every sign-in by the history-based
-- detections: served by this index alone, without sorting the account's log and without
-- walking every account's successes by the (result, time) index.
CREATE INDEX sign_in_log_user_success ON sign_in_log (user_id, result, occurred_at, id);
