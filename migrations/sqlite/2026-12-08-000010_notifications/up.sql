-- Signed notifications of the changes (METERHOOK_NOTIFY_URL): one row per change to send, its
-- state and its retries, and every attempt. A sender claims a row with a lease (lease_owner,
-- lease_until), so several instances never send the same change at once, and a change held by an
-- instance that died is sent again once its lease expires.
CREATE TABLE notifications (
    position BIGINT PRIMARY KEY NOT NULL,
    -- The ordering lane: the app vehicle (a later change of it waits for an earlier one).
    lane TEXT NOT NULL,
    -- pending, delivered or failed.
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
CREATE INDEX notifications_pending_idx ON notifications (position) WHERE state = 'pending';
CREATE INDEX notifications_lane_idx ON notifications (lane, position) WHERE state = 'pending';

CREATE TABLE notification_attempts (
    id INTEGER PRIMARY KEY NOT NULL,
    position BIGINT NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    -- delivered, rejected (an answer, not 2xx), timeout or unreachable.
    result TEXT NOT NULL,
    status INTEGER,
    -- The start of the answer, capped; never the secret.
    answer TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX notification_attempts_position_idx ON notification_attempts (position);

-- How far the changes were queued for sending; NULL until notifications are first turned on,
-- then the last position at that moment (earlier changes are not sent, unless asked).
CREATE TABLE notify_progress (
    id INTEGER PRIMARY KEY NOT NULL,
    queued_through BIGINT
);
INSERT INTO notify_progress (id, queued_through) VALUES (1, NULL);
