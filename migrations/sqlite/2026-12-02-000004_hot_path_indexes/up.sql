-- Indexes shaped for the hot path: each delivery touches as few index pages as it can, and each
-- query the service runs on its own has an index that answers it without a scan.

-- The rules' point lookups on a vehicle's active entries: the nearest one on either side of a
-- time, and those of one value near a time. Partial, so void entries cost these indexes nothing.
CREATE INDEX meter_entries_active_date_idx ON meter_entries (vehicle_id, entry_date, value_m)
    WHERE void = FALSE;
CREATE INDEX meter_entries_active_value_idx ON meter_entries (vehicle_id, value_m, entry_date)
    WHERE void = FALSE;

-- Events are inserted already processed: only the few waiting for a retry are in this index.
-- Queries name `processed = FALSE` as a literal so that both planners use it.
DROP INDEX smartcar_webhook_events_pending_idx;
CREATE INDEX smartcar_webhook_events_pending_idx ON smartcar_webhook_events (next_attempt_at)
    WHERE processed = FALSE;
-- The dead-events gauge counts this small index, not the table.
CREATE INDEX smartcar_webhook_events_dead_idx ON smartcar_webhook_events (id)
    WHERE outcome = 'dead';

-- No query reads these (the statistics filter by time alone; sync logs are read by time, entries
-- by vehicle): each cost a random leaf page per row written.
DROP INDEX smartcar_webhook_events_type_idx;
DROP INDEX smartcar_sync_logs_type_idx;
DROP INDEX smartcar_sync_logs_event_idx;
DROP INDEX meter_entries_created_at_idx;

-- Entries are looked up by their event only to delete a void one before its event is judged again
-- (`events reprocess`): only void entries are in this index, so an accepted reading, keyed by a
-- random event id, costs it nothing.
DROP INDEX meter_entries_event_idx;
CREATE INDEX meter_entries_void_event_idx ON meter_entries (event_id) WHERE void = TRUE;
