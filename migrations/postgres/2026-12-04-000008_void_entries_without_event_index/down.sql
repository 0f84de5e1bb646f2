CREATE INDEX meter_entries_void_event_idx ON meter_entries (event_id) WHERE void = TRUE;
