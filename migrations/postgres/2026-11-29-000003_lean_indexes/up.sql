-- Fewer index pages touched per delivery: every index whose key starts with the vehicle puts one
-- more page per vehicle of a batch into each commit.

-- The UNIQUE (smartcar_vehicle_id, code, observed_at) constraint's own index serves the same
-- queries.
DROP INDEX vehicle_signals_latest_idx;

-- Only `vehicles add` looks events up by vehicle, for those that waited for its registration.
DROP INDEX smartcar_webhook_events_vehicle_idx;
CREATE INDEX smartcar_webhook_events_unknown_vehicle_idx ON smartcar_webhook_events (smartcar_vehicle_id)
    WHERE outcome = 'unknown_vehicle';
