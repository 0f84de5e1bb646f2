CREATE INDEX meter_entries_created_at_idx ON meter_entries (created_at);
CREATE INDEX smartcar_sync_logs_event_idx ON smartcar_sync_logs (event_id);
CREATE INDEX smartcar_sync_logs_type_idx ON smartcar_sync_logs (sync_type, created_at);
CREATE INDEX smartcar_webhook_events_type_idx ON smartcar_webhook_events (event_type, received_at);
DROP INDEX smartcar_webhook_events_dead_idx;
DROP INDEX smartcar_webhook_events_pending_idx;
CREATE INDEX smartcar_webhook_events_pending_idx ON smartcar_webhook_events (processed, next_attempt_at);
DROP INDEX meter_entries_active_value_idx;
DROP INDEX meter_entries_active_date_idx;
