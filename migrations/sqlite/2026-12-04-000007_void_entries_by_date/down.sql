CREATE INDEX meter_entries_vehicle_date_idx ON meter_entries (vehicle_id, entry_date);
DROP INDEX meter_entries_void_date_idx;
