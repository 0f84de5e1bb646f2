-- Timestamps are written from Rust in UTC (no database-side defaults: they differ per backend).
CREATE TABLE smartcar_vehicles (
    id INTEGER PRIMARY KEY NOT NULL,
    smartcar_vehicle_id TEXT NOT NULL UNIQUE,
    vehicle_id TEXT NOT NULL,
    is_active BOOLEAN NOT NULL,
    last_error TEXT,
    last_error_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX smartcar_vehicles_vehicle_id_idx ON smartcar_vehicles (vehicle_id);

CREATE TABLE smartcar_webhook_events (
    id INTEGER PRIMARY KEY NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    smartcar_vehicle_id TEXT,
    payload TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    processed BOOLEAN NOT NULL,
    processed_at TIMESTAMP,
    outcome TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP
);
CREATE INDEX smartcar_webhook_events_received_at_idx ON smartcar_webhook_events (received_at);
CREATE INDEX smartcar_webhook_events_type_idx ON smartcar_webhook_events (event_type, received_at);
CREATE INDEX smartcar_webhook_events_pending_idx ON smartcar_webhook_events (processed, next_attempt_at);
CREATE INDEX smartcar_webhook_events_vehicle_idx ON smartcar_webhook_events (smartcar_vehicle_id, outcome);

CREATE TABLE smartcar_sync_logs (
    id INTEGER PRIMARY KEY NOT NULL,
    sync_type TEXT NOT NULL,
    smartcar_vehicle_id TEXT,
    vehicle_id TEXT,
    event_id TEXT,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX smartcar_sync_logs_created_at_idx ON smartcar_sync_logs (created_at);
CREATE INDEX smartcar_sync_logs_type_idx ON smartcar_sync_logs (sync_type, created_at);
CREATE INDEX smartcar_sync_logs_event_idx ON smartcar_sync_logs (event_id);

CREATE TABLE meter_entries (
    id INTEGER PRIMARY KEY NOT NULL,
    vehicle_id TEXT NOT NULL,
    value_m BIGINT NOT NULL,
    entry_date TIMESTAMP NOT NULL,
    source_type TEXT NOT NULL,
    notes TEXT,
    event_id TEXT,
    void BOOLEAN NOT NULL,
    void_reason TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX meter_entries_vehicle_date_idx ON meter_entries (vehicle_id, entry_date);
CREATE INDEX meter_entries_event_idx ON meter_entries (event_id);
CREATE INDEX meter_entries_created_at_idx ON meter_entries (created_at);
