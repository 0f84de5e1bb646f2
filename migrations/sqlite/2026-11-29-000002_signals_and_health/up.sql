-- Every signal of a VEHICLE_STATE, one row per (vehicle, code, observed time).
CREATE TABLE vehicle_signals (
    id INTEGER PRIMARY KEY NOT NULL,
    smartcar_vehicle_id TEXT NOT NULL,
    code TEXT NOT NULL,
    value DOUBLE PRECISION,
    unit TEXT,
    raw TEXT NOT NULL,
    observed_at TIMESTAMP NOT NULL,
    event_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (smartcar_vehicle_id, code, observed_at)
);
CREATE INDEX vehicle_signals_latest_idx ON vehicle_signals (smartcar_vehicle_id, code, observed_at);

-- Vehicle health: one row per error condition, open until a RESOLVED for the same type and code.
CREATE TABLE vehicle_errors (
    id INTEGER PRIMARY KEY NOT NULL,
    smartcar_vehicle_id TEXT NOT NULL,
    error_type TEXT NOT NULL,
    code TEXT NOT NULL,
    description TEXT,
    suggested_user_message TEXT,
    resolution_type TEXT,
    doc_url TEXT,
    first_seen_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    event_id TEXT NOT NULL
);
CREATE INDEX vehicle_errors_open_idx ON vehicle_errors (smartcar_vehicle_id, resolved_at);
