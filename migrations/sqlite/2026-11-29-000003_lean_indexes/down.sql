DROP INDEX smartcar_webhook_events_unknown_vehicle_idx;
CREATE INDEX smartcar_webhook_events_vehicle_idx ON smartcar_webhook_events (smartcar_vehicle_id, outcome);
CREATE INDEX vehicle_signals_latest_idx ON vehicle_signals (smartcar_vehicle_id, code, observed_at);
